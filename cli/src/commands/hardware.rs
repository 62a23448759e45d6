//! `altiplano hardware`: what this machine has.

use std::process::ExitCode;

use altiplano_core::config::DataDir;
use altiplano_core::hardware::{self, GpuVendor};

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

pub fn run(data_dir: &DataDir, json: bool) -> anyhow::Result<ExitCode> {
    let profile = hardware::detect(&data_dir.models_dir());
    if json {
        println!("{}", serde_json::to_string_pretty(&profile)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "CPU     {} ({} cores, {} threads; {})",
        profile.cpu.name,
        profile.cpu.cores,
        profile.cpu.threads,
        if profile.cpu.features.is_empty() {
            "no SIMD extensions detected".into()
        } else {
            profile.cpu.features.join(", ")
        }
    );
    println!("Memory  {} ({} available)", gib(profile.ram_bytes), gib(profile.ram_available_bytes));
    println!("Disk    {} free for models in {}", gib(profile.disk_free_bytes), data_dir.models_dir().display());
    if profile.gpus.is_empty() {
        println!("GPU     none detected (no NVIDIA driver, not Apple Silicon): models run on the CPU");
    }
    for (i, gpu) in profile.gpus.iter().enumerate() {
        let detail = match gpu.vendor {
            GpuVendor::Nvidia => format!(
                "{} ({} free), compute capability {}",
                gib(gpu.memory_bytes),
                gib(gpu.memory_free_bytes),
                gpu.compute_capability.as_deref().unwrap_or("unknown")
            ),
            GpuVendor::Apple => format!("{} of unified memory usable by Metal", gib(gpu.memory_bytes)),
        };
        println!("GPU {i}   {}: {detail}", gpu.name);
    }
    Ok(ExitCode::SUCCESS)
}
