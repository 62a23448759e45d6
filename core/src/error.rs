//! What kind of failure an error is, for a face to branch on (never on its message): the
//! app's UI words it and offers the action that fixes it, the CLI prints the message, and the
//! HTTP server (next) will map it to a status. Every error of the core has a `kind()`, here in
//! one table, each match exhaustive, so a new variant has to say what kind it is.

use serde::Serialize;

use crate::catalog::CatalogError;
use crate::chat::ChatError;
use crate::choose::ChooseError;
use crate::codebase::answer::AskError;
use crate::codebase::desk::DeskError;
use crate::codebase::CodeError;
use crate::documents::followup::FollowUpError;
use crate::documents::{DocumentError, OpenError, SummaryError};
use crate::download::queue::QueueError;
use crate::download::DownloadError;
use crate::engine::EngineError;
use crate::library::LibraryError;
use crate::secrets::SecretError;
use crate::session::SessionError;
use crate::store::StoreError;

/// An error's message with its causes, `: `-joined: libraries such as reqwest keep the cause
/// (why a request failed) out of their own message.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    message
}

/// The kinds of failure a user can meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No model is loaded.
    NoModel,
    /// A model is still loading.
    ModelLoading,
    /// The model file or folder is not there.
    ModelNotFound,
    /// The file is not a model Altiplano can run.
    InvalidModel,
    /// The model file is shorter than its header says (an unfinished download).
    TruncatedModel,
    /// The engine could not load the model.
    ModelLoadFailed,
    /// The prompt does not fit the model's context.
    PromptTooLong,
    /// An empty message was sent.
    EmptyMessage,
    /// There is no reply to regenerate.
    NothingToRegenerate,
    /// The conversation, message, document, page, download or folder asked for is not there.
    NotFound,
    /// The model failed while writing.
    GenerationFailed,
    /// The same request is already running.
    Busy,
    /// A gated repo: accept the licence and add a token.
    Gated,
    /// Not enough disk space.
    DiskFull,
    /// The network or the server failed; retry.
    Network,
    /// Offline mode is on, so nothing that needs the network runs.
    Offline,
    /// A download's file failed its checksum.
    Checksum,
    /// The request is malformed (a bad repo id, endpoint, target or option).
    Invalid,
    /// The OS keyring is not available.
    Keyring,
    /// A document that cannot be read (damaged, encrypted, unsupported, no text).
    BadDocument,
    /// The user stopped the work; what was finished is kept.
    Stopped,
    /// Anything else: a bug or a broken installation; the message says what.
    Internal,
}

impl ErrorKind {
    /// The kind of a download error recorded in the `downloads` table by its code
    /// ([`DownloadError::code`]); codes it does not know are [`ErrorKind::Internal`].
    pub fn of_download_code(code: &str) -> Self {
        match code {
            "gated" => Self::Gated,
            "disk_full" => Self::DiskFull,
            "network" => Self::Network,
            "offline" => Self::Offline,
            "checksum" => Self::Checksum,
            "not_found" => Self::NotFound,
            "invalid" => Self::Invalid,
            _ => Self::Internal,
        }
    }
}

impl EngineError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::ModelNotFound(_) | Self::NotAFile(_) => ErrorKind::ModelNotFound,
            Self::InvalidModel { .. } => ErrorKind::InvalidModel,
            Self::Truncated { .. } => ErrorKind::TruncatedModel,
            Self::Load { .. } | Self::WrongEngine { .. } => ErrorKind::ModelLoadFailed,
            Self::PromptTooLong { .. } => ErrorKind::PromptTooLong,
            Self::Generation(_) | Self::EngineStopped | Self::RemoteFailed { .. } => ErrorKind::GenerationFailed,
            Self::RemoteUnreachable { .. } | Self::RemoteDropped { .. } => ErrorKind::Network,
            Self::RemoteRefused { .. } | Self::RemoteContextUnknown { .. } => ErrorKind::Invalid,
            Self::RemoteModelMissing { .. } => ErrorKind::ModelNotFound,
        }
    }
}

impl StoreError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::ConversationNotFound(_) | Self::MessageNotFound(_) | Self::DocumentNotFound(_) => ErrorKind::NotFound,
            Self::EmptyTitle => ErrorKind::Invalid,
            Self::Open { .. } | Self::Migrate(_) | Self::Database(_) => ErrorKind::Internal,
        }
    }
}

impl ChatError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Store(e) => e.kind(),
            Self::Engine(e) => e.kind(),
            Self::EmptyMessage => ErrorKind::EmptyMessage,
            Self::NothingToRegenerate(_) => ErrorKind::NothingToRegenerate,
        }
    }
}

impl DownloadError {
    /// What kind of failure this is (the same as its stored [`DownloadError::code`] reads as).
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::of_download_code(self.code())
    }
}

impl QueueError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Download(e) => e.kind(),
            Self::Store(e) => e.kind(),
            Self::Library(e) => e.kind(),
        }
    }
}

impl LibraryError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Missing(_) => ErrorKind::ModelNotFound,
            Self::Invalid { .. } => ErrorKind::InvalidModel,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Remove { .. } => ErrorKind::Internal,
            Self::Store(e) => e.kind(),
        }
    }
}

impl SecretError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Empty => ErrorKind::Invalid,
            Self::Unavailable(_) | Self::Keyring(_) => ErrorKind::Keyring,
        }
    }
}

