//! Sentence embeddings for retrieval, run in-process on the engine that fits the model:
//! - a BERT-family sentence-transformers folder (`config.json`, `tokenizer.json`,
//!   `model.safetensors`) on candle — the version mistral.rs already builds on;
//! - a GGUF embedding model (a folder holding one `.gguf` file, or the file itself) on
//!   llama.cpp, several times faster on a CPU (`BENCHMARKS.md`).
//!
//! Either way the vectors are mean-pooled over the tokens (or taken from the first token) and
//! L2-normalized, so the dot product of two vectors is their cosine similarity, with the
//! prefixes the model's training used before questions and passages: a [`Recipe`], from the
//! catalog's entry or the folder's own sentence-transformers files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Texts run through the model together.
const BATCH: usize = 16;
/// Longest input in tokens when the model says nothing (sentence-transformers' default).
pub(super) const DEFAULT_MAX_TOKENS: usize = 256;

/// Errors from loading or running an embedding model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// A file the model needs is missing.
    #[error("the embedding model in {} has no {file}; fetch it again (models/fetch-starter.sh for the starter one)", dir.display())]
    Missing {
        /// The model folder.
        dir: PathBuf,
        /// The missing file.
        file: &'static str,
    },
    /// A file is there but unusable.
    #[error("the embedding model in {} is damaged ({file}: {reason}); fetch it again", dir.display())]
    Damaged {
        /// The model folder.
        dir: PathBuf,
        /// The damaged file.
        file: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A GGUF file that is not a sentence-embedding model (a chat model, say).
    #[error("{} is not a sentence-embedding model ({reason}); choose one from Search models (`altiplano models search`)", file.display())]
    NotEmbedding {
        /// The file.
        file: PathBuf,
        /// Why not.
        reason: String,
    },
    /// Running the model failed.
    #[error("the embedding model failed: {0}")]
    Run(String),
}

/// How to run a model folder: its name, pooling and prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The name vectors are stored under (with the weights' size).
    pub name: String,
    /// Mean or first-token pooling.
    pub pooling: crate::catalog::Pooling,
    /// Put before a question.
    pub query_prefix: String,
    /// Put before each passage.
    pub passage_prefix: String,
    /// Longest input in tokens; `None`: as the folder says (else 256).
    pub max_tokens: Option<usize>,
}

impl Recipe {
    /// The recipe of a catalog entry.
    pub fn of(model: &crate::catalog::EmbeddingModel) -> Self {
        Self {
            name: model.name.clone(),
            pooling: model.pooling,
            query_prefix: model.query_prefix.clone(),
            passage_prefix: model.passage_prefix.clone(),
            max_tokens: Some(model.max_tokens as usize),
        }
    }

    /// What a folder says of itself: named after the folder, pooled as its
    /// `1_Pooling/config.json` says (mean when it says nothing), with the `query` and
    /// `passage` (or `document`) prompts of its `config_sentence_transformers.json`.
    pub fn from_folder(dir: &Path) -> Self {
        let json = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        };
        let cls = json("1_Pooling/config.json")
            .and_then(|v| v.get("pooling_mode_cls_token").and_then(serde_json::Value::as_bool))
            .unwrap_or(false);
        let prompts = json("config_sentence_transformers.json").and_then(|v| v.get("prompts").cloned());
        let prompt = |keys: &[&str]| {
            keys.iter().find_map(|k| prompts.as_ref()?.get(k)?.as_str().map(str::to_owned)).unwrap_or_default()
        };
        Self {
            name: dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "embedding".into()),
            pooling: if cls { crate::catalog::Pooling::Cls } else { crate::catalog::Pooling::Mean },
            query_prefix: prompt(&["query"]),
            passage_prefix: prompt(&["passage", "document"]),
            max_tokens: None,
        }
    }
}

/// A loaded embedding model. Cheap to share behind an `Arc`; `embed` takes `&self`.
pub struct Embedder {
    backend: Backend,
    id: String,
    dims: usize,
    recipe: Recipe,
}

/// The engine that runs the model.
enum Backend {
    Candle { model: Box<BertModel>, tokenizer: Box<Tokenizer>, device: Device },
    Llama(super::llama_embed::LlamaEmbedder),
}

/// The GGUF file a model path names: the path itself, or the one `.gguf` file of a folder that
/// has no safetensors weights.
fn gguf_file(path: &Path) -> Option<PathBuf> {
    let is_gguf = |p: &Path| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    if path.is_file() {
        return is_gguf(path).then(|| path.to_path_buf());
    }
    if path.join("model.safetensors").is_file() {
        return None;
    }
    let mut found = std::fs::read_dir(path).ok()?.flatten().map(|e| e.path()).filter(|p| is_gguf(p) && p.is_file());
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("id", &self.id).field("dims", &self.dims).finish()
    }
}

