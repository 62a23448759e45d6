//! Data transfer types: what crosses the IPC boundary, in the UI's spelling (camelCase).
//!
//! Domain types in `altiplano-core` stay free of transport concerns; these mirror them and
//! generate TypeScript declarations in `ui/src/lib/api/bindings/` (`cargo test -p
//! altiplano-app` writes them; CI fails when the committed files drift).

use altiplano_core::catalog::Catalog;
use altiplano_core::chat::{ChatError, TurnOutcome};
use altiplano_core::choose::ChooseError;
use altiplano_core::codebase::answer::CodeAnswer;
use altiplano_core::codebase::IndexReport;
use altiplano_core::documents::followup::{DocumentAnswer, FollowUpError};
use altiplano_core::documents::{OpenError, PageCitation, SavedDocument, Summary, SummaryError, SummaryProgress};
use altiplano_core::download::queue::{DownloadJob, JobState, QueueError};
use altiplano_core::download::{DownloadError, FileState};
use altiplano_core::engine::{EngineError, EngineKind, FinishReason, LoadProgress, LoadStage, ModelInfo, UnknownIsq};
use altiplano_core::hardware::{GpuVendor, HardwareProfile};
use altiplano_core::library::{LibraryError, LocalModel, ModelFormat, ModelSource};
use altiplano_core::measure::Measurement;
use altiplano_core::planner::{Backend, Candidate, Fit, Placement, Plan, Preference};
use altiplano_core::secrets::SecretError;
use altiplano_core::session::{ModelState, SessionError, UseStarted};
use altiplano_core::store::{Conversation, Message, MessageStatus, Role, SearchHit, StoreError};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// A loaded model.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct ModelDto {
    pub path: String,
    pub name: String,
    pub architecture: String,
    #[ts(type = "number")]
    pub context_length: usize,
    #[ts(type = "number")]
    pub file_bytes: u64,
    pub engine: EngineDto,
}

/// The library running a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub enum EngineDto {
    #[serde(rename = "llamacpp")]
    LlamaCpp,
    #[serde(rename = "mistralrs")]
    MistralRs,
}

impl From<EngineKind> for EngineDto {
    fn from(engine: EngineKind) -> Self {
        match engine {
            EngineKind::LlamaCpp => Self::LlamaCpp,
            EngineKind::MistralRs => Self::MistralRs,
        }
    }
}

