//! Downloads, their files, and the models on disk.

use altiplano_core::download::queue::{DownloadJob, JobState};
use altiplano_core::download::FileState;
use altiplano_core::download::OfflineReason;
use altiplano_core::library::{LocalModel, ModelFormat, ModelSource};
use altiplano_core::secrets::TokenSource;
use serde::Serialize;

use altiplano_core::error::ErrorKind;

use super::*;

/// Where one file of a download stands.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct FileProgressDto {
    pub path: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub bytes_per_second: f64,
    pub eta_seconds: Option<f64>,
    pub state: FileStateDto,
}

/// Where one file of a download stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum FileStateDto {
    Waiting,
    Downloading,
    Verifying,
    Done,
    /// It was in the cache already.
    Reused,
    /// Another process is fetching the same file.
    WaitingForOtherProcess,
}

impl From<FileState> for FileStateDto {
    fn from(state: FileState) -> Self {
        match state {
            FileState::Waiting => Self::Waiting,
            FileState::Downloading => Self::Downloading,
            FileState::Verifying => Self::Verifying,
            FileState::Done => Self::Done,
            FileState::Reused => Self::Reused,
            FileState::WaitingForOtherProcess => Self::WaitingForOtherProcess,
        }
    }
}

/// Where a download stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum JobStateDto {
    /// Waiting for its turn.
    Queued,
    Running,
    /// Stopped by the user; bytes kept.
    Paused,
    /// Done; the model is in the library.
    Completed,
    /// Stopped by an error; bytes kept.
    Failed,
    /// Stopped by the user; bytes deleted.
    Cancelled,
}

impl From<JobState> for JobStateDto {
    fn from(state: JobState) -> Self {
        match state {
            JobState::Queued => Self::Queued,
            JobState::Running => Self::Running,
            JobState::Paused => Self::Paused,
            JobState::Completed => Self::Completed,
            JobState::Failed => Self::Failed,
            JobState::Cancelled => Self::Cancelled,
        }
    }
}

/// One download in the list.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct DownloadJobDto {
    pub id: i64,
    pub repo: String,
    pub revision: String,
    /// Catalog variant id, when it is one.
    pub variant: Option<String>,
    pub state: JobStateDto,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub bytes_per_second: f64,
    pub eta_seconds: Option<f64>,
    pub files: Vec<FileProgressDto>,
    pub error: Option<ApiError>,
    pub model_id: Option<i64>,
}

impl From<DownloadJob> for DownloadJobDto {
    fn from(job: DownloadJob) -> Self {
        let state = job.state.into();
        let (files, rate, eta) = match &job.progress {
            Some(p) => (
                p.files
                    .iter()
                    .map(|f| FileProgressDto {
                        path: f.path.clone(),
                        bytes_done: f.bytes_done,
                        bytes_total: f.bytes_total,
                        bytes_per_second: f.bytes_per_second,
                        eta_seconds: f.eta_seconds,
                        state: f.state.into(),
                    })
                    .collect(),
                p.bytes_per_second,
                p.eta_seconds,
            ),
            None => (
                job.files
                    .iter()
                    .map(|f| FileProgressDto {
                        path: f.clone(),
                        bytes_done: 0,
                        bytes_total: 0,
                        bytes_per_second: 0.0,
                        eta_seconds: None,
                        state: FileStateDto::Waiting,
                    })
                    .collect(),
                0.0,
                None,
            ),
        };
        Self {
            id: job.id,
            repo: job.repo,
            revision: job.revision,
            variant: job.variant,
            state,
            bytes_done: job.bytes_done,
            bytes_total: job.bytes_total,
            bytes_per_second: rate,
            eta_seconds: eta,
            files,
            error: job.error.map(|e| ApiError::new(ErrorKind::of_download_code(&e.code).into(), e.message)),
            model_id: job.model_id,
        }
    }
}

/// A model on disk.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct LocalModelDto {
    pub id: i64,
    pub name: String,
    pub format: ModelFormatDto,
    pub path: String,
    pub source: ModelSourceDto,
    pub variant: Option<String>,
    pub size_bytes: u64,
    /// An embedding model, which search uses (chosen under "Search models"), not chat.
    pub for_search: bool,
}

impl From<LocalModel> for LocalModelDto {
    fn from(m: LocalModel) -> Self {
        let catalog = altiplano_core::catalog::Catalog::builtin().ok();
        let for_search = m.variant.as_deref().is_some_and(|v| catalog.is_some_and(|c| c.embedding(v).is_some()));
        Self {
            for_search,
            id: m.id,
            name: m.name,
            format: match m.format {
                ModelFormat::Gguf => ModelFormatDto::Gguf,
                ModelFormat::Safetensors => ModelFormatDto::Safetensors,
            },
            path: m.path.display().to_string(),
            source: match m.source {
                ModelSource::Hub => ModelSourceDto::Hub,
                ModelSource::Import => ModelSourceDto::Import,
            },
            variant: m.variant,
            size_bytes: m.size_bytes,
        }
    }
}

/// A model's files: one GGUF file or a safetensors folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum ModelFormatDto {
    Gguf,
    Safetensors,
}

/// Where a model on disk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum ModelSourceDto {
    /// Downloaded.
    Hub,
    /// Registered from a file or folder already on disk.
    Import,
}

/// Where the Hugging Face token comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub enum TokenSourceDto {
    /// The `HF_TOKEN` environment variable (it wins over the keyring).
    Environment,
    /// The OS keyring.
    Keyring,
}

impl From<TokenSource> for TokenSourceDto {
    fn from(s: TokenSource) -> Self {
        match s {
            TokenSource::Environment => Self::Environment,
            TokenSource::Keyring => Self::Keyring,
        }
    }
}

/// Why offline mode is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub enum OfflineReasonDto {
    /// `ALTIPLANO_OFFLINE` (or `--offline`): the switch cannot turn it off.
    Environment,
    /// The switch on the Models page (Hugging Face access).
    Setting,
}

impl From<OfflineReason> for OfflineReasonDto {
    fn from(r: OfflineReason) -> Self {
        match r {
            OfflineReason::Environment => Self::Environment,
            OfflineReason::Setting => Self::Setting,
        }
    }
}

/// Everything the downloads panel shows.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct DownloadsDto {
    pub jobs: Vec<DownloadJobDto>,
    pub models: Vec<LocalModelDto>,
    /// A Hugging Face token is available.
    pub has_token: bool,
    /// Where the token comes from, when there is one.
    pub token_source: Option<TokenSourceDto>,
    pub endpoint: String,
    /// Whether a token goes to `endpoint`: over HTTPS, or plain HTTP to this computer only.
    pub endpoint_carries_token: bool,
    /// HF_ENDPOINT is set, so the setting is not used.
    pub endpoint_from_environment: bool,
    /// The Hugging Face cache folder.
    pub cache_dir: String,
    /// Offline mode is on (no connection is opened; downloads and endpoint changes are off),
    /// and why.
    pub offline: Option<OfflineReasonDto>,
}
