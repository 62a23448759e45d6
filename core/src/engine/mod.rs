//! The inference engine: a local model, run fully offline by one of two backends.
//!
//! - **llama.cpp** (`llama.rs`, the `llama-cpp-2` crate) runs GGUF files by default: it is
//!   several times faster on CPUs, applies Llama 3.1's long-context RoPE factors (so GGUF Llama
//!   3.1 gets its whole 128K window) and keeps a conversation's KV cache for the next turn.
//! - **mistral.rs** (`mistral.rs`) runs Hugging Face safetensors folders, with in-situ
//!   quantization (ISQ, FP8), the UQFF cache and NCCL tensor parallelism; it can also run GGUF
//!   files (`EngineKind::MistralRs`), capped at [`MISTRALRS_GGUF_CONTEXT_CAP`] tokens.
//!
//! [`Engine::open`] takes a GGUF file or a safetensors folder and [`LoadOptions::engine`] (by
//! default [`EngineKind::for_path`]). It never touches the network: the path must exist, a GGUF
//! header is walked first (see `gguf_check`) so truncated, foreign or hostile files get a clear
//! error before either library sees them (llama.cpp aborts the process on some), and loading
//! runs in its own task or thread so that a panic becomes an error instead of a crash.
//!
//! [`Engine::generate`] streams a reply as [`GenerationEvent`]s over a channel and honours a
//! [`CancellationToken`]: the channel reports [`FinishReason::Cancelled`] at once, and the
//! backend stops at its next token (or prompt batch). Both backends give the same events,
//! stats and errors. A reply that keeps repeating itself is stopped
//! ([`FinishReason::Repeating`], see `guard.rs`).
//!
//! Nothing but this module touches mistralrs or llama-cpp-2.

pub(crate) mod gguf_check;
mod guard;
mod llama;
mod mistral;
mod progress;
mod repack;
mod template;

pub use mistral::GGUF_CONTEXT_CAP as MISTRALRS_GGUF_CONTEXT_CAP;
pub use progress::{LoadProgress, LoadStage};
pub use repack::{remove_copy as remove_repacked_copy, Repacked};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;
pub use tokio_util::sync::CancellationToken;

use crate::store::Role;

/// The library that runs a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum EngineKind {
    /// llama.cpp: GGUF files.
    #[serde(rename = "llamacpp")]
    LlamaCpp,
    /// mistral.rs: safetensors folders (ISQ, FP8, UQFF, NCCL) and GGUF files.
    #[serde(rename = "mistralrs")]
    MistralRs,
}

impl EngineKind {
    /// Both, in the order the CLI lists them.
    pub const ALL: [Self; 2] = [Self::LlamaCpp, Self::MistralRs];

    /// The engine a model runs on unless the user says otherwise: llama.cpp for a GGUF file,
    /// mistral.rs for a safetensors folder.
    pub fn for_path(path: &Path) -> Self {
        if path.is_dir() {
            Self::MistralRs
        } else {
            Self::LlamaCpp
        }
    }

    /// `llamacpp` or `mistralrs`: as the CLI, the settings and the measurements spell it.
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::LlamaCpp => "llamacpp",
            Self::MistralRs => "mistralrs",
        }
    }

    /// `llama.cpp` or `mistral.rs`: as people write it.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::LlamaCpp => "llama.cpp",
            Self::MistralRs => "mistral.rs",
        }
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.display_name())
    }
}

/// A name that is no [`EngineKind::wire_name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown engine {0:?}: use llamacpp or mistralrs")]
pub struct UnknownEngine(pub String);

impl std::str::FromStr for EngineKind {
    type Err = UnknownEngine;

    /// `llamacpp` or `mistralrs`; `llama.cpp`, `mistral.rs` and `llama-cpp` are read too.
    fn from_str(name: &str) -> Result<Self, UnknownEngine> {
        let wanted = name.trim().to_ascii_lowercase().replace(['.', '-', '_'], "");
        Self::ALL.into_iter().find(|e| e.wire_name() == wanted).ok_or_else(|| UnknownEngine(name.to_owned()))
    }
}

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