impl From<EngineDto> for EngineKind {
    fn from(engine: EngineDto) -> Self {
        match engine {
            EngineDto::LlamaCpp => Self::LlamaCpp,
            EngineDto::MistralRs => Self::MistralRs,
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
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "state", rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
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
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
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
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct MeasurementDto {
    /// Catalog variant id, or the model's path.
    pub model_key: String,
    pub name: String,
    pub isq: Option<String>,
    /// The engine it was measured on.
    pub engine: EngineDto,
    #[ts(type = "number")]
    pub resident_bytes: u64,
    #[ts(type = "number[]")]
    pub gpu_bytes: Vec<u64>,
    pub decode_tokens_per_second: Option<f64>,
    pub load_seconds: f64,
    #[ts(type = "number | null")]
    pub estimated_bytes: Option<u64>,
    pub estimated_tokens_per_second: Option<f64>,
    #[ts(type = "number")]
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
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "kind", rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
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
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct StatusDto {
    pub model: ModelStateDto,
    pub starter_model_available: bool,
    pub data_dir: String,
}

/// A conversation in the sidebar.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct ConversationDto {
    #[ts(type = "number")]
    pub id: i64,
    pub title: String,
    #[ts(type = "number")]
    pub created_at: i64,
    #[ts(type = "number")]
    pub updated_at: i64,
}

impl From<Conversation> for ConversationDto {
    fn from(c: Conversation) -> Self {
        Self { id: c.id, title: c.title, created_at: c.created_at, updated_at: c.updated_at }
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub enum RoleDto {
    System,
    User,
    Assistant,
}

impl From<Role> for RoleDto {
    fn from(r: Role) -> Self {
        match r {
            Role::System => Self::System,
            Role::User => Self::User,
            Role::Assistant => Self::Assistant,
        }
    }
}

/// Where a message stands.
#[derive(Debug, Clone, Copy, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub enum MessageStatusDto {
    Streaming,
    Complete,
    Stopped,
    Interrupted,
    Failed,
}

impl From<MessageStatus> for MessageStatusDto {
    fn from(s: MessageStatus) -> Self {
        match s {
            MessageStatus::Streaming => Self::Streaming,
            MessageStatus::Complete => Self::Complete,
            MessageStatus::Stopped => Self::Stopped,
            MessageStatus::Interrupted => Self::Interrupted,
            MessageStatus::Failed => Self::Failed,
        }
    }
}

/// A message of a conversation.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct MessageDto {
    #[ts(type = "number")]
    pub id: i64,
    #[ts(type = "number")]
    pub conversation_id: i64,
    pub role: RoleDto,
    pub content: String,
    pub status: MessageStatusDto,
    pub model: Option<String>,
    #[ts(type = "number | null")]
    pub prompt_tokens: Option<i64>,
    #[ts(type = "number | null")]
    pub completion_tokens: Option<i64>,
    #[ts(type = "number | null")]
    pub time_to_first_token_ms: Option<i64>,
    pub decode_tokens_per_second: Option<f64>,
    pub error: Option<String>,
    #[ts(type = "number")]
    pub created_at: i64,
}

impl From<Message> for MessageDto {
    fn from(m: Message) -> Self {
        Self {
            id: m.id,
            conversation_id: m.conversation_id,
            role: m.role.into(),
            content: m.content,
            status: m.status.into(),
            model: m.model,
            prompt_tokens: m.stats.prompt_tokens,
            completion_tokens: m.stats.completion_tokens,
            time_to_first_token_ms: m.stats.time_to_first_token_ms,
            decode_tokens_per_second: m.stats.decode_tokens_per_second,
            error: m.error,
            created_at: m.created_at,
        }
    }
}

/// A search result. Matched words in `snippet` sit between U+E000 and U+E001.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct SearchHitDto {
    #[ts(type = "number")]
    pub conversation_id: i64,
    pub conversation_title: String,
    #[ts(type = "number")]
    pub message_id: i64,
    pub role: RoleDto,
    pub snippet: String,
}

impl From<SearchHit> for SearchHitDto {
    fn from(h: SearchHit) -> Self {
        Self {
            conversation_id: h.conversation_id,
            conversation_title: h.conversation_title,
            message_id: h.message_id,
            role: h.role.into(),
            snippet: h.snippet,
        }
    }
}

/// What streams to the UI while a reply is written.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
#[allow(
    clippy::large_enum_variant,
    reason = "one Started per reply beside hundreds of Text events; boxing it buys nothing"
)]
pub enum ChatStreamEvent {
    /// The reply is about to stream.
    Started {
        conversation: ConversationDto,
        user_message: MessageDto,
        #[ts(type = "number")]
        reply_id: i64,
        #[ts(type = "number")]
        omitted_messages: usize,
        #[ts(type = "number")]
        prompt_tokens: usize,
    },
    /// More text (batched: several tokens at a time).
    Text { text: String },
}

/// Why a reply ended.
#[derive(Debug, Clone, Copy, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub enum FinishReasonDto {
    Stop,
    Length,
    Cancelled,
    /// The reply kept repeating itself and was stopped.
    Repeating,
}

/// How a turn ended.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct TurnResultDto {
    #[ts(type = "number")]
    pub conversation_id: i64,
    pub reply: MessageDto,
    pub finish_reason: FinishReasonDto,
    #[ts(type = "number")]
    pub omitted_messages: usize,
}

