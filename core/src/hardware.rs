//! What this machine has: CPU, memory, free disk, GPUs.
//!
//! [`detect`] reads the machine (sysinfo; NVIDIA GPUs through NVML, loaded at run time; Apple
//! Silicon's unified memory). The result is a [`HardwareProfile`], which is also a file format:
//! `altiplano hardware --json` prints it, and the planner reads it from a file to plan for a
//! machine that is not this one. Unknown fields are ignored; a missing required field is an
//! error that names it.
//!
//! No NVIDIA driver, no NVML library, or an NVML error all mean "no NVIDIA GPU", never a failure.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The operating system family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    /// Linux.
    Linux,
    /// macOS.
    Macos,
    /// Windows.
    Windows,
}

/// The CPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    /// Marketing name, e.g. "AMD Ryzen 9 7950X".
    pub name: String,
    /// Physical cores.
    pub cores: u32,
    /// Hardware threads.
    pub threads: u32,
    /// SIMD features that matter for inference: `avx2`, `avx512f`, `fma`, `f16c`, `neon`.
    #[serde(default)]
    pub features: Vec<String>,
}

/// Who made a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuVendor {
    /// NVIDIA (CUDA).
    Nvidia,
    /// Apple Silicon (Metal, unified memory).
    Apple,
}

/// A GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    /// Maker.
    pub vendor: GpuVendor,
    /// Name, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Memory the GPU can use. For Apple Silicon, the share of unified memory Metal may use.
    pub memory_bytes: u64,
    /// Memory free now.
    pub memory_free_bytes: u64,
    /// CUDA compute capability such as "9.0"; `null` for non-NVIDIA GPUs.
    #[serde(default)]
    pub compute_capability: Option<String>,
}

impl Gpu {
    /// CUDA compute capability as (major, minor), when known.
    pub fn compute_capability(&self) -> Option<(u32, u32)> {
        let (major, minor) = self.compute_capability.as_deref()?.split_once('.')?;
        Some((major.trim().parse().ok()?, minor.trim().parse().ok()?))
    }
}

fn one() -> u32 {
    1
}

/// Everything the planner needs to know about a machine (or each of `nodes` identical ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardwareProfile {
    /// Operating system.
    pub os: Os,
    /// CPU.
    pub cpu: Cpu,
    /// Installed memory.
    pub ram_bytes: u64,
    /// Memory available now.
    pub ram_available_bytes: u64,
    /// Free space where models are stored.
    pub disk_free_bytes: u64,
    /// GPUs, in device order.
    #[serde(default)]
    pub gpus: Vec<Gpu>,
    /// Identical machines in a cluster; 1 for a single machine.
    #[serde(default = "one")]
    pub nodes: u32,
}

/// A hardware profile file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The file could not be read.
    #[error("cannot read the hardware profile {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The JSON is malformed or lacks a required field (the message names it).
    #[error("the hardware profile is not valid: {0}")]
    Invalid(#[from] serde_json::Error),
    /// A value that cannot be right.
    #[error("the hardware profile is not valid: {0}")]
    Implausible(String),
}

impl HardwareProfile {
    /// Parses a profile from JSON and checks that its numbers make sense.
    pub fn from_json(text: &str) -> Result<Self, ProfileError> {
        let profile: Self = serde_json::from_str(text)?;
        if profile.nodes == 0 {
            return Err(ProfileError::Implausible("`nodes` must be at least 1".into()));
        }
        if profile.cpu.threads == 0 || profile.cpu.cores == 0 {
            return Err(ProfileError::Implausible("`cpu.cores` and `cpu.threads` must be at least 1".into()));
        }
        if profile.ram_available_bytes > profile.ram_bytes {
            return Err(ProfileError::Implausible("`ram_available_bytes` is larger than `ram_bytes`".into()));
        }
        if let Some(gpu) = profile.gpus.iter().find(|g| g.memory_free_bytes > g.memory_bytes) {
            return Err(ProfileError::Implausible(format!("GPU {:?} has more free memory than memory", gpu.name)));
        }
        Ok(profile)
    }

