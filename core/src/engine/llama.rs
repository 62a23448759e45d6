//! The llama.cpp backend (the `llama-cpp-2` crate): GGUF files at llama.cpp's own speed.
//!
//! llama.cpp's CPU kernels are built once per instruction set (AVX2, AVX-512, VNNI, AMX …) as
//! shared libraries; at start the best one for this CPU is loaded (from beside the program, or
//! from where the build put them), so one build is fast on the CPU it meets.
//!
//! A loaded model has one worker thread that owns its llama.cpp context (the KV cache) and
//! serves requests in turn. The worker remembers which tokens the cache holds, so a request
//! that starts like the previous one (the next turn of a conversation, a follow-up on the same
//! document or code excerpts) only computes the tokens after the shared prefix. Prompts are
//! rendered with the model's own Jinja template (see `template.rs`) and tokenized by llama.cpp.
//!
//! Stop: the reply's channel reports `Cancelled` at once (the parent module's stream does not
//! wait for the worker), and the worker stops at its next token or prompt batch.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::gguf_check::GgufSummary;
use super::progress::Layout;
use super::template::ChatTemplate;
use super::{
    finish_stats, EngineError, EngineKind, FinishReason, GenerationEvent, GenerationStats, KvPrecision, LoadOptions,
    LoadProgress, LoadStage, ModelInfo, Perplexity, PromptMessage, Sampling,
};
use crate::config;

/// Tokens decoded in one llama.cpp call while reading a prompt (llama.cpp's own default
/// micro-batch): large enough for full-speed matrix kernels, and a Stop is seen between two.
const BATCH: usize = 512;
/// The context held when the caller names none, at most: long enough for long documents,
/// small enough that its KV cache does not crowd out the weights on a laptop.
const DEFAULT_CONTEXT: usize = 32_768;
/// Share of the memory available at load time that a default context's KV cache may take.
const KV_SHARE_OF_FREE: u64 = 4;
/// The smallest context worth loading.
const MIN_CONTEXT: usize = 512;
/// Where the seeds of replies that name none start.
const SEED: u32 = 0x5EED;

/// A model loaded by llama.cpp.
pub(super) struct LlamaCpp {
    shared: Arc<Shared>,
    /// `None` only while dropping: closing it ends the worker.
    jobs: Option<std_mpsc::Sender<Job>>,
    /// The worker thread, joined on drop.
    worker: Option<std::thread::JoinHandle<()>>,
    /// Replies started, for the seed of one that names none: each reply draws differently
    /// (Regenerate gives another answer), yet a session's replies are the same from one run
    /// to the next, as on mistral.rs, whose sampler is seeded once per model.
    replies: std::sync::atomic::AtomicU32,
}

/// What the worker and the callers both read: the model (llama.cpp's model is safe to share;
/// tokenizing needs no context) and its template.
struct Shared {
    model: LlamaModel,
    template: ChatTemplate,
}

enum Job {
    Generate { messages: Vec<PromptMessage>, sampling: Sampling, cancel: CancellationToken, steps: mpsc::Sender<Step> },
    Perplexity { text: String, window: usize, reply: oneshot::Sender<Result<Perplexity, EngineError>> },
}

/// What the worker reports of a reply.
enum Step {
    /// The prompt is read: its tokens, and how many of them came from the cache.
    Started { prompt_tokens: usize, reused: usize },
    /// One token, and the text it completes (empty inside a multi-byte character).
    Token(String),
    /// The reply ended.
    End(FinishReason),
    /// The reply failed.
    Failed(EngineError),
}

