//! What a load asks for ([`LoadOptions`]: the engine, context, threads, KV cache, ISQ, the
//! plan's GPU split) and what it reports ([`ModelInfo`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::{LoadProgress, LoadStage, Repacked};

/// The library that runs a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum EngineKind {
    /// llama.cpp: GGUF files.
    #[serde(rename = "llamacpp")]
    LlamaCpp,
    /// mistral.rs: safetensors folders (ISQ, FP8, UQFF, NCCL) and GGUF files.
    #[serde(rename = "mistralrs")]
    MistralRs,
    /// Another program serving the model over OpenAI's HTTP API (`Engine::connect`); never
    /// planned or chosen for a file.
    #[serde(rename = "remote")]
    Remote,
}

impl EngineKind {
    /// The two that run models here, in the order the CLI lists them.
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
            Self::Remote => "remote",
        }
    }

    /// `llama.cpp` or `mistral.rs`: as people write it.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::LlamaCpp => "llama.cpp",
            Self::MistralRs => "mistral.rs",
            Self::Remote => "a remote server",
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
    /// Load for [`Engine::perplexity`](super::Engine::perplexity) only: no prefix cache (a cache hit would skip the very
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
pub(super) const PROGRESS_EVERY: Duration = Duration::from_millis(50);

impl LoadOptions {
    pub(super) fn report(&self, progress: LoadProgress) {
        if let Some(sender) = &self.progress {
            sender.send_replace(progress);
        }
    }

    pub(super) fn report_done(&self, layers: u32) {
        let quantizing = self.isq.is_some();
        self.report(LoadProgress { stage: LoadStage::Done, layers_done: layers, layers_total: layers, quantizing });
    }

    /// CPU threads to use: the option, else one per physical core (hyper-threads share a
    /// core's vector units, so more threads than cores make matrix work slower).
    pub(super) fn cpu_threads(&self) -> usize {
        self.threads.filter(|n| *n > 0).unwrap_or_else(|| {
            sysinfo::System::physical_core_count()
                .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
                .unwrap_or(4)
        })
    }
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
