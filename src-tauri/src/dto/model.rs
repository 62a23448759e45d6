//! The loaded model, its state and load progress, measured figures, the status bar.

use altiplano_core::engine::{EngineKind, LoadProgress, LoadStage, ModelInfo};
use altiplano_core::measure::Measurement;
use altiplano_core::session::{ModelState, UseStarted};
use serde::{Deserialize, Serialize};

use super::*;

/// A loaded model.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct ModelDto {
    pub path: String,
    pub name: String,
    pub architecture: String,
    pub context_length: usize,
    pub file_bytes: u64,
    pub engine: EngineDto,
}

/// The library running a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
pub enum EngineDto {
    #[serde(rename = "llamacpp")]
    LlamaCpp,
    #[serde(rename = "mistralrs")]
    MistralRs,
    /// Another program's server (`remote use`).
    #[serde(rename = "remote")]
    Remote,
}

impl From<EngineKind> for EngineDto {
    fn from(engine: EngineKind) -> Self {
        match engine {
            EngineKind::LlamaCpp => Self::LlamaCpp,
            EngineKind::MistralRs => Self::MistralRs,
            EngineKind::Remote => Self::Remote,
        }
    }
}

impl From<EngineDto> for EngineKind {
    fn from(engine: EngineDto) -> Self {
        match engine {
            EngineDto::LlamaCpp => Self::LlamaCpp,
            EngineDto::MistralRs => Self::MistralRs,
            EngineDto::Remote => Self::Remote,
        }
    }
}

impl From<&ModelInfo> for ModelDto {
    fn from(info: &ModelInfo) -> Self {
        Self {
            path: info.path.display().to_string(),
            name: info.name.clone(),
            architecture: info.architecture.clone(),
            context_length: info.context_length,
            file_bytes: info.file_bytes,
            engine: info.engine.into(),
        }
    }
}

/// Where the model stands.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum ModelStateDto {
    None,
    Loading { path: String, progress: LoadProgressDto },
    Ready { model: ModelDto },
    Failed { path: String, message: String },
}

impl From<ModelState> for ModelStateDto {
    fn from(state: ModelState) -> Self {
        match state {
            ModelState::None => Self::None,
            ModelState::Loading { path, progress } => {
                Self::Loading { path: path.display().to_string(), progress: progress.into() }
            }
            ModelState::Ready { info } => Self::Ready { model: ModelDto::from(&info) },
            ModelState::Failed { path, message } => Self::Failed { path: path.display().to_string(), message },
        }
    }
}

/// How far a model load has got.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct LoadProgressDto {
    pub stage: LoadStageDto,
    pub layers_done: u32,
    pub layers_total: u32,
    /// The weights are quantized as they load.
    pub quantizing: bool,
}

impl From<LoadProgress> for LoadProgressDto {
    fn from(p: LoadProgress) -> Self {
        Self {
            stage: p.stage.into(),
            layers_done: p.layers_done,
            layers_total: p.layers_total,
            quantizing: p.quantizing,
        }
    }
}

/// The stage of a model load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum LoadStageDto {
    /// Checking the files before the engine reads them.
    Checking,
    /// A GGUF file's one-time copy into a quantization with fast CPU kernels.
    Converting,
    /// Reading the weights layer by layer.
    Layers,
    /// Every layer is read; the engine is finishing.
    Finishing,
    /// Loaded.
    Done,
}

impl From<LoadStage> for LoadStageDto {
    fn from(stage: LoadStage) -> Self {
        match stage {
            LoadStage::Checking => Self::Checking,
            LoadStage::Converting => Self::Converting,
            LoadStage::Layers => Self::Layers,
            LoadStage::Finishing => Self::Finishing,
            LoadStage::Done => Self::Done,
        }
    }
}

/// What loading a model really took on this computer, beside the planner's estimate.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementDto {
    /// Catalog variant id, or the model's path.
    pub model_key: String,
    pub name: String,
    pub isq: Option<String>,
    /// The engine it was measured on.
    pub engine: EngineDto,
    pub resident_bytes: u64,
    pub gpu_bytes: Vec<u64>,
    pub decode_tokens_per_second: Option<f64>,
    pub load_seconds: f64,
    pub estimated_bytes: Option<u64>,
    pub estimated_tokens_per_second: Option<f64>,
    pub measured_at: i64,
}

impl From<Measurement> for MeasurementDto {
    fn from(m: Measurement) -> Self {
        Self {
            model_key: m.model_key,
            name: m.name,
            isq: m.isq,
            engine: m.engine.into(),
            resident_bytes: m.resident_bytes,
            gpu_bytes: m.gpu_bytes,
            decode_tokens_per_second: m.decode_tokens_per_second,
            load_seconds: m.load_seconds,
            estimated_bytes: m.estimated_bytes,
            estimated_tokens_per_second: m.estimated_tokens_per_second,
            measured_at: m.measured_at,
        }
    }
}

/// What "Use this model" set going.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum UseStartedDto {
    /// It was on disk: loaded, measured, the chat model now.
    Loaded { model: ModelDto, measurement: MeasurementDto },
    /// It is downloading; it loads when the download completes.
    Downloading { job: DownloadJobDto },
}

impl From<UseStarted> for UseStartedDto {
    fn from(u: UseStarted) -> Self {
        match u {
            UseStarted::Loaded { info, measurement } => {
                Self::Loaded { model: ModelDto::from(&info), measurement: measurement.into() }
            }
            UseStarted::Downloading { job } => Self::Downloading { job: job.into() },
        }
    }
}

/// What the status bar shows.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct StatusDto {
    pub model: ModelStateDto,
    pub starter_model_available: bool,
    pub data_dir: String,
}

/// A remote model server the user added.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct RemoteDto {
    pub name: String,
    /// Its OpenAI-compatible base URL (ending in `/v1`).
    pub url: String,
    /// The model used there; `null`: the first it serves.
    pub model: Option<String>,
    /// The context length the user gave, for servers that do not say.
    pub context_tokens: Option<u32>,
    /// Whether it is the chat model.
    pub in_use: bool,
}

/// The remote servers, for the Models page.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct RemotesDto {
    pub remotes: Vec<RemoteDto>,
}

impl RemotesDto {
    pub fn new(remotes: Vec<altiplano_core::remotes::Remote>, in_use: Option<String>) -> Self {
        let remotes = remotes
            .into_iter()
            .map(|r| RemoteDto {
                in_use: in_use.as_deref() == Some(r.name.as_str()),
                name: r.name,
                url: r.url,
                model: r.model,
                context_tokens: r.context_tokens.and_then(|n| u32::try_from(n).ok()),
            })
            .collect();
        Self { remotes }
    }
}
