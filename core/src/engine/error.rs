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
