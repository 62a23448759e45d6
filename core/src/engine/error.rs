//! The engine's errors: one enum for loading and generating, on either backend.

use std::path::PathBuf;

use super::EngineKind;

/// Errors from loading a model or generating with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The model file does not exist.
    #[error("model file {0} does not exist; choose a GGUF file that is on this computer")]
    ModelNotFound(PathBuf),
    /// The path is a folder or something else that is not a regular file.
    #[error("{0} is not a model file; choose a .gguf file")]
    NotAFile(PathBuf),
    /// The file is not a model Altiplano can read.
    #[error("{path} cannot be used as a model: {reason}")]
    InvalidModel {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// The file is shorter than its header says: usually an unfinished download.
    #[error(
        "{path} is incomplete ({actual} of {expected} bytes): it was probably not fully downloaded; download it again"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header requires.
        expected: u64,
        /// Bytes on disk.
        actual: u64,
    },
    /// mistral.rs refused the model.
    #[error("could not load {path}: {reason}")]
    Load {
        /// The file.
        path: PathBuf,
        /// mistral.rs's message.
        reason: String,
    },
    /// The prompt does not fit the model's context window even with all history left out.
    #[error(
        "the message is too long for this model: {tokens} tokens, but the model's context holds {limit}; shorten it"
    )]
    PromptTooLong {
        /// Tokens in the prompt.
        tokens: usize,
        /// The model's context length minus the space kept for the reply.
        limit: usize,
    },
    /// Generation failed inside the engine.
    #[error("the model failed while writing the reply: {0}")]
    Generation(String),
    /// The engine's worker stopped without finishing the reply.
    #[error("the engine stopped unexpectedly; reload the model and try again")]
    EngineStopped,
    /// A remote server cannot be reached (or, offline, may not be).
    #[error("cannot reach the model server at {url}: {reason}")]
    RemoteUnreachable {
        /// The server's base URL.
        url: String,
        /// Why, and what to check.
        reason: String,
    },
    /// A remote server refused the key (401/403).
    #[error(
        "the model server at {url} refused the API key ({status}: {message}); give the right one with \
         `altiplano remote add NAME URL --api-key KEY`"
    )]
    RemoteRefused {
        /// The server's base URL.
        url: String,
        /// 401 or 403.
        status: u16,
        /// What the server said.
        message: String,
    },
    /// A remote server does not serve the model asked for (or serves none).
    #[error("the model server at {url} {}", missing_model(model, available))]
    RemoteModelMissing {
        /// The server's base URL.
        url: String,
        /// The model asked for (empty: any).
        model: String,
        /// What it serves.
        available: Vec<String>,
    },
    /// A remote server does not say how long its model's context is.
    #[error(
        "the model server at {url} does not say how many tokens of context {model} holds; give it with \
         `altiplano remote add NAME URL --context N` (the length the server was started with)"
    )]
    RemoteContextUnknown {
        /// The server's base URL.
        url: String,
        /// The model.
        model: String,
    },
    /// A remote server answered with an error.
    #[error("the model server at {url} answered {status}: {message}")]
    RemoteFailed {
        /// The server's base URL.
        url: String,
        /// The HTTP status (200 for an error inside a stream).
        status: u16,
        /// What it said.
        message: String,
    },
    /// The connection to a remote server broke in the middle of a reply.
    #[error(
        "the connection to the model server at {url} broke in the middle of the reply ({reason}); what came is kept"
    )]
    RemoteDropped {
        /// The server's base URL.
        url: String,
        /// What broke.
        reason: String,
    },
    /// The chosen engine cannot run this kind of model.
    #[error("{engine} cannot run {path}: {reason}")]
    WrongEngine {
        /// The model.
        path: PathBuf,
        /// The engine asked for.
        engine: EngineKind,
        /// Why, and what to do instead.
        reason: String,
    },
}

fn missing_model(model: &str, available: &[String]) -> String {
    match (model.is_empty(), available.is_empty()) {
        (_, true) => "serves no model; load one on the server".to_owned(),
        (true, false) => format!("serves {}", available.join(", ")),
        (false, false) => {
            format!("does not serve {model}; it serves {} (choose one with --model)", available.join(", "))
        }
    }
}
