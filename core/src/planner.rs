//! What fits where: ranks every catalog variant for a machine and recommends one.
//!
//! For each model and variant the planner finds the best placement the hardware allows — one
//! GPU, tensor parallelism over a power-of-two number of GPUs (and over nodes for a cluster),
//! layers split between GPUs and the CPU, or the CPU alone — and checks it against every
//! device's budget: weights, KV cache at the requested context, runtime overhead, and headroom
//! left free. Nothing is ever placed over budget. Each candidate carries the largest context
//! that fits, an estimated decode speed (memory bandwidth ÷ bytes read per token, with the
//! bandwidth it assumed) and a plain-language explanation.
//!
//! The recommendation is the largest model whose best placement fits and decodes at a usable
//! speed; among its variants, the highest precision (`prefer = quality`) or the fastest
//! (`prefer = speed`).

use serde::Serialize;

use crate::catalog::{Catalog, Format, Model, Quant, Variant};
use crate::engine::{EngineKind, KvPrecision};
use crate::hardware::{Gpu, GpuVendor, HardwareProfile};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// mistral.rs's GGUF path has no llama3 RoPE scaling, so long contexts degrade past this
/// (llama.cpp, which runs GGUF files by default, has it and no cap).
pub const GGUF_CONTEXT_CAP: u32 = crate::engine::MISTRALRS_GGUF_CONTEXT_CAP as u32;

/// The engine a variant runs on: llama.cpp for GGUF files (fastest on CPUs, full context), except
/// across several nodes, which only mistral.rs's multi-node tensor parallelism spans; mistral.rs
/// for safetensors (ISQ, FP8, NCCL).
pub fn engine_for(variant: &Variant, nodes: u32) -> EngineKind {
    match variant.format {
        Format::Gguf if nodes <= 1 => EngineKind::LlamaCpp,
        _ => EngineKind::MistralRs,
    }
}
/// Below this estimated decode speed (slower than reading) a placement is listed but not
/// recommended.
pub const USABLE_TOKENS_PER_SECOND: f64 = 4.0;

/// What to optimise for among variants of the recommended model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Preference {
    /// Highest precision that fits.
    #[default]
    Quality,
    /// Fastest decode.
    Speed,
}

/// Planning options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions {
    /// Context the user wants, in tokens.
    pub context_tokens: u32,
    /// Quality or speed.
    pub prefer: Preference,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self { context_tokens: 8192, prefer: Preference::Quality }
    }
}

/// The longest context planned and loaded by default: long documents and code excerpts fit,
/// and Llama 3.1 8B is still effective there (RULER: to about 32k). Longer is the user's choice.
pub const LONG_CONTEXT: u32 = 32_768;

/// The context to plan for when the user names none: as much as the variant recommended at the
/// default context (8,192 tokens) still holds, up to [`LONG_CONTEXT`], as a power of two (the
/// steps the Models page offers); on a machine where nothing fits at 8,192 tokens, the largest
/// shorter step at which something does (at least 2,048), else 8,192 (and the plan says why
/// nothing fits).
pub fn default_context(profile: &HardwareProfile, catalog: &Catalog, prefer: Preference, measured: &[Measured]) -> u32 {
    let base = PlanOptions::default().context_tokens;
    let recommended =
        |context_tokens| plan_measured(profile, catalog, PlanOptions { context_tokens, prefer }, measured).recommended;
    match recommended(base) {
        Some(best) => power_of_two_at_most(best.max_context_tokens.clamp(base, LONG_CONTEXT)),
        None => [base / 2, base / 4].into_iter().find(|&c| recommended(c).is_some()).unwrap_or(base),
    }
}

fn power_of_two_at_most(n: u32) -> u32 {
    1 << (31 - n.max(1).leading_zeros())
}

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// NVIDIA GPUs.
    Cuda,
    /// Apple Silicon GPU.
    Metal,
    /// CPU only.
    Cpu,
}

/// How well it fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    /// Entirely on GPUs.
    Gpu,
    /// Layers split between GPUs and the CPU.
    Partial,
    /// On the CPU.
    Cpu,
    /// Does not fit this machine.
    TooLarge,
}

/// How the model is laid out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Placement {
    /// One GPU.
    SingleGpu,
    /// Tensor parallelism over GPUs (NCCL), possibly over several nodes.
    TensorParallel {
        /// GPUs per node.
        gpus_per_node: u32,
        /// Nodes.
        nodes: u32,
    },
    /// Layers split between GPUs and the CPU.
    LayerSplit {
        /// Layers on GPUs.
        gpu_layers: u32,
        /// Layers on the CPU.
        cpu_layers: u32,
    },
    /// The CPU alone.
    Cpu,
    /// Nothing fits.
    None,
}

/// Memory on one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceUse {
    /// `cpu`, `cuda:0`, `metal`.
    pub device: String,
    /// What may be used: free memory less headroom.
    pub budget_bytes: u64,
    /// Weights placed here.
    pub weights_bytes: u64,
    /// KV cache at the planned context.
    pub kv_cache_bytes: u64,
    /// Runtime overhead (CUDA context, activations, buffers).
    pub overhead_bytes: u64,
    /// Left free on purpose: budget's margin below free memory.
    pub headroom_bytes: u64,
}

impl DeviceUse {
    fn used(&self) -> u64 {
        self.weights_bytes + self.kv_cache_bytes + self.overhead_bytes
    }
}