/// The llama.cpp backend, initialised once per process with the CPU kernels that fit.
pub(super) fn backend() -> Result<&'static LlamaBackend, String> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            load_kernels();
            if llama_cpp_2::list_llama_ggml_backend_devices().is_empty() {
                let looked: Vec<String> = config::library_dirs().iter().map(|d| d.display().to_string()).collect();
                return Err(format!(
                    "llama.cpp found none of its CPU libraries (libggml-cpu-*) in {} or where they were built; \
                     reinstall Altiplano",
                    looked.join(" or "),
                ));
            }
            LlamaBackend::init().map_err(|e| format!("llama.cpp could not start: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Loads llama.cpp's kernel libraries from the first of [`config::library_dirs`] that has
/// them (a build's folder, an installed app's library folder), else those the build made.
/// llama.cpp scores each CPU variant against this CPU and keeps the best.
fn load_kernels() {
    let found = config::library_dirs().into_iter().find(|dir| {
        std::fs::read_dir(dir)
            .is_ok_and(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().contains("ggml-cpu-")))
    });
    match found.as_deref().filter(|d| d.to_str().is_some()) {
        Some(dir) if cpu_has_amx() && std::env::var(AMX_ENV).ok().as_deref() != Some("1") => match without_amx(dir) {
            Ok(filtered) => {
                tracing::info!(
                    "llama.cpp's AMX kernels left out ({AMX_ENV}=1 uses them where the machine keeps AMX state)"
                );
                llama_cpp_2::llama_backend::load_backends_from_path(&filtered);
                // Loaded libraries stay mapped; the links are not needed any more.
                let _ = std::fs::remove_dir_all(&filtered);
            }
            Err(e) => {
                tracing::warn!("could not leave llama.cpp's AMX kernels out ({e}); loading them all");
                llama_cpp_2::llama_backend::load_backends_from_path(dir);
            }
        },
        Some(dir) => llama_cpp_2::llama_backend::load_backends_from_path(dir),
        None => llama_cpp_2::llama_backend::load_backends(),
    }
}

/// Set to `1` to let llama.cpp use its AMX kernels where the CPU has AMX (see [`without_amx`]).
const AMX_ENV: &str = "ALTIPLANO_AMX";

/// A folder of links to `dir`'s kernel libraries but the AMX one (`sapphirerapids`, the only
/// variant built with AMX tiles), for llama.cpp to choose from. Its AMX kernels keep weights in
/// tile registers, and some virtual machines do not keep AMX state (a Firecracker guest with AMX
/// in its CPU flags: SIGILL at the first `tilezero`, the whole process gone); the next best
/// variant (AVX-512 with VNNI and BF16) runs everything else as fast.
fn without_amx(dir: &Path) -> std::io::Result<PathBuf> {
    #[cfg(unix)]
    {
        let filtered = std::env::temp_dir().join(format!("altiplano-kernels-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&filtered);
        std::fs::create_dir_all(&filtered)?;
        for entry in std::fs::read_dir(dir)?.flatten() {
            let name = entry.file_name();
            let text = name.to_string_lossy();
            if text.starts_with("libggml-") && !text.contains("sapphirerapids") && entry.path().is_file() {
                std::os::unix::fs::symlink(entry.path(), filtered.join(&name))?;
            }
        }
        Ok(filtered)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Err(std::io::Error::other("links to the kernel libraries are made on Unix only"))
    }
}

/// The worker owns the context and frees it when its job channel closes; dropping the model
/// waits for that (at most the token or prompt batch it is computing), so llama.cpp's memory is
/// freed before the caller goes on — and never while the process exits, which crashed
/// (SIGSEGV) a CLI that printed its answer and returned while the worker was still freeing.
impl Drop for LlamaCpp {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(worker) = self.worker.take() {
            if worker.join().is_err() {
                tracing::warn!("the llama.cpp worker panicked while stopping");
            }
        }
    }
}

impl LlamaCpp {
    /// Loads a checked GGUF file (`path` is absolute and exists; `summary` is its header).
    pub(super) async fn load(
        path: PathBuf,
        summary: GgufSummary,
        options: &LoadOptions,
    ) -> Result<(Self, ModelInfo), EngineError> {
        let file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let layers = Layout::gguf(&path, &summary.tensors).layers();
        let config = WorkerConfig {
            path: path.clone(),
            layers,
            progress: options.progress.clone(),
            context_tokens: options.context_tokens,
            threads: options.cpu_threads(),
            kv_precision: options.kv_precision,
            gpu_layers: options.gpu_layers.iter().sum(),
        };
        let (ready_tx, ready_rx) = oneshot::channel();
        let (jobs, job_rx) = std_mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("llama.cpp".into())
            .spawn(move || worker(config, ready_tx, job_rx))
            .map_err(|e| EngineError::Load { path: path.clone(), reason: format!("no thread for the model: {e}") })?;
        let (shared, context_length) = ready_rx
            .await
            .map_err(|_| EngineError::Load { path: path.clone(), reason: "the llama.cpp loader crashed".into() })??;
        options.report_done(layers);

        let name = path
            .file_stem()
            .map(|f| f.to_string_lossy().into_owned())
            .or(summary.name)
            .unwrap_or_else(|| "model".into());
        let trained_context = usize::try_from(shared.model.n_ctx_train()).unwrap_or(context_length);
        let info = ModelInfo {
            path,
            name,
            architecture: summary.architecture.unwrap_or_else(|| "unknown".into()),
            context_length,
            trained_context,
            file_bytes,
            engine: EngineKind::LlamaCpp,
            quantization_cache: None,
            repacked: None,
        };
        let replies = std::sync::atomic::AtomicU32::new(0);
        Ok((Self { shared, jobs: Some(jobs), worker: Some(worker), replies }, info))
    }

    pub(super) async fn count_prompt_tokens(&self, messages: &[PromptMessage]) -> Result<usize, EngineError> {
        let text = self.shared.template.render(messages).map_err(EngineError::Generation)?;
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || shared.prompt_tokens(&text).len())
            .await
            .map_err(|_| EngineError::EngineStopped)
    }

    pub(super) async fn count_text_tokens(&self, text: &str) -> Result<usize, EngineError> {
        let shared = Arc::clone(&self.shared);
        let text = text.to_owned();
        tokio::task::spawn_blocking(move || shared.text_tokens(&text).len())
            .await
            .map_err(|_| EngineError::EngineStopped)
    }

    fn send(&self, job: Job) -> Result<(), EngineError> {
        self.jobs.as_ref().ok_or(EngineError::EngineStopped)?.send(job).map_err(|_| EngineError::EngineStopped)
    }

    pub(super) async fn perplexity(&self, text: &str, window: usize) -> Result<Perplexity, EngineError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Perplexity { text: text.to_owned(), window, reply })?;
        answer.await.map_err(|_| EngineError::EngineStopped)?
    }

    /// Streams a reply into `tx`; returns at once when `cancel` fires, whatever the worker is
    /// doing.
    pub(super) async fn stream_reply(
        &self,
        messages: Vec<PromptMessage>,
        sampling: Sampling,
        cancel: &CancellationToken,
        tx: &mpsc::Sender<Result<GenerationEvent, EngineError>>,
    ) -> Result<(FinishReason, GenerationStats), EngineError> {
        let started = Instant::now();
        let (steps_tx, mut steps) = mpsc::channel(256);
        let n = self.replies.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sampling = Sampling { seed: Some(sampling.seed.unwrap_or(SEED.wrapping_add(n))), ..sampling };
        // The worker stops when the caller cancels, and also when this reply is dropped unread
        // (its listener gone): no prompt runs on for nobody, and dropping the model never
        // waits for one.
        let job = cancel.child_token();
        let _stop_when_dropped = job.clone().drop_guard();
        self.send(Job::Generate { messages, sampling, cancel: job, steps: steps_tx })?;
        let mut stats = GenerationStats::default();
        let mut first_token_at = None;
        let mut last_token_at = started;
        loop {
            let step = tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    finish_stats(&mut stats, first_token_at, last_token_at);
                    return Ok((FinishReason::Cancelled, stats));
                }
                step = steps.recv() => step,
            };
            match step.ok_or(EngineError::EngineStopped)? {
                Step::Started { prompt_tokens, reused } => {
                    stats.prompt_tokens = prompt_tokens;
                    stats.reused_prompt_tokens = reused;
                }
                Step::Token(text) => {
                    let now = Instant::now();
                    stats.completion_tokens += 1;
                    last_token_at = now;
                    if !text.is_empty() {
                        if first_token_at.is_none() {
                            first_token_at = Some(now);
                            stats.time_to_first_token = Some(now - started);
                        }
                        if tx.send(Ok(GenerationEvent::Text(text))).await.is_err() {
                            return Ok((FinishReason::Cancelled, stats));
                        }
                    }
                }
                Step::End(reason) => {
                    finish_stats(&mut stats, first_token_at, last_token_at);
                    return Ok((reason, stats));
                }
                Step::Failed(e) => return Err(e),
            }
        }
    }
}

