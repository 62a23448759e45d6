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

pub mod embed;
mod error;
mod generation;
// The header checks live in `altiplano-formats` (fuzzed there); the engine names them as before.
pub(crate) use altiplano_formats::gguf as gguf_check;
mod guard;
mod llama;
mod llama_embed;
mod mistral;
mod options;
mod progress;
pub mod remote;
mod repack;
pub(crate) use altiplano_formats::safetensors;
mod template;

pub use error::EngineError;
pub use generation::{
    Completion, FinishReason, GenerationEvent, GenerationStats, Perplexity, PromptMessage, Role, Sampling, UnknownRole,
};
pub use mistral::GGUF_CONTEXT_CAP as MISTRALRS_GGUF_CONTEXT_CAP;
pub use options::{EngineKind, Isq, KvPrecision, LoadOptions, ModelInfo, QuantizationCache, UnknownEngine, UnknownIsq};
pub use progress::{LoadProgress, LoadStage};
pub use repack::{remove_copy as remove_repacked_copy, Repacked};

use generation::finish_stats;
use options::PROGRESS_EVERY;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;
pub use tokio_util::sync::CancellationToken;

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
    Remote(Arc<remote::Remote>),
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
        let (backend, info) =
            match options.engine.unwrap_or(EngineKind::LlamaCpp) {
                EngineKind::LlamaCpp => {
                    let (model, info) = llama::LlamaCpp::load(path, summary, &options).await?;
                    (Backend::LlamaCpp(Arc::new(model)), info)
                }
                EngineKind::MistralRs => {
                    let (model, info) = mistral::MistralRs::load_gguf(path, summary, &options).await?;
                    (Backend::MistralRs(Arc::new(model)), info)
                }
                EngineKind::Remote => return Err(EngineError::WrongEngine {
                    path,
                    engine: EngineKind::Remote,
                    reason:
                        "a file runs here, on llama.cpp or mistral.rs; a server is reached with `altiplano remote use`"
                            .into(),
                }),
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

    /// Connects to a model another program serves over OpenAI's HTTP API (see [`remote`]):
    /// its model, context length and token counting are settled before this returns.
    pub async fn connect(endpoint: &remote::RemoteEndpoint) -> Result<Self, EngineError> {
        let remote = remote::connect(endpoint).await?;
        let info = ModelInfo {
            path: PathBuf::from(&remote.info.url),
            name: remote.model().to_owned(),
            architecture: "remote".to_owned(),
            context_length: remote.context,
            trained_context: remote.context,
            file_bytes: 0,
            engine: EngineKind::Remote,
            quantization_cache: None,
            repacked: None,
        };
        Ok(Self { backend: Backend::Remote(Arc::new(remote)), info: Arc::new(info) })
    }

    /// For a remote model: what connecting found (its server's models, how tokens are counted,
    /// where the context length came from).
    pub fn remote_info(&self) -> Option<&remote::RemoteInfo> {
        match &self.backend {
            Backend::Remote(r) => Some(&r.info),
            _ => None,
        }
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
            Backend::Remote(m) => m.count_prompt_tokens(messages).await,
        }
    }

    /// Tokens in plain `text` (no chat template, no special tokens).
    pub async fn count_text_tokens(&self, text: &str) -> Result<usize, EngineError> {
        match &self.backend {
            Backend::LlamaCpp(m) => m.count_text_tokens(text).await,
            Backend::MistralRs(m) => m.count_text_tokens(text).await,
            Backend::Remote(m) => m.count_text_tokens(text).await,
        }
    }

    /// Tokens of context worth using: on llama.cpp, the context it holds; on mistral.rs, the
    /// model's length, capped for GGUF files at [`MISTRALRS_GGUF_CONTEXT_CAP`] (its GGUF loader
    /// lacks Llama 3.1's long-context RoPE scaling, so quality falls apart past it).
    pub fn usable_context(&self) -> usize {
        match &self.backend {
            Backend::LlamaCpp(_) | Backend::Remote(_) => self.info.context_length,
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
            Backend::Remote(_) => Err(EngineError::WrongEngine {
                path: self.info.path.clone(),
                engine: EngineKind::Remote,
                reason: "perplexity needs the model's logits, which a server does not send; load the model here".into(),
            }),
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
                Backend::Remote(m) => m.stream_reply(messages, sampling, &backend_stop, &inner_tx).await,
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
