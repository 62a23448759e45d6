//! GGUF weights that candle has no fast CPU kernel for, requantized to one it has.
//!
//! candle 0.10's quantized matrix-vector products have AVX2 and NEON code for Q4_0, Q8_0 and
//! the K-quants, but not for Q4_1, Q5_0 and Q5_1: those run a scalar loop, half of every decode
//! step on the Q4_1 starter model (BENCHMARKS.md, "Why we fall short"). On the CPU such a file
//! is loaded from a Q8_0 copy instead. Q8_0 has the same blocks of 32 weights, with 8 bits each
//! and one scale per block, so no weight moves by more than 1/254 of its block's largest
//! magnitude — a small fraction of the source's own 4- or 5-bit step. The copy costs 34 bytes
//! per block against the source's 20–24 and is written once, to a cache folder, then reused
//! while the source file is unchanged. llama.cpp repacks weights at load for its kernels too.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::convert::first_line;

/// The quantizations without a SIMD kernel in candle's CPU backend.
const SLOW_ON_CPU: [GgmlDType; 3] = [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q5_1];
/// Weights per block of Q8_0, and its bytes per block (an f16 scale and 32 signed bytes).
const Q8_0_BLOCK: usize = 32;
const Q8_0_BLOCK_BYTES: u64 = 34;

/// What a load did: which weights it converted and where the copy is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repacked {
    /// The source's slow quantization, e.g. `Q4_1`.
    pub from: String,
    /// `Q8_0`.
    pub to: String,
    /// The copy that was loaded.
    pub cache: PathBuf,
    /// Written by this load (else reused from an earlier one).
    pub written: bool,
}

/// Why a copy could not be made; the load goes on with the source file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RepackError {
    #[error("cannot read {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("cannot write {}: {reason}", path.display())]
    Write { path: PathBuf, reason: String },
    #[error("the Q8_0 copy would take {needed} bytes of memory to write, and {available} are available")]
    TooLarge { needed: u64, available: u64 },
}

/// What [`plan`] found in a file.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Every weight has a fast kernel already.
    NotNeeded,
    /// The copy exists: load it.
    Cached(Repacked),
    /// The copy is to be written (`bytes` long) to `cache`.
    Write { from: GgmlDType, cache: PathBuf, bytes: u64 },
}

/// Looks at the GGUF file `source` (whose header [`super::gguf_check`] has checked) and decides
/// whether it is to be loaded from a Q8_0 copy in `dir`.
pub(crate) fn plan(source: &Path, dir: &Path) -> Result<Plan, RepackError> {
    let read_err = |reason: String| RepackError::Read { path: source.to_path_buf(), reason };
    let mut file = File::open(source).map_err(|e| read_err(e.to_string()))?;
    let content = gguf_file::Content::read(&mut file).map_err(|e| read_err(first_line(&e)))?;
    let slow: Vec<GgmlDType> =
        content.tensor_infos.values().map(|t| t.ggml_dtype).filter(|d| SLOW_ON_CPU.contains(d)).collect();
    let Some(from) = slow.first().copied() else {
        return Ok(Plan::NotNeeded);
    };
    let bytes = content
        .tensor_infos
        .values()
        .map(|t| {
            let elements = t.shape.elem_count() as u64;
            if SLOW_ON_CPU.contains(&t.ggml_dtype) {
                elements / Q8_0_BLOCK as u64 * Q8_0_BLOCK_BYTES
            } else {
                elements / t.ggml_dtype.block_size() as u64 * t.ggml_dtype.type_size() as u64
            }
        })
        .sum();
    let cache = dir.join(cache_name(source)?);
    if cache.is_file() {
        return Ok(Plan::Cached(Repacked { from: name(from), to: name(GgmlDType::Q8_0), cache, written: false }));
    }
    Ok(Plan::Write { from, cache, bytes })
}

