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

mod devices;
mod folder;
mod stream;

use devices::{device_map, isq_type};
use folder::{build_model, check_folder, uqff_cache, UQFF_COMPLETE};
use stream::{role, stream_reply};

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