/// How a model is loaded.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The engine to run it on; `None` picks [`EngineKind::for_path`].
    pub engine: Option<EngineKind>,
    /// How many replies may be generated at once (mistral.rs batches them; llama.cpp serves
    /// them in turn).
    pub max_parallel_replies: usize,
    /// Tokens of context to hold (llama.cpp allocates its KV cache for this many); `None`
    /// takes the model's trained length as far as memory allows (see `llama.rs`). mistral.rs
    /// sizes its cache itself.
    pub context_tokens: Option<usize>,
    /// CPU threads; `None` uses one per physical core.
    pub threads: Option<usize>,
    /// How llama.cpp stores the KV cache (the plan's choice).
    pub kv_precision: KvPrecision,
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
            engine: None,
            max_parallel_replies: 4,
            context_tokens: None,
            threads: None,
            kv_precision: KvPrecision::F16,
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

    fn report_done(&self, layers: u32) {
        let quantizing = self.isq.is_some();
        self.report(LoadProgress { stage: LoadStage::Done, layers_done: layers, layers_total: layers, quantizing });
    }

    /// CPU threads to use: the option, else one per physical core (hyper-threads share a
    /// core's vector units, so more threads than cores make matrix work slower).
    fn cpu_threads(&self) -> usize {
        self.threads.filter(|n| *n > 0).unwrap_or_else(|| {
            sysinfo::System::physical_core_count()
                .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
                .unwrap_or(4)
        })
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

/// How the KV cache stores keys and values (llama.cpp; mistral.rs keeps its own 16-bit cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KvPrecision {
    /// 16-bit floats, llama.cpp's default.
    #[default]
    F16,
    /// 8-bit blocks (llama.cpp's `q8_0`: 34 bytes per 32 values), about half the memory for
    /// a quality loss measured in hundredths of perplexity; chosen by the plan when a long
    /// context does not fit otherwise.
    Q8,
}

impl KvPrecision {
    /// The bytes `f16_bytes` of a 16-bit cache take at this precision.
    pub fn bytes(self, f16_bytes: u64) -> u64 {
        match self {
            Self::F16 => f16_bytes,
            Self::Q8 => f16_bytes / 64 * 34,
        }
    }
}

/// In-situ quantization types for safetensors models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Isq {
    /// 4-bit k-quant.
    Q4k,
    /// 5-bit k-quant.
    Q5k,
    /// 6-bit k-quant.
    Q6k,
    /// 8-bit.
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

/// What is known about a loaded model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// The model file.
    pub path: PathBuf,
    /// A display name: the file name without `.gguf`.
    pub name: String,
    /// The model architecture, e.g. `llama`.
    pub architecture: String,
    /// Tokens the model can attend to now (prompt plus reply): llama.cpp's allocated context,
    /// mistral.rs's maximum sequence length.
    pub context_length: usize,
    /// Tokens the model was trained for (`context_length` in its metadata).
    pub trained_context: usize,
    /// Size of the file in bytes.
    pub file_bytes: u64,
    /// The engine running it.
    pub engine: EngineKind,
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
    /// Penalty on tokens of the last 64 generated (1.0: none); also applied when `greedy`.
    pub repetition_penalty: f32,
    /// DRY ("don't repeat yourself") penalty on repeated sequences of tokens (0: none;
    /// llama.cpp only).
    pub dry_multiplier: f32,
    /// Seed of the random choices; ignored when `greedy`. `None`: on llama.cpp the next of a
    /// fixed sequence (each reply draws differently, and a session's replies repeat from run
    /// to run, as mistral.rs's once-seeded sampler does).
    pub seed: Option<u32>,
}

impl Default for Sampling {
    /// Meta's recommended chat settings for Llama 3.1 (temperature 0.6, top-p 0.9), with a
    /// light repetition penalty (1.1, as Ollama's) and DRY (0.8, its authors' suggestion), which
    /// keep small models from looping.
    fn default() -> Self {
        Self {
            temperature: 0.6,
            top_p: 0.9,
            greedy: false,
            max_tokens: 2048,
            repetition_penalty: 1.1,
            dry_multiplier: 0.8,
            seed: None,
        }
    }
}