impl Shared {
    /// A rendered prompt's tokens: special tokens in the text are read as such, and the
    /// beginning-of-text token is added when the model wants one and the template did not
    /// write it.
    fn prompt_tokens(&self, text: &str) -> Vec<LlamaToken> {
        let vocab = self.model.vocab();
        let mut tokens = vocab.tokenize(text.as_bytes(), false, true);
        if vocab.should_add_bos() && tokens.first() != Some(&vocab.bos()) {
            tokens.insert(0, vocab.bos());
        }
        tokens
    }

    /// Text's tokens, special tokens in it read as such, none added.
    fn text_with_specials(&self, text: &str) -> Vec<LlamaToken> {
        self.model.vocab().tokenize(text.as_bytes(), false, true)
    }

    /// Plain text's tokens: no special tokens, none added.
    fn text_tokens(&self, text: &str) -> Vec<LlamaToken> {
        self.model.vocab().tokenize(text.as_bytes(), false, false)
    }

    fn piece(&self, token: LlamaToken) -> Vec<u8> {
        self.model.vocab().token_to_piece(token, false, None)
    }
}

struct WorkerConfig {
    path: PathBuf,
    layers: u32,
    progress: Option<tokio::sync::watch::Sender<LoadProgress>>,
    context_tokens: Option<usize>,
    threads: usize,
    kv_precision: KvPrecision,
    gpu_layers: u32,
}