/// Writes the Q8_0 copy of `source` to `cache` (atomically: a partial file never has the final
/// name), calling `progress(done, total)` after each tensor, and removes older copies of the
/// same source. Tensors keep their order in the file, so the load's layer count climbs in order.
pub(crate) fn write(
    source: &Path,
    cache: &Path,
    bytes: u64,
    from: GgmlDType,
    mut progress: impl FnMut(usize, usize),
) -> Result<Repacked, RepackError> {
    let read_err = |reason: String| RepackError::Read { path: source.to_path_buf(), reason };
    let write_err = |path: &Path, reason: String| RepackError::Write { path: path.to_path_buf(), reason };
    // candle's writer takes every tensor at once, so the copy is held in memory while written.
    let available = available_memory();
    if bytes.saturating_mul(5) / 4 > available {
        return Err(RepackError::TooLarge { needed: bytes, available });
    }
    let mut file = File::open(source).map_err(|e| read_err(e.to_string()))?;
    let content = gguf_file::Content::read(&mut file).map_err(|e| read_err(first_line(&e)))?;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort_by_key(|n| content.tensor_infos[*n].offset);
    let total = names.len();
    let mut tensors: Vec<(&str, QTensor)> = Vec::with_capacity(total);
    for (i, name) in names.into_iter().enumerate() {
        let tensor = content
            .tensor(&mut file, name, &Device::Cpu)
            .map_err(|e| read_err(format!("tensor `{name}`: {}", first_line(&e))))?;
        let tensor = if SLOW_ON_CPU.contains(&tensor.dtype()) {
            tensor
                .dequantize(&Device::Cpu)
                .and_then(|t| QTensor::quantize(&t, GgmlDType::Q8_0))
                .map_err(|e| read_err(format!("tensor `{name}`: {}", first_line(&e))))?
        } else {
            tensor
        };
        tensors.push((name.as_str(), tensor));
        progress(i + 1, total);
    }
    // candle writes with the default alignment of 32 bytes; a different one in the metadata
    // would misplace every tensor.
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != "general.alignment")
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();

    let dir = cache.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e.to_string()))?;
    let partial = cache.with_extension("gguf.partial");
    let written = (|| -> std::io::Result<()> {
        let mut out = BufWriter::new(File::create(&partial)?);
        gguf_file::write(&mut out, &metadata, &refs).map_err(|e| std::io::Error::other(first_line(&e)))?;
        out.flush()?;
        out.get_ref().sync_all()?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(write_err(&partial, e.to_string()));
    }
    std::fs::rename(&partial, cache).map_err(|e| write_err(cache, e.to_string()))?;
    remove_copies(dir, &source_prefix(source), cache.file_name().and_then(|f| f.to_str()));
    Ok(Repacked { from: name(from), to: name(GgmlDType::Q8_0), cache: cache.to_path_buf(), written: true })
}

/// `<hash of the source's path>-<hash of its size and modification time>.q8_0.gguf`: a source
/// changed in place gets a new name, and the old copy is found by the first half.
fn cache_name(source: &Path) -> Result<String, RepackError> {
    let meta = std::fs::metadata(source)
        .map_err(|e| RepackError::Read { path: source.to_path_buf(), reason: e.to_string() })?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let content_hash = short_hash(format!("{}:{modified}", meta.len()).as_bytes());
    Ok(format!("{}{content_hash}.q8_0.gguf", source_prefix(source)))
}

/// The start shared by every copy's name of `source`, whatever its contents.
fn source_prefix(source: &Path) -> String {
    let canonical = std::fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
    format!("{}-", short_hash(canonical.to_string_lossy().as_bytes()))
}

/// Removes the copy of `source` from `dir`, if there is one (the model left the library).
pub fn remove_copy(source: &Path, dir: &Path) {
    remove_copies(dir, &source_prefix(source), None);
}