impl Sampling {
    /// Greedy decoding with no penalties: the same prompt always gives the same reply, the
    /// same on both engines.
    pub fn greedy() -> Self {
        Self { greedy: true, repetition_penalty: 1.0, dry_multiplier: 0.0, ..Self::default() }
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
    /// The reply kept repeating the same text and was stopped.
    Repeating,
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
    /// Tokens at the start of the prompt whose KV cache was kept from an earlier reply and not
    /// computed again (llama.cpp; mistral.rs's prefix cache does not say).
    pub reused_prompt_tokens: usize,
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
    backend: Backend,
    info: Arc<ModelInfo>,
}

#[derive(Clone)]
enum Backend {
    LlamaCpp(Arc<llama::LlamaCpp>),
    MistralRs(Arc<mistral::MistralRs>),
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("info", &self.info).finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads a GGUF model from a local file, offline, on [`LoadOptions::engine`] (llama.cpp
    /// unless told otherwise).
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
        let (backend, info) = match options.engine.unwrap_or(EngineKind::LlamaCpp) {
            EngineKind::LlamaCpp => {
                let (model, info) = llama::LlamaCpp::load(path, summary, &options).await?;
                (Backend::LlamaCpp(Arc::new(model)), info)
            }
            EngineKind::MistralRs => {
                let (model, info) = mistral::MistralRs::load_gguf(path, summary, &options).await?;
                (Backend::MistralRs(Arc::new(model)), info)
            }
        };
        Ok(Self::loaded(backend, info))
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

    /// Loads a Hugging Face safetensors folder (config.json, tokenizer.json, weights) with
    /// mistral.rs, offline, quantized in place when `options.isq` is set. Missing or malformed
    /// files are named before mistral.rs sees the folder.
    pub async fn load_folder(dir: &Path, options: LoadOptions) -> Result<Self, EngineError> {
        options.report(LoadProgress { quantizing: options.isq.is_some(), ..LoadProgress::default() });
        let dir = std::path::absolute(dir).map_err(|_| EngineError::ModelNotFound(dir.to_path_buf()))?;
        if !dir.is_dir() {
            return Err(EngineError::ModelNotFound(dir));
        }
        if let Some(engine @ EngineKind::LlamaCpp) = options.engine {
            return Err(EngineError::WrongEngine {
                path: dir,
                engine,
                reason: "llama.cpp runs GGUF files, and this is a safetensors folder; run it on mistral.rs \
                         (--engine mistralrs) or choose a GGUF file of the model"
                    .into(),
            });
        }
        let (model, info) = mistral::MistralRs::load_folder(dir, &options).await?;
        Ok(Self::loaded(Backend::MistralRs(Arc::new(model)), info))
    }

    fn loaded(backend: Backend, info: ModelInfo) -> Self {
        tracing::info!(model = %info.name, engine = %info.engine, context = info.context_length, "model loaded");
        Self { backend, info: Arc::new(info) }
    }

    /// What is known about the model.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The engine running the model.
    pub fn kind(&self) -> EngineKind {
        self.info.engine
    }

    /// Tokens that `messages` take once rendered through the model's chat template, including
    /// the header that opens the assistant's reply.
    pub async fn count_prompt_tokens(&self, messages: &[PromptMessage]) -> Result<usize, EngineError> {
        match &self.backend {
            Backend::LlamaCpp(m) => m.count_prompt_tokens(messages).await,
            Backend::MistralRs(m) => m.count_prompt_tokens(messages).await,
        }
    }

    /// Tokens in plain `text` (no chat template, no special tokens).
    pub async fn count_text_tokens(&self, text: &str) -> Result<usize, EngineError> {
        match &self.backend {
            Backend::LlamaCpp(m) => m.count_text_tokens(text).await,
            Backend::MistralRs(m) => m.count_text_tokens(text).await,
        }
    }

    /// Tokens of context worth using: on llama.cpp, the context it holds; on mistral.rs, the
    /// model's length, capped for GGUF files at [`MISTRALRS_GGUF_CONTEXT_CAP`] (its GGUF loader
    /// lacks Llama 3.1's long-context RoPE scaling, so quality falls apart past it).
    pub fn usable_context(&self) -> usize {
        match &self.backend {
            Backend::LlamaCpp(_) => self.info.context_length,
            Backend::MistralRs(m) => m.usable_context(self.info.context_length),
        }
    }

    /// Perplexity of `text` under the model: the text is cut into windows of `window` tokens,
    /// each run in one forward pass, and every token after a window's first is scored.
    /// Load the engine with [`LoadOptions::evaluation`].
    pub async fn perplexity(&self, text: &str, window: usize) -> Result<Perplexity, EngineError> {
        match &self.backend {
            Backend::LlamaCpp(m) => m.perplexity(text, window).await,
            Backend::MistralRs(m) => m.perplexity(text, window, self.info.context_length).await,
        }
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
        let (inner_tx, inner_rx) = mpsc::channel(256);
        // The guard stops the backend through a token of its own, so that a loop it ends is
        // told apart from the user's Stop.
        let stop = cancel.child_token();
        let backend = self.backend.clone();
        let backend_stop = stop.clone();
        tokio::spawn(async move {
            let result = match &backend {
                Backend::LlamaCpp(m) => m.stream_reply(messages, sampling, &backend_stop, &inner_tx).await,
                Backend::MistralRs(m) => m.stream_reply(messages, sampling, &backend_stop, &inner_tx).await,
            };
            let _ = match result {
                Ok((reason, stats)) => inner_tx.send(Ok(GenerationEvent::Finished { reason, stats })).await,
                Err(e) => inner_tx.send(Err(e)).await,
            };
        });
        tokio::spawn(guard::forward(inner_rx, tx, stop));
        rx
    }
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

fn finish_stats(stats: &mut GenerationStats, first: Option<Instant>, last: Instant) {
    if let Some(first) = first {
        let decode = last.saturating_duration_since(first).as_secs_f64();
        // The first token is part of prompt processing; decode speed counts the ones after it.
        if decode > 0.0 && stats.completion_tokens > 1 {
            stats.decode_tokens_per_second = Some((stats.completion_tokens - 1) as f64 / decode);
        }
    }
}