/// One way to run one variant on this machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// Catalog model id.
    pub model: String,
    /// Precision.
    pub quant: Quant,
    /// Backend.
    pub backend: Backend,
    /// The engine that runs it.
    pub engine: EngineKind,
    /// How its KV cache is stored: 8-bit only where 16-bit does not fit (llama.cpp).
    pub kv_precision: KvPrecision,
    /// Layout.
    pub placement: Placement,
    /// Fit status.
    pub fit: Fit,
    /// Context planned for (the request, capped by the model and format).
    pub context_tokens: u32,
    /// Largest context that fits this placement.
    pub max_context_tokens: u32,
    /// Whether the planned context is the one asked for (GGUF on mistral.rs is capped); a candidate
    /// that falls short is listed but not recommended.
    pub meets_requested_context: bool,
    /// Estimated decode speed.
    pub tokens_per_second_estimate: f64,
    /// Memory bandwidth the estimate assumed, bytes/s (per device).
    pub bandwidth_bytes_per_second: f64,
    /// Weights size (exact where the catalog knows it).
    pub weights_bytes: u64,
    /// Memory per device.
    pub devices: Vec<DeviceUse>,
    /// Environment each node needs for multi-node tensor parallelism, `NAME=value`.
    pub node_settings: Vec<String>,
    /// For a cluster: the command lines that serve this variant with another server (vLLM,
    /// SGLang) across the nodes, each `SERVER, WHERE: COMMAND`; empty elsewhere, and for GGUF
    /// files, which those servers do not run across nodes.
    pub cluster_commands: Vec<String>,
    /// Why, in words.
    pub explanation: String,
    /// Figures measured on this machine, when this variant has been loaded here; the memory
    /// and speed above already use them.
    pub measured: Option<Measured>,
}

/// What loading a catalog variant really took on this machine (see [`crate::measure`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measured {
    /// The variant id, `model:quant`.
    pub variant: String,
    /// Resident memory the CPU side took (weights on the CPU, runtime).
    pub resident_bytes: u64,
    /// Memory taken on each NVIDIA GPU, in device order.
    pub gpu_bytes: Vec<u64>,
    /// Measured decode speed.
    pub tokens_per_second: Option<f64>,
}

/// The result of planning.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The best candidate, if any fits.
    pub recommended: Option<Candidate>,
    /// All candidates, best first.
    pub candidates: Vec<Candidate>,
    /// Why nothing is recommended, and what would fit.
    pub reason_if_none: Option<String>,
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / GIB as f64)
}

/// Margin kept free on a device: 5 % of it, at least 512 MiB.
fn headroom(total: u64) -> u64 {
    (total / 20).max(512 * MIB)
}

fn cpu_budget(p: &HardwareProfile) -> (u64, u64) {
    // The OS and other programs keep running: 10 % of RAM, at least 1 GiB, stays free.
    let margin = (p.ram_bytes / 10).max(GIB);
    (p.ram_available_bytes.saturating_sub(margin), margin)
}

fn gpu_budget(g: &Gpu) -> (u64, u64) {
    let margin = headroom(g.memory_bytes);
    (g.memory_free_bytes.saturating_sub(margin), margin)
}

/// Runtime overhead on a GPU: the CUDA/Metal context and activation buffers.
fn gpu_overhead(model: &Model, weights_here: u64) -> u64 {
    GIB / 2 + weights_here / 50 + u64::from(model.hidden_size) * 4096 * 4 * 4
}

/// Runtime overhead on the CPU (fitted to the starter model's measured growth on each engine,
/// with mistral.rs's F32 embedding and both engines' KV caches counted apart; see
/// `tests/memory_estimate.rs`: 25 MB measured beside llama.cpp's weights and KV cache).
/// llama.cpp's is its compute buffers for a 512-token batch (with flash attention they do not
/// grow with the context).
fn cpu_overhead(model: &Model, weights_here: u64, engine: EngineKind) -> u64 {
    match engine {
        EngineKind::MistralRs => 224 * MIB + weights_here / 50 + u64::from(model.hidden_size) * 4096 * 4 * 4,
        // (A remote model is never planned; it is counted as llama.cpp would run it.)
        EngineKind::LlamaCpp | EngineKind::Remote => {
            24 * MIB + weights_here / 50 + u64::from(model.hidden_size) * 512 * 4 * 4
        }
    }
}

/// Memory the planner expects a variant to take on the CPU at `context` tokens on the engine
/// that runs it: weights, KV cache and runtime overhead (what the CPU budget is checked
/// against). llama.cpp allocates its KV cache for the whole context it is loaded with.
pub fn cpu_memory_estimate(model: &Model, variant: &Variant, context: u32) -> u64 {
    cpu_memory_estimate_on(model, variant, engine_for(variant, 1), context)
}

/// [`cpu_memory_estimate`] on a given engine (a user may run a GGUF file on mistral.rs).
pub fn cpu_memory_estimate_on(model: &Model, variant: &Variant, engine: EngineKind, context: u32) -> u64 {
    let weights = cpu_weights(variant, model.weights_bytes(variant), engine);
    weights
        + model.kv_bytes_per_token() * u64::from(context)
        + cpu_overhead(model, weights, engine)
        + embedding_copy(model, variant, engine)
}

/// Memory beside the weights that a variant's format costs on the device holding the model's
/// first part: a GGUF model's token embedding, which mistral.rs dequantizes to F32 at load
/// (`quantized_llama.rs`; 2.1 GB for Llama 3.1 8B, 8.4 GB for 405B). llama.cpp reads it as
/// stored; safetensors weights are used in their own dtype.
fn embedding_copy(model: &Model, variant: &Variant, engine: EngineKind) -> u64 {
    match (variant.format, engine) {
        (Format::Gguf, EngineKind::MistralRs) => model.gguf_embedding_bytes(),
        _ => 0,
    }
}

