//! The inference engine: a local model run with mistral.rs, fully offline.
//!
//! [`Engine::load`] takes the path of a GGUF file. It never touches the network: the path must
//! exist (mistral.rs would otherwise take it for a Hugging Face repo id), the header is checked
//! first (see `gguf_check`) so truncated or foreign files give a clear error, and loading runs
//! inside its own task so that a panic inside mistral.rs becomes an error instead of a crash.
//!
//! [`Engine::generate`] streams a reply as [`GenerationEvent`]s over a channel and honours a
//! [`CancellationToken`]: cancelling drops the mistral.rs stream, which stops the sequence at
//! the next token, and the channel reports [`FinishReason::Cancelled`] at once.
//!
//! Nothing but this module touches mistralrs.

pub(crate) mod gguf_check;
mod progress;
mod repack;

use progress::{Layout, Watcher};
pub use progress::{LoadProgress, LoadStage};
pub use repack::{remove_copy as remove_repacked_copy, Repacked};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use either::Either;
use mistralrs::core::{
    DeviceLayerMapMetadata, DeviceMapMetadata, GGUFLoaderBuilder, GGUFSpecificConfig, MistralRsBuilder,
};
use mistralrs::{
    AutoDeviceMapParams, DefaultSchedulerMethod, Device, DeviceMapSetting, Model, ModelDType, RequestBuilder, Response,
    SamplingParams, SchedulerConfig, TextMessageRole, TextMessages, TokenSource,
};
use serde::Serialize;
use tokio::sync::mpsc;
pub use tokio_util::sync::CancellationToken;

use crate::store::Role;

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
}

/// How a model is loaded.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// How many replies may be generated at once (mistral.rs batches them).
    pub max_parallel_replies: usize,
    /// In-situ quantization of a safetensors model as it loads (ignored for GGUF files, which
    /// are quantized already).
    pub isq: Option<Isq>,
    /// Load for [`Engine::perplexity`] only: no prefix cache (a cache hit would skip the very
    /// positions whose logits are wanted). Do not chat with such an engine.
    pub evaluation: bool,
    /// Where to report how far the load has got (layers read of the total).
    pub progress: Option<tokio::sync::watch::Sender<LoadProgress>>,
    /// Layers to put on each GPU, in device order, the rest on the CPU (the plan's split);
    /// empty lets the engine place the model (all on one GPU, tensor parallel with NCCL, or
    /// the CPU).
    pub gpu_layers: Vec<u32>,
    /// Where a GGUF file whose quantization has no fast CPU kernel (Q4_1, Q5_0, Q5_1) keeps
    /// its Q8_0 copy for CPU loads (see `engine/repack.rs`); `None` loads such files as they
    /// are.
    pub repack_dir: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            max_parallel_replies: 4,
            isq: None,
            evaluation: false,
            progress: None,
            gpu_layers: Vec::new(),
            repack_dir: None,
        }
    }
}

/// How often a load's progress is looked at.
const PROGRESS_EVERY: Duration = Duration::from_millis(50);

impl LoadOptions {
    fn report(&self, progress: LoadProgress) {
        if let Some(sender) = &self.progress {
            sender.send_replace(progress);
        }
    }

    /// Watches `layout` while the engine reads it; `None` when nobody listens.
    fn watch(&self, layout: Layout) -> Option<Watcher> {
        let sender = self.progress.clone()?;
        Some(Watcher::start(layout, self.isq.is_some(), sender, PROGRESS_EVERY))
    }

    /// The device map: the plan's split when there is one, else mistral.rs's own.
    ///
    /// A build with `nccl` makes mistral.rs run every load tensor-parallel over all GPUs and
    /// ignore any device map, unless `MISTRALRS_NO_NCCL=1` (read at each load). A plan that
    /// splits layers between GPUs and the CPU needs that off, so it is set for such a load and
    /// cleared again for the next load that wants tensor parallelism — unless the user set it.
    fn device_map(&self) -> DeviceMapSetting {
        let split = self.gpu_layers.iter().any(|n| *n > 0);
        if cfg!(feature = "nccl") {
            nccl_off_for_split(split);
        }
        if !split {
            return DeviceMapSetting::Auto(AutoDeviceMapParams::default_text());
        }
        let layers = self
            .gpu_layers
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(ordinal, n)| DeviceLayerMapMetadata { ordinal, layers: *n as usize })
            .collect();
        DeviceMapSetting::Map(DeviceMapMetadata::from_num_device_layers(layers))
    }

    fn report_done(&self, layers: u32) {
        let quantizing = self.isq.is_some();
        self.report(LoadProgress { stage: LoadStage::Done, layers_done: layers, layers_total: layers, quantizing });
    }
}

/// Whether `MISTRALRS_NO_NCCL` is ours to set and clear: absent when the first load came.
static NCCL_SWITCH_OURS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
const NO_NCCL: &str = "MISTRALRS_NO_NCCL";