type Ready = Result<(Arc<Shared>, usize), EngineError>;

/// The model's thread: loads it, reports, then serves jobs until every handle is dropped.
fn worker(mut config: WorkerConfig, ready: oneshot::Sender<Ready>, jobs: std_mpsc::Receiver<Job>) {
    let path = config.path.clone();
    let failed = |reason: String| EngineError::Load { path: path.clone(), reason };
    let loaded = backend()
        .and_then(|backend| load_model(backend, &mut config).map(|(shared, params)| (backend, shared, params)));
    let (backend, shared, params) = match loaded {
        Ok(loaded) => loaded,
        Err(reason) => {
            let _ = ready.send(Err(failed(reason)));
            return;
        }
    };
    // The context borrows the model, which `shared` keeps for as long as this thread runs.
    let mut context = match shared.model.new_context(backend, params) {
        Ok(context) => context,
        Err(e) => {
            let reason =
                format!("llama.cpp could not set up its context ({e}); choose a shorter context or free memory");
            let _ = ready.send(Err(failed(reason)));
            return;
        }
    };
    let context_length = context.n_ctx() as usize;
    if ready.send(Ok((Arc::clone(&shared), context_length))).is_err() {
        return;
    }
    let mut cache = KvCache::default();
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Generate { messages, sampling, cancel, steps } => {
                let end = generate(&shared, &mut context, &mut cache, &messages, &sampling, &cancel, &steps);
                let _ = steps.blocking_send(match end {
                    Ok(reason) => Step::End(reason),
                    Err(e) => Step::Failed(e),
                });
            }
            Job::Perplexity { text, window, reply } => {
                let result = perplexity(&shared, &mut context, &mut cache, &text, window);
                let _ = reply.send(result);
            }
        }
    }
}

