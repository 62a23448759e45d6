//! The Models page: this machine's hardware and the plan's candidates.

use altiplano_core::catalog::Catalog;
use altiplano_core::hardware::{GpuVendor, HardwareProfile};
use altiplano_core::measure::Measurement;
use altiplano_core::planner::{Backend, Candidate, Fit, Placement, Plan, Preference};
use serde::{Deserialize, Serialize};

use super::*;

/// A GPU as the Models page shows it.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct GpuDto {
    pub vendor: GpuVendorDto,
    pub name: String,
    pub memory_bytes: u64,
    pub memory_free_bytes: u64,
    pub compute_capability: Option<String>,
}

/// Who made a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub enum GpuVendorDto {
    Nvidia,
    Apple,
}

/// How a variant is laid out over this machine (the UI words it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum PlacementDto {
    /// All of it on one GPU.
    SingleGpu,
    /// Tensor parallel over `gpus_per_node` GPUs on each of `nodes` nodes.
    TensorParallel { gpus_per_node: u32, nodes: u32 },
    /// Layers one after another: `gpu_layers` on the GPUs, `cpu_layers` on the CPU.
    LayerSplit { gpu_layers: u32, cpu_layers: u32 },
    /// On the CPU.
    Cpu,
    /// It does not fit.
    None,
}

impl From<&Placement> for PlacementDto {
    fn from(p: &Placement) -> Self {
        match *p {
            Placement::SingleGpu => Self::SingleGpu,
            Placement::TensorParallel { gpus_per_node, nodes } => Self::TensorParallel { gpus_per_node, nodes },
            Placement::LayerSplit { gpu_layers, cpu_layers } => Self::LayerSplit { gpu_layers, cpu_layers },
            Placement::Cpu => Self::Cpu,
            Placement::None => Self::None,
        }
    }
}

/// This machine.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct HardwareDto {
    pub cpu_name: String,
    pub cores: u32,
    pub threads: u32,
    pub cpu_features: Vec<String>,
    pub ram_bytes: u64,
    pub ram_available_bytes: u64,
    pub disk_free_bytes: u64,
    pub gpus: Vec<GpuDto>,
}

impl From<&HardwareProfile> for HardwareDto {
    fn from(p: &HardwareProfile) -> Self {
        Self {
            cpu_name: p.cpu.name.clone(),
            cores: p.cpu.cores,
            threads: p.cpu.threads,
            cpu_features: p.cpu.features.clone(),
            ram_bytes: p.ram_bytes,
            ram_available_bytes: p.ram_available_bytes,
            disk_free_bytes: p.disk_free_bytes,
            gpus: p
                .gpus
                .iter()
                .map(|g| GpuDto {
                    vendor: match g.vendor {
                        GpuVendor::Nvidia => GpuVendorDto::Nvidia,
                        GpuVendor::Apple => GpuVendorDto::Apple,
                    },
                    name: g.name.clone(),
                    memory_bytes: g.memory_bytes,
                    memory_free_bytes: g.memory_free_bytes,
                    compute_capability: g.compute_capability.clone(),
                })
                .collect(),
        }
    }
}

/// The compute a candidate runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum BackendDto {
    Cuda,
    Metal,
    Cpu,
}

/// Fit status of a candidate.
#[derive(Debug, Clone, Copy, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub enum FitDto {
    Gpu,
    Partial,
    Cpu,
    TooLarge,
}

/// Quality or speed.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub enum PreferenceDto {
    Quality,
    Speed,
}

impl From<PreferenceDto> for Preference {
    fn from(p: PreferenceDto) -> Self {
        match p {
            PreferenceDto::Quality => Preference::Quality,
            PreferenceDto::Speed => Preference::Speed,
        }
    }
}

/// One catalog variant on this machine.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct CandidateDto {
    pub model: String,
    pub model_name: String,
    pub quant: String,
    pub backend: BackendDto,
    /// The engine that runs it.
    pub engine: EngineDto,
    /// The layout.
    pub placement: PlacementDto,
    pub fit: FitDto,
    pub context_tokens: u32,
    pub max_context_tokens: u32,
    pub meets_requested_context: bool,
    pub tokens_per_second_estimate: f64,
    pub weights_bytes: u64,
    pub explanation: String,
    pub node_settings: Vec<String>,
    /// For a cluster: how to serve it with vLLM or SGLang instead.
    pub cluster_commands: Vec<String>,
    /// Measured on this computer: the speed above is the measured one.
    pub measured: Option<MeasuredDto>,
}

/// A candidate's figures measured on this computer.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct MeasuredDto {
    pub resident_bytes: u64,
    pub gpu_bytes: Vec<u64>,
    pub tokens_per_second: Option<f64>,
}

impl CandidateDto {
    fn new(c: &Candidate, catalog: &Catalog) -> Self {
        Self {
            model: c.model.clone(),
            model_name: catalog.model(&c.model).map(|m| m.name.clone()).unwrap_or_else(|| c.model.clone()),
            quant: c.quant.as_str().to_string(),
            backend: match c.backend {
                Backend::Cuda => BackendDto::Cuda,
                Backend::Metal => BackendDto::Metal,
                Backend::Cpu => BackendDto::Cpu,
            },
            engine: c.engine.into(),
            placement: (&c.placement).into(),
            fit: match c.fit {
                Fit::Gpu => FitDto::Gpu,
                Fit::Partial => FitDto::Partial,
                Fit::Cpu => FitDto::Cpu,
                Fit::TooLarge => FitDto::TooLarge,
            },
            context_tokens: c.context_tokens,
            max_context_tokens: c.max_context_tokens,
            meets_requested_context: c.meets_requested_context,
            tokens_per_second_estimate: c.tokens_per_second_estimate,
            weights_bytes: c.weights_bytes,
            explanation: c.explanation.clone(),
            node_settings: c.node_settings.clone(),
            cluster_commands: c.cluster_commands.clone(),
            measured: c.measured.as_ref().map(|m| MeasuredDto {
                resident_bytes: m.resident_bytes,
                gpu_bytes: m.gpu_bytes.clone(),
                tokens_per_second: m.tokens_per_second,
            }),
        }
    }
}

/// The Models page: this machine and what fits it.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct ModelsPageDto {
    pub hardware: HardwareDto,
    pub recommended: Option<CandidateDto>,
    pub candidates: Vec<CandidateDto>,
    pub reason_if_none: Option<String>,
    /// The context the page was planned for.
    pub context_tokens: u32,
    /// What models really took on this computer, newest first.
    pub measurements: Vec<MeasurementDto>,
}

impl ModelsPageDto {
    pub fn new(
        profile: &HardwareProfile,
        catalog: &Catalog,
        plan: &Plan,
        context_tokens: u32,
        measurements: Vec<Measurement>,
    ) -> Self {
        Self {
            context_tokens,
            hardware: profile.into(),
            recommended: plan.recommended.as_ref().map(|c| CandidateDto::new(c, catalog)),
            candidates: plan.candidates.iter().map(|c| CandidateDto::new(c, catalog)).collect(),
            reason_if_none: plan.reason_if_none.clone(),
            measurements: measurements.into_iter().map(Into::into).collect(),
        }
    }
}
