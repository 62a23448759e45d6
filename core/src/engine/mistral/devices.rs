//! Where mistral.rs puts a model: the plan's device map, the NCCL switch for layer splits, and
//! the in-situ quantization types.

use super::*;

/// The device map: the plan's split when there is one, else mistral.rs's own.
///
/// A build with `nccl` makes mistral.rs run every load tensor-parallel over all GPUs and
/// ignore any device map, unless `MISTRALRS_NO_NCCL=1` (read at each load). A plan that
/// splits layers between GPUs and the CPU needs that off, so it is set for such a load and
/// cleared again for the next load that wants tensor parallelism — unless the user set it.
pub(super) fn device_map(options: &LoadOptions) -> DeviceMapSetting {
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

pub(super) fn isq_type(isq: Isq) -> mistralrs::IsqType {
    match isq {
        Isq::Q4k => mistralrs::IsqType::Q4K,
        Isq::Q5k => mistralrs::IsqType::Q5K,
        Isq::Q6k => mistralrs::IsqType::Q6K,
        Isq::Q8_0 => mistralrs::IsqType::Q8_0,
        Isq::Fp8 => mistralrs::IsqType::F8E4M3,
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
