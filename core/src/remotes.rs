//! Remote model servers the user added (`altiplano remote add`): any OpenAI-compatible
//! endpoint — vLLM or SGLang on a cluster, llama.cpp's server, another Altiplano — by name,
//! and which one, if any, is the chat model in place of a local one.
//!
//! Each is kept in the settings (`remotes`: name, URL, model, context length as JSON); its API
//! key lives in the OS keyring ([`crate::secrets::remote_key`]), never in the database. Choosing
//! one ([`use_remote`]) makes it the chat model until a local model is chosen again
//! ([`crate::choose::remember`] clears it). [`endpoint`] gives what
//! [`Engine::connect`](crate::engine::Engine::connect) needs.

use serde::{Deserialize, Serialize};

use crate::download::queue::offline_from_environment;
use crate::engine::remote::{checked_base_url, RemoteEndpoint};
use crate::engine::Engine;
use crate::secrets::{self, SecretError};
use crate::store::{Store, StoreError};

/// Setting key holding the remotes, a JSON array of [`Remote`].
const REMOTES_KEY: &str = "remotes";
/// Setting key naming the remote in use as the chat model (empty: a local model).
pub const IN_USE_KEY: &str = "model.remote";

/// A remote model server, as added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remote {
    /// The name it was added under.
    pub name: String,
    /// Its OpenAI-compatible base URL, ending in `/v1`.
    pub url: String,
    /// The model to use there (`None`: the first it lists).
    #[serde(default)]
    pub model: Option<String>,
    /// Its context length, when the user gave one (servers that do not say).
    #[serde(default)]
    pub context_tokens: Option<usize>,
}