impl From<TurnOutcome> for TurnResultDto {
    fn from(o: TurnOutcome) -> Self {
        Self {
            conversation_id: o.conversation_id,
            reply: o.reply.into(),
            finish_reason: match o.reason {
                FinishReason::Stop => FinishReasonDto::Stop,
                FinishReason::Length => FinishReasonDto::Length,
                FinishReason::Cancelled => FinishReasonDto::Cancelled,
                FinishReason::Repeating => FinishReasonDto::Repeating,
            },
            omitted_messages: o.omitted_messages,
        }
    }
}

/// A GPU as the Models page shows it.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct GpuDto {
    pub vendor: String,
    pub name: String,
    #[ts(type = "number")]
    pub memory_bytes: u64,
    #[ts(type = "number")]
    pub memory_free_bytes: u64,
    pub compute_capability: Option<String>,
}

/// This machine.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct HardwareDto {
    pub cpu_name: String,
    pub cores: u32,
    pub threads: u32,
    pub cpu_features: Vec<String>,
    #[ts(type = "number")]
    pub ram_bytes: u64,
    #[ts(type = "number")]
    pub ram_available_bytes: u64,
    #[ts(type = "number")]
    pub disk_free_bytes: u64,
    pub gpus: Vec<GpuDto>,
}

impl From<&HardwareProfile> for HardwareDto {
    fn from(p: &HardwareProfile) -> Self {
        Self {
            cpu_name: p.cpu.name.clone(),
            cores: p.cpu.cores,
            threads: p.cpu.threads,
            cpu_features: p.cpu.features.clone(),
            ram_bytes: p.ram_bytes,
            ram_available_bytes: p.ram_available_bytes,
            disk_free_bytes: p.disk_free_bytes,
            gpus: p
                .gpus
                .iter()
                .map(|g| GpuDto {
                    vendor: match g.vendor {
                        GpuVendor::Nvidia => "nvidia".into(),
                        GpuVendor::Apple => "apple".into(),
                    },
                    name: g.name.clone(),
                    memory_bytes: g.memory_bytes,
                    memory_free_bytes: g.memory_free_bytes,
                    compute_capability: g.compute_capability.clone(),
                })
                .collect(),
        }
    }
}

/// The compute a candidate runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub enum BackendDto {
    Cuda,
    Metal,
    Cpu,
}

/// Fit status of a candidate.
#[derive(Debug, Clone, Copy, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub enum FitDto {
    Gpu,
    Partial,
    Cpu,
    TooLarge,
}

/// Quality or speed.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub enum PreferenceDto {
    Quality,
    Speed,
}

impl From<PreferenceDto> for Preference {
    fn from(p: PreferenceDto) -> Self {
        match p {
            PreferenceDto::Quality => Preference::Quality,
            PreferenceDto::Speed => Preference::Speed,
        }
    }
}

/// One catalog variant on this machine.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct CandidateDto {
    pub model: String,
    pub model_name: String,
    pub quant: String,
    pub backend: BackendDto,
    /// The engine that runs it.
    pub engine: EngineDto,
    /// The layout in words, e.g. "tensor parallel over 4 GPUs".
    pub placement: String,
    pub fit: FitDto,
    pub context_tokens: u32,
    pub max_context_tokens: u32,
    pub meets_requested_context: bool,
    pub tokens_per_second_estimate: f64,
    #[ts(type = "number")]
    pub weights_bytes: u64,
    pub explanation: String,
    pub node_settings: Vec<String>,
    /// Measured on this computer: the speed above is the measured one.
    pub measured: Option<MeasuredDto>,
}

/// A candidate's figures measured on this computer.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct MeasuredDto {
    #[ts(type = "number")]
    pub resident_bytes: u64,
    #[ts(type = "number[]")]
    pub gpu_bytes: Vec<u64>,
    pub tokens_per_second: Option<f64>,
}

