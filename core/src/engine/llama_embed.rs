//! GGUF sentence-embedding models (BERT, nomic-bert, jina-bert, … — whatever llama.cpp runs
//! with a pooling layer) on llama.cpp, for [`super::embed::Embedder`]: several texts per call,
//! each its own sequence, pooled by llama.cpp as the file says.
//!
//! llama.cpp's context is not shareable between threads, so one worker thread owns it and
//! takes batches of texts in turn; the model (tokenizing needs no context) is shared.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::embed::EmbedError;
use crate::catalog::Pooling;

/// Tokens read in one llama.cpp call: several texts, each whole (a non-causal model needs a
/// sequence in one micro-batch).
const BATCH_TOKENS: usize = 4096;
/// Texts read in one llama.cpp call, at most.
const BATCH_TEXTS: usize = 64;

/// A GGUF embedding model loaded by llama.cpp.
pub(super) struct LlamaEmbedder {
    model: Arc<LlamaModel>,
    jobs: Option<std_mpsc::Sender<Job>>,
    worker: Option<std::thread::JoinHandle<()>>,
    /// Longest input in tokens (a longer text is cut, its end marker kept).
    max_tokens: usize,
    dims: usize,
    pooling: Pooling,
}

struct Job {
    texts: Vec<Vec<LlamaToken>>,
    reply: std_mpsc::Sender<Result<Vec<Vec<f32>>, String>>,
}

impl Drop for LlamaEmbedder {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl LlamaEmbedder {
    /// Loads `file` on llama.cpp. `max_tokens`: the input limit (`None`: 256, as
    /// sentence-transformers, within what the model was trained on). A GGUF without a pooling
    /// layer (a chat model) is refused: its vectors would not be sentence embeddings.
    pub(super) fn load(file: &Path, max_tokens: Option<usize>) -> Result<Self, EmbedError> {
        let damaged = |reason: String| EmbedError::Damaged { dir: parent(file), file: "the GGUF file", reason };
        let backend = super::llama::backend().map_err(EmbedError::Run)?;
        // On the CPU: a small model, and the GPU (where there is one) is the chat model's.
        let params = LlamaModelParams::default().with_n_gpu_layers(0);
        let model = LlamaModel::load_from_file(backend, file, &params)
            .map_err(|e| damaged(format!("llama.cpp could not read it ({e})")))?;
        let arch = model.meta_val_str("general.architecture").unwrap_or_default();
        let pooling = match model.meta_val_str(&format!("{arch}.pooling_type")).ok().as_deref() {
            Some("1") => Pooling::Mean,
            Some("2") => Pooling::Cls,
            _ => {
                return Err(EmbedError::NotEmbedding {
                    file: file.to_path_buf(),
                    reason: format!("its {arch} model has no mean or first-token pooling"),
                })
            }
        };
        let trained = usize::try_from(model.n_ctx_train()).unwrap_or(512).max(8);
        let max_tokens = max_tokens.unwrap_or(super::embed::DEFAULT_MAX_TOKENS).clamp(8, trained.min(BATCH_TOKENS));
        let dims = usize::try_from(model.n_embd_out()).unwrap_or(0);
        if dims == 0 {
            return Err(damaged("it says its vectors have no length".into()));
        }
        let model = Arc::new(model);
        let (jobs, incoming) = std_mpsc::channel::<Job>();
        let (ready_tx, ready) = std_mpsc::channel::<Result<(), String>>();
        let shared = Arc::clone(&model);
        let worker = std::thread::Builder::new()
            .name("llama.cpp embeddings".into())
            .spawn(move || worker(&shared, backend, ready_tx, incoming))
            .map_err(|e| EmbedError::Run(format!("could not start llama.cpp's embedding thread: {e}")))?;
        let started = ready.recv().unwrap_or_else(|_| Err("llama.cpp's embedding thread stopped".into()));
        let embedder = Self { model, jobs: Some(jobs), worker: Some(worker), max_tokens, dims, pooling };
        started.map_err(EmbedError::Run)?;
        Ok(embedder)
    }

