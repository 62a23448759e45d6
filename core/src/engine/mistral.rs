//! The mistral.rs backend: GGUF files (read by candle) and Hugging Face safetensors folders,
//! with in-situ quantization (ISQ, FP8), the UQFF cache, GPU/CPU layer splits and NCCL tensor
//! parallelism.
//!
//! `Engine` in the parent module dispatches here; nothing else names mistralrs. Models are
//! built inside their own task, since mistral.rs panics on some bad inputs and a task turns a
//! panic into an error. A reply is a stream from `Model::stream_chat_request`; dropping the
//! stream ends the sequence at the next token.

use std::path::{Path, PathBuf};
use std::time::Instant;

use either::Either;
use mistralrs::core::{
    DeviceLayerMapMetadata, DeviceMapMetadata, GGUFLoaderBuilder, GGUFSpecificConfig, MistralRsBuilder,
};
use mistralrs::{
    AutoDeviceMapParams, DefaultSchedulerMethod, Device, DeviceMapSetting, Model, ModelDType, RequestBuilder, Response,
    SamplingParams, SchedulerConfig, TextMessageRole, TextMessages, TokenSource,
};
use tokio::sync::mpsc;

use super::gguf_check::{self, GgufSummary};
use super::progress::{Layout, Watcher};
use super::repack::{self, Repacked};
use super::Role;
use super::{
    finish_stats, panic_message, EngineError, FinishReason, GenerationEvent, GenerationStats, Isq, LoadOptions,
    LoadProgress, LoadStage, ModelInfo, Perplexity, PromptMessage, QuantizationCache, Sampling, PROGRESS_EVERY,
};
use tokio_util::sync::CancellationToken;

/// Context that mistral.rs's GGUF Llama loader handles well: it applies none of Llama 3.1's
/// long-context RoPE scaling (`rope_freqs`), so quality falls apart past this.
pub const GGUF_CONTEXT_CAP: usize = 8192;

/// A model loaded by mistral.rs.
pub(super) struct MistralRs {
    model: Model,
    /// Loaded from a GGUF file (whose context is capped, see [`GGUF_CONTEXT_CAP`]).
    gguf: bool,
}

/// Watches `layout` while mistral.rs reads it; `None` when nobody listens.
fn watch(options: &LoadOptions, layout: Layout) -> Option<Watcher> {
    let sender = options.progress.clone()?;
    Some(Watcher::start(layout, options.isq.is_some(), sender, PROGRESS_EVERY))
}

/// The device map: the plan's split when there is one, else mistral.rs's own.
///
/// A build with `nccl` makes mistral.rs run every load tensor-parallel over all GPUs and
/// ignore any device map, unless `MISTRALRS_NO_NCCL=1` (read at each load). A plan that
/// splits layers between GPUs and the CPU needs that off, so it is set for such a load and
/// cleared again for the next load that wants tensor parallelism — unless the user set it.
fn device_map(options: &LoadOptions) -> DeviceMapSetting {
    let split = options.gpu_layers.iter().any(|n| *n > 0);
    if cfg!(feature = "nccl") {
        nccl_off_for_split(split);
    }
    if !split {
        return DeviceMapSetting::Auto(AutoDeviceMapParams::default_text());
    }
    let layers = options
        .gpu_layers
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(ordinal, n)| DeviceLayerMapMetadata { ordinal, layers: *n as usize })
        .collect();
    DeviceMapSetting::Map(DeviceMapMetadata::from_num_device_layers(layers))
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

fn isq_type(isq: Isq) -> mistralrs::IsqType {
    match isq {
        Isq::Q4k => mistralrs::IsqType::Q4K,
        Isq::Q5k => mistralrs::IsqType::Q5K,
        Isq::Q6k => mistralrs::IsqType::Q6K,
        Isq::Q8_0 => mistralrs::IsqType::Q8_0,
        Isq::Fp8 => mistralrs::IsqType::F8E4M3,
    }
}