impl Embedder {
    /// Loads the model in `dir` on the CPU as the folder describes itself
    /// ([`Recipe::from_folder`]). The weights' header is checked first.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        Self::load_with(dir, Recipe::from_folder(dir))
    }

    /// Loads the model in `dir` (a sentence-transformers folder, a folder with one GGUF file,
    /// or a GGUF file) on the CPU, run as `recipe` says.
    pub fn load_with(dir: &Path, recipe: Recipe) -> Result<Self, EmbedError> {
        if let Some(file) = gguf_file(dir) {
            return Self::load_gguf(&file, recipe);
        }
        let file = |name: &'static str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(EmbedError::Missing { dir: dir.to_path_buf(), file: name })
            }
        };
        let damaged = |file: &'static str| {
            move |e: &dyn std::fmt::Display| EmbedError::Damaged { dir: dir.to_path_buf(), file, reason: e.to_string() }
        };
        let config_path = file("config.json")?;
        let tokenizer_path = file("tokenizer.json")?;
        let weights_path = file("model.safetensors")?;

        let config_text = std::fs::read_to_string(&config_path).map_err(|e| damaged("config.json")(&e))?;
        let config: Config = serde_json::from_str(&config_text).map_err(|e| damaged("config.json")(&e))?;
        if config.hidden_size == 0 || config.num_hidden_layers == 0 || config.hidden_size > 8192 {
            return Err(damaged("config.json")(&format_args!("hidden size {}", config.hidden_size)));
        }
        let spans = crate::engine::safetensors::read(&weights_path).map_err(|e| damaged("model.safetensors")(&e))?;
        if spans.is_empty() {
            return Err(damaged("model.safetensors")(&"no tensors"));
        }
        let max_tokens = match recipe.max_tokens {
            Some(n) => n.clamp(8, config.max_position_embeddings.max(8)),
            None => max_tokens(dir, &config),
        };
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| damaged("tokenizer.json")(&e))?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_tokens, ..Default::default() }))
            .map_err(|e| damaged("tokenizer.json")(&e))?;
        tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..Default::default() }));

        let device = Device::Cpu;
        // Read whole (a small model: tens of megabytes) rather than mapped: no unsafe code.
        let bytes = std::fs::read(&weights_path).map_err(|e| damaged("model.safetensors")(&e))?;
        let weights_len = bytes.len();
        let tensors = prepared_weights(&bytes, &device).map_err(|e| damaged("model.safetensors")(&e))?;
        drop(bytes);
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = BertModel::load(vb, &config).map_err(|e| damaged("model.safetensors")(&e))?;
        let id = vector_id(&recipe, weights_len as u64);
        let backend = Backend::Candle { model: Box::new(model), tokenizer: Box::new(tokenizer), device };
        Ok(Self { backend, id, dims: config.hidden_size, recipe })
    }

    /// Loads a GGUF embedding model on llama.cpp. The file's own pooling is the one used; the
    /// recipe's name, prefixes and input limit apply as for any model.
    fn load_gguf(file: &Path, mut recipe: Recipe) -> Result<Self, EmbedError> {
        let len = std::fs::metadata(file)
            .map_err(|e| EmbedError::Damaged {
                dir: file.parent().map(Path::to_path_buf).unwrap_or_default(),
                file: "the GGUF file",
                reason: e.to_string(),
            })?
            .len();
        let model = super::llama_embed::LlamaEmbedder::load(file, recipe.max_tokens)?;
        recipe.pooling = model.pooling();
        // A file named directly is named without its extension.
        if file.file_name().and_then(|n| n.to_str()) == Some(recipe.name.as_str()) {
            if let Some(stem) = file.file_stem().and_then(|s| s.to_str()) {
                recipe.name = stem.to_owned();
            }
        }
        let id = vector_id(&recipe, len);
        Ok(Self { dims: model.dims(), backend: Backend::Llama(model), id, recipe })
    }

    /// Names this model and its weights: vectors made by another id are not comparable.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The model's name for people.
    pub fn name(&self) -> &str {
        &self.recipe.name
    }

    /// Length of each vector.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The engine that runs it: `"llama.cpp"` or `"candle"`.
    pub fn engine(&self) -> &'static str {
        match self.backend {
            Backend::Candle { .. } => "candle",
            Backend::Llama(_) => "llama.cpp",
        }
    }

    /// One normalized vector per passage (a page, a chunk), in order, with the model's passage
    /// prefix. Long texts are cut at the model's limit.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if self.recipe.passage_prefix.is_empty() {
            return self.embed_raw(texts);
        }
        let prefixed: Vec<String> = texts.iter().map(|t| format!("{}{t}", self.recipe.passage_prefix)).collect();
        self.embed_raw(&prefixed.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The vector of a question, with the model's query prefix.
    pub fn embed_query(&self, question: &str) -> Result<Vec<f32>, EmbedError> {
        let text = format!("{}{question}", self.recipe.query_prefix);
        Ok(self.embed_raw(&[text.as_str()])?.pop().unwrap_or_default())
    }

    fn embed_raw(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        // Similar lengths together waste less on padding.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        for batch in order.chunks(BATCH) {
            let inputs: Vec<&str> = batch.iter().map(|&i| texts[i]).collect();
            for (&i, vector) in batch.iter().zip(self.embed_batch(&inputs)?) {
                out[i] = vector;
            }
        }
        Ok(out)
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let (model, tokenizer, device) = match &self.backend {
            Backend::Candle { model, tokenizer, device } => (model, tokenizer, device),
            Backend::Llama(model) => {
                let mut vectors = model.embed(texts)?;
                vectors.iter_mut().for_each(|v| normalize(v));
                return Ok(vectors);
            }
        };
        let run = |e: &dyn std::fmt::Display| EmbedError::Run(e.to_string());
        let encodings = tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| run(&e))?;
        let len = encodings.first().map_or(0, |e| e.get_ids().len());
        if len == 0 {
            return Ok(vec![vec![0.0; self.dims]; texts.len()]);
        }
        let flat = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            encodings.iter().flat_map(|e| f(e).iter().copied()).collect()
        };
        let shape = (texts.len(), len);
        let ids = Tensor::from_vec(flat(&|e| e.get_ids()), shape, device).map_err(|e| run(&e))?;
        let types = Tensor::from_vec(flat(&|e| e.get_type_ids()), shape, device).map_err(|e| run(&e))?;
        let mask = Tensor::from_vec(flat(&|e| e.get_attention_mask()), shape, device).map_err(|e| run(&e))?;
        let pooled = (|| -> candle_core::Result<Vec<Vec<f32>>> {
            let hidden = model.forward(&ids, &types, Some(&mask))?;
            let pooled = match self.recipe.pooling {
                crate::catalog::Pooling::Cls => hidden.i((.., 0))?.contiguous()?,
                crate::catalog::Pooling::Mean => {
                    // Mean over the real tokens only.
                    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
                    let counts = mask.sum(1)?.clamp(1.0, f64::MAX)?;
                    summed.broadcast_div(&counts)?
                }
            };
            let norm = pooled.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
            pooled.broadcast_div(&norm)?.to_vec2::<f32>()
        })()
        .map_err(|e| run(&e))?;
        Ok(pooled)
    }
}