/// Why a remote cannot be added, found or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// No remote of that name.
    #[error(
        "there is no remote named {0:?}; `altiplano remote list` shows them, `altiplano remote add NAME URL` adds one"
    )]
    NotFound(String),
    /// A name that cannot be one.
    #[error("{0:?} cannot name a remote: use letters, digits, '-', '_' and '.' (up to 64)")]
    BadName(String),
    /// A URL that is not http(s).
    #[error("{0:?} is not an http:// or https:// address (e.g. http://gpu-box:8000/v1)")]
    BadUrl(String),
    /// The keyring failed while keeping or reading the key.
    #[error(transparent)]
    Keyring(#[from] SecretError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server could not be used (unreachable, a refused key, no such model…).
    #[error(transparent)]
    Connect(#[from] crate::engine::EngineError),
    /// The settings hold something that is not a list of remotes.
    #[error("the remotes kept in the settings cannot be read ({0}); add them again")]
    Corrupt(String),
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Every remote added, in the order added.
pub async fn list(store: &Store) -> Result<Vec<Remote>, RemoteError> {
    match store.setting(REMOTES_KEY).await?.filter(|v| !v.trim().is_empty()) {
        None => Ok(Vec::new()),
        Some(json) => serde_json::from_str(&json).map_err(|e| RemoteError::Corrupt(e.to_string())),
    }
}

async fn save(store: &Store, remotes: &[Remote]) -> Result<(), RemoteError> {
    let json = serde_json::to_string(remotes).map_err(|e| RemoteError::Corrupt(e.to_string()))?;
    Ok(store.set_setting(REMOTES_KEY, &json).await?)
}

/// Adds `remote` (replacing one of the same name), its key kept in the keyring (`None`
/// removes a key kept before) — after connecting to it once, so that a wrong address, key or
/// model is said before anything is kept. Returns it as kept, and the connection.
pub async fn add(store: &Store, mut remote: Remote, api_key: Option<&str>) -> Result<(Remote, Engine), RemoteError> {
    if !valid_name(&remote.name) {
        return Err(RemoteError::BadName(remote.name));
    }
    let Some(url) = checked_base_url(&remote.url) else { return Err(RemoteError::BadUrl(remote.url)) };
    remote.url = url;
    let engine = Engine::connect(&RemoteEndpoint {
        url: remote.url.clone(),
        model: remote.model.clone(),
        api_key: api_key.map(str::to_owned),
        context_tokens: remote.context_tokens,
        offline: offline_from_environment(),
    })
    .await?;
    match api_key {
        Some(key) => secrets::set_remote_key(&remote.name, Some(key)).await?,
        None => forget_key(&remote.name).await,
    }
    let mut remotes = list(store).await?;
    match remotes.iter_mut().find(|r| r.name == remote.name) {
        Some(existing) => *existing = remote.clone(),
        None => remotes.push(remote.clone()),
    }
    save(store, &remotes).await?;
    Ok((remote, engine))
}

/// Removes a key kept for `name`, if there is one; without a keyring there is none to remove.
async fn forget_key(name: &str) {
    if let Err(e) = secrets::set_remote_key(name, None).await {
        tracing::debug!(remote = %name, "no key removed: {e}");
    }
}

/// The remote named `name`.
pub async fn get(store: &Store, name: &str) -> Result<Remote, RemoteError> {
    list(store).await?.into_iter().find(|r| r.name == name).ok_or_else(|| RemoteError::NotFound(name.to_owned()))
}

/// Removes a remote and its key; if it was the chat model, a local one is used again.
pub async fn remove(store: &Store, name: &str) -> Result<(), RemoteError> {
    let mut remotes = list(store).await?;
    let before = remotes.len();
    remotes.retain(|r| r.name != name);
    if remotes.len() == before {
        return Err(RemoteError::NotFound(name.to_owned()));
    }
    save(store, &remotes).await?;
    forget_key(name).await;
    if in_use(store).await?.as_deref() == Some(name) {
        store.set_setting(IN_USE_KEY, "").await?;
    }
    Ok(())
}

/// Makes the remote `name` the chat model (with `model`, when given, as the model it uses
/// there from now on).
pub async fn use_remote(store: &Store, name: &str, model: Option<String>) -> Result<Remote, RemoteError> {
    let mut remotes = list(store).await?;
    let remote = remotes.iter_mut().find(|r| r.name == name).ok_or_else(|| RemoteError::NotFound(name.to_owned()))?;
    if model.is_some() {
        remote.model = model;
    }
    let chosen = remote.clone();
    save(store, &remotes).await?;
    store.set_setting(IN_USE_KEY, name).await?;
    Ok(chosen)
}

/// The name of the remote in use as the chat model, if one is.
pub async fn in_use(store: &Store) -> Result<Option<String>, RemoteError> {
    Ok(store.setting(IN_USE_KEY).await?.filter(|n| !n.is_empty()))
}

/// Connects to a kept remote (with its key from the keyring).
pub async fn connect(remote: &Remote) -> Result<Engine, RemoteError> {
    Ok(Engine::connect(&endpoint(remote).await?).await?)
}

/// `name`'s remote with `model` (when given) in place of the one it was added with.
pub async fn with_model(store: &Store, name: &str, model: Option<String>) -> Result<Remote, RemoteError> {
    let remote = get(store, name).await?;
    Ok(Remote { model: model.or(remote.model.clone()), ..remote })
}

/// What connecting to `remote` takes: its URL, model and context, its key from the keyring,
/// and whether the network may be used (`ALTIPLANO_OFFLINE`).
pub async fn endpoint(remote: &Remote) -> Result<RemoteEndpoint, RemoteError> {
    Ok(RemoteEndpoint {
        url: remote.url.clone(),
        model: remote.model.clone(),
        api_key: secrets::remote_key(&remote.name).await.unwrap_or_else(|e| {
            // A server that wants a key says so (401), and that message says what to do.
            tracing::warn!(remote = %remote.name, "no key from the keyring: {e}");
            None
        }),
        context_tokens: remote.context_tokens,
        offline: offline_from_environment(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_words() {
        for good in ["cluster", "gpu-box_2", "vllm.lab"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "a b", "../x", "naïve", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