/// Turns mistral.rs's NCCL tensor parallelism off for a layer-split load and back on for the
/// next, leaving a value the user gave alone. Loads are one at a time; mistral.rs reads the
/// variable from Rust (`std::env`, which locks around it).
fn nccl_off_for_split(split: bool) {
    if !*NCCL_SWITCH_OURS.get_or_init(|| std::env::var_os(NO_NCCL).is_none()) {
        return;
    }
    if split {
        tracing::info!("the plan splits layers between GPUs and the CPU: NCCL tensor parallelism off for this load");
        std::env::set_var(NO_NCCL, "1");
    } else {
        std::env::remove_var(NO_NCCL);
    }
}

/// The result of [`Engine::perplexity`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Perplexity {
    /// exp(mean negative log-likelihood per predicted token).
    pub perplexity: f64,
    /// Tokens of the text.
    pub tokens: usize,
}

/// In-situ quantization types for safetensors models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Isq {
    /// 4-bit k-quant.
    Q4k,
    /// 5-bit k-quant.
    Q5k,
    /// 6-bit k-quant.
    Q6k,
    /// 8-bit.
    #[value(name = "q8_0")]
    #[serde(rename = "q8_0")]
    Q8_0,
    /// FP8 (E4M3): fast on NVIDIA Hopper and Ada; elsewhere it halves memory but dequantizes.
    Fp8,
}

impl Isq {
    /// `q4k`, `q8_0`, `fp8`: as the CLI and the cache folders spell it.
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::Q4k => "q4k",
            Self::Q5k => "q5k",
            Self::Q6k => "q6k",
            Self::Q8_0 => "q8_0",
            Self::Fp8 => "fp8",
        }
    }

    /// The type a catalog variant's `isq` names, as mistral.rs spells it (`F8E4M3`, `Q4K`).
    pub fn from_catalog(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "Q4K" => Some(Self::Q4k),
            "Q5K" => Some(Self::Q5k),
            "Q6K" => Some(Self::Q6k),
            "Q8_0" => Some(Self::Q8_0),
            "F8E4M3" | "FP8" => Some(Self::Fp8),
            _ => None,
        }
    }

    /// Every type, in the order the CLI lists them.
    pub const ALL: [Self; 5] = [Self::Q4k, Self::Q5k, Self::Q6k, Self::Q8_0, Self::Fp8];
}

/// A name that is no [`Isq::wire_name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown quantization {name:?}: use {choices}", name = .0, choices = Isq::ALL.map(Isq::wire_name).join(", "))]
pub struct UnknownIsq(pub String);

impl std::str::FromStr for Isq {
    type Err = UnknownIsq;

    fn from_str(name: &str) -> Result<Self, UnknownIsq> {
        Self::ALL.into_iter().find(|i| i.wire_name() == name).ok_or_else(|| UnknownIsq(name.to_owned()))
    }
}

impl From<Isq> for mistralrs::IsqType {
    fn from(isq: Isq) -> Self {
        match isq {
            Isq::Q4k => Self::Q4K,
            Isq::Q5k => Self::Q5K,
            Isq::Q6k => Self::Q6K,
            Isq::Q8_0 => Self::Q8_0,
            Isq::Fp8 => Self::F8E4M3,
        }
    }
}

/// What is known about a loaded model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// The model file.
    pub path: PathBuf,
    /// A display name: the file name without `.gguf`.
    pub name: String,
    /// The model architecture, e.g. `llama`.
    pub architecture: String,
    /// Tokens the model can attend to (prompt plus reply).
    pub context_length: usize,
    /// Size of the file in bytes.
    pub file_bytes: u64,
    /// For an in-situ quantized model: whether its UQFF cache was written by this load or
    /// read (quantization skipped).
    pub quantization_cache: Option<QuantizationCache>,
    /// For a GGUF file loaded from its Q8_0 copy (no fast CPU kernel for its own quantization).
    pub repacked: Option<Repacked>,
}

/// What a load did with the UQFF cache of an in-situ quantized model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantizationCache {
    /// Quantized now, and the result saved for next time.
    Written,
    /// Read from the cache; nothing was quantized.
    Reused,
    /// Quantized now; the cache could not be written (read-only folder).
    Unavailable,
}

/// How tokens are picked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Softmax temperature; ignored when `greedy`.
    pub temperature: f64,
    /// Nucleus sampling mass; ignored when `greedy`.
    pub top_p: f64,
    /// Always pick the most likely token (reproducible; for tests and benchmarks).
    pub greedy: bool,
    /// Upper bound on the reply's length in tokens.
    pub max_tokens: usize,
}

impl Default for Sampling {
    /// Meta's recommended chat settings for Llama 3.1 (temperature 0.6, top-p 0.9).
    fn default() -> Self {
        Self { temperature: 0.6, top_p: 0.9, greedy: false, max_tokens: 2048 }
    }
}

