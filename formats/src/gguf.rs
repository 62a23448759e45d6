//! A bounded walk over a GGUF file's header, before mistral.rs sees it.
//!
//! GGUF readers trust the lengths written in the file: a string length of 2⁶⁰ makes them try to
//! allocate it, and a file cut short is noticed only when a tensor is read, deep inside model
//! loading. This walk checks every length against the file's size, then checks that every
//! tensor's data lies inside the file, so a truncated download or a random file gets a clear
//! error naming what is wrong, never an abort or a hang.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// The longest metadata string accepted (keys, names, chat templates, tokens).
const MAX_STRING_BYTES: u64 = 16 << 20;

/// What the header says about the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufSummary {
    /// `general.architecture`, e.g. `llama`.
    pub architecture: Option<String>,
    /// `general.name`.
    pub name: Option<String>,
    /// `{architecture}.context_length`.
    pub context_length: Option<u64>,
    /// Number of tensors.
    pub tensor_count: u64,
    /// Each tensor's name and its bytes in the file (absolute offsets, end exclusive).
    pub tensors: Vec<(String, u64, u64)>,
    /// The first tensor in a type llama.cpp runs but candle (mistral.rs) does not (IQ, ternary,
    /// MXFP4): its name and GGML type.
    pub beyond_candle: Option<(String, u32)>,
}

/// Why a file is not a usable GGUF model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GgufProblem {
    /// No GGUF signature.
    #[error("it is not a GGUF file (it does not start with the GGUF signature)")]
    NotGguf,
    /// A version other than 2 or 3.
    #[error("it uses GGUF version {0}, which is not supported (versions 2 and 3 are)")]
    UnsupportedVersion(u32),
    /// A length, count, type or shape that cannot be.
    #[error("its header is damaged: {0}")]
    Corrupt(String),
    /// The tensors need more bytes than the file has.
    #[error("it is truncated: the tensors need {expected} bytes but the file has {actual}")]
    Truncated {
        /// Bytes the header says the file has.
        expected: u64,
        /// Bytes it has.
        actual: u64,
    },
    /// Reading failed.
    #[error("cannot read it: {0}")]
    Io(String),
}

struct Walker<R> {
    reader: R,
    pos: u64,
    len: u64,
}

impl<R: Read> Walker<R> {
    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>, GgufProblem> {
        if n > self.len.saturating_sub(self.pos) {
            return Err(if self.pos + 4096 >= self.len && n < 1 << 20 {
                GgufProblem::Truncated { expected: self.pos.saturating_add(n), actual: self.len }
            } else {
                GgufProblem::Corrupt(format!("{what} claims {n} bytes at offset {}", self.pos))
            });
        }
        // Bounded by the file size checked above.
        let mut buf = vec![0u8; usize::try_from(n).map_err(|_| GgufProblem::Corrupt(what.into()))?];
        self.reader.read_exact(&mut buf).map_err(|e| GgufProblem::Io(e.to_string()))?;
        self.pos += n;
        Ok(buf)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufProblem> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufProblem> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        Ok(u64::from_le_bytes(a))
    }

    fn string(&mut self, what: &str) -> Result<String, GgufProblem> {
        let n = self.u64(what)?;
        // The longest strings real files hold are chat templates of some kilobytes; a length the
        // file could hold but no GGUF writer makes would only cost memory (a 40 GB file could
        // ask for 40 GB).
        if n > MAX_STRING_BYTES {
            return Err(GgufProblem::Corrupt(format!(
                "{what} claims a string of {n} bytes at offset {}, more than any GGUF string holds",
                self.pos
            )));
        }
        let b = self.bytes(n, what)?;
        Ok(String::from_utf8_lossy(&b).trim_end_matches('\0').to_string())
    }

