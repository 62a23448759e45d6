//! Errors as the UI sees them: a code to branch on and a message to show.

use altiplano_core::choose::ChooseError;
use altiplano_core::download::queue::QueueError;
use altiplano_core::download::DownloadError;
use altiplano_core::engine::UnknownIsq;
use altiplano_core::library::LibraryError;
use altiplano_core::secrets::SecretError;
use altiplano_core::session::SessionError;
use altiplano_core::store::StoreError;
use serde::Serialize;

use altiplano_core::error::ErrorKind;

/// What kind of failure, for the UI to branch on (never on the message text): the core's
/// `ErrorKind`, variant for variant (see its documentation for what each means).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub enum ErrorCode {
    NoModel,
    ModelLoading,
    ModelNotFound,
    InvalidModel,
    TruncatedModel,
    ModelLoadFailed,
    PromptTooLong,
    EmptyMessage,
    NothingToRegenerate,
    NotFound,
    GenerationFailed,
    Busy,
    Gated,
    DiskFull,
    Network,
    Offline,
    Checksum,
    Invalid,
    Keyring,
    BadDocument,
    Stopped,
    Internal,
}

/// An error as the UI sees it.
#[derive(Debug, Clone, Serialize, specta::Type, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl From<ErrorKind> for ErrorCode {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::NoModel => Self::NoModel,
            ErrorKind::ModelLoading => Self::ModelLoading,
            ErrorKind::ModelNotFound => Self::ModelNotFound,
            ErrorKind::InvalidModel => Self::InvalidModel,
            ErrorKind::TruncatedModel => Self::TruncatedModel,
            ErrorKind::ModelLoadFailed => Self::ModelLoadFailed,
            ErrorKind::PromptTooLong => Self::PromptTooLong,
            ErrorKind::EmptyMessage => Self::EmptyMessage,
            ErrorKind::NothingToRegenerate => Self::NothingToRegenerate,
            ErrorKind::NotFound => Self::NotFound,
            ErrorKind::GenerationFailed => Self::GenerationFailed,
            ErrorKind::Busy => Self::Busy,
            ErrorKind::Gated => Self::Gated,
            ErrorKind::DiskFull => Self::DiskFull,
            ErrorKind::Network => Self::Network,
            ErrorKind::Offline => Self::Offline,
            ErrorKind::Checksum => Self::Checksum,
            ErrorKind::Invalid => Self::Invalid,
            ErrorKind::Keyring => Self::Keyring,
            ErrorKind::BadDocument => Self::BadDocument,
            ErrorKind::Stopped => Self::Stopped,
            ErrorKind::Internal => Self::Internal,
        }
    }
}

impl From<UnknownIsq> for ApiError {
    fn from(e: UnknownIsq) -> Self {
        Self::new(ErrorCode::Invalid, e.to_string())
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        // The inner error's own words where the session only wraps it.
        match e {
            SessionError::Download(e) => e.into(),
            SessionError::Library(e) => e.into(),
            SessionError::Choose(ChooseError::Library(e)) => e.into(),
            other => Self::new(other.kind().into(), other.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::new(e.kind().into(), e.to_string())
    }
}

impl From<DownloadError> for ApiError {
    fn from(e: DownloadError) -> Self {
        Self::new(e.kind().into(), e.to_string())
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Download(d) => d.into(),
            other => Self::new(other.kind().into(), other.to_string()),
        }
    }
}

impl From<LibraryError> for ApiError {
    fn from(e: LibraryError) -> Self {
        Self::new(e.kind().into(), e.to_string())
    }
}

impl From<SecretError> for ApiError {
    fn from(e: SecretError) -> Self {
        Self::new(e.kind().into(), e.to_string())
    }
}