impl CandidateDto {
    fn new(c: &Candidate, catalog: &Catalog) -> Self {
        let placement = match &c.placement {
            Placement::SingleGpu => "one GPU".to_string(),
            Placement::TensorParallel { gpus_per_node, nodes: 1 } => {
                format!("tensor parallel over {gpus_per_node} GPUs")
            }
            Placement::TensorParallel { gpus_per_node, nodes } => {
                format!("tensor parallel over {} GPUs on {nodes} nodes", gpus_per_node * nodes)
            }
            Placement::LayerSplit { gpu_layers, cpu_layers: 0 } => format!("{gpu_layers} layers across GPUs"),
            Placement::LayerSplit { gpu_layers, cpu_layers } => {
                format!("{gpu_layers} layers on GPU, {cpu_layers} on CPU")
            }
            Placement::Cpu => "CPU".to_string(),
            Placement::None => "does not fit".to_string(),
        };
        Self {
            model: c.model.clone(),
            model_name: catalog.model(&c.model).map(|m| m.name.clone()).unwrap_or_else(|| c.model.clone()),
            quant: c.quant.as_str().to_string(),
            backend: match c.backend {
                Backend::Cuda => BackendDto::Cuda,
                Backend::Metal => BackendDto::Metal,
                Backend::Cpu => BackendDto::Cpu,
            },
            engine: c.engine.into(),
            placement,
            fit: match c.fit {
                Fit::Gpu => FitDto::Gpu,
                Fit::Partial => FitDto::Partial,
                Fit::Cpu => FitDto::Cpu,
                Fit::TooLarge => FitDto::TooLarge,
            },
            context_tokens: c.context_tokens,
            max_context_tokens: c.max_context_tokens,
            meets_requested_context: c.meets_requested_context,
            tokens_per_second_estimate: c.tokens_per_second_estimate,
            weights_bytes: c.weights_bytes,
            explanation: c.explanation.clone(),
            node_settings: c.node_settings.clone(),
            measured: c.measured.as_ref().map(|m| MeasuredDto {
                resident_bytes: m.resident_bytes,
                gpu_bytes: m.gpu_bytes.clone(),
                tokens_per_second: m.tokens_per_second,
            }),
        }
    }
}

/// The Models page: this machine and what fits it.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct ModelsPageDto {
    pub hardware: HardwareDto,
    pub recommended: Option<CandidateDto>,
    pub candidates: Vec<CandidateDto>,
    pub reason_if_none: Option<String>,
    /// The context the page was planned for.
    pub context_tokens: u32,
    /// What models really took on this computer, newest first.
    pub measurements: Vec<MeasurementDto>,
}

impl ModelsPageDto {
    pub fn new(
        profile: &HardwareProfile,
        catalog: &Catalog,
        plan: &Plan,
        context_tokens: u32,
        measurements: Vec<Measurement>,
    ) -> Self {
        Self {
            context_tokens,
            hardware: profile.into(),
            recommended: plan.recommended.as_ref().map(|c| CandidateDto::new(c, catalog)),
            candidates: plan.candidates.iter().map(|c| CandidateDto::new(c, catalog)).collect(),
            reason_if_none: plan.reason_if_none.clone(),
            measurements: measurements.into_iter().map(Into::into).collect(),
        }
    }
}

/// What kind of failure, for the UI to branch on (never on the message text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
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
    /// A gated repo: accept the licence and add a token.
    Gated,
    /// Not enough disk space.
    DiskFull,
    /// The network or the server failed; retry.
    Network,
    /// A download's file failed its checksum twice.
    Checksum,
    /// The request is malformed (a bad repo id or endpoint).
    Invalid,
    /// The OS keyring is not available.
    Keyring,
    /// A document that cannot be read (damaged, encrypted, unsupported, no text).
    BadDocument,
    /// The user stopped the work; what was finished is kept.
    Stopped,
    Internal,
}

/// An error as the UI sees it.
#[derive(Debug, Clone, Serialize, TS, thiserror::Error)]
#[error("{message}")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