    /// Length of each vector.
    pub(super) fn dims(&self) -> usize {
        self.dims
    }

    /// How the file pools its tokens into one vector.
    pub(super) fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// One vector per text, in order, as llama.cpp pools them (not normalized).
    pub(super) fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let vocab = self.model.vocab();
        let tokens = texts
            .iter()
            .map(|text| {
                let mut tokens = vocab.tokenize(text.as_bytes(), true, false);
                if tokens.len() > self.max_tokens {
                    // Cut as the tokenizers library cuts: the end marker stays.
                    let last = tokens[tokens.len() - 1];
                    tokens.truncate(self.max_tokens);
                    if vocab.should_add_sep() || vocab.should_add_eos() {
                        tokens[self.max_tokens - 1] = last;
                    }
                }
                tokens
            })
            .collect();
        let (reply, answer) = std_mpsc::channel();
        let stopped = || EmbedError::Run("llama.cpp's embedding thread stopped".into());
        self.jobs.as_ref().ok_or_else(stopped)?.send(Job { texts: tokens, reply }).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?.map_err(EmbedError::Run)
    }
}

fn parent(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn worker(
    model: &LlamaModel,
    backend: &'static llama_cpp_2::llama_backend::LlamaBackend,
    ready: std_mpsc::Sender<Result<(), String>>,
    jobs: std_mpsc::Receiver<Job>,
) {
    let threads = std::thread::available_parallelism().map_or(4, |n| n.get());
    let threads = i32::try_from(threads).unwrap_or(4);
    let size = NonZeroU32::new(BATCH_TOKENS as u32);
    let params = LlamaContextParams::default()
        .with_n_ctx(size)
        .with_n_batch(BATCH_TOKENS as u32)
        .with_n_ubatch(BATCH_TOKENS as u32)
        .with_n_seq_max(BATCH_TEXTS as u32)
        .with_embeddings(true)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut context = match model.new_context(backend, params) {
        Ok(context) => context,
        Err(e) => {
            let _ = ready.send(Err(format!("llama.cpp could not set up its embedding context ({e})")));
            return;
        }
    };
    if ready.send(Ok(())).is_err() {
        return;
    }
    let mut batch = LlamaBatch::new(BATCH_TOKENS, BATCH_TEXTS as i32);
    while let Ok(Job { texts, reply }) = jobs.recv() {
        let mut out = Vec::with_capacity(texts.len());
        let mut result = Ok(());
        let mut start = 0;
        while start < texts.len() {
            // As many whole texts as fit in one call.
            let (mut end, mut tokens) = (start, 0);
            while end < texts.len() && end - start < BATCH_TEXTS && tokens + texts[end].len() <= BATCH_TOKENS {
                tokens += texts[end].len();
                end += 1;
            }
            batch.clear();
            let added = texts[start..end].iter().enumerate().try_for_each(|(seq, tokens)| {
                tokens
                    .iter()
                    .enumerate()
                    .try_for_each(|(pos, &token)| batch.add(token, pos as i32, &[seq as i32], true))
            });
            result = added
                .map_err(|e| format!("llama.cpp's batch: {e}"))
                .and_then(|()| {
                    context.decode(&mut batch).map_err(|e| format!("llama.cpp could not read the texts: {e}"))
                })
                .and_then(|()| {
                    (0..end - start).try_for_each(|seq| {
                        let vector = context
                            .embeddings_seq_ith(seq as i32)
                            .map_err(|_| "llama.cpp gave no vector for a text".to_owned())?;
                        out.push(vector.to_vec());
                        Ok(())
                    })
                });
            // A model with a cache (a causal one) would otherwise see the last texts again.
            context.clear_kv_cache();
            if result.is_err() {
                break;
            }
            start = end;
        }
        let _ = reply.send(result.map(|()| out));
    }
}