    /// Reads one metadata value; returns it when it is a string or an integer we care about.
    fn value(&mut self, ty: u32, key: &str, depth: u8) -> Result<Value, GgufProblem> {
        let fixed = |ty| match ty {
            0 | 1 | 7 => Some(1u64),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            _ => None,
        };
        match ty {
            8 => Ok(Value::String(self.string(key)?)),
            9 => {
                if depth > 2 {
                    return Err(GgufProblem::Corrupt(format!("metadata {key} nests arrays too deeply")));
                }
                let item_ty = self.u32(key)?;
                let count = self.u64(key)?;
                if let Some(size) = fixed(item_ty) {
                    let total = count
                        .checked_mul(size)
                        .ok_or_else(|| GgufProblem::Corrupt(format!("metadata {key} is impossibly large")))?;
                    self.skip(total, key)?;
                } else {
                    // Each item takes at least 8 bytes (a string length); reject counts that
                    // cannot fit before looping over them.
                    if count > self.len.saturating_sub(self.pos) / 8 + 1 {
                        return Err(GgufProblem::Corrupt(format!("metadata {key} claims {count} items")));
                    }
                    for _ in 0..count {
                        self.value(item_ty, key, depth + 1)?;
                    }
                }
                Ok(Value::Other)
            }
            4 => Ok(Value::Int(u64::from(self.u32(key)?))),
            5 => Ok(Value::Int(u64::from(self.u32(key)?))),
            10 | 11 => Ok(Value::Int(self.u64(key)?)),
            t => match fixed(t) {
                Some(size) => {
                    self.skip(size, key)?;
                    Ok(Value::Other)
                }
                None => Err(GgufProblem::Corrupt(format!("metadata {key} has unknown type {t}"))),
            },
        }
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), GgufProblem> {
        if n > self.len.saturating_sub(self.pos) {
            return Err(GgufProblem::Truncated { expected: self.pos.saturating_add(n), actual: self.len });
        }
        let copied = std::io::copy(&mut (&mut self.reader).take(n), &mut std::io::sink())
            .map_err(|e| GgufProblem::Io(e.to_string()))?;
        if copied != n {
            return Err(GgufProblem::Corrupt(format!("{what}: short read")));
        }
        self.pos += n;
        Ok(())
    }
}

/// Elements per block and bytes per block of the GGML tensor types llama.cpp can run (sizes
/// as in ggml's `type_traits`).
fn ggml_block(ty: u32) -> Option<(u64, u64)> {
    Some(match ty {
        0 => (1, 4),      // F32
        1 => (1, 2),      // F16
        30 => (1, 2),     // BF16
        2 => (32, 18),    // Q4_0
        3 => (32, 20),    // Q4_1
        6 => (32, 22),    // Q5_0
        7 => (32, 24),    // Q5_1
        8 => (32, 34),    // Q8_0
        9 => (32, 36),    // Q8_1
        10 => (256, 84),  // Q2_K
        11 => (256, 110), // Q3_K
        12 => (256, 144), // Q4_K
        13 => (256, 176), // Q5_K
        14 => (256, 210), // Q6_K
        15 => (256, 292), // Q8_K
        16 => (256, 66),  // IQ2_XXS
        17 => (256, 74),  // IQ2_XS
        18 => (256, 98),  // IQ3_XXS
        19 => (256, 50),  // IQ1_S
        20 => (32, 18),   // IQ4_NL
        21 => (256, 110), // IQ3_S
        22 => (256, 82),  // IQ2_S
        23 => (256, 136), // IQ4_XS
        29 => (256, 56),  // IQ1_M
        34 => (256, 54),  // TQ1_0
        35 => (256, 66),  // TQ2_0
        39 => (32, 17),   // MXFP4
        _ => return None,
    })
}

/// Whether candle (mistral.rs) has the type: the K-quants and older, not the IQ family.
fn candle_runs(ty: u32) -> bool {
    matches!(ty, 0..=3 | 6..=15 | 30)
}

/// The model's shape numbers, as far as the file gives them, must make sense before a loader
/// divides by them (a zero head count is a division by zero inside llama.cpp).
fn check_shape(number: &dyn Fn(&str) -> Option<u64>) -> Result<(), GgufProblem> {
    let bad = |what: &str| GgufProblem::Corrupt(format!("its metadata gives an impossible {what}"));
    for key in ["block_count", "embedding_length", "attention.head_count", "context_length"] {
        if number(key) == Some(0) {
            return Err(bad(key));
        }
    }
    if let (Some(embedding), Some(heads)) = (number("embedding_length"), number("attention.head_count")) {
        if embedding % heads != 0 {
            return Err(bad("head count (it does not divide the embedding length)"));
        }
        if let Some(kv_heads) = number("attention.head_count_kv") {
            if kv_heads == 0 || heads % kv_heads != 0 {
                return Err(bad("key-value head count"));
            }
        }
    }
    if number("block_count").is_some_and(|n| n > 4096) || number("context_length").is_some_and(|n| n > 1 << 24) {
        return Err(bad("size"));
    }
    Ok(())
}

enum Value {
    String(String),
    Int(u64),
    Other,
}

/// Walks the header of the GGUF file at `path` and checks that all tensor data is present.
pub fn check(path: &Path) -> Result<GgufSummary, GgufProblem> {
    let file = File::open(path).map_err(|e| GgufProblem::Io(e.to_string()))?;
    let len = file.metadata().map_err(|e| GgufProblem::Io(e.to_string()))?.len();
    check_reader(BufReader::new(file), len)
}

