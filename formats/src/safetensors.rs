//! The one reading of a safetensors file's header, bounded and checked: the library's import
//! check, the mistral.rs loader's folder check and the load-progress watcher all use it, so a
//! file is judged by one rule everywhere.
//!
//! A safetensors file is an 8-byte little-endian header length, a JSON header naming each
//! tensor's `data_offsets` (relative to the end of the header), and the tensor bytes, which
//! fill the rest of the file exactly (the rule the `safetensors` crate holds loaders to).

use std::io::Read;
use std::path::Path;

/// Headers larger than this are damage (real ones are kilobytes to a few megabytes).
const MAX_HEADER: u64 = 100 << 20;

/// One tensor's bytes in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpan {
    /// Its name, e.g. `model.layers.0.mlp.up_proj.weight`.
    pub name: String,
    /// Absolute offset of its first byte.
    pub start: u64,
    /// Absolute offset one past its last byte.
    pub end: u64,
}

/// Why a file is not a sound safetensors file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SafetensorsProblem {
    /// Reading failed.
    #[error("cannot be read ({0})")]
    Io(String),
    /// Shorter than the 8-byte header length.
    #[error("is truncated (shorter than a safetensors header)")]
    NoHeader,
    /// A header length beyond the file or the limit.
    #[error("is damaged or truncated (its header claims {0} bytes)")]
    HeaderLength(u64),
    /// The header is not a JSON object.
    #[error("is damaged (its header is not valid JSON: {0})")]
    NotJson(String),
    /// A tensor without `data_offsets`.
    #[error("is damaged (tensor {0} has no data offsets)")]
    NoOffsets(String),
    /// A tensor that ends before it starts.
    #[error("is damaged (tensor {0} has inverted offsets)")]
    Inverted(String),
    /// The tensors do not fill the data exactly.
    #[error("is truncated or damaged (the tensors need {needed} bytes of data but the file holds {held})")]
    DataSize {
        /// Bytes the tensors need.
        needed: u64,
        /// Bytes after the header.
        held: u64,
    },
}

/// Reads `path`'s header and checks that every tensor lies inside the file and that the
/// tensors fill the data exactly. Spans are absolute file offsets; none can overflow, since
/// each is checked against the file's length.
pub fn read(path: &Path) -> Result<Vec<TensorSpan>, SafetensorsProblem> {
    let io = |e: std::io::Error| SafetensorsProblem::Io(e.to_string());
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    read_from(file, len)
}

/// [`read`] on any reader of `len` bytes (a file, or bytes in memory).
pub fn read_from(mut file: impl Read, len: u64) -> Result<Vec<TensorSpan>, SafetensorsProblem> {
    let io = |e: std::io::Error| SafetensorsProblem::Io(e.to_string());
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix).map_err(|_| SafetensorsProblem::NoHeader)?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_HEADER || header_len > len.saturating_sub(8) {
        return Err(SafetensorsProblem::HeaderLength(header_len));
    }
    // Bounded by MAX_HEADER and the file's length above.
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(io)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| SafetensorsProblem::NotJson(e.to_string()))?;
    let base = 8 + header_len;
    let held = len.saturating_sub(base);
    let mut spans = Vec::with_capacity(header.len());
    let mut needed = 0u64;
    for (name, tensor) in header.into_iter().filter(|(k, _)| k != "__metadata__") {
        let offsets = tensor
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .and_then(|o| Some((o.first()?.as_u64()?, o.get(1)?.as_u64()?)));
        let Some((start, end)) = offsets else { return Err(SafetensorsProblem::NoOffsets(name)) };
        if end < start {
            return Err(SafetensorsProblem::Inverted(name));
        }
        needed = needed.max(end);
        if end <= held {
            spans.push(TensorSpan { name, start: base + start, end: base + end });
        }
    }
    if needed != held {
        return Err(SafetensorsProblem::DataSize { needed, held });
    }
    Ok(spans)
}

/// A safetensors file's bytes for tests: `header`, then `data_len` zero bytes.
#[doc(hidden)]
pub fn test_bytes(header: &serde_json::Value, data_len: usize) -> Vec<u8> {
    let header = header.to_string();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(std::iter::repeat_n(0u8, data_len));
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, header: &serde_json::Value, data_len: usize) -> std::path::PathBuf {
        let path = dir.join("model.safetensors");
        std::fs::write(&path, test_bytes(header, data_len)).expect("write");
        path
    }

    #[test]
    fn spans_are_absolute_and_the_data_must_fill_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let header = serde_json::json!({
            "a": { "dtype": "F32", "shape": [2], "data_offsets": [0, 8] },
            "b": { "dtype": "F32", "shape": [4], "data_offsets": [8, 24] },
            "__metadata__": { "format": "pt" },
        });
        let base = 8 + header.to_string().len() as u64;
        let spans = read(&write(dir.path(), &header, 24)).expect("sound");
        assert_eq!(spans.len(), 2);
        let b = spans.iter().find(|s| s.name == "b").expect("b");
        assert_eq!((b.start, b.end), (base + 8, base + 24));

        let cut = read(&write(dir.path(), &header, 20)).expect_err("truncated");
        assert_eq!(cut, SafetensorsProblem::DataSize { needed: 24, held: 20 });
        assert!(cut.to_string().contains("truncated"), "{cut}");
        let padded = read(&write(dir.path(), &header, 30)).expect_err("bytes no tensor owns");
        assert_eq!(padded, SafetensorsProblem::DataSize { needed: 24, held: 30 });
    }

    #[test]
    fn hostile_headers_are_refused_without_panic_or_allocation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("model.safetensors");
        std::fs::write(&path, [0xff; 16]).expect("write");
        assert_eq!(read(&path), Err(SafetensorsProblem::HeaderLength(u64::MAX)));
        std::fs::write(&path, [1, 2, 3]).expect("write");
        assert_eq!(read(&path), Err(SafetensorsProblem::NoHeader));

        // Offsets near u64::MAX: checked against the file, never added up past it.
        let huge = serde_json::json!({ "w": { "data_offsets": [u64::MAX - 1, u64::MAX] } });
        let e = read(&write(dir.path(), &huge, 8)).expect_err("offsets past the file");
        assert_eq!(e, SafetensorsProblem::DataSize { needed: u64::MAX, held: 8 });
        let inverted = serde_json::json!({ "w": { "data_offsets": [8, 0] } });
        assert_eq!(read(&write(dir.path(), &inverted, 8)), Err(SafetensorsProblem::Inverted("w".into())));
        let none = serde_json::json!({ "w": { "dtype": "F32" } });
        assert_eq!(read(&write(dir.path(), &none, 8)), Err(SafetensorsProblem::NoOffsets("w".into())));
        std::fs::write(&path, [4, 0, 0, 0, 0, 0, 0, 0, b'n', b'o', b'p', b'e']).expect("write");
        assert!(matches!(read(&path), Err(SafetensorsProblem::NotJson(_))));
    }
}