impl crate::remotes::RemoteError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::BadName(_) | Self::BadUrl(_) => ErrorKind::Invalid,
            Self::Keyring(e) => e.kind(),
            Self::Store(e) => e.kind(),
            Self::Corrupt(_) => ErrorKind::Internal,
            Self::Connect(e) => e.kind(),
        }
    }
}

impl ChooseError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownTarget(_) | Self::EmbeddingModel(_) | Self::IsqOnGguf(_) => ErrorKind::Invalid,
            Self::NoStarter(_) => ErrorKind::ModelNotFound,
            Self::Library(e) => e.kind(),
            Self::Download(e) => e.kind(),
        }
    }
}

impl DocumentError {
    /// What kind of failure this is: every one is a document that cannot be read.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::BadDocument
    }
}

impl OpenError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Document(e) => e.kind(),
            Self::Store(e) => e.kind(),
        }
    }
}

impl SummaryError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NoText => ErrorKind::BadDocument,
            Self::Cancelled { .. } => ErrorKind::Stopped,
            Self::ContextTooSmall(_) => ErrorKind::Internal,
            Self::Engine(e) => e.kind(),
            Self::Store(e) => e.kind(),
        }
    }
}

impl FollowUpError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Search(_) => ErrorKind::Internal,
            Self::Engine(e) => e.kind(),
            Self::Store(e) => e.kind(),
            Self::Stopped => ErrorKind::Stopped,
        }
    }
}

impl crate::engine::embed::EmbedError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        use crate::engine::embed::EmbedError;
        match self {
            EmbedError::Missing { .. } => ErrorKind::ModelNotFound,
            EmbedError::Damaged { .. } | EmbedError::NotEmbedding { .. } => ErrorKind::InvalidModel,
            EmbedError::Run(_) => ErrorKind::GenerationFailed,
        }
    }
}

impl crate::search_models::SearchModelError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        use crate::search_models::SearchModelError;
        match self {
            SearchModelError::Unknown { .. } => ErrorKind::Invalid,
            SearchModelError::NotDownloaded { .. } => ErrorKind::ModelNotFound,
            SearchModelError::Load(e) => e.kind(),
            SearchModelError::Store(e) => e.kind(),
            SearchModelError::Library(e) => e.kind(),
            SearchModelError::Catalog(e) => e.kind(),
        }
    }
}

impl CodeError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotAFolder(_) => ErrorKind::NotFound,
            Self::Embed(e) => e.kind(),
            Self::Index(_) | Self::Io { .. } => ErrorKind::Internal,
        }
    }
}

impl AskError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Index(e) => e.kind(),
            Self::Engine(e) => e.kind(),
        }
    }
}

impl DeskError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Ask(e) => e.kind(),
            Self::Store(e) => e.kind(),
        }
    }
}

impl CatalogError {
    /// What kind of failure this is: the built-in catalog is part of the program.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

impl SessionError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NoModel => ErrorKind::NoModel,
            Self::ModelLoading => ErrorKind::ModelLoading,
            Self::DuplicateRequest(_) => ErrorKind::Busy,
            Self::NoProject | Self::OutsideProject(_) | Self::NoSuchPage(_) => ErrorKind::NotFound,
            Self::Chat(e) => e.kind(),
            Self::Engine(e) => e.kind(),
            Self::Store(e) => e.kind(),
            Self::Catalog(e) => e.kind(),
            Self::Code(e) => e.kind(),
            Self::Download(e) => e.kind(),
            Self::Library(e) => e.kind(),
            Self::Document(e) => e.kind(),
            Self::OpenDocument(e) => e.kind(),
            Self::Summary(e) => e.kind(),
            Self::FollowUp(e) => e.kind(),
            Self::Choose(e) => e.kind(),
            Self::SearchModel(e) => e.kind(),
            Self::Remote(e) => e.kind(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_cause_through_every_wrapper() {
        let missing = EngineError::ModelNotFound("m.gguf".into());
        assert_eq!(SessionError::Chat(ChatError::Engine(missing)).kind(), ErrorKind::ModelNotFound);
        let gone = StoreError::ConversationNotFound(7);
        assert_eq!(SessionError::Summary(SummaryError::Store(gone)).kind(), ErrorKind::NotFound);
        assert_eq!(SessionError::Chat(ChatError::EmptyMessage).kind(), ErrorKind::EmptyMessage);
        assert_eq!(SessionError::DuplicateRequest(3).kind(), ErrorKind::Busy);
        assert_eq!(SecretError::Empty.kind(), ErrorKind::Invalid);
        assert_eq!(DocumentError::Encrypted("a.pdf".into()).kind(), ErrorKind::BadDocument);
    }

    #[test]
    fn stored_download_codes_read_as_their_kind() {
        for (code, kind) in [
            ("gated", ErrorKind::Gated),
            ("disk_full", ErrorKind::DiskFull),
            ("network", ErrorKind::Network),
            ("offline", ErrorKind::Offline),
            ("checksum", ErrorKind::Checksum),
            ("not_found", ErrorKind::NotFound),
            ("invalid", ErrorKind::Invalid),
            ("io", ErrorKind::Internal),
            ("something new", ErrorKind::Internal),
        ] {
            assert_eq!(ErrorKind::of_download_code(code), kind, "{code}");
        }
        assert_eq!(DownloadError::Cancelled.kind(), ErrorKind::Internal);
    }
}