impl MistralRs {
    /// Loads a checked GGUF file (`path` is absolute and exists; `summary` is its header).
    pub(super) async fn load_gguf(
        path: PathBuf,
        summary: GgufSummary,
        options: &LoadOptions,
    ) -> Result<(Self, ModelInfo), EngineError> {
        if let Some((tensor, ty)) = &summary.beyond_candle {
            return Err(EngineError::WrongEngine {
                path,
                engine: super::EngineKind::MistralRs,
                reason: format!(
                    "tensor {tensor} uses GGML type {ty} (an IQ, ternary or MXFP4 quantization), which mistral.rs \
                     cannot run; run it on llama.cpp (--engine llamacpp) or choose a Q4_K_M, Q5_K_M, Q6_K or Q8_0 file"
                ),
            });
        }
        let file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);

        let layers_total = Layout::gguf(&path, &summary.tensors).layers();
        let (load_path, tensors, repacked) = match Self::repack(&path, layers_total, options).await {
            Some((repacked, tensors)) => (repacked.cache.clone(), tensors, Some(repacked)),
            None => (path.clone(), summary.tensors.clone(), None),
        };
        let max_seqs = options.max_parallel_replies.max(1);
        // mistral.rs panics on some bad inputs; a task turns a panic into a JoinError.
        let prefix_cache = if options.evaluation { None } else { Some(16) };
        let layout = Layout::gguf(&load_path, &tensors);
        let layers = layout.layers();
        let watcher = watch(options, layout);
        let device_map = device_map(options);
        let model = tokio::spawn(async move { build_model(&load_path, max_seqs, prefix_cache, device_map).await })
            .await
            .map_err(|e| EngineError::Load { path: path.clone(), reason: panic_message(e) })?
            .map_err(|reason| EngineError::Load { path: path.clone(), reason })?;
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
            trained_context: context_length,
            file_bytes,
            engine: super::EngineKind::MistralRs,
            quantization_cache: None,
            repacked,
        };
        Ok((Self { model, gguf: true }, info))
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

    /// Loads a Hugging Face safetensors folder (config.json, tokenizer.json, weights), offline,
    /// quantized in place when `options.isq` is set. Missing or malformed files are named
    /// before mistral.rs sees the folder. `dir` is absolute and exists.
    pub(super) async fn load_folder(dir: PathBuf, options: &LoadOptions) -> Result<(Self, ModelInfo), EngineError> {
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
                .with_device_mapping(device_map(options))
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
                    .with_isq(isq_type(isq))
                    .write_uqff(c.dir.join(format!("{}.uqff", isq.wire_name()))),
                Some(QuantizationCache::Written),
            ),
            (Some(isq), _) => (
                configure(mistralrs::TextModelBuilder::new(&source)).with_isq(isq_type(isq)),
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
        let watcher = watch(options, layout);
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
            trained_context: summary.context_length,
            file_bytes: summary.weight_bytes,
            engine: super::EngineKind::MistralRs,
            quantization_cache: cache_use,
            repacked: None,
        };
        Ok((Self { model, gguf: false }, info))
    }

    /// Tokens that `messages` take once rendered through the model's chat template, including
    /// the header that opens the assistant's reply.
    pub(super) async fn count_prompt_tokens(&self, messages: &[PromptMessage]) -> Result<usize, EngineError> {
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
    pub(super) async fn count_text_tokens(&self, text: &str) -> Result<usize, EngineError> {
        let tokens = self
            .model
            .tokenize(Either::Right(text.to_owned()), None, false, false, None)
            .await
            .map_err(|e| EngineError::Generation(e.to_string()))?;
        Ok(tokens.len())
    }

    /// Tokens of context worth using out of the model's `context_length`: capped for GGUF files
    /// at [`GGUF_CONTEXT_CAP`].
    pub(super) fn usable_context(&self, context_length: usize) -> usize {
        if self.gguf {
            context_length.min(GGUF_CONTEXT_CAP)
        } else {
            context_length
        }
    }

    /// Perplexity of `text` under the model: the text is cut into windows of `window` tokens,
    /// each run in one forward pass, and every token after a window's first is scored.
    /// Load the engine with [`LoadOptions::evaluation`].
    pub(super) async fn perplexity(
        &self,
        text: &str,
        window: usize,
        context_length: usize,
    ) -> Result<Perplexity, EngineError> {
        let failed = |e: String| EngineError::Generation(e);
        let tokens = self
            .model
            .tokenize(Either::Right(text.to_owned()), None, false, false, None)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let window = window.clamp(2, context_length.max(2));
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

    /// Streams a reply to `messages` into `tx` (text pieces), returning how it ended.
    pub(super) async fn stream_reply(
        &self,
        messages: Vec<PromptMessage>,
        sampling: Sampling,
        cancel: &CancellationToken,
        tx: &mpsc::Sender<Result<GenerationEvent, EngineError>>,
    ) -> Result<(FinishReason, GenerationStats), EngineError> {
        stream_reply(&self.model, messages, sampling, cancel, tx).await
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
        super::safetensors::read(shard).map_err(|problem| format!("{name} {problem}"))?;
        let size = std::fs::metadata(shard).map_err(|e| format!("{name} cannot be read ({e})"))?.len();
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

async fn build_model(
    path: &Path,
    max_seqs: usize,
    prefix_cache: Option<usize>,
    device_map: DeviceMapSetting,
) -> Result<Model, String> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .ok_or_else(|| "the model path has no file name".to_owned())?;
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
    let device = mistralrs::best_device(false).map_err(|e| format!("{e:#}"))?;
    // On the CPU, F32 activations are both faster than F16 (no native F16 arithmetic) and match
    // llama.cpp's greedy output token for token; GPUs take their best type.
    let dtype = if matches!(device, Device::Cpu) { ModelDType::F32 } else { ModelDType::Auto };
    let load_device = device.clone();
    let pipeline = tokio::task::spawn_blocking(move || {
        loader.load_model_from_hf(None, TokenSource::None, &dtype, &load_device, true, device_map, None, None)
    })
    .await
    .map_err(panic_message)?
    .map_err(|e| format!("{e:#}"))?;
    let seqs = max_seqs.try_into().map_err(|_| "no replies in parallel".to_owned())?;
    let scheduler = SchedulerConfig::DefaultScheduler { method: DefaultSchedulerMethod::Fixed(seqs) };
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
    let repetition_penalty = (sampling.repetition_penalty > 0.0
        && (sampling.repetition_penalty - 1.0).abs() > f32::EPSILON)
        .then_some(sampling.repetition_penalty);
    let params = if sampling.greedy {
        SamplingParams { max_len: Some(sampling.max_tokens), repetition_penalty, ..SamplingParams::deterministic() }
    } else {
        SamplingParams {
            temperature: Some(sampling.temperature),
            top_p: Some(sampling.top_p),
            max_len: Some(sampling.max_tokens),
            repetition_penalty,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_split_turns_nccl_off_for_its_load_only() {
        // This test owns the variable in this binary: nothing else here reads or sets it.
        assert!(std::env::var_os(NO_NCCL).is_none());
        let split = LoadOptions { gpu_layers: vec![20, 0], ..LoadOptions::default() };
        assert!(matches!(device_map(&split), DeviceMapSetting::Map(_)));
        nccl_off_for_split(true);
        assert_eq!(std::env::var(NO_NCCL).as_deref(), Ok("1"), "mistral.rs must honour the split");
        nccl_off_for_split(false);
        assert!(std::env::var_os(NO_NCCL).is_none(), "the next whole-GPU load is tensor parallel again");
        assert!(matches!(device_map(&LoadOptions::default()), DeviceMapSetting::Auto(_)));
    }
}