impl Sampling {
    /// Greedy decoding: the same prompt always gives the same reply.
    pub fn greedy() -> Self {
        Self { greedy: true, ..Self::default() }
    }
}

/// One message of the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptMessage {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
}

impl PromptMessage {
    /// A message.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self { role, content: content.into() }
    }
}

/// Why a reply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model finished its answer.
    Stop,
    /// The reply reached `max_tokens` or the end of the context.
    Length,
    /// The caller cancelled.
    Cancelled,
}

/// Measurements of one reply.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct GenerationStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// From the request to the first text.
    pub time_to_first_token: Option<Duration>,
    /// Tokens per second after the first token.
    pub decode_tokens_per_second: Option<f64>,
}

/// One step of a streamed reply.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEvent {
    /// More text.
    Text(String),
    /// The reply ended.
    Finished {
        /// Why.
        reason: FinishReason,
        /// Measurements.
        stats: GenerationStats,
    },
}

/// A whole reply, from [`Engine::complete`].
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The text.
    pub text: String,
    /// Why it ended.
    pub reason: FinishReason,
    /// Measurements.
    pub stats: GenerationStats,
}

/// A loaded model, ready to generate. Cheap to clone; clones share the model.
#[derive(Clone)]
pub struct Engine {
    model: Arc<Model>,
    info: Arc<ModelInfo>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("info", &self.info).finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads a GGUF model from a local file, offline.
    pub async fn load(path: &Path, options: LoadOptions) -> Result<Self, EngineError> {
        options.report(LoadProgress::default());
        let path = validate_path(path)?;
        let checked_path = path.clone();
        let summary = tokio::task::spawn_blocking(move || gguf_check::check(&checked_path))
            .await
            .map_err(|e| EngineError::Load { path: path.clone(), reason: panic_message(e) })?
            .map_err(|problem| match problem {
                gguf_check::GgufProblem::Truncated { expected, actual } => {
                    EngineError::Truncated { path: path.clone(), expected, actual }
                }
                other => EngineError::InvalidModel { path: path.clone(), reason: other.to_string() },
            })?;
        let file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);

        let layers_total = Layout::gguf(&path, &summary.tensors).layers();
        let (load_path, tensors, repacked) = match Self::repack(&path, layers_total, &options).await {
            Some((repacked, tensors)) => (repacked.cache.clone(), tensors, Some(repacked)),
            None => (path.clone(), summary.tensors.clone(), None),
        };
        let max_seqs = options.max_parallel_replies.max(1);
        // mistral.rs panics on some bad inputs; a task turns a panic into a JoinError.
        let prefix_cache = if options.evaluation { None } else { Some(16) };
        let layout = Layout::gguf(&load_path, &tensors);
        let layers = layout.layers();
        let watcher = options.watch(layout);
        let device_map = options.device_map();
        let model = tokio::spawn(async move { build_model(&load_path, max_seqs, prefix_cache, device_map).await })
            .await
            .map_err(|e| EngineError::Load { path: path.clone(), reason: panic_message(e) })?
            .map_err(|e| EngineError::Load { path: path.clone(), reason: format!("{e:#}") })?;
        drop(watcher);
        options.report_done(layers);