/// [`check`] on any reader of `len` bytes (a file, or bytes in memory).
pub fn check_reader(reader: impl Read + Seek, len: u64) -> Result<GgufSummary, GgufProblem> {
    let mut w = Walker { reader, pos: 0, len };

    if len < 4 || w.bytes(4, "signature")? != b"GGUF" {
        return Err(GgufProblem::NotGguf);
    }
    let version = w.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(GgufProblem::UnsupportedVersion(version));
    }
    let tensor_count = w.u64("tensor count")?;
    let kv_count = w.u64("metadata count")?;
    // Each entry takes well over 8 bytes; counts beyond the file size are damage.
    if tensor_count > len / 8 || kv_count > len / 8 {
        return Err(GgufProblem::Corrupt(format!(
            "it claims {tensor_count} tensors and {kv_count} metadata entries in {len} bytes"
        )));
    }

    let mut summary = GgufSummary {
        architecture: None,
        name: None,
        context_length: None,
        tensor_count,
        tensors: Vec::new(),
        beyond_candle: None,
    };
    let mut alignment = 32u64;
    let mut numbers = Vec::new();
    for _ in 0..kv_count {
        let key = w.string("metadata key")?;
        let ty = w.u32(&key)?;
        match (key.as_str(), w.value(ty, &key, 0)?) {
            ("general.architecture", Value::String(s)) => summary.architecture = Some(s),
            ("general.name", Value::String(s)) => summary.name = Some(s),
            ("general.alignment", Value::Int(a)) if a > 0 && a.is_power_of_two() => alignment = a,
            (_, Value::Int(n)) => numbers.push((key.clone(), n)),
            _ => {}
        }
    }
    if let Some(arch) = &summary.architecture {
        let number = |name: &str| {
            let wanted = format!("{arch}.{name}");
            numbers.iter().find(|(k, _)| *k == wanted).map(|(_, n)| *n)
        };
        check_shape(&number)?;
        summary.context_length = number("context_length");
    }

    let mut data_end = 0u64;
    for _ in 0..tensor_count {
        let name = w.string("tensor name")?;
        let dims = w.u32(&name)?;
        if dims > 8 {
            return Err(GgufProblem::Corrupt(format!("tensor {name} claims {dims} dimensions")));
        }
        let mut elements = 1u64;
        for _ in 0..dims {
            elements = elements
                .checked_mul(w.u64(&name)?)
                .ok_or_else(|| GgufProblem::Corrupt(format!("tensor {name} is impossibly large")))?;
        }
        let ty = w.u32(&name)?;
        let offset = w.u64(&name)?;
        let (block, block_bytes) = ggml_block(ty).ok_or_else(|| {
            GgufProblem::Corrupt(format!(
                "tensor {name} uses GGML type {ty}, which neither engine runs; choose a Q4_K_M, Q5_K_M, \
                 Q6_K or Q8_0 file"
            ))
        })?;
        if !candle_runs(ty) && summary.beyond_candle.is_none() {
            summary.beyond_candle = Some((name.clone(), ty));
        }
        if dims > 0 && !elements.is_multiple_of(block) {
            return Err(GgufProblem::Corrupt(format!(
                "tensor {name} has {elements} elements, not a whole number of its type's blocks of {block}"
            )));
        }
        let bytes = elements
            .div_ceil(block)
            .checked_mul(block_bytes)
            .and_then(|b| b.checked_add(offset))
            .ok_or_else(|| GgufProblem::Corrupt(format!("tensor {name} is impossibly large")))?;
        data_end = data_end.max(bytes);
        summary.tensors.push((name, offset, bytes));
    }
    let data_start = w.pos.div_ceil(alignment) * alignment;
    for (_, start, end) in &mut summary.tensors {
        *start = start.saturating_add(data_start);
        *end = end.saturating_add(data_start);
    }
    let expected = data_start.saturating_add(data_end);
    if expected > len {
        return Err(GgufProblem::Truncated { expected, actual: len });
    }
    // Touch the reader so a seek error on an odd file shows here rather than in the loader.
    w.reader.seek(SeekFrom::Start(0)).map_err(|e| GgufProblem::Io(e.to_string()))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A string length the file could hold but no writer makes is refused before anything is
    /// allocated (a sparse 1 GiB file here: no disk is used).
    #[test]
    fn a_huge_metadata_string_is_refused_without_allocating_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long-string.gguf");
        let mut header = b"GGUF".to_vec();
        header.extend(3u32.to_le_bytes()); // version
        header.extend(0u64.to_le_bytes()); // tensors
        header.extend(1u64.to_le_bytes()); // metadata entries
        header.extend(((1u64 << 30) - 64).to_le_bytes()); // the key's length: most of the file
        std::fs::write(&path, &header).unwrap();
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(1 << 30).unwrap();
        match check(&path) {
            Err(GgufProblem::Corrupt(why)) => assert!(why.contains("more than any GGUF string holds"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