fn engine_code(e: &EngineError) -> ErrorCode {
    match e {
        EngineError::ModelNotFound(_) | EngineError::NotAFile(_) => ErrorCode::ModelNotFound,
        EngineError::InvalidModel { .. } => ErrorCode::InvalidModel,
        EngineError::Truncated { .. } => ErrorCode::TruncatedModel,
        EngineError::Load { .. } | EngineError::WrongEngine { .. } => ErrorCode::ModelLoadFailed,
        EngineError::PromptTooLong { .. } => ErrorCode::PromptTooLong,
        _ => ErrorCode::GenerationFailed,
    }
}

fn store_code(e: &StoreError) -> ErrorCode {
    match e {
        StoreError::ConversationNotFound(_) | StoreError::MessageNotFound(_) | StoreError::DocumentNotFound(_) => {
            ErrorCode::NotFound
        }
        _ => ErrorCode::Internal,
    }
}

impl From<UnknownIsq> for ApiError {
    fn from(e: UnknownIsq) -> Self {
        Self::new(ErrorCode::Invalid, e.to_string())
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        let e = match e {
            SessionError::Download(e) => return e.into(),
            SessionError::Library(e) => return e.into(),
            SessionError::Choose(ChooseError::Library(e)) => return e.into(),
            other => other,
        };
        let code = match &e {
            SessionError::NoModel => ErrorCode::NoModel,
            SessionError::ModelLoading => ErrorCode::ModelLoading,
            SessionError::DuplicateRequest(_) => ErrorCode::Busy,
            SessionError::Engine(e) => engine_code(e),
            SessionError::Store(e) => store_code(e),
            SessionError::Chat(ChatError::Engine(e)) => engine_code(e),
            SessionError::Chat(ChatError::Store(e)) => store_code(e),
            SessionError::Chat(ChatError::EmptyMessage) => ErrorCode::EmptyMessage,
            SessionError::Chat(ChatError::NothingToRegenerate(_)) => ErrorCode::NothingToRegenerate,
            SessionError::NoProject | SessionError::OutsideProject(_) | SessionError::NoSuchPage(_) => {
                ErrorCode::NotFound
            }
            SessionError::Document(_) | SessionError::OpenDocument(OpenError::Document(_)) => ErrorCode::BadDocument,
            SessionError::OpenDocument(OpenError::Store(e)) => store_code(e),
            SessionError::Summary(SummaryError::Cancelled { .. }) => ErrorCode::Stopped,
            SessionError::Summary(SummaryError::NoText) => ErrorCode::BadDocument,
            SessionError::Summary(SummaryError::Engine(e)) | SessionError::FollowUp(FollowUpError::Engine(e)) => {
                engine_code(e)
            }
            SessionError::Summary(SummaryError::Store(e)) | SessionError::FollowUp(FollowUpError::Store(e)) => {
                store_code(e)
            }
            SessionError::Choose(ChooseError::UnknownTarget(_) | ChooseError::IsqOnGguf(_)) => ErrorCode::Invalid,
            SessionError::Choose(ChooseError::NoStarter(_)) => ErrorCode::ModelNotFound,
            SessionError::Choose(ChooseError::Download(e)) => download_code(e.code()),
            _ => ErrorCode::Internal,
        };
        Self::new(code, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::new(store_code(&e), e.to_string())
    }
}

/// How a core enum is spelled on the wire (its serde name, e.g. `too_large`).
fn wire_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// How a download or model-library error reads in the UI.
pub fn download_code(code: &str) -> ErrorCode {
    match code {
        "gated" => ErrorCode::Gated,
        "disk_full" => ErrorCode::DiskFull,
        "network" => ErrorCode::Network,
        "checksum" => ErrorCode::Checksum,
        "not_found" => ErrorCode::NotFound,
        "invalid" => ErrorCode::Invalid,
        _ => ErrorCode::Internal,
    }
}

impl From<DownloadError> for ApiError {
    fn from(e: DownloadError) -> Self {
        Self::new(download_code(e.code()), e.to_string())
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Download(d) => d.into(),
            QueueError::NotFound(_) => Self::new(ErrorCode::NotFound, e.to_string()),
            other => Self::new(ErrorCode::Internal, other.to_string()),
        }
    }
}