/// Peak memory bandwidth of a GPU, bytes/s, from its name.
pub fn gpu_bandwidth(g: &Gpu) -> f64 {
    let name = g.name.to_lowercase();
    let tb = |x: f64| x * 1e12;
    let gb = |x: f64| x * 1e9;
    match g.vendor {
        GpuVendor::Apple => {
            let table: &[(&str, f64)] = &[
                ("m4 max", 546.0),
                ("m4 pro", 273.0),
                ("m4", 120.0),
                ("m3 ultra", 819.0),
                ("m3 max", 400.0),
                ("m3 pro", 150.0),
                ("m3", 100.0),
                ("m2 ultra", 800.0),
                ("m2 max", 400.0),
                ("m2 pro", 200.0),
                ("m2", 100.0),
                ("m1 ultra", 800.0),
                ("m1 max", 400.0),
                ("m1 pro", 200.0),
                ("m1", 68.0),
            ];
            gb(table.iter().find(|(k, _)| name.contains(k)).map(|(_, v)| *v).unwrap_or(100.0))
        }
        GpuVendor::Nvidia => {
            let table: &[(&str, f64)] = &[
                ("h200", 4.8),
                ("h100 pcie", 2.0),
                ("h100", 3.35),
                ("a100-sxm4-80gb", 2.04),
                ("a100 80gb", 2.0),
                ("a100", 1.55),
                ("l40s", 0.864),
                ("a6000", 0.768),
                ("4090", 1.008),
                ("4080", 0.717),
                ("3090", 0.936),
                ("3080", 0.760),
                ("4070", 0.504),
                ("3060", 0.360),
                ("4060", 0.272),
            ];
            tb(table.iter().find(|(k, _)| name.contains(k)).map(|(_, v)| *v).unwrap_or(0.5))
        }
    }
}

/// Memory bandwidth assumed for the CPU: dual-channel DDR4/DDR5 for desktops and laptops, more
/// for many-core servers.
pub fn cpu_bandwidth(p: &HardwareProfile) -> f64 {
    if p.cpu.threads >= 64 {
        200e9
    } else if p.cpu.threads >= 24 {
        80e9
    } else {
        50e9
    }
}

/// Share of peak bandwidth decoding really reaches.
const EFFICIENCY: f64 = 0.6;

#[derive(Clone, Copy)]
struct Setting<'a> {
    model: &'a Model,
    variant: &'a Variant,
    engine: EngineKind,
    weights: u64,
    context: u32,
    context_cap: u32,
    kv_precision: KvPrecision,
}

impl Setting<'_> {
    fn kv_per_token(&self) -> u64 {
        self.kv_precision.bytes(self.model.kv_bytes_per_token())
    }

    fn kv(&self, context: u32) -> u64 {
        self.kv_per_token() * u64::from(context)
    }
}

/// Plans `catalog`'s Llama models for the machine `profile` describes.
pub fn plan(profile: &HardwareProfile, catalog: &Catalog, options: PlanOptions) -> Plan {
    plan_measured(profile, catalog, options, &[])
}

/// Plans as [`plan`] does, but where a variant has been measured on this machine its measured
/// memory (when above the estimate) and decode speed replace the estimates: a variant that
/// proved larger than its budget no longer fits, one that proved slower ranks by its real speed.
pub fn plan_measured(
    profile: &HardwareProfile,
    catalog: &Catalog,
    options: PlanOptions,
    measured: &[Measured],
) -> Plan {
    let mut candidates = Vec::new();
    for model in catalog.models.iter().filter(|m| !m.starter) {
        for variant in &model.variants {
            let mut c = place(profile, model, variant, options);
            let id = Catalog::variant_id(model, variant);
            if let Some(m) = measured.iter().find(|m| m.variant == id) {
                apply_measured(&mut c, m);
            }
            candidates.push(c);
        }
    }
    candidates.sort_by(|a, b| rank(a, b, catalog, options.prefer));
    let recommended = candidates.iter().find(|c| usable(c)).cloned();
    let reason_if_none = recommended.is_none().then(|| why_none(&candidates, profile, catalog, options));
    Plan { recommended, candidates, reason_if_none }
}

/// How one catalog variant (any, the starter included) would run on this machine.
pub fn place_variant(
    profile: &HardwareProfile,
    catalog: &Catalog,
    variant_id: &str,
    options: PlanOptions,
) -> Option<Candidate> {
    let (model, variant) = catalog.find_variant(variant_id)?;
    Some(place(profile, model, variant, options))
}

/// For a candidate that splits layers between GPUs and the CPU, how many layers go on each
/// GPU, in device order (empty for any other placement: the engine places it itself).
pub fn gpu_layers(c: &Candidate, catalog: &Catalog) -> Vec<u32> {
    let (Placement::LayerSplit { .. }, Some(model)) = (&c.placement, catalog.model(&c.model)) else {
        return Vec::new();
    };
    let layer_weights = c.weights_bytes.div_ceil(u64::from(model.layers.max(1))).max(1);
    c.devices
        .iter()
        .filter(|d| d.device.starts_with("cuda:"))
        .map(|d| u32::try_from(d.weights_bytes / layer_weights).unwrap_or(u32::MAX))
        .collect()
}