        let context_length = model
            .max_sequence_length()
            .ok()
            .flatten()
            .or(summary.context_length.and_then(|n| usize::try_from(n).ok()))
            .unwrap_or(4096);
        // The file name says more than `general.name`, which often omits the quantization.
        let name = path
            .file_stem()
            .map(|f| f.to_string_lossy().into_owned())
            .or(summary.name)
            .unwrap_or_else(|| "model".into());
        let info = ModelInfo {
            path,
            name,
            architecture: summary.architecture.unwrap_or_else(|| "unknown".into()),
            context_length,
            file_bytes,
            quantization_cache: None,
            repacked,
        };
        tracing::info!(model = %info.name, context = info.context_length, "model loaded");
        Ok(Self { model: Arc::new(model), info: Arc::new(info) })
    }

    /// On the CPU, a GGUF file of Q4_1, Q5_0 or Q5_1 weights is loaded from its Q8_0 copy in
    /// [`LoadOptions::repack_dir`], written now when there is none (see `engine/repack.rs`);
    /// with the copy, its tensors. Anything that goes wrong leaves the source to load as it is.
    async fn repack(path: &Path, layers: u32, options: &LoadOptions) -> Option<(Repacked, Vec<(String, u64, u64)>)> {
        let dir = options.repack_dir.clone()?;
        if !matches!(mistralrs::best_device(false), Ok(Device::Cpu)) {
            return None;
        }
        let source = path.to_path_buf();
        let progress = options.progress.clone();
        let made = tokio::task::spawn_blocking(move || -> Result<Option<Repacked>, repack::RepackError> {
            match repack::plan(&source, &dir)? {
                repack::Plan::NotNeeded => Ok(None),
                repack::Plan::Cached(repacked) => Ok(Some(repacked)),
                repack::Plan::Write { from, cache, bytes } => {
                    tracing::info!(
                        source = %source.display(),
                        "{from:?} weights have no fast CPU kernel: writing a Q8_0 copy to {}",
                        cache.display()
                    );
                    let report = |done: usize, total: usize| {
                        if let Some(sender) = &progress {
                            let layers_done = u32::try_from(done * layers as usize / total.max(1)).unwrap_or(layers);
                            let stage = LoadStage::Converting;
                            sender.send_replace(LoadProgress {
                                stage,
                                layers_done,
                                layers_total: layers,
                                quantizing: true,
                            });
                        }
                    };
                    repack::write(&source, &cache, bytes, from, report).map(Some)
                }
            }
        })
        .await;
        let repacked = match made {
            Ok(Ok(repacked)) => repacked?,
            Ok(Err(e)) => {
                tracing::warn!("loading {} as it is, without its faster Q8_0 copy: {e}", path.display());
                return None;
            }
            Err(e) => {
                tracing::warn!(
                    "loading {} as it is: making its Q8_0 copy failed: {}",
                    path.display(),
                    panic_message(e)
                );
                return None;
            }
        };
        // The copy is checked like any GGUF file before mistral.rs reads it.
        let cache = repacked.cache.clone();
        match tokio::task::spawn_blocking(move || gguf_check::check(&cache)).await {
            Ok(Ok(summary)) => Some((repacked, summary.tensors)),
            _ => {
                tracing::warn!("the Q8_0 copy {} is damaged; removed, loading the source", repacked.cache.display());
                let _ = std::fs::remove_file(&repacked.cache);
                None
            }
        }
    }

    /// Loads a model: a folder as a safetensors model ([`Engine::load_folder`]), anything
    /// else as a GGUF file ([`Engine::load`]).
    pub async fn open(path: &Path, options: LoadOptions) -> Result<Self, EngineError> {
        if path.is_dir() {
            Self::load_folder(path, options).await
        } else {
            Self::load(path, options).await
        }
    }

    /// Loads a Hugging Face safetensors folder (config.json, tokenizer.json, weights), offline,
    /// quantized in place when `options.isq` is set. Missing or malformed files are named
    /// before mistral.rs sees the folder.
    pub async fn load_folder(dir: &Path, options: LoadOptions) -> Result<Self, EngineError> {
        options.report(LoadProgress { quantizing: options.isq.is_some(), ..LoadProgress::default() });
        let dir = std::path::absolute(dir).map_err(|_| EngineError::ModelNotFound(dir.to_path_buf()))?;
        if !dir.is_dir() {
            return Err(EngineError::ModelNotFound(dir));
        }
        let checked = dir.clone();
        let summary = tokio::task::spawn_blocking(move || check_folder(&checked))
            .await
            .map_err(|e| EngineError::Load { path: dir.clone(), reason: panic_message(e) })?
            .map_err(|reason| EngineError::InvalidModel { path: dir.clone(), reason })?;
        let device = mistralrs::best_device(false)
            .map_err(|e| EngineError::Load { path: dir.clone(), reason: e.to_string() })?;
        let dtype = if matches!(device, Device::Cpu) { ModelDType::F32 } else { ModelDType::Auto };
        let configure = |builder: mistralrs::TextModelBuilder| {
            builder
                .with_token_source(TokenSource::None)
                .with_dtype(dtype)
                .with_max_num_seqs(options.max_parallel_replies.max(1))
                .with_prefix_cache_n(if options.evaluation { None } else { Some(16) })
                .with_device_mapping(options.device_map())
        };
        let source = dir.to_string_lossy().into_owned();
        // An in-situ quantized model is cached as UQFF (keyed by the ISQ type and the source
        // files), so the next load reads it instead of quantizing again.
        let cache = options.isq.map(|isq| uqff_cache(&dir, isq, &summary.fingerprint));
        let (builder, cache_use) = match (options.isq, &cache) {
            (Some(_), Some(c)) if !c.files.is_empty() => (
                configure(mistralrs::UqffTextModelBuilder::new(c.dir.to_string_lossy(), c.files.clone()).into_inner()),
                Some(QuantizationCache::Reused),
            ),
            (Some(isq), Some(c)) if c.writable => (
                configure(mistralrs::TextModelBuilder::new(&source))
                    .with_isq(isq.into())
                    .write_uqff(c.dir.join(format!("{}.uqff", isq.wire_name()))),
                Some(QuantizationCache::Written),
            ),
            (Some(isq), _) => (
                configure(mistralrs::TextModelBuilder::new(&source)).with_isq(isq.into()),
                Some(QuantizationCache::Unavailable),
            ),
            (None, _) => (configure(mistralrs::TextModelBuilder::new(&source)), None),
        };
        // A cached load reads the layers' unquantized tensors (norms) from the cache's residual
        // weights instead of the model's own files.
        let mut shards = summary.shards.clone();
        if let (Some(QuantizationCache::Reused), Some(c)) = (cache_use, &cache) {
            shards = vec![c.dir.join("residual.safetensors")];
        }
        let layout = Layout::safetensors(&shards);
        let layers = layout.layers();
        let watcher = options.watch(layout);
        // mistral.rs panics on some bad inputs; a task turns a panic into a JoinError.
        let model = tokio::spawn(async move { builder.build().await })
            .await
            .map_err(|e| EngineError::Load { path: dir.clone(), reason: panic_message(e) })?
            .map_err(|e| EngineError::Load { path: dir.clone(), reason: format!("{e:#}") })?;
        drop(watcher);
        options.report_done(layers);
        if let (Some(QuantizationCache::Written), Some(cache)) = (cache_use, &cache) {
            // Only a finished cache is ever read: the marker is written last.
            if let Err(e) = std::fs::write(cache.dir.join(UQFF_COMPLETE), &summary.fingerprint) {
                tracing::warn!("the quantized model could not be cached: {e}");
            }
        }
        let context_length = model.max_sequence_length().ok().flatten().unwrap_or(summary.context_length);
        let name = dir.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
        let name = match options.isq {
            Some(isq) => format!("{name} (ISQ {})", isq.wire_name().to_uppercase()),
            None => name,
        };
        let info = ModelInfo {
            path: dir,
            name,
            architecture: summary.architecture,
            context_length,
            file_bytes: summary.weight_bytes,
            quantization_cache: cache_use,
            repacked: None,
        };
        tracing::info!(model = %info.name, context = info.context_length, "model loaded");
        Ok(Self { model: Arc::new(model), info: Arc::new(info) })
    }

    /// What is known about the model.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Tokens that `messages` take once rendered through the model's chat template, including
    /// the header that opens the assistant's reply.
    pub async fn count_prompt_tokens(&self, messages: &[PromptMessage]) -> Result<usize, EngineError> {
        let mut text = TextMessages::new();
        for m in messages {
            text = text.add_message(role(m.role), &m.content);
        }
        let tokens = self
            .model
            .tokenize(Either::Left(text), None, true, true, None)
            .await
            .map_err(|e| EngineError::Generation(e.to_string()))?;
        Ok(tokens.len())
    }

    /// Tokens in plain `text` (no chat template, no special tokens).
    pub async fn count_text_tokens(&self, text: &str) -> Result<usize, EngineError> {
        let tokens = self
            .model
            .tokenize(Either::Right(text.to_owned()), None, false, false, None)
            .await
            .map_err(|e| EngineError::Generation(e.to_string()))?;
        Ok(tokens.len())
    }

    /// Tokens of context worth using: the model's length, capped for GGUF files at
    /// [`crate::planner::GGUF_CONTEXT_CAP`] (mistral.rs's GGUF loader lacks Llama 3.1's long-context
    /// RoPE scaling, so quality falls apart past it).
    pub fn usable_context(&self) -> usize {
        self.info.context_length.min(crate::planner::GGUF_CONTEXT_CAP as usize)
    }

    /// Perplexity of `text` under the model: the text is cut into windows of `window` tokens,
    /// each run in one forward pass, and every token after a window's first is scored.
    /// Load the engine with [`LoadOptions::evaluation`].
    pub async fn perplexity(&self, text: &str, window: usize) -> Result<Perplexity, EngineError> {
        let failed = |e: String| EngineError::Generation(e);
        let tokens = self
            .model
            .tokenize(Either::Right(text.to_owned()), None, false, false, None)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let window = window.clamp(2, self.info.context_length.max(2));
        let mut nll = 0f64;
        let mut scored = 0usize;
        for chunk in tokens.chunks(window).filter(|c| c.len() >= 2) {
            let (tx, mut rx) = mpsc::channel(1);
            let request = mistralrs::Request::Normal(Box::new(mistralrs::NormalRequest {
                messages: mistralrs::RequestMessage::CompletionTokens(chunk.to_vec()),
                sampling_params: SamplingParams { max_len: Some(0), ..SamplingParams::deterministic() },
                response: tx,
                return_logprobs: false,
                is_streaming: false,
                id: 0,
                constraint: mistralrs::Constraint::None,
                suffix: None,
                tools: None,
                tool_choice: None,
                logits_processors: None,
                return_raw_logits: true,
                web_search_options: None,
                model_id: None,
                truncate_sequence: false,
            }));
            self.model
                .inner()
                .get_sender(None)
                .map_err(|e| failed(e.to_string()))?
                .send(request)
                .await
                .map_err(|e| failed(e.to_string()))?;
            let response =
                rx.recv().await.ok_or(EngineError::EngineStopped)?.as_result().map_err(|e| failed(e.to_string()))?;
            let mistralrs::ResponseOk::Raw { logits_chunks, tokens: seen } = response else {
                return Err(failed("the engine did not return logits".into()));
            };
            let logits = logits_chunks
                .first()
                .ok_or_else(|| failed("no logits".into()))?
                .to_device(&Device::Cpu)
                .and_then(|t| t.to_dtype(mistralrs::DType::F32))
                .and_then(|t| t.to_vec2::<f32>())
                .map_err(|e| failed(e.to_string()))?;
            // Position i predicts token i + 1.
            for (row, &next) in logits.iter().zip(seen.iter().skip(1)) {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let log_sum = max as f64 + row.iter().map(|&l| ((l - max) as f64).exp()).sum::<f64>().ln();
                let target = *row.get(next as usize).ok_or_else(|| failed("a token outside the vocabulary".into()))?;
                nll += log_sum - target as f64;
                scored += 1;
            }
        }
        if scored == 0 {
            return Err(failed("the text is too short to measure (it needs at least two tokens)".into()));
        }
        Ok(Perplexity { perplexity: (nll / scored as f64).exp(), tokens: tokens.len() })
    }

    /// Generates a whole reply to `messages`, handing each piece of text to `on_text` as it
    /// comes (see [`Engine::generate`]).
    pub async fn complete(
        &self,
        messages: Vec<PromptMessage>,
        sampling: Sampling,
        cancel: CancellationToken,
        mut on_text: impl FnMut(&str),
    ) -> Result<Completion, EngineError> {
        let mut rx = self.generate(messages, sampling, cancel);
        let mut done =
            Completion { text: String::new(), reason: FinishReason::Stop, stats: GenerationStats::default() };
        while let Some(event) = rx.recv().await {
            match event? {
                GenerationEvent::Text(piece) => {
                    on_text(&piece);
                    done.text.push_str(&piece);
                }
                GenerationEvent::Finished { reason, stats } => {
                    done.reason = reason;
                    done.stats = stats;
                }
            }
        }
        Ok(done)
    }

    /// Streams a reply to `messages`. The receiver yields text pieces, then exactly one
    /// [`GenerationEvent::Finished`] or one error. Cancelling `cancel` ends the reply at once.
    pub fn generate(
        &self,
        messages: Vec<PromptMessage>,
        sampling: Sampling,
        cancel: CancellationToken,
    ) -> mpsc::Receiver<Result<GenerationEvent, EngineError>> {
        let (tx, rx) = mpsc::channel(256);
        let model = Arc::clone(&self.model);
        tokio::spawn(async move {
            let result = stream_reply(&model, messages, sampling, &cancel, &tx).await;
            let _ = match result {
                Ok((reason, stats)) => tx.send(Ok(GenerationEvent::Finished { reason, stats })).await,
                Err(e) => tx.send(Err(e)).await,
            };
        });
        rx
    }
}