impl From<LibraryError> for ApiError {
    fn from(e: LibraryError) -> Self {
        let code = match &e {
            LibraryError::Missing(_) => ErrorCode::ModelNotFound,
            LibraryError::Invalid { .. } => ErrorCode::InvalidModel,
            LibraryError::NotFound(_) => ErrorCode::NotFound,
            _ => ErrorCode::Internal,
        };
        Self::new(code, e.to_string())
    }
}

impl From<SecretError> for ApiError {
    fn from(e: SecretError) -> Self {
        let code = match &e {
            SecretError::Empty => ErrorCode::Invalid,
            _ => ErrorCode::Keyring,
        };
        Self::new(code, e.to_string())
    }
}

/// Where one file of a download stands.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct FileProgressDto {
    pub path: String,
    #[ts(type = "number")]
    pub bytes_done: u64,
    #[ts(type = "number")]
    pub bytes_total: u64,
    pub bytes_per_second: f64,
    pub eta_seconds: Option<f64>,
    pub state: FileStateDto,
}

/// Where one file of a download stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
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
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct DownloadJobDto {
    #[ts(type = "number")]
    pub id: i64,
    pub repo: String,
    pub revision: String,
    /// Catalog variant id, when it is one.
    pub variant: Option<String>,
    pub state: JobStateDto,
    #[ts(type = "number")]
    pub bytes_done: u64,
    #[ts(type = "number")]
    pub bytes_total: u64,
    pub bytes_per_second: f64,
    pub eta_seconds: Option<f64>,
    pub files: Vec<FileProgressDto>,
    pub error: Option<ApiError>,
    #[ts(type = "number | null")]
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
            error: job.error.map(|e| ApiError::new(download_code(&e.code), e.message)),
            model_id: job.model_id,
        }
    }
}

/// A model on disk.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct LocalModelDto {
    #[ts(type = "number")]
    pub id: i64,
    pub name: String,
    pub format: ModelFormatDto,
    pub path: String,
    pub source: ModelSourceDto,
    pub variant: Option<String>,
    #[ts(type = "number")]
    pub size_bytes: u64,
}

impl From<LocalModel> for LocalModelDto {
    fn from(m: LocalModel) -> Self {
        Self {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub enum ModelFormatDto {
    Gguf,
    Safetensors,
}

/// Where a model on disk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub enum ModelSourceDto {
    /// Downloaded.
    Hub,
    /// Registered from a file or folder already on disk.
    Import,
}

/// Everything the downloads panel shows.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct DownloadsDto {
    pub jobs: Vec<DownloadJobDto>,
    pub models: Vec<LocalModelDto>,
    /// A Hugging Face token is available.
    pub has_token: bool,
    /// environment (HF_TOKEN) or keyring, when there is one.
    pub token_source: Option<String>,
    pub endpoint: String,
    /// HF_ENDPOINT is set, so the setting is not used.
    pub endpoint_from_environment: bool,
    /// The Hugging Face cache folder.
    pub cache_dir: String,
}

/// An open code folder and its last indexing.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct ProjectDto {
    pub root: String,
    pub name: String,
    #[ts(type = "number")]
    pub files_seen: u64,
    #[ts(type = "number")]
    pub files_indexed: u64,
    #[ts(type = "number")]
    pub files_unchanged: u64,
    #[ts(type = "number")]
    pub files_removed: u64,
    #[ts(type = "number")]
    pub chunks: u64,
    /// Files left out, with why (binary, too_large, minified, generated, not_utf8, …).
    pub skipped: Vec<SkipCountDto>,
    #[ts(type = "number")]
    pub elapsed_ms: u64,
}

/// How many files were left out for one reason.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct SkipCountDto {
    pub reason: String,
    #[ts(type = "number")]
    pub count: u64,
}