/// Puts measured figures in place of the estimates. Memory measured after a short reply holds
/// the weights and the runtime, not a long context's KV cache, so the measured figure raises
/// the overhead where it exceeds weights plus estimated overhead; it never lowers an estimate.
fn apply_measured(c: &mut Candidate, m: &Measured) {
    if c.fit == Fit::TooLarge {
        return;
    }
    for d in &mut c.devices {
        let taken = if d.device == "cpu" {
            Some(m.resident_bytes)
        } else {
            d.device
                .strip_prefix("cuda:")
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| m.gpu_bytes.get(i).copied())
        };
        if let Some(taken) = taken {
            d.overhead_bytes = d.overhead_bytes.max(taken.saturating_sub(d.weights_bytes));
        }
    }
    let mut said = format!(" Measured on this machine: {} resident", gib(m.resident_bytes));
    for (i, bytes) in m.gpu_bytes.iter().enumerate().filter(|(_, b)| **b > 0) {
        said.push_str(&format!(", {} on cuda:{i}", gib(*bytes)));
    }
    if let Some(t) = m.tokens_per_second {
        c.tokens_per_second_estimate = t;
        said.push_str(&format!(", {t:.1} tokens/s"));
    }
    said.push('.');
    if !fits(&c.devices) {
        c.fit = Fit::TooLarge;
        said.push_str(" That is more than this machine can give it at the planned context.");
    }
    c.explanation.push_str(&said);
    c.measured = Some(m.clone());
}

fn usable(c: &Candidate) -> bool {
    c.fit != Fit::TooLarge && c.tokens_per_second_estimate >= USABLE_TOKENS_PER_SECOND && c.meets_requested_context
}

fn parameters(catalog: &Catalog, id: &str) -> u64 {
    catalog.model(id).map(|m| m.parameters).unwrap_or(0)
}

/// Best first: usable before not; larger models first; all-GPU before split before CPU (a
/// split is much slower); then precision or speed.
fn rank(a: &Candidate, b: &Candidate, catalog: &Catalog, prefer: Preference) -> std::cmp::Ordering {
    usable(b)
        .cmp(&usable(a))
        .then((a.fit == Fit::TooLarge).cmp(&(b.fit == Fit::TooLarge)))
        .then(parameters(catalog, &b.model).cmp(&parameters(catalog, &a.model)))
        .then(a.fit.cmp(&b.fit))
        .then_with(|| match prefer {
            Preference::Quality => a.quant.cmp(&b.quant),
            Preference::Speed => b.tokens_per_second_estimate.total_cmp(&a.tokens_per_second_estimate),
        })
}

fn place(profile: &HardwareProfile, model: &Model, variant: &Variant, options: PlanOptions) -> Candidate {
    let engine = engine_for(variant, profile.nodes);
    let context_cap = if variant.format == Format::Gguf && engine == EngineKind::MistralRs {
        GGUF_CONTEXT_CAP.min(model.max_context)
    } else {
        model.max_context
    };
    let s = Setting {
        model,
        variant,
        engine,
        weights: model.weights_bytes(variant),
        context: options.context_tokens.clamp(1, context_cap),
        context_cap,
        kv_precision: KvPrecision::F16,
    };
    let mut best = best_placement(profile, &s);
    // On llama.cpp, a variant that does not fit with a 16-bit KV cache may with an 8-bit one.
    let s = match best.fit {
        Fit::TooLarge if engine == EngineKind::LlamaCpp => {
            let q8 = Setting { kv_precision: KvPrecision::Q8, ..s };
            let tried = best_placement(profile, &q8);
            if tried.fit == Fit::TooLarge {
                s
            } else {
                best = tried;
                q8
            }
        }
        _ => s,
    };
    best.meets_requested_context = s.context >= options.context_tokens.min(model.max_context);
    best.explanation = explain(&s, &best, options.context_tokens);
    best
}

/// The fastest placement of a setting that fits, else the CPU's view of what it would need.
fn best_placement(profile: &HardwareProfile, s: &Setting<'_>) -> Candidate {
    let nvidia: Vec<&Gpu> = profile.gpus.iter().filter(|g| g.vendor == GpuVendor::Nvidia).collect();
    let apple = profile.gpus.iter().find(|g| g.vendor == GpuVendor::Apple);
    let mut options_found = Vec::new();
    if !nvidia.is_empty() {
        options_found.extend(on_nvidia(profile, s, &nvidia));
    }
    if let Some(apple) = apple {
        options_found.extend(on_metal(s, apple));
    }
    options_found.extend(on_cpu(profile, s));
    options_found
        .sort_by(|a, b| a.fit.cmp(&b.fit).then(b.tokens_per_second_estimate.total_cmp(&a.tokens_per_second_estimate)));
    options_found.into_iter().next().unwrap_or_else(|| too_large(profile, s))
}

fn candidate(s: &Setting<'_>, backend: Backend, placement: Placement, fit: Fit, devices: Vec<DeviceUse>) -> Candidate {
    Candidate {
        model: s.model.id.clone(),
        quant: s.variant.quant,
        backend,
        engine: s.engine,
        kv_precision: s.kv_precision,
        placement,
        fit,
        context_tokens: s.context,
        max_context_tokens: 0,
        meets_requested_context: true,
        tokens_per_second_estimate: 0.0,
        bandwidth_bytes_per_second: 0.0,
        weights_bytes: s.weights,
        devices,
        node_settings: Vec::new(),
        cluster_commands: Vec::new(),
        explanation: String::new(),
        measured: None,
    }
}

/// Largest context such that every device stays within budget, given per-device KV shares.
fn max_context(s: &Setting<'_>, devices: &[DeviceUse], kv_share: &[f64]) -> u32 {
    let per_token = s.kv_per_token() as f64;
    let mut best = f64::from(s.context_cap);
    for (d, share) in devices.iter().zip(kv_share) {
        if *share <= 0.0 {
            continue;
        }
        let room = d.budget_bytes.saturating_sub(d.weights_bytes + d.overhead_bytes) as f64;
        best = best.min(room / (per_token * share));
    }
    (best.max(0.0) as u32).min(s.context_cap)
}

fn fits(devices: &[DeviceUse]) -> bool {
    devices.iter().all(|d| d.used() <= d.budget_bytes)
}