/// Removes the files of `dir` whose names start with `prefix`, except `keep`.
fn remove_copies(dir: &Path, prefix: &str, keep: Option<&str>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) && Some(name.as_str()) != keep {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn short_hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

fn name(dtype: GgmlDType) -> String {
    format!("{dtype:?}")
}

fn available_memory() -> u64 {
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    system.available_memory()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn starter() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/starter/SmolLM2-135M-Instruct.Q4_1.gguf")
    }

    /// Each tensor of `path`, dequantized, with its quantization.
    fn weights(path: &Path) -> HashMap<String, (GgmlDType, Vec<f32>)> {
        let mut file = File::open(path).expect("open");
        let content = gguf_file::Content::read(&mut file).expect("gguf");
        let mut out = HashMap::new();
        for name in content.tensor_infos.keys() {
            let q = content.tensor(&mut file, name, &Device::Cpu).expect("tensor");
            let values = q.dequantize(&Device::Cpu).and_then(|t| t.flatten_all()?.to_vec1::<f32>()).expect("values");
            out.insert(name.clone(), (q.dtype(), values));
        }
        out
    }

    #[test]
    fn the_starter_becomes_q8_0_within_half_a_step_of_every_weight() {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = dir.path().join("starter.gguf");
        std::fs::copy(starter(), &source).expect("copy the starter model");
        let Plan::Write { from, cache, bytes } = plan(&source, &dir.path().join("cache")).expect("plan") else {
            panic!("the Q4_1 starter needs a copy")
        };
        assert_eq!(from, GgmlDType::Q4_1);
        let mut seen = Vec::new();
        let repacked = write(&source, &cache, bytes, from, |done, total| seen.push((done, total))).expect("write");
        assert_eq!((repacked.from.as_str(), repacked.to.as_str(), repacked.written), ("Q4_1", "Q8_0", true));
        // The tensors as estimated, plus the metadata (the tokenizer's vocabulary, mostly).
        let written = std::fs::metadata(&cache).expect("the copy").len();
        assert!(written >= bytes && written - bytes < 8 << 20, "{written} bytes written, {bytes} estimated");
        assert!(seen.windows(2).all(|w| w[1].0 == w[0].0 + 1) && seen.last().is_some_and(|(d, t)| d == t));

        let (before, after) = (weights(&source), weights(&cache));
        assert_eq!(before.len(), after.len());
        for (name, (dtype, original)) in &before {
            let (new_dtype, copy) = &after[name];
            assert_eq!(copy.len(), original.len(), "{name}");
            if *dtype != GgmlDType::Q4_1 {
                assert_eq!((new_dtype, copy), (dtype, original), "{name} is kept as it was");
                continue;
            }
            assert_eq!(*new_dtype, GgmlDType::Q8_0, "{name}");
            for (a, b) in original.chunks(Q8_0_BLOCK).zip(copy.chunks(Q8_0_BLOCK)) {
                let largest = a.iter().fold(0f32, |m, x| m.max(x.abs()));
                for (x, y) in a.iter().zip(b) {
                    // Half a step of 1/127 of the block's largest magnitude; the scale, kept as f16, adds
                    // up to 127 × 2⁻¹¹ of a step.
                    assert!((x - y).abs() <= largest / 254.0 * 1.13 + 1e-6, "{name}: {x} became {y}");
                }
            }
        }

        // Found again; a source changed in place gets a new copy, and the old one goes.
        assert!(matches!(plan(&source, &dir.path().join("cache")), Ok(Plan::Cached(r)) if r.cache == cache));
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        File::options().write(true).open(&source).and_then(|f| f.set_modified(later)).expect("touch");
        let Plan::Write { cache: newer, bytes, .. } = plan(&source, &dir.path().join("cache")).expect("plan") else {
            panic!("a changed source needs a new copy")
        };
        assert_ne!(newer, cache);
        write(&source, &newer, bytes, from, |_, _| {}).expect("write again");
        assert!(!cache.exists(), "the stale copy was removed");
        assert!(newer.exists());
    }

    #[test]
    fn files_with_fast_kernels_are_loaded_as_they_are() {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = dir.path().join("q8.gguf");
        let tensor = candle_core::Tensor::ones((4, 64), candle_core::DType::F32, &Device::Cpu).expect("tensor");
        let q = QTensor::quantize(&tensor, GgmlDType::Q8_0).expect("quantize");
        let arch = gguf_file::Value::String("llama".into());
        let mut out = File::create(&source).expect("create");
        gguf_file::write(&mut out, &[("general.architecture", &arch)], &[("output.weight", &q)]).expect("write");
        assert!(matches!(plan(&source, dir.path()), Ok(Plan::NotNeeded)));
    }
}
