//! CPU feature check.
//!
//! candle picks its quantized matrix kernels at compile time, so Altiplano is built for
//! x86-64-v3 (AVX2, FMA, F16C; see `.cargo/config.toml`). A CPU without those features would
//! die with "illegal instruction" in the middle of a reply; [`check`] turns that into a clear
//! message at start-up instead.

/// A CPU feature the build needs but the running CPU lacks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "this build of Altiplano needs a CPU with {missing} (x86-64-v3: most x86 CPUs since 2013); \
     rebuild without `-C target-cpu=x86-64-v3` in .cargo/config.toml to run on this CPU, more slowly"
)]
pub struct UnsupportedCpu {
    /// The missing features, comma-separated.
    pub missing: String,
}

/// Checks that the CPU supports every SIMD feature this binary was compiled to use.
pub fn check() -> Result<(), UnsupportedCpu> {
    let missing = missing_features();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(UnsupportedCpu { missing: missing.join(", ") })
    }
}

/// SIMD features this binary was compiled with, as names; what the CPU runs them with is in
/// [`check`].
pub fn compiled_features() -> Vec<&'static str> {
    let mut features = Vec::new();
    if cfg!(target_feature = "avx2") {
        features.push("avx2");
    }
    if cfg!(target_feature = "fma") {
        features.push("fma");
    }
    if cfg!(target_feature = "f16c") {
        features.push("f16c");
    }
    if cfg!(target_feature = "neon") {
        features.push("neon");
    }
    features
}

#[cfg(target_arch = "x86_64")]
fn missing_features() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if cfg!(target_feature = "avx2") && !std::arch::is_x86_feature_detected!("avx2") {
        missing.push("AVX2");
    }
    if cfg!(target_feature = "fma") && !std::arch::is_x86_feature_detected!("fma") {
        missing.push("FMA");
    }
    if cfg!(target_feature = "f16c") && !std::arch::is_x86_feature_detected!("f16c") {
        missing.push("F16C");
    }
    missing
}

#[cfg(not(target_arch = "x86_64"))]
fn missing_features() -> Vec<&'static str> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_runs_what_the_build_needs() {
        // The build machine compiled for x86-64-v3 and must itself support it; if this fails,
        // the tests below it would die with SIGILL instead.
        assert_eq!(check(), Ok(()));
        if cfg!(target_arch = "x86_64") {
            assert!(compiled_features().contains(&"avx2"), "x86-64 builds must enable AVX2");
        }
    }
}