fn on_nvidia(profile: &HardwareProfile, s: &Setting<'_>, gpus: &[&Gpu]) -> Vec<Candidate> {
    let mut found = Vec::new();
    // FP8 needs native FP8 (Ada, Hopper: compute capability 8.9 and up) on every GPU used.
    let fp8_ok = gpus.iter().all(|g| g.compute_capability().is_some_and(|cc| cc >= (8, 9)));
    if s.variant.quant == Quant::Fp8 && !fp8_ok {
        return found;
    }
    let bandwidth = gpus.iter().map(|g| gpu_bandwidth(g)).fold(f64::INFINITY, f64::min);

    // Tensor parallelism over the largest power of two of GPUs (NCCL needs a power of two),
    // across all nodes for a cluster; a single GPU when there is one. llama.cpp has no NCCL:
    // it splits layers over several GPUs (below).
    let per_node = match gpus.len() {
        n if n >= 2 && s.engine == EngineKind::MistralRs => 1u32 << (31 - (n as u32).leading_zeros()),
        _ => 1,
    };
    let nodes = profile.nodes.max(1);
    let world = per_node * nodes;
    let mut devices = Vec::new();
    for (i, g) in gpus.iter().take(per_node as usize).enumerate() {
        let (budget, margin) = gpu_budget(g);
        let weights = s.weights.div_ceil(u64::from(world));
        devices.push(DeviceUse {
            device: format!("cuda:{i}"),
            budget_bytes: budget,
            weights_bytes: weights,
            kv_cache_bytes: s.kv(s.context).div_ceil(u64::from(world)),
            overhead_bytes: gpu_overhead(s.model, weights) + embedding_copy(s.model, s.variant, s.engine),
            headroom_bytes: margin,
        });
    }
    // (On llama.cpp, several GPUs always share the layers: it puts them on every GPU it sees.)
    if fits(&devices) && (gpus.len() == 1 || s.engine == EngineKind::MistralRs) {
        let placement = if world == 1 {
            Placement::SingleGpu
        } else {
            Placement::TensorParallel { gpus_per_node: per_node, nodes }
        };
        let mut c = candidate(s, Backend::Cuda, placement, Fit::Gpu, devices);
        let share = vec![1.0 / f64::from(world); c.devices.len()];
        c.max_context_tokens = max_context(s, &c.devices, &share);
        // Tensor parallelism reads each GPU's slice in parallel; communication costs ~15 %.
        let speedup = if world > 1 { f64::from(world) * 0.85 } else { 1.0 };
        c.tokens_per_second_estimate = EFFICIENCY * bandwidth * speedup / s.weights as f64;
        c.bandwidth_bytes_per_second = bandwidth;
        if nodes > 1 {
            c.node_settings = multinode_settings(per_node, nodes);
            c.cluster_commands = cluster_commands(s, per_node, nodes);
        }
        found.push(c);
        return found;
    }

    // Layers split: as many as fit on the GPUs, the rest on the CPU. mistral.rs fills the GPUs in
    // order (its device map takes the plan's count for each); llama.cpp takes only the total and
    // shares it out by each GPU's free memory itself, so its plan shares them out the same way.
    // FP8 is GPU-only; clusters are not split with the CPU.
    if s.variant.quant == Quant::Fp8 || nodes > 1 {
        return found;
    }
    let layers = u64::from(s.model.layers);
    let layer_weights = s.weights.div_ceil(layers);
    let layer_kv = s.kv(s.context).div_ceil(layers);
    let overheads: Vec<u64> = (0..gpus.len())
        .map(|i| {
            let first_part = if i == 0 { embedding_copy(s.model, s.variant, s.engine) } else { 0 };
            gpu_overhead(s.model, 0) + layer_weights * 2 + first_part
        })
        .collect();
    let capacity: Vec<u64> = gpus
        .iter()
        .zip(&overheads)
        .map(|(g, overhead)| gpu_budget(g).0.saturating_sub(*overhead) / (layer_weights + layer_kv))
        .collect();
    let counts = match s.engine {
        EngineKind::LlamaCpp => {
            let free: Vec<u64> = gpus.iter().map(|g| g.memory_free_bytes).collect();
            let mut total = capacity.iter().sum::<u64>().min(layers);
            loop {
                let counts = llama_cpp_layer_split(total, &free);
                if total == 0 || counts.iter().zip(&capacity).all(|(n, room)| n <= room) {
                    break counts;
                }
                total -= 1;
            }
        }
        EngineKind::MistralRs | EngineKind::Remote => {
            let mut left = layers;
            capacity
                .iter()
                .map(|room| {
                    let n = (*room).min(left);
                    left -= n;
                    n
                })
                .collect()
        }
    };
    let gpu_layers: u64 = counts.iter().sum();
    let mut devices = Vec::new();
    for (i, (g, (n, overhead))) in gpus.iter().zip(counts.iter().copied().zip(overheads)).enumerate() {
        let (budget, margin) = gpu_budget(g);
        devices.push(DeviceUse {
            device: format!("cuda:{i}"),
            budget_bytes: budget,
            weights_bytes: n * layer_weights,
            kv_cache_bytes: n * layer_kv,
            overhead_bytes: overhead,
            headroom_bytes: margin,
        });
    }
    let cpu_layers = layers - gpu_layers;
    if gpu_layers == 0 {
        return found;
    }
    if cpu_layers == 0 {
        // Every layer fits on the GPUs, spread over more of them than tensor parallelism can
        // use (it needs a power of two), or on llama.cpp: the layers run one GPU after another.
        if fits(&devices) {
            let placement = Placement::LayerSplit { gpu_layers: gpu_layers as u32, cpu_layers: 0 };
            let mut c = candidate(s, Backend::Cuda, placement, Fit::Gpu, devices);
            let share: Vec<f64> =
                c.devices.iter().map(|d| d.kv_cache_bytes as f64 / s.kv(s.context).max(1) as f64).collect();
            c.max_context_tokens = max_context(s, &c.devices, &share);
            c.tokens_per_second_estimate = EFFICIENCY * bandwidth / s.weights as f64;
            c.bandwidth_bytes_per_second = bandwidth;
            found.push(c);
        }
        return found;
    }
    let (budget, margin) = cpu_budget(profile);
    let cpu_weights = cpu_layers * layer_weights;
    devices.push(DeviceUse {
        device: "cpu".into(),
        budget_bytes: budget,
        weights_bytes: cpu_weights,
        kv_cache_bytes: cpu_layers * layer_kv,
        overhead_bytes: cpu_overhead(s.model, cpu_weights, s.engine),
        headroom_bytes: margin,
    });
    if fits(&devices) {
        let gpu_bytes = (gpu_layers * layer_weights) as f64;
        let seconds = gpu_bytes / (EFFICIENCY * bandwidth) + cpu_weights as f64 / (EFFICIENCY * cpu_bandwidth(profile));
        let placement = Placement::LayerSplit { gpu_layers: gpu_layers as u32, cpu_layers: cpu_layers as u32 };
        let mut c = candidate(s, Backend::Cuda, placement, Fit::Partial, devices);
        let share: Vec<f64> =
            c.devices.iter().map(|d| d.kv_cache_bytes as f64 / s.kv(s.context).max(1) as f64).collect();
        c.max_context_tokens = max_context(s, &c.devices, &share);
        c.tokens_per_second_estimate = 1.0 / seconds;
        c.bandwidth_bytes_per_second = cpu_bandwidth(profile);
        found.push(c);
    }
    found
}