impl ProjectDto {
    pub fn new(root: &std::path::Path, r: &IndexReport) -> Self {
        Self {
            root: root.display().to_string(),
            name: root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            files_seen: r.files_seen,
            files_indexed: r.files_indexed,
            files_unchanged: r.files_unchanged,
            files_removed: r.files_removed,
            chunks: r.chunks_total,
            skipped: r
                .skipped
                .iter()
                .map(|(reason, count)| SkipCountDto { reason: wire_name(reason), count: *count })
                .collect(),
            elapsed_ms: r.elapsed_ms,
        }
    }
}

/// Indexing progress.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct IndexProgressDto {
    #[ts(type = "number")]
    pub files_done: u64,
    #[ts(type = "number")]
    pub files_total: u64,
    pub files_per_second: f64,
}

/// A chunk of code shown to the model.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct ExcerptDto {
    pub path: String,
    #[ts(type = "number")]
    pub start_line: usize,
    #[ts(type = "number")]
    pub end_line: usize,
    pub symbol: String,
}

/// A citation in an answer that names code the model was shown.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct CitationDto {
    pub path: String,
    #[ts(type = "number")]
    pub start_line: usize,
    #[ts(type = "number")]
    pub end_line: usize,
}

/// A finished answer about the code folder.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct CodeAnswerDto {
    /// The answer, citations that named no excerpt removed.
    pub text: String,
    pub citations: Vec<CitationDto>,
    /// Citations removed because the model was not shown that code.
    pub removed_citations: Vec<String>,
    pub excerpts: Vec<ExcerptDto>,
    #[ts(type = "number")]
    pub conversation_id: i64,
}

impl CodeAnswerDto {
    pub fn new(a: &CodeAnswer, conversation_id: i64) -> Self {
        Self {
            text: a.answer.text.clone(),
            citations: a
                .answer
                .citations
                .iter()
                .map(|c| CitationDto { path: c.path.clone(), start_line: c.start_line, end_line: c.end_line })
                .collect(),
            removed_citations: a.answer.removed.clone(),
            excerpts: a
                .context
                .excerpts
                .iter()
                .map(|e| ExcerptDto {
                    path: e.path.clone(),
                    start_line: e.start_line,
                    end_line: e.end_line,
                    symbol: e.symbol.clone(),
                })
                .collect(),
            conversation_id,
        }
    }
}

/// Streamed text of an answer about code.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub enum CodeStreamEvent {
    Text { text: String },
}

/// A folder dropped on the window, as it is opened.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub enum ProjectEventDto {
    /// Indexing progress.
    Indexing { progress: IndexProgressDto },
    /// The folder is open.
    Opened { project: ProjectDto },
    /// It could not be opened.
    Failed { error: ApiError },
}

/// A document opened for summarizing.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct DocumentDto {
    #[ts(type = "number")]
    pub id: i64,
    /// The file name.
    pub title: String,
    /// Where it was opened from.
    pub path: String,
    pub page_count: u32,
    /// Pages without text, removed headers and the like.
    pub warnings: Vec<String>,
    /// The conversation holding its summary and follow-up questions.
    #[ts(type = "number | null")]
    pub conversation_id: Option<i64>,
}

impl From<&SavedDocument> for DocumentDto {
    fn from(d: &SavedDocument) -> Self {
        Self {
            id: d.id,
            title: d.title.clone(),
            path: d.path.clone(),
            page_count: d.page_count,
            warnings: d.warnings.clone(),
            conversation_id: d.conversation_id,
        }
    }
}

/// A page cited in a summary or answer, and the claim citing it.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct PageCitationDto {
    pub page: u32,
    pub text: String,
}

fn page_citations(citations: &[PageCitation]) -> Vec<PageCitationDto> {
    citations.iter().map(|c| PageCitationDto { page: c.page, text: c.text.clone() }).collect()
}