/// What a safetensors folder's files say, once each is checked.
struct FolderSummary {
    architecture: String,
    context_length: usize,
    weight_bytes: u64,
    /// SHA-256 over config.json and each weight file's name, size and modification time: a
    /// changed source gets a new quantization cache.
    fingerprint: String,
    /// The weight files.
    shards: Vec<PathBuf>,
}

/// File written last into a finished UQFF cache folder.
const UQFF_COMPLETE: &str = "altiplano-complete";

/// The UQFF cache of a folder for one ISQ type: `DIR/.altiplano-uqff/<isq>-<fingerprint>/`.
struct UqffCache {
    dir: PathBuf,
    /// The finished cache's first `.uqff` file (empty when there is no finished cache).
    files: Vec<PathBuf>,
    /// The cache folder could be created.
    writable: bool,
}

fn uqff_cache(model_dir: &Path, isq: Isq, fingerprint: &str) -> UqffCache {
    let root = model_dir.join(".altiplano-uqff");
    let dir = root.join(format!("{}-{}", isq.wire_name(), &fingerprint[..16.min(fingerprint.len())]));
    let finished = std::fs::read_to_string(dir.join(UQFF_COMPLETE)).is_ok_and(|f| f == fingerprint);
    if finished {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| PathBuf::from(e.file_name()))).collect())
            .unwrap_or_default();
        files.retain(|f| f.extension().is_some_and(|e| e == "uqff"));
        files.sort();
        // Only the first shard is named; mistral.rs finds the others.
        files.truncate(1);
        if !files.is_empty() {
            return UqffCache { dir, files, writable: true };
        }
    }
    // Caches of other types stay; an unfinished one, or one of this type for older files, goes.
    if let Ok(entries) = std::fs::read_dir(&root) {
        let prefix = format!("{}-", isq.wire_name());
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let writable = std::fs::create_dir_all(&dir).is_ok();
    UqffCache { dir, files: Vec::new(), writable }
}