/// How llama.cpp shares `layers` GPU layers out over GPUs with `free` bytes free each (its
/// default split, `llama-model.cpp`: layer j of n goes to the first GPU whose cumulative share
/// of the free memory exceeds j / n).
fn llama_cpp_layer_split(layers: u64, free: &[u64]) -> Vec<u64> {
    let mut counts = vec![0u64; free.len()];
    let sum = free.iter().sum::<u64>() as f64;
    if free.is_empty() || layers == 0 {
        return counts;
    }
    let mut running = 0.0;
    let bounds: Vec<f64> = free
        .iter()
        .map(|f| {
            running += if sum > 0.0 { *f as f64 / sum } else { 1.0 / free.len() as f64 };
            running
        })
        .collect();
    for j in 0..layers {
        let at = j as f64 / layers as f64;
        let gpu = bounds.iter().position(|b| *b > at).unwrap_or(free.len() - 1);
        counts[gpu] += 1;
    }
    counts
}

/// All of the model on one device (the Apple GPU or the CPU), if it fits.
fn whole_on(
    s: &Setting<'_>,
    device: &str,
    (budget, margin): (u64, u64),
    overhead: u64,
    backend: Backend,
    bandwidth: f64,
) -> Option<Candidate> {
    let devices = vec![whole_device(s, device, (budget, margin), overhead)];
    if s.variant.quant == Quant::Fp8 || !fits(&devices) {
        return None;
    }
    let (placement, fit) =
        if backend == Backend::Cpu { (Placement::Cpu, Fit::Cpu) } else { (Placement::SingleGpu, Fit::Gpu) };
    let mut c = candidate(s, backend, placement, fit, devices);
    c.max_context_tokens = max_context(s, &c.devices, &[1.0]);
    c.tokens_per_second_estimate = EFFICIENCY * bandwidth / s.weights as f64;
    c.bandwidth_bytes_per_second = bandwidth;
    Some(c)
}

fn on_metal(s: &Setting<'_>, gpu: &Gpu) -> Option<Candidate> {
    let overhead = gpu_overhead(s.model, s.weights) + embedding_copy(s.model, s.variant, s.engine);
    whole_on(s, "metal", gpu_budget(gpu), overhead, Backend::Metal, gpu_bandwidth(gpu))
}

fn on_cpu(profile: &HardwareProfile, s: &Setting<'_>) -> Option<Candidate> {
    let s = &Setting { weights: cpu_weights(s.variant, s.weights, s.engine), ..*s };
    let overhead = cpu_overhead(s.model, s.weights, s.engine) + embedding_copy(s.model, s.variant, s.engine);
    whole_on(s, "cpu", cpu_budget(profile), overhead, Backend::Cpu, cpu_bandwidth(profile))
}

/// The weights' bytes as the CPU runs them: on mistral.rs a Q4_1 GGUF file runs from a Q8_0
/// copy (34 bytes per block of 32 weights against 20; see `engine/repack.rs`), everything
/// else as stored.
fn cpu_weights(variant: &Variant, stored: u64, engine: EngineKind) -> u64 {
    match (variant.quant, variant.format, engine) {
        (Quant::Q4_1, Format::Gguf, EngineKind::MistralRs) => stored / 20 * 34,
        _ => stored,
    }
}

/// The whole model on one device: weights, KV cache at the planned context, overhead.
fn whole_device(s: &Setting<'_>, device: &str, (budget, margin): (u64, u64), overhead: u64) -> DeviceUse {
    DeviceUse {
        device: device.into(),
        budget_bytes: budget,
        weights_bytes: s.weights,
        kv_cache_bytes: s.kv(s.context),
        overhead_bytes: overhead,
        headroom_bytes: margin,
    }
}

/// Nothing fits: the CPU's view of what the model would need, for the explanation.
fn too_large(profile: &HardwareProfile, s: &Setting<'_>) -> Candidate {
    let overhead = cpu_overhead(s.model, s.weights, s.engine) + embedding_copy(s.model, s.variant, s.engine);
    let devices = vec![whole_device(s, "cpu", cpu_budget(profile), overhead)];
    candidate(s, Backend::Cpu, Placement::None, Fit::TooLarge, devices)
}