/// The name vectors are stored under: the recipe's name and the weights' size, then any
/// pooling or prefix that makes other vectors from the same weights. Vectors are compared only
/// with vectors of the same id.
fn vector_id(recipe: &Recipe, weights_len: u64) -> String {
    let mut id = format!("{}@{weights_len}", recipe.name);
    if recipe.pooling == crate::catalog::Pooling::Cls {
        id.push_str("+cls");
    }
    if !recipe.query_prefix.is_empty() || !recipe.passage_prefix.is_empty() {
        id.push_str(&format!("+{:?}{:?}", recipe.query_prefix, recipe.passage_prefix));
    }
    id
}

/// Scales `v` to length 1 (a zero vector stays zero).
fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 1e-12 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// The model's tensors in f32, each linear layer's weight matrix kept transposed in memory
/// (the same values and shape, seen through swapped strides). candle multiplies by a weight's
/// transpose; stored this way that transpose is already in the layout gemm's kernel reads, so
/// a short text (a question: a few dozen tokens) is not held up by copying all the weights
/// into that layout on every call (for the starter model on this machine, a two-word query
/// went from 20 to 10 ms, a 30-token question from 44 to 37 ms; the vectors are unchanged).
fn prepared_weights(bytes: &[u8], device: &Device) -> candle_core::Result<HashMap<String, Tensor>> {
    let mut tensors = candle_core::safetensors::load_buffer(bytes, device)?;
    for (name, tensor) in tensors.iter_mut() {
        let mut t = tensor.to_dtype(DType::F32)?;
        // Embedding tables are looked up by row, not multiplied: they stay as they are.
        if t.rank() == 2 && name.ends_with(".weight") && !name.contains("embeddings") {
            t = t.t()?.contiguous()?.t()?;
        }
        *tensor = t;
    }
    Ok(tensors)
}

/// The model's input limit: sentence-transformers' `max_seq_length` when it says, else 256,
/// never past the position table.
fn max_tokens(dir: &Path, config: &Config) -> usize {
    let said = std::fs::read_to_string(dir.join("sentence_bert_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("max_seq_length").and_then(serde_json::Value::as_u64))
        .map(|n| n as usize);
    said.unwrap_or(DEFAULT_MAX_TOKENS).clamp(8, config.max_position_embeddings.max(8))
}

/// A vector as stored: little-endian f32s.
pub fn vector_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A stored vector back (a trailing partial value is dropped).
pub fn vector_from_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// The dot product of two vectors of the same length (their cosine, both being normalized).
pub fn similarity(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