/// A finished summary.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct SummaryDto {
    #[ts(type = "number")]
    pub document_id: i64,
    /// Markdown with `[p. N]` citations, each checked to name a page of the part it came from.
    pub text: String,
    pub citations: Vec<PageCitationDto>,
    /// Citations removed in the tree for naming pages outside their part.
    pub removed_citations: u32,
    /// Nodes of the summary tree (1 when the document fit in one pass).
    pub parts: u32,
    /// Levels of the tree.
    pub levels: u32,
    /// The model that wrote it.
    pub model: String,
    /// It came from the database: the same file was summarized before.
    pub cached: bool,
}

impl From<&Summary> for SummaryDto {
    fn from(s: &Summary) -> Self {
        Self {
            document_id: s.document_id,
            text: s.text.clone(),
            citations: page_citations(&s.citations),
            removed_citations: s.removed_citations,
            parts: s.nodes.len() as u32,
            levels: s.nodes.iter().map(|n| n.level + 1).max().unwrap_or(0),
            model: s.nodes.iter().find(|n| n.is_root).map(|n| n.model.clone()).unwrap_or_default(),
            cached: s.cached,
        }
    }
}

/// Progress of a summary.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub enum SummaryProgressDto {
    /// Counting tokens page by page.
    Counting { done: u32, pages: u32 },
    /// Writing part `item` of `items` on `level` (0: the text itself; then merges); `step` of
    /// `steps` overall.
    Writing {
        level: u32,
        item: u32,
        items: u32,
        step: u32,
        steps: u32,
        first_page: u32,
        last_page: u32,
        #[ts(type = "number | null")]
        eta_ms: Option<u64>,
    },
    /// A part is finished (`reused`: an earlier run had written it).
    Part { level: u32, first_page: u32, last_page: u32, reused: bool },
}

impl From<&SummaryProgress> for SummaryProgressDto {
    fn from(p: &SummaryProgress) -> Self {
        match p {
            SummaryProgress::Counting { done, pages } => Self::Counting { done: *done, pages: *pages },
            SummaryProgress::Writing { level, item, items, step, steps, first_page, last_page, eta_ms } => {
                Self::Writing {
                    level: *level,
                    item: *item,
                    items: *items,
                    step: *step,
                    steps: *steps,
                    first_page: *first_page,
                    last_page: *last_page,
                    eta_ms: *eta_ms,
                }
            }
            SummaryProgress::Node { node, reused } => Self::Part {
                level: node.level,
                first_page: node.first_page,
                last_page: node.last_page,
                reused: *reused,
            },
        }
    }
}

/// A document with its summary, if one was finished.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct OpenedDocumentDto {
    pub document: DocumentDto,
    pub summary: Option<SummaryDto>,
}

/// Files dropped on the window (or chosen, or named on the command line), as they open.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub enum DocumentEventDto {
    /// Reading `name` (the `key` pairs this with its outcome).
    Opening { key: u32, name: String },
    /// It is open.
    Opened { key: u32, opened: OpenedDocumentDto },
    /// It could not be read.
    Failed { key: u32, name: String, error: ApiError },
}

/// A page or summary shown to the model for a follow-up answer.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct PageSourceDto {
    pub first_page: u32,
    pub last_page: u32,
    /// A summary of pages rather than a page's own text.
    pub summary: bool,
}

/// A finished answer about a document.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/api/bindings/")]
pub struct DocumentAnswerDto {
    /// Markdown with `[p. N]` citations, each naming a page the model was shown.
    pub text: String,
    pub citations: Vec<PageCitationDto>,
    pub removed_citations: u32,
    pub sources: Vec<PageSourceDto>,
    #[ts(type = "number")]
    pub conversation_id: i64,
}

impl DocumentAnswerDto {
    pub fn new(a: &DocumentAnswer, conversation_id: i64) -> Self {
        Self {
            text: a.text.clone(),
            citations: page_citations(&a.citations),
            removed_citations: a.removed_citations,
            sources: a
                .sources
                .iter()
                .map(|s| PageSourceDto { first_page: s.first_page, last_page: s.last_page, summary: s.summary })
                .collect(),
            conversation_id,
        }
    }
}