/// The settings each node of a cluster needs for mistral.rs multi-node tensor parallelism.
fn multinode_settings(per_node: u32, nodes: u32) -> Vec<String> {
    let mut out = vec![
        format!("all nodes: MISTRALRS_MN_GLOBAL_WORLD_SIZE={}", per_node * nodes),
        format!("all nodes: MISTRALRS_MN_LOCAL_WORLD_SIZE={per_node}"),
        format!("head node (id 0): MISTRALRS_MN_HEAD_NUM_WORKERS={}", nodes - 1),
        "head node (id 0): MISTRALRS_MN_HEAD_PORT=<a free TCP port, e.g. 50000>".to_string(),
    ];
    for id in 1..nodes {
        out.push(format!("worker node {id}: MISTRALRS_MN_WORKER_ID={}", id - 1));
        out.push(format!("worker node {id}: MISTRALRS_MN_WORKER_SERVER_ADDR=<head address>:<head port>"));
    }
    out
}

/// Ports the cluster command lines use: the defaults of Ray, vLLM and SGLang.
const RAY_PORT: u16 = 6379;
const VLLM_PORT: u16 = 8000;
const SGLANG_PORT: u16 = 30000;
const SGLANG_INIT_PORT: u16 = 50000;

/// The command lines that serve a safetensors variant across `nodes` machines of `per_node`
/// GPUs with vLLM (tensor parallel within a node, pipeline parallel across nodes, over Ray) and
/// with SGLang (tensor parallel across all), both OpenAI-compatible on the head node. FP8 is
/// their online FP8 quantization of the BF16 weights, as mistral.rs's in-situ one is.
fn cluster_commands(s: &Setting<'_>, per_node: u32, nodes: u32) -> Vec<String> {
    let (Format::Safetensors, Some(repo)) = (s.variant.format, s.variant.repo.as_deref()) else {
        return Vec::new();
    };
    let fp8 = if s.variant.quant == Quant::Fp8 { " --quantization fp8" } else { "" };
    let context = s.context;
    let key = "--api-key <a key of your choosing>";
    let mut out = Vec::new();
    if s.variant.gated {
        out.push(format!("every node: export HF_TOKEN=<a Hugging Face token with access to {repo}>"));
    }
    out.push(format!("vLLM, head node: ray start --head --port={RAY_PORT}"));
    for id in 1..nodes {
        out.push(format!("vLLM, worker node {id}: ray start --address=<head address>:{RAY_PORT}"));
    }
    out.push(format!(
        "vLLM, head node: vllm serve {repo} --tensor-parallel-size {per_node} --pipeline-parallel-size {nodes} \
         --max-model-len {context}{fp8} --host 0.0.0.0 --port {VLLM_PORT} {key}"
    ));
    for rank in 0..nodes {
        let node = if rank == 0 { "head node".to_owned() } else { format!("worker node {rank}") };
        out.push(format!(
            "SGLang, {node}: python -m sglang.launch_server --model-path {repo} --tp {} --nnodes {nodes} \
             --node-rank {rank} --dist-init-addr <head address>:{SGLANG_INIT_PORT} --context-length {context}{fp8} \
             --host 0.0.0.0 --port {SGLANG_PORT} {key}",
            per_node * nodes
        ));
    }
    out
}