/// Whether the CPU says it has AMX tiles (CPUID leaf 7, EDX bit 24).
fn cpu_has_amx() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // Leaf 7 is asked only where leaf 0 says it exists.
        std::arch::x86_64::__cpuid(0).eax >= 7 && std::arch::x86_64::__cpuid_count(7, 0).edx & (1 << 24) != 0
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Loads the model and chooses its context's parameters.
/// The progress sender is taken from `config` and dropped once the model is read, so whoever
/// follows the load sees the channel close.
fn load_model(backend: &LlamaBackend, config: &mut WorkerConfig) -> Result<(Arc<Shared>, LlamaContextParams), String> {
    let mut params = LlamaModelParams::default();
    // llama.cpp counts the output layer as one more: all of them on the GPUs is one past the
    // model's layers, and llama.cpp shares them out over the GPUs by free memory (the plan's
    // split does the same, see `planner::llama_cpp_layer_split`).
    if config.gpu_layers > 0 {
        let all = config.gpu_layers >= config.layers;
        params = params.with_n_gpu_layers(if all { config.layers + 1 } else { config.gpu_layers });
    }
    let on_gpu = params.n_gpu_layers() != 0
        && llama_cpp_2::list_llama_ggml_backend_devices().iter().any(|d| {
            matches!(
                d.device_type,
                llama_cpp_2::LlamaBackendDeviceType::Gpu | llama_cpp_2::LlamaBackendDeviceType::IntegratedGpu
            )
        });
    if let Some(progress) = config.progress.take() {
        let total = config.layers;
        progress.send_replace(LoadProgress {
            stage: LoadStage::Layers,
            layers_done: 0,
            layers_total: total,
            quantizing: false,
        });
        params = params.with_progress_callback(move |share| {
            let layers_done = ((share.clamp(0.0, 1.0) * total as f32) as u32).min(total);
            let stage = if layers_done >= total { LoadStage::Finishing } else { LoadStage::Layers };
            progress.send_replace(LoadProgress { stage, layers_done, layers_total: total, quantizing: false });
            true
        });
    }
    let model = LlamaModel::load_from_file(backend, &config.path, &params)
        .map_err(|e| format!("llama.cpp could not read it ({e}); the log says why"))?;
    drop(params);
    let vocab = model.vocab();
    let text_of = |token: LlamaToken| String::from_utf8_lossy(&vocab.token_to_piece(token, true, None)).into_owned();
    let (bos, eos) = (text_of(vocab.bos()), text_of(vocab.eos()));
    let source = model
        .chat_template(None)
        .ok()
        .and_then(|t| t.to_string().ok())
        .ok_or_else(|| "it carries no chat template (tokenizer.chat_template), so it cannot chat".to_owned())?;
    let template = ChatTemplate::new(source, bos, eos)?;

    let trained = usize::try_from(model.n_ctx_train()).unwrap_or(DEFAULT_CONTEXT).max(MIN_CONTEXT);
    let context = match config.context_tokens {
        Some(asked) => asked.clamp(MIN_CONTEXT, trained),
        None => default_context(&model, trained, config.kv_precision),
    };
    let context = NonZeroU32::new(u32::try_from(context).unwrap_or(u32::MAX));
    let threads = i32::try_from(config.threads.max(1)).unwrap_or(4);
    let params = LlamaContextParams::default()
        .with_n_ctx(context)
        .with_n_batch(BATCH as u32)
        .with_n_ubatch(BATCH as u32)
        .with_n_seq_max(1)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let params = match config.kv_precision {
        // On the CPU, llama.cpp's flash attention is as fast on a long prompt but slower for
        // each token after one (`bench/engines.py`, 2,000-token prompt: 21.9 against 26.5 tok/s
        // decode, a follow-up's 18 new tokens in 494 against 272 ms): off there, as
        // llama-cpp-python has it; llama.cpp decides where a GPU takes layers.
        KvPrecision::F16 if !on_gpu => {
            params.with_flash_attention_policy(llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED)
        }
        KvPrecision::F16 => params,
        // A quantized V cache needs flash attention.
        KvPrecision::Q8 => params
            .with_type_k(KvCacheType::Q8_0)
            .with_type_v(KvCacheType::Q8_0)
            .with_flash_attention_policy(llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED),
    };
    Ok((Arc::new(Shared { model, template }), params))
}

/// The model's trained context, up to [`DEFAULT_CONTEXT`] and as far as a quarter of the memory
/// available now holds its KV cache (keys and values for every layer, at `kv_precision`).
fn default_context(model: &LlamaModel, trained: usize, kv_precision: KvPrecision) -> usize {
    let head_dim = (model.n_embd() as u64) / u64::from(model.n_head().max(1));
    let per_token = kv_precision.bytes(2 * 2 * u64::from(model.n_layer()) * u64::from(model.n_head_kv()) * head_dim);
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    let budget = system.available_memory() / KV_SHARE_OF_FREE;
    let fits = usize::try_from(budget / per_token.max(1)).unwrap_or(usize::MAX);
    // A multiple of 256, as llama.cpp pads its cache so anyway.
    (trained.min(DEFAULT_CONTEXT).min(fits) / 256 * 256).max(MIN_CONTEXT)
}

