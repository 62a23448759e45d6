//! Secrets in the OS keyring: the Hugging Face access token, and remote model servers' API keys.
//!
//! The token lives in the platform's credential store (Secret Service on Linux, Keychain on
//! macOS, Credential Manager on Windows) under the service `altiplano` — never in a file and
//! never in a log line: [`HfToken`] prints as `hf_…(redacted)`. A token is kept for the
//! endpoint it was added for (the Hub, or one mirror) and goes to that endpoint only: after a
//! change of endpoint there is no token until one is added for the new one. `HF_TOKEN` in the
//! environment, the variable Hugging Face's own tools read, takes precedence over the keyring
//! and goes to the endpoint in use (`HF_ENDPOINT`, for those tools too).

use std::fmt;

/// Keyring service name for every Altiplano secret.
pub const SERVICE: &str = "altiplano";
/// Keyring entry (user) holding the Hugging Face token for the Hub; a mirror's is this name,
/// `@` and the mirror's URL.
pub const HF_TOKEN_ENTRY: &str = "huggingface-token";
/// Environment variable that overrides the stored token.
pub const HF_TOKEN_ENV: &str = "HF_TOKEN";

/// A Hugging Face access token. Debug and Display never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct HfToken(String);

impl HfToken {
    /// Wraps a token after trimming whitespace; `None` when nothing is left.
    pub fn new(token: &str) -> Option<Self> {
        let token = token.trim();
        (!token.is_empty()).then(|| Self(token.to_owned()))
    }

    /// The token itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for HfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HfToken(redacted)")
    }
}

/// Where the token in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// The `HF_TOKEN` environment variable.
    Environment,
    /// The OS keyring.
    Keyring,
}

/// Errors from the keyring.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// No usable credential store (for example no Secret Service on a headless Linux box).
    #[error(
        "the system keyring is not available ({0}); on Linux start a Secret Service such as \
         gnome-keyring, or set the HF_TOKEN environment variable instead"
    )]
    Unavailable(String),
    /// The token was empty.
    #[error("the token is empty; paste the access token from your Hugging Face settings (Access Tokens)")]
    Empty,
    /// Anything else the keyring reported.
    #[error("the system keyring failed: {0}")]
    Keyring(String),
}

/// The keyring entry of the token for `endpoint`: [`HF_TOKEN_ENTRY`] for the Hub (the name
/// earlier versions kept the Hub's token under), `huggingface-token@<endpoint>` for another.
pub fn entry_name(endpoint: &str) -> String {
    let endpoint = endpoint.trim().trim_end_matches('/');
    if endpoint == crate::download::hub::DEFAULT_ENDPOINT {
        HF_TOKEN_ENTRY.to_owned()
    } else {
        format!("{HF_TOKEN_ENTRY}@{endpoint}")
    }
}

fn entry(endpoint: &str) -> Result<keyring::Entry, SecretError> {
    keyring::Entry::new(SERVICE, &entry_name(endpoint)).map_err(map_error)
}

fn map_error(e: keyring::Error) -> SecretError {
    match e {
        keyring::Error::PlatformFailure(inner) | keyring::Error::NoStorageAccess(inner) => {
            SecretError::Unavailable(inner.to_string())
        }
        other => SecretError::Keyring(other.to_string()),
    }
}

/// The token to send to `endpoint` and where it came from: `HF_TOKEN` first, then the one kept
/// for `endpoint` in the keyring. A keyring that is not available counts as no token
/// (downloads of public models need none).
pub async fn hf_token(endpoint: &str) -> Option<(HfToken, TokenSource)> {
    if let Some(token) = std::env::var(HF_TOKEN_ENV).ok().as_deref().and_then(HfToken::new) {
        return Some((token, TokenSource::Environment));
    }
    match stored_hf_token(endpoint).await {
        Ok(token) => token.map(|t| (t, TokenSource::Keyring)),
        Err(e) => {
            tracing::debug!(error = %e, "no token from the keyring");
            None
        }
    }
}

/// The token kept in the keyring for `endpoint`, if any.
pub async fn stored_hf_token(endpoint: &str) -> Result<Option<HfToken>, SecretError> {
    let endpoint = endpoint.to_owned();
    blocking(move || match entry(&endpoint)?.get_password() {
        Ok(token) => Ok(HfToken::new(&token)),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(map_error(e)),
    })
    .await
}

/// Keeps `token` in the keyring for `endpoint` (it goes there only), replacing an earlier one.
pub async fn set_hf_token(endpoint: &str, token: &str) -> Result<(), SecretError> {
    let token = HfToken::new(token).ok_or(SecretError::Empty)?;
    let endpoint = endpoint.to_owned();
    blocking(move || entry(&endpoint)?.set_password(token.expose()).map_err(map_error)).await
}

/// Removes the token kept for `endpoint`; removing a token that is not there is not an error.
pub async fn clear_hf_token(endpoint: &str) -> Result<(), SecretError> {
    let endpoint = endpoint.to_owned();
    blocking(move || match entry(&endpoint)?.delete_credential() {
        Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(e) => Err(map_error(e)),
    })
    .await
}

/// The keyring entry of a remote model server's API key.
pub fn remote_key_entry(remote: &str) -> String {
    format!("remote-key@{remote}")
}

/// The API key kept for the remote model server `remote` (`altiplano remote add`), if any.
pub async fn remote_key(remote: &str) -> Result<Option<String>, SecretError> {
    let name = remote_key_entry(remote);
    blocking(move || {
        let entry = keyring::Entry::new(SERVICE, &name).map_err(map_error)?;
        match entry.get_password() {
            Ok(key) => Ok(Some(key.trim().to_owned()).filter(|k| !k.is_empty())),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(map_error(e)),
        }
    })
    .await
}

/// Keeps `key` for the remote model server `remote`, or removes the one kept (`None`).
pub async fn set_remote_key(remote: &str, key: Option<&str>) -> Result<(), SecretError> {
    let name = remote_key_entry(remote);
    let key = key.map(str::trim).filter(|k| !k.is_empty()).map(str::to_owned);
    blocking(move || {
        let entry = keyring::Entry::new(SERVICE, &name).map_err(map_error)?;
        match key {
            Some(key) => entry.set_password(&key).map_err(map_error),
            None => match entry.delete_credential() {
                Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
                Err(e) => Err(map_error(e)),
            },
        }
    })
    .await
}

/// The keyring API blocks (D-Bus round trips); keep it off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SecretError> + Send + 'static,
) -> Result<T, SecretError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| SecretError::Keyring(format!("keyring task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_never_shows_in_debug_output() {
        let token = HfToken::new("  hf_abcdefSECRET \n").expect("non-empty");
        assert_eq!(token.expose(), "hf_abcdefSECRET");
        assert!(!format!("{token:?}").contains("SECRET"));
        assert!(HfToken::new(" \t").is_none());
    }

    #[test]
    fn each_endpoint_has_its_own_token_entry_and_the_hub_keeps_the_old_name() {
        assert_eq!(entry_name("https://huggingface.co/"), HF_TOKEN_ENTRY);
        assert_eq!(entry_name(" https://hf-mirror.example "), "huggingface-token@https://hf-mirror.example");
        assert_ne!(entry_name("http://127.0.0.1:8080"), entry_name("http://localhost:8080"));
    }
}