/// Checks a safetensors folder file by file, naming the file at fault.
fn check_folder(dir: &Path) -> Result<FolderSummary, String> {
    let read_json = |name: &str| -> Result<serde_json::Value, String> {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{name} cannot be read ({e})"))?;
        serde_json::from_str(&text).map_err(|e| format!("{name} is not valid JSON ({e})"))
    };
    let config = read_json("config.json")?;
    let architecture =
        config["model_type"].as_str().ok_or_else(|| "config.json names no model_type".to_owned())?.to_owned();
    for key in ["hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size"] {
        if !config[key].is_u64() {
            return Err(format!("config.json lacks {key}"));
        }
    }
    let tokenizer = read_json("tokenizer.json")?;
    if !tokenizer["model"]["vocab"].is_object() {
        return Err("tokenizer.json has no BPE vocabulary (model.vocab)".into());
    }
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("the folder cannot be listed ({e})"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    shards.sort();
    if shards.is_empty() {
        return Err("no .safetensors weight files".into());
    }
    let mut weight_bytes = 0;
    for shard in &shards {
        let name = shard.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let size = std::fs::metadata(shard).map_err(|e| format!("{name} cannot be read ({e})"))?.len();
        let mut header_len = [0u8; 8];
        let mut file = std::fs::File::open(shard).map_err(|e| format!("{name} cannot be read ({e})"))?;
        std::io::Read::read_exact(&mut file, &mut header_len)
            .map_err(|_| format!("{name} is truncated (no header)"))?;
        let header_len = u64::from_le_bytes(header_len);
        if header_len > 100 << 20 || 8 + header_len > size {
            return Err(format!("{name} is damaged (its header length {header_len} does not fit the file)"));
        }
        let mut header = vec![0u8; header_len as usize];
        std::io::Read::read_exact(&mut file, &mut header).map_err(|_| format!("{name} is truncated"))?;
        let header: serde_json::Value =
            serde_json::from_slice(&header).map_err(|_| format!("{name} is damaged (its header is not JSON)"))?;
        let end = header
            .as_object()
            .map(|o| o.values().filter_map(|t| t["data_offsets"][1].as_u64()).max().unwrap_or(0))
            .unwrap_or(0);
        if 8 + header_len + end > size {
            return Err(format!("{name} is truncated ({size} bytes; its header needs {})", 8 + header_len + end));
        }
        weight_bytes += size;
    }
    let context_length = config["max_position_embeddings"].as_u64().unwrap_or(4096) as usize;
    let fingerprint = {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(config.to_string().as_bytes());
        for shard in &shards {
            let meta = std::fs::metadata(shard).ok();
            let modified = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            let size = meta.map(|m| m.len()).unwrap_or(0);
            hasher.update(format!("{}|{size}|{modified:?}\n", shard.display()).as_bytes());
        }
        hex::encode(hasher.finalize())
    };
    Ok(FolderSummary { architecture, context_length, weight_bytes, fingerprint, shards })
}

fn validate_path(path: &Path) -> Result<PathBuf, EngineError> {
    let meta = std::fs::metadata(path).map_err(|_| EngineError::ModelNotFound(path.to_path_buf()))?;
    if !meta.is_file() {
        return Err(EngineError::NotAFile(path.to_path_buf()));
    }
    // An absolute path: mistral.rs takes anything that is not an existing path for a Hub repo.
    // Links are kept, not resolved: a model in the Hugging Face cache is a link named after the
    // file to a blob named after its hash, and the name is what people recognise.
    std::path::absolute(path).map_err(|_| EngineError::ModelNotFound(path.to_path_buf()))
}

async fn build_model(
    path: &Path,
    max_seqs: usize,
    prefix_cache: Option<usize>,
    device_map: DeviceMapSetting,
) -> anyhow::Result<Model> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow::anyhow!("the model path has no file name"))?;
    let loader = GGUFLoaderBuilder::new(
        None,
        None,
        dir.to_string_lossy().into_owned(),
        vec![file],
        GGUFSpecificConfig { topology: None },
        false,
        None,
    )
    .build();
    let device = mistralrs::best_device(false)?;
    // On the CPU, F32 activations are both faster than F16 (no native F16 arithmetic) and match
    // llama.cpp's greedy output token for token; GPUs take their best type.
    let dtype = if matches!(device, Device::Cpu) { ModelDType::F32 } else { ModelDType::Auto };
    let load_device = device.clone();
    let pipeline = tokio::task::spawn_blocking(move || {
        loader.load_model_from_hf(None, TokenSource::None, &dtype, &load_device, true, device_map, None, None)
    })
    .await??;
    let scheduler = SchedulerConfig::DefaultScheduler { method: DefaultSchedulerMethod::Fixed(max_seqs.try_into()?) };
    let mut builder = MistralRsBuilder::new(pipeline, scheduler, false, None);
    builder = match prefix_cache {
        Some(n) => builder.with_prefix_cache_n(n),
        None => builder.with_no_prefix_cache(true),
    };
    let runner = builder.build().await;
    Ok(Model::new(runner))
}