/// The tokens whose keys and values the context holds, in order from position 0, and the text
/// they stand for where that is known.
///
/// A reply's tokens are what the model chose, and the next prompt holds the reply as text:
/// tokenized again, that text does not always give the same tokens (a word the model spelt in
/// two pieces is one token when read), and a prefix match on tokens alone would stop at the
/// first such word and compute the rest of the conversation again. So the cache also keeps the
/// text, with marks where its tokens and its text line up; a prompt whose text starts with the
/// text up to a mark takes the cached tokens for that part and tokenizes only what follows.
#[derive(Default)]
struct KvCache {
    tokens: Vec<LlamaToken>,
    /// The text of `tokens[..t]` for each mark `(t, b)`: `text[..b]`.
    text: Vec<u8>,
    /// `(tokens, bytes)` pairs, both increasing: `tokens[..t]` is exactly how `text[..b]` was
    /// read (or written, for a reply's tokens).
    marks: Vec<(usize, usize)>,
}

impl KvCache {
    /// The tokens of the rendered prompt `text`: the cached tokens of the longest marked text
    /// it starts with, then the rest tokenized, when that keeps more of the cache than
    /// tokenizing the whole text does.
    fn prompt_tokens(&self, shared: &Shared, text: &str) -> Vec<LlamaToken> {
        let bytes = text.as_bytes();
        let same = common_prefix(&self.text, bytes);
        let marked = self.marks.iter().rev().find(|&&(_, b)| b <= same).filter(|&&(t, _)| t > 0);
        let Some(&(t, b)) = marked else { return shared.prompt_tokens(text) };
        // The whole text tokenized is what a fresh prompt gets: taken when it keeps as much.
        if t < self.tokens.len() {
            let fresh = shared.prompt_tokens(text);
            if common_prefix(&self.tokens, &fresh) >= t {
                return fresh;
            }
        }
        // The rest starts where a token ended, so it is read as text of its own.
        match std::str::from_utf8(&bytes[b..]) {
            Ok(rest) => self.tokens[..t].iter().copied().chain(shared.text_with_specials(rest)).collect(),
            Err(_) => shared.prompt_tokens(text),
        }
    }

    /// Keeps the longest prefix of the cache that `prompt` starts with (always leaving at least
    /// the prompt's last token to compute, whose logits give the first reply token); returns
    /// how many tokens were kept.
    fn keep_prefix(&mut self, context: &mut LlamaContext<'_>, prompt: &[LlamaToken]) -> usize {
        let common = common_prefix(&self.tokens, prompt).min(prompt.len().saturating_sub(1));
        let kept = u32::try_from(common).ok().and_then(|p0| context.clear_kv_cache_seq(Some(0), Some(p0), None).ok());
        if kept != Some(true) {
            self.clear(context);
            return 0;
        }
        self.truncate(common);
        common
    }

    /// Forgets every token from `len` on, and the marks past it.
    fn truncate(&mut self, len: usize) {
        self.tokens.truncate(len);
        self.marks.retain(|&(t, _)| t <= len);
        self.text.truncate(self.marks.last().map_or(0, |&(_, b)| b));
    }

    /// Records that the cache's tokens are now exactly the prompt `text` read: the marks of the
    /// text both share stay.
    fn prompt_read(&mut self, text: &str) {
        let same = common_prefix(&self.text, text.as_bytes());
        self.marks.retain(|&(_, b)| b <= same);
        self.text.clear();
        self.text.extend_from_slice(text.as_bytes());
        self.marks.push((self.tokens.len(), self.text.len()));
    }

    /// Records a reply token decoded into the cache, written as `piece`.
    fn push_written(&mut self, token: LlamaToken, piece: &[u8]) {
        let line_up = self.marks.last().is_some_and(|&(t, b)| t == self.tokens.len() && b == self.text.len());
        self.tokens.push(token);
        if line_up {
            self.text.extend_from_slice(piece);
            self.marks.push((self.tokens.len(), self.text.len()));
        }
    }

    fn clear(&mut self, context: &mut LlamaContext<'_>) {
        context.clear_kv_cache();
        self.tokens.clear();
        self.text.clear();
        self.marks.clear();
    }
}

