//! Secrets in the OS keyring: the Hugging Face access token.
//!
//! The token lives in the platform's credential store (Secret Service on Linux, Keychain on
//! macOS, Credential Manager on Windows) under the service `altiplano` — never in a file and
//! never in a log line: [`HfToken`] prints as `hf_…(redacted)`. `HF_TOKEN` in the environment,
//! the variable Hugging Face's own tools read, takes precedence over the keyring.

use std::fmt;

/// Keyring service name for every Altiplano secret.
pub const SERVICE: &str = "altiplano";
/// Keyring entry (user) holding the Hugging Face token.
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

fn entry() -> Result<keyring::Entry, SecretError> {
    keyring::Entry::new(SERVICE, HF_TOKEN_ENTRY).map_err(map_error)
}

fn map_error(e: keyring::Error) -> SecretError {
    match e {
        keyring::Error::PlatformFailure(inner) | keyring::Error::NoStorageAccess(inner) => {
            SecretError::Unavailable(inner.to_string())
        }
        other => SecretError::Keyring(other.to_string()),
    }
}

/// The token to use and where it came from: `HF_TOKEN` first, then the keyring. A keyring that
/// is not available counts as no token (downloads of public models need none).
pub async fn hf_token() -> Option<(HfToken, TokenSource)> {
    if let Some(token) = std::env::var(HF_TOKEN_ENV).ok().as_deref().and_then(HfToken::new) {
        return Some((token, TokenSource::Environment));
    }
    match stored_hf_token().await {
        Ok(token) => token.map(|t| (t, TokenSource::Keyring)),
        Err(e) => {
            tracing::debug!(error = %e, "no token from the keyring");
            None
        }
    }
}

/// The token stored in the keyring, if any.
pub async fn stored_hf_token() -> Result<Option<HfToken>, SecretError> {
    blocking(|| match entry()?.get_password() {
        Ok(token) => Ok(HfToken::new(&token)),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(map_error(e)),
    })
    .await
}

/// Stores the token in the keyring, replacing any earlier one.
pub async fn set_hf_token(token: &str) -> Result<(), SecretError> {
    let token = HfToken::new(token).ok_or(SecretError::Empty)?;
    blocking(move || entry()?.set_password(token.expose()).map_err(map_error)).await
}

/// Removes the token from the keyring; removing a token that is not there is not an error.
pub async fn clear_hf_token() -> Result<(), SecretError> {
    blocking(|| match entry()?.delete_credential() {
        Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(e) => Err(map_error(e)),
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
}