    /// Reads a profile from a JSON file.
    pub fn from_file(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ProfileError::Read { path: path.display().to_string(), source })?;
        Self::from_json(&text)
    }
}

/// Reads this machine. `models_dir` is where models are stored (its disk's free space is
/// reported); it need not exist yet.
pub fn detect(models_dir: &Path) -> HardwareProfile {
    use sysinfo::{CpuRefreshKind, Disks, MemoryRefreshKind, RefreshKind, System};

    let system = System::new_with_specifics(
        RefreshKind::nothing().with_memory(MemoryRefreshKind::nothing().with_ram()).with_cpu(CpuRefreshKind::nothing()),
    );
    let threads = system.cpus().len().max(1);
    let cores = System::physical_core_count().unwrap_or(threads).max(1);
    let name = system
        .cpus()
        .first()
        .map(|c| c.brand().trim().to_string())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let ram_bytes = system.total_memory();
    let ram_available_bytes = system.available_memory().min(ram_bytes);

    let os = match std::env::consts::OS {
        "macos" => Os::Macos,
        "windows" => Os::Windows,
        _ => Os::Linux,
    };

    let mut gpus = nvidia_gpus();
    if let Some(apple) = apple_gpu(os, &name, ram_bytes, ram_available_bytes) {
        gpus.push(apple);
    }

    HardwareProfile {
        os,
        cpu: Cpu {
            name,
            cores: u32::try_from(cores).unwrap_or(u32::MAX),
            threads: u32::try_from(threads).unwrap_or(u32::MAX),
            features: cpu_features(),
        },
        ram_bytes,
        ram_available_bytes,
        disk_free_bytes: disk_free(&Disks::new_with_refreshed_list(), models_dir),
        gpus,
        nodes: 1,
    }
}

/// Free bytes on the disk that holds `dir` (or its nearest existing ancestor); 0 when unknown.
pub fn free_space(dir: &Path) -> u64 {
    disk_free(&sysinfo::Disks::new_with_refreshed_list(), dir)
}