fn explain(s: &Setting<'_>, c: &Candidate, requested: u32) -> String {
    let name = &s.model.name;
    let q = s.variant.quant.as_str();
    let estimate = if s.variant.bytes.is_some() { "" } else { " (estimated from the parameter count)" };
    let embedding = embedding_copy(s.model, s.variant, s.engine);
    let mut text = match (&c.placement, c.backend) {
        (Placement::None, _) if s.variant.quant == Quant::Fp8 => {
            return format!(
                "{name} FP8 needs NVIDIA GPUs with native FP8 (compute capability 8.9 or newer: RTX 40xx, L40S, H100, \
                 H200) with room for {} of weights{estimate}; this machine has none that qualify.",
                gib(s.weights)
            );
        }
        (Placement::None, _) => {
            let need = s.weights + embedding + s.kv(s.context);
            return format!(
                "{name} {q} does not fit: it needs about {} for weights{estimate} and KV cache at {} tokens, more than any \
                 device here offers.",
                gib(need),
                s.context
            );
        }
        (Placement::SingleGpu, Backend::Metal) => {
            format!("{name} {q} runs on the Apple GPU in {} of unified memory", gib(c.devices[0].budget_bytes))
        }
        (Placement::SingleGpu, _) => format!("{name} {q} fits on one GPU ({})", c.devices[0].device),
        (Placement::TensorParallel { gpus_per_node, nodes }, _) if *nodes > 1 => format!(
            "{name} {q} runs tensor-parallel over {} GPUs on {nodes} nodes (mistral.rs multi-node; each node needs the \
             settings listed)",
            gpus_per_node * nodes
        ),
        (Placement::TensorParallel { gpus_per_node, .. }, _) => {
            format!("{name} {q} runs tensor-parallel over {gpus_per_node} GPUs (NCCL)")
        }
        (Placement::LayerSplit { gpu_layers, cpu_layers: 0 }, _) => format!(
            "{name} {q} runs with its {gpu_layers} layers spread over {} GPUs, one after another",
            c.devices.len()
        ),
        (Placement::LayerSplit { gpu_layers, cpu_layers }, _) => format!(
            "{name} {q} is too large for the GPUs alone: {gpu_layers} layers run on the GPUs and {cpu_layers} on the CPU, \
             which slows decoding"
        ),
        (Placement::Cpu, _) => format!("{name} {q} runs on the CPU"),
    };
    let unpacked = match embedding {
        0 => String::new(),
        bytes => format!(", token embedding unpacked to F32 {}", gib(bytes)),
    };
    text.push_str(&format!(
        ": weights {}{estimate}{unpacked}, KV cache {} at {} tokens; about {:.0} tokens/s (assuming {:.0} GB/s memory \
         bandwidth).",
        gib(s.weights),
        gib(s.kv(s.context)),
        s.context,
        c.tokens_per_second_estimate,
        c.bandwidth_bytes_per_second / 1e9
    ));
    match (s.variant.format, s.engine) {
        (Format::Gguf, EngineKind::MistralRs) => text.push_str(&format!(
            " Runs on mistral.rs (multi-node); its GGUF context is capped at {GGUF_CONTEXT_CAP} tokens, since its GGUF \
             loader lacks Llama 3.1's RoPE scaling and quality drops beyond it."
        )),
        (Format::Gguf, _) => text.push_str(" Runs on llama.cpp, with Llama 3.1's long-context RoPE scaling."),
        (Format::Safetensors, _) => text.push_str(" Runs on mistral.rs (safetensors, quantized in place as it loads)."),
    }
    if s.kv_precision == KvPrecision::Q8 {
        text.push_str(&format!(
            " The KV cache is kept in 8 bits (q8_0) instead of 16 ({}), so that {} tokens fit.",
            gib(s.model.kv_bytes_per_token() * u64::from(s.context)),
            s.context
        ));
    }
    if requested > s.context {
        text.push_str(&format!(
            " You asked for {requested} tokens; this variant plans {}, so it is not recommended for that.",
            s.context
        ));
    }
    if s.variant.quant == Quant::Fp8 {
        text.push_str(" FP8 uses the GPUs' native FP8 (compute capability 8.9+).");
    }
    if s.variant.quant == Quant::Bf16 && c.backend == Backend::Cuda {
        text.push_str(" GPUs older than compute capability 8.0 run it as F16.");
    }
    if c.tokens_per_second_estimate < USABLE_TOKENS_PER_SECOND {
        text.push_str(" Too slow to recommend.");
    }
    text
}

/// Why nothing is recommended: variants that fit but fall short of the context asked for or
/// of a usable speed are named as such; otherwise nothing fits at all.
fn why_none(candidates: &[Candidate], profile: &HardwareProfile, catalog: &Catalog, options: PlanOptions) -> String {
    let fitting: Vec<&Candidate> = candidates.iter().filter(|c| c.fit != Fit::TooLarge).collect();
    let name = |c: &Candidate| {
        format!("{} {}", catalog.model(&c.model).map(|m| m.name.as_str()).unwrap_or(&c.model), c.quant.as_str())
    };
    if let Some(capped) = fitting.iter().find(|c| !c.meets_requested_context) {
        return format!(
            "Nothing here holds {} tokens of context: what fits ({}) holds {} tokens at most. Plan for {} tokens or \
             fewer, or use a machine with more memory.",
            options.context_tokens,
            name(capped),
            capped.context_tokens,
            capped.context_tokens
        );
    }
    if let Some(fastest) =
        fitting.iter().max_by(|a, b| a.tokens_per_second_estimate.total_cmp(&b.tokens_per_second_estimate))
    {
        return format!(
            "{} fits, but would decode at about {:.1} tokens/s, slower than the {USABLE_TOKENS_PER_SECOND:.0} tokens/s \
             Altiplano recommends. A machine with a GPU that holds it, or faster memory, would run it well.",
            name(fastest),
            fastest.tokens_per_second_estimate
        );
    }
    nothing_fits(profile, catalog, options)
}

fn nothing_fits(profile: &HardwareProfile, catalog: &Catalog, options: PlanOptions) -> String {
    let smallest = catalog
        .models
        .iter()
        .filter(|m| !m.starter)
        .flat_map(|m| m.variants.iter().map(move |v| (m, v)))
        .filter(|(_, v)| v.quant != Quant::Fp8)
        .min_by_key(|(m, v)| m.weights_bytes(v));
    match smallest {
        Some((m, v)) => {
            let context = options.context_tokens.min(m.max_context);
            let need = cpu_memory_estimate(m, v, context);
            let (budget, _) = cpu_budget(profile);
            format!(
                "No Llama 3.1 variant fits: the smallest, {} {}, needs about {} with {context} tokens of context, and this \
                 machine offers {} (RAM available less a safety margin). A machine with {} or more of RAM, or a GPU with as \
                 much memory, would run it.",
                m.name,
                v.quant.as_str(),
                gib(need),
                gib(budget),
                gib((need + GIB + (profile.ram_bytes / 10).max(GIB)).div_ceil(GIB) * GIB)
            )
        }
        None => "The catalog lists no Llama 3.1 variants.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_cpps_split_by_free_memory() {
        assert_eq!(llama_cpp_layer_split(80, &[24, 24]), vec![40, 40]);
        // 75 % of the free memory: layers 0..=60 of 81 (j / 81 < 0.75), the rest on the next.
        assert_eq!(llama_cpp_layer_split(81, &[30, 10]), vec![61, 20]);
        assert_eq!(llama_cpp_layer_split(5, &[1, 1, 1]), vec![2, 2, 1]);
        assert_eq!(llama_cpp_layer_split(0, &[1, 1]), vec![0, 0]);
        assert_eq!(llama_cpp_layer_split(4, &[0, 0]), vec![2, 2], "no figures: an even split");
        assert_eq!(llama_cpp_layer_split(7, &[5]), vec![7]);
    }
}