fn role(role: Role) -> TextMessageRole {
    match role {
        Role::System => TextMessageRole::System,
        Role::User => TextMessageRole::User,
        Role::Assistant => TextMessageRole::Assistant,
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .map(|m| format!("the loader crashed: {m}"))
            .unwrap_or_else(|| "the loader crashed".into()),
        Err(e) => e.to_string(),
    }
}

async fn stream_reply(
    model: &Model,
    messages: Vec<PromptMessage>,
    sampling: Sampling,
    cancel: &CancellationToken,
    tx: &mpsc::Sender<Result<GenerationEvent, EngineError>>,
) -> Result<(FinishReason, GenerationStats), EngineError> {
    let mut request = RequestBuilder::new();
    for m in &messages {
        request = request.add_message(role(m.role), &m.content);
    }
    let params = if sampling.greedy {
        SamplingParams { max_len: Some(sampling.max_tokens), ..SamplingParams::deterministic() }
    } else {
        SamplingParams {
            temperature: Some(sampling.temperature),
            top_p: Some(sampling.top_p),
            max_len: Some(sampling.max_tokens),
            ..SamplingParams::neutral()
        }
    };
    let request = request.set_sampling(params);

    let started = Instant::now();
    let mut stats = GenerationStats::default();
    let mut first_token_at: Option<Instant> = None;
    let mut last_token_at = started;
    let mut stream = tokio::select! {
        biased;
        _ = cancel.cancelled() => return Ok((FinishReason::Cancelled, stats)),
        s = model.stream_chat_request(request) => s.map_err(|e| EngineError::Generation(e.to_string()))?,
    };
    loop {
        let response = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                // Dropping the stream closes the channel; the engine then ends the sequence.
                drop(stream);
                finish_stats(&mut stats, first_token_at, last_token_at);
                return Ok((FinishReason::Cancelled, stats));
            }
            r = stream.next() => r,
        };
        let Some(response) = response else {
            return Err(EngineError::EngineStopped);
        };
        match response {
            Response::Chunk(chunk) => {
                let now = Instant::now();
                let Some(choice) = chunk.choices.into_iter().next() else { continue };
                stats.completion_tokens += 1;
                last_token_at = now;
                if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                    if first_token_at.is_none() {
                        first_token_at = Some(now);
                        stats.time_to_first_token = Some(now - started);
                    }
                    if tx.send(Ok(GenerationEvent::Text(text))).await.is_err() {
                        // Nobody is listening any more: same as a cancel.
                        return Ok((FinishReason::Cancelled, stats));
                    }
                }
                if let Some(reason) = choice.finish_reason {
                    if let Some(usage) = chunk.usage {
                        stats.prompt_tokens = usage.prompt_tokens;
                        stats.completion_tokens = usage.completion_tokens;
                    }
                    finish_stats(&mut stats, first_token_at, last_token_at);
                    let reason = match reason.as_str() {
                        "length" => FinishReason::Length,
                        "canceled" => FinishReason::Cancelled,
                        _ => FinishReason::Stop,
                    };
                    return Ok((reason, stats));
                }
            }
            Response::ModelError(message, _) | Response::CompletionModelError(message, _) => {
                return Err(EngineError::Generation(message));
            }
            Response::InternalError(e) => return Err(EngineError::Generation(e.to_string())),
            Response::ValidationError(e) => return Err(EngineError::Generation(e.to_string())),
            Response::Done(done) => {
                stats.prompt_tokens = done.usage.prompt_tokens;
                stats.completion_tokens = done.usage.completion_tokens;
                finish_stats(&mut stats, first_token_at, last_token_at);
                return Ok((FinishReason::Stop, stats));
            }
            _ => {}
        }
    }
}

fn finish_stats(stats: &mut GenerationStats, first: Option<Instant>, last: Instant) {
    if let Some(first) = first {
        let decode = last.saturating_duration_since(first).as_secs_f64();
        // The first token is part of prompt processing; decode speed counts the ones after it.
        if decode > 0.0 && stats.completion_tokens > 1 {
            stats.decode_tokens_per_second = Some((stats.completion_tokens - 1) as f64 / decode);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_split_turns_nccl_off_for_its_load_only() {
        // This test owns the variable in this binary: nothing else here reads or sets it.
        assert!(std::env::var_os(NO_NCCL).is_none());
        let split = LoadOptions { gpu_layers: vec![20, 0], ..LoadOptions::default() };
        assert!(matches!(split.device_map(), DeviceMapSetting::Map(_)));
        nccl_off_for_split(true);
        assert_eq!(std::env::var(NO_NCCL).as_deref(), Ok("1"), "mistral.rs must honour the split");
        nccl_off_for_split(false);
        assert!(std::env::var_os(NO_NCCL).is_none(), "the next whole-GPU load is tensor parallel again");
        assert!(matches!(LoadOptions::default().device_map(), DeviceMapSetting::Auto(_)));
    }
}