fn common_prefix<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Decodes `tokens` after the cache's tokens, in batches; logits are kept for the last one
/// (`all_logits`: for every one of a batch). `after_batch` sees each batch's tokens once
/// decoded. Stops between batches when `cancel` fires (returns `false`).
fn decode(
    context: &mut LlamaContext<'_>,
    cache: &mut KvCache,
    tokens: &[LlamaToken],
    all_logits: bool,
    cancel: Option<&CancellationToken>,
    mut after_batch: impl FnMut(&LlamaContext<'_>, &[LlamaToken]),
) -> Result<bool, EngineError> {
    let mut batch = LlamaBatch::new(BATCH, 1);
    let last = tokens.len().saturating_sub(1);
    for (n, chunk) in tokens.chunks(BATCH).enumerate() {
        if cancel.is_some_and(CancellationToken::is_cancelled) {
            return Ok(false);
        }
        batch.clear();
        for (i, token) in chunk.iter().enumerate() {
            let pos = i32::try_from(cache.tokens.len() + i).map_err(|_| EngineError::Generation("position".into()))?;
            let logits = all_logits || n * BATCH + i == last;
            batch.add(*token, pos, &[0], logits).map_err(|e| EngineError::Generation(e.to_string()))?;
        }
        if let Err(e) = context.decode(&mut batch) {
            cache.clear(context);
            return Err(EngineError::Generation(format!("llama.cpp could not compute the prompt: {e}")));
        }
        cache.tokens.extend_from_slice(chunk);
        after_batch(context, chunk);
    }
    Ok(true)
}

/// Writes one reply, step by step into `steps`; returns how it ended.
fn generate(
    shared: &Shared,
    context: &mut LlamaContext<'_>,
    cache: &mut KvCache,
    messages: &[PromptMessage],
    sampling: &Sampling,
    cancel: &CancellationToken,
    steps: &mpsc::Sender<Step>,
) -> Result<FinishReason, EngineError> {
    let text = shared.template.render(messages).map_err(EngineError::Generation)?;
    let prompt = cache.prompt_tokens(shared, &text);
    let n_ctx = context.n_ctx() as usize;
    if prompt.len() >= n_ctx {
        return Err(EngineError::PromptTooLong { tokens: prompt.len(), limit: n_ctx.saturating_sub(1) });
    }
    let reused = cache.keep_prefix(context, &prompt);
    if steps.blocking_send(Step::Started { prompt_tokens: prompt.len(), reused }).is_err() {
        return Ok(FinishReason::Cancelled);
    }
    if !decode(context, cache, &prompt[reused..], false, Some(cancel), |_, _| {})? {
        return Ok(FinishReason::Cancelled);
    }
    cache.prompt_read(&text);

    let mut sampler = sampler(&shared.model, sampling);
    let mut text = Utf8Pieces::default();
    let mut batch = LlamaBatch::new(1, 1);
    // The first token comes from the prompt's last batch, whose last position has logits.
    let mut logits_at = i32::try_from((prompt.len() - reused - 1) % BATCH).unwrap_or(0);
    let mut generated = 0;
    loop {
        if cancel.is_cancelled() {
            return Ok(FinishReason::Cancelled);
        }
        let token = sampler.sample(context, logits_at);
        if shared.model.vocab().is_eog(token) {
            let rest = text.finish();
            if !rest.is_empty() {
                let _ = steps.blocking_send(Step::Token(rest));
            }
            return Ok(FinishReason::Stop);
        }
        generated += 1;
        let bytes = shared.piece(token);
        let piece = text.push(&bytes);
        if steps.blocking_send(Step::Token(piece)).is_err() {
            return Ok(FinishReason::Cancelled);
        }
        if generated >= sampling.max_tokens || cache.tokens.len() + 1 >= n_ctx {
            return Ok(FinishReason::Length);
        }
        batch.clear();
        let pos = i32::try_from(cache.tokens.len()).map_err(|_| EngineError::Generation("position".into()))?;
        batch.add(token, pos, &[0], true).map_err(|e| EngineError::Generation(e.to_string()))?;
        if let Err(e) = context.decode(&mut batch) {
            cache.clear(context);
            return Err(EngineError::Generation(format!("llama.cpp failed at token {generated}: {e}")));
        }
        cache.push_written(token, &bytes);
        logits_at = 0;
    }
}

/// llama.cpp's sampler chain for `sampling`: penalties first, then greedy, or top-k, top-p,
/// temperature and a seeded draw.
fn sampler(model: &LlamaModel, sampling: &Sampling) -> LlamaSampler {
    let mut chain = Vec::new();
    if sampling.repetition_penalty > 0.0 && (sampling.repetition_penalty - 1.0).abs() > f32::EPSILON {
        chain.push(LlamaSampler::penalties(model.n_vocab(), 64, sampling.repetition_penalty, 0.0, 0.0));
    }
    if sampling.dry_multiplier > 0.0 {
        // llama.cpp's defaults (base 1.75, sequences of 2 allowed) and sequence breakers, and
        // brackets: a repeat across a line, a `path:line`, a `[p. N]` or a quotation does not count.
        chain.push(LlamaSampler::dry(model, sampling.dry_multiplier, 1.75, 2, 1024, ["\n", ":", "\"", "*", "[", "]"]));
    }
    if sampling.greedy {
        chain.push(LlamaSampler::greedy());
    } else {
        chain.push(LlamaSampler::top_k(40));
        chain.push(LlamaSampler::top_p(sampling.top_p as f32, 1));
        chain.push(LlamaSampler::temp(sampling.temperature as f32));
        chain.push(LlamaSampler::dist(sampling.seed.unwrap_or(u32::MAX)));
    }
    LlamaSampler::chain_simple(chain)
}

/// Perplexity of `text`: each window of tokens decoded from an empty cache, every token after
/// the window's first scored from the logits before it.
fn perplexity(
    shared: &Shared,
    context: &mut LlamaContext<'_>,
    cache: &mut KvCache,
    text: &str,
    window: usize,
) -> Result<Perplexity, EngineError> {
    let tokens = shared.text_tokens(text);
    let window = window.clamp(2, (context.n_ctx() as usize).max(2));
    let mut nll = 0f64;
    let mut scored = 0usize;
    let mut bad_token = false;
    for chunk in tokens.chunks(window).filter(|c| c.len() >= 2) {
        cache.clear(context);
        let mut offset = 0;
        decode(context, cache, chunk, true, None, |context, batch| {
            for i in 0..batch.len() {
                let Some(&next) = chunk.get(offset + i + 1) else { break };
                let row = context.get_logits_ith(i32::try_from(i).unwrap_or(0));
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let log_sum = max as f64 + row.iter().map(|&l| ((l - max) as f64).exp()).sum::<f64>().ln();
                match usize::try_from(next.0).ok().and_then(|n| row.get(n)) {
                    Some(&target) => {
                        nll += log_sum - target as f64;
                        scored += 1;
                    }
                    None => bad_token = true,
                }
            }
            offset += batch.len();
        })?;
    }
    cache.clear(context);
    if bad_token {
        return Err(EngineError::Generation("a token outside the vocabulary".into()));
    }
    if scored == 0 {
        return Err(EngineError::Generation("the text is too short to measure (it needs at least two tokens)".into()));
    }
    Ok(Perplexity { perplexity: (nll / scored as f64).exp(), tokens: tokens.len() })
}

/// Turns token bytes into text, holding back a character split between tokens.
#[derive(Default)]
struct Utf8Pieces {
    pending: Vec<u8>,
}

impl Utf8Pieces {
    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        match std::str::from_utf8(&self.pending) {
            Ok(text) => {
                let text = text.to_owned();
                self.pending.clear();
                text
            }
            Err(e) if e.error_len().is_none() => {
                // The end is the start of a character whose other bytes come next.
                let valid = e.valid_up_to();
                let text = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
                self.pending.drain(..valid);
                text
            }
            Err(_) => {
                let text = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                text
            }
        }
    }

    fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_between_tokens_comes_out_whole() {
        let mut pieces = Utf8Pieces::default();
        let bytes = "é!".as_bytes();
        assert_eq!(pieces.push(&bytes[..1]), "");
        assert_eq!(pieces.push(&bytes[1..]), "é!");
        assert_eq!(pieces.push(b"\xff"), "\u{fffd}");
        assert_eq!(pieces.push("ok".as_bytes()), "ok");
        assert_eq!(pieces.push(&"日".as_bytes()[..2]), "");
        assert_eq!(pieces.finish(), "\u{fffd}");
    }
}