/// Free space on the disk holding `dir`: the mounted disk with the longest mount point that is
/// a prefix of the path (or of its nearest existing ancestor).
fn disk_free(disks: &sysinfo::Disks, dir: &Path) -> u64 {
    let mut probe = dir.to_path_buf();
    while !probe.exists() {
        if !probe.pop() {
            break;
        }
    }
    let probe = std::fs::canonicalize(&probe).unwrap_or(probe);
    disks
        .list()
        .iter()
        .filter(|d| probe.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .map(|d| d.available_space())
        .unwrap_or(0)
}

fn cpu_features() -> Vec<String> {
    let mut features = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        for (name, present) in [
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("f16c", std::arch::is_x86_feature_detected!("f16c")),
        ] {
            if present {
                features.push(name.to_string());
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            features.push("neon".to_string());
        }
    }
    features
}

/// NVIDIA GPUs through NVML; none when the driver or library is absent.
/// The NVIDIA GPUs NVML reports now (none without a driver).
pub fn nvidia_gpus() -> Vec<Gpu> {
    let nvml = match nvml_wrapper::Nvml::init() {
        Ok(nvml) => nvml,
        Err(e) => {
            tracing::debug!("no NVIDIA GPU: NVML unavailable ({e})");
            return Vec::new();
        }
    };
    let count = nvml.device_count().unwrap_or(0);
    (0..count)
        .filter_map(|i| {
            let device = nvml.device_by_index(i).ok()?;
            let memory = device.memory_info().ok()?;
            let capability = device.cuda_compute_capability().ok();
            Some(Gpu {
                vendor: GpuVendor::Nvidia,
                name: device.name().unwrap_or_else(|_| format!("NVIDIA GPU {i}")),
                memory_bytes: memory.total,
                memory_free_bytes: memory.free.min(memory.total),
                compute_capability: capability.map(|c| format!("{}.{}", c.major, c.minor)),
            })
        })
        .collect()
}

/// The share of unified memory Metal lets one process use on Apple Silicon: about two thirds
/// on machines with up to 36 GB, three quarters above (Metal's `recommendedMaxWorkingSetSize`).
pub fn apple_metal_budget(ram_bytes: u64) -> u64 {
    const GIB: u64 = 1 << 30;
    if ram_bytes <= 36 * GIB {
        ram_bytes / 3 * 2
    } else {
        ram_bytes / 4 * 3
    }
}

fn apple_gpu(os: Os, cpu_name: &str, ram_bytes: u64, ram_available_bytes: u64) -> Option<Gpu> {
    if os != Os::Macos || !cfg!(target_arch = "aarch64") {
        return None;
    }
    let budget = apple_metal_budget(ram_bytes);
    Some(Gpu {
        vendor: GpuVendor::Apple,
        name: cpu_name.to_string(),
        memory_bytes: budget,
        memory_free_bytes: ram_available_bytes.min(budget),
        compute_capability: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAPTOP: &str = r#"{
        "os": "linux",
        "cpu": { "name": "Intel Core i7-1165G7", "cores": 4, "threads": 8, "features": ["avx2", "fma"] },
        "ram_bytes": 17179869184, "ram_available_bytes": 12884901888, "disk_free_bytes": 200000000000,
        "gpus": [],
        "comment": "unknown fields are ignored"
    }"#;

    #[test]
    fn a_profile_file_parses_with_defaults() {
        let p = HardwareProfile::from_json(LAPTOP).unwrap();
        assert_eq!(p.os, Os::Linux);
        assert_eq!(p.nodes, 1);
        assert_eq!(p.cpu.threads, 8);
        assert!(p.gpus.is_empty());
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = HardwareProfile::from_json(r#"{ "os": "linux", "cpu": { "name": "x", "cores": 1, "threads": 1 } }"#)
            .unwrap_err();
        assert!(err.to_string().contains("missing field `ram_bytes`"), "{err}");
        let err = HardwareProfile::from_json(&LAPTOP.replace("\"cores\": 4,", "")).unwrap_err();
        assert!(err.to_string().contains("`cores`"), "{err}");
    }

    #[test]
    fn impossible_numbers_are_refused() {
        let err = HardwareProfile::from_json(&LAPTOP.replace("12884901888", "99999999999999")).unwrap_err();
        assert!(err.to_string().contains("ram_available_bytes"), "{err}");
        let zero_nodes = LAPTOP.replace("\"gpus\": [],", "\"gpus\": [], \"nodes\": 0,");
        assert!(HardwareProfile::from_json(&zero_nodes).is_err());
    }

    #[test]
    fn compute_capability_is_read_as_numbers() {
        let gpu = Gpu {
            vendor: GpuVendor::Nvidia,
            name: "H100".into(),
            memory_bytes: 80,
            memory_free_bytes: 80,
            compute_capability: Some("9.0".into()),
        };
        assert_eq!(gpu.compute_capability(), Some((9, 0)));
        assert_eq!(Gpu { compute_capability: None, ..gpu.clone() }.compute_capability(), None);
    }

    #[test]
    fn metal_gets_two_thirds_of_small_macs_and_three_quarters_of_large_ones() {
        const GIB: u64 = 1 << 30;
        assert_eq!(apple_metal_budget(24 * GIB), 16 * GIB);
        assert_eq!(apple_metal_budget(128 * GIB), 96 * GIB);
    }

    #[test]
    fn this_machine_is_detected() {
        let dir = std::env::temp_dir().join("altiplano-not-created-yet/models");
        let p = detect(&dir);
        assert!(p.ram_bytes > 1 << 30, "{p:?}");
        assert!(p.ram_available_bytes <= p.ram_bytes);
        assert!(p.cpu.threads >= p.cpu.cores && p.cpu.cores >= 1, "{p:?}");
        assert!(!p.cpu.name.is_empty());
        assert!(p.disk_free_bytes > 0, "free space of the temp dir's disk: {p:?}");
        if cfg!(target_arch = "x86_64") {
            assert!(p.cpu.features.iter().any(|f| f == "avx2"), "this build needs AVX2: {p:?}");
        }
        // The profile survives its own file format.
        let again = HardwareProfile::from_json(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(again, p);
    }
}
