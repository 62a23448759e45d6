//! How far a model load has got, in layers.
//!
//! mistral.rs 0.8.1 reports loading only through progress bars it draws on a terminal; it has
//! no callback. But it reads the weights in layer order, and where each layer's tensors lie in
//! the files is known from their headers ([`Layout`]). So a watcher thread looks at what the
//! loader has touched, from the outside, on Linux:
//!
//! - safetensors files are memory-mapped: a layer has been read once a page holding one of its
//!   tensors is present in this process's page tables (`/proc/self/pagemap`, whose
//!   present bit is readable without privileges);
//! - GGUF files are read through a file descriptor: layers whose bytes lie before the
//!   descriptor's position (`/proc/self/fdinfo`) have been read.
//!
//! Elsewhere the layer count stays at zero until the load finishes, and only the stage moves.

use std::collections::HashMap;
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

/// What a load is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadStage {
    /// Checking the files before the engine reads them.
    #[default]
    Checking,
    /// Writing a copy of a GGUF file in a quantization the CPU has fast kernels for (once per
    /// file; see `engine/repack.rs`), layer by layer.
    Converting,
    /// Reading the weights layer by layer (and quantizing them, for in-situ quantization).
    Layers,
    /// Every layer is read; the engine is finishing (writing the quantization cache, setting
    /// up the scheduler).
    Finishing,
    /// Loaded.
    Done,
}

/// Progress of a model load, sent over a [`watch`] channel in [`super::LoadOptions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct LoadProgress {
    /// What the load is doing.
    pub stage: LoadStage,
    /// Layers read so far.
    pub layers_done: u32,
    /// Layers of the model (0 while unknown).
    pub layers_total: u32,
    /// Whether the weights are being quantized as they load.
    pub quantizing: bool,
}

/// Where each layer's tensors lie in the model's files.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    files: Vec<FileLayout>,
    layers: u32,
}

#[derive(Debug, Clone)]
struct FileLayout {
    /// Canonical path, as `/proc/self/maps` and `/proc/self/fd` show it.
    path: PathBuf,
    spans: Vec<Span>,
}

/// One tensor: bytes `start..end` of its file, in layer `layer`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub start: u64,
    pub end: u64,
    pub layer: u32,
}

impl Layout {
    /// The number of layers.
    pub fn layers(&self) -> u32 {
        self.layers
    }

    /// The layout of a GGUF file whose tensors (`blk.N.…`) lie at `spans`.
    pub fn gguf(path: &Path, tensors: &[(String, u64, u64)]) -> Self {
        Self::from_named(path, tensors, "blk.")
    }

    /// The layout of a safetensors folder's weight files (`model.layers.N.…`), read from their
    /// headers. Unreadable headers give an empty layout (no layer counts), never an error:
    /// the load itself reports bad files.
    pub fn safetensors(shards: &[PathBuf]) -> Self {
        let mut layout = Layout::default();
        for shard in shards {
            let Ok(spans) = super::safetensors::read(shard) else { continue };
            let tensors: Vec<(String, u64, u64)> = spans.into_iter().map(|t| (t.name, t.start, t.end)).collect();
            let file = Self::from_named(shard, &tensors, "model.layers.");
            layout.layers = layout.layers.max(file.layers);
            layout.files.extend(file.files);
        }
        layout
    }

    fn from_named(path: &Path, tensors: &[(String, u64, u64)], prefix: &str) -> Self {
        let spans: Vec<Span> = tensors
            .iter()
            .filter_map(|(name, start, end)| {
                let layer = name.strip_prefix(prefix)?.split('.').next()?.parse::<u32>().ok()?;
                Some(Span { start: *start, end: *end, layer })
            })
            .collect();
        let layers = spans.iter().map(|s| s.layer + 1).max().unwrap_or(0);
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        Self { files: vec![FileLayout { path, spans }], layers }
    }

    /// How many layers the loader has read so far, as far as can be seen.
    pub fn layers_read(&self) -> u32 {
        if self.layers == 0 {
            return 0;
        }
        let mut seen = vec![false; self.layers as usize];
        mark_mapped(&self.files, &mut seen);
        mark_read(&self.files, &mut seen);
        seen.iter().filter(|s| **s).count() as u32
    }
}

/// Marks layers with a page of a tensor present in one of this process's mappings of the file.
fn mark_mapped(files: &[FileLayout], seen: &mut [bool]) {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return };
    let by_path: HashMap<&Path, &FileLayout> = files.iter().map(|f| (f.path.as_path(), f)).collect();
    let Ok(mut pagemap) = std::fs::File::open("/proc/self/pagemap") else { return };
    let page = page_size();
    for line in maps.lines() {
        // start-end perms offset dev inode path
        let mut fields = line.splitn(6, ' ');
        let (Some(range), Some(_), Some(offset), Some(_), Some(_), Some(path)) =
            (fields.next(), fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Some(file) = by_path.get(Path::new(path.trim_start())) else { continue };
        let Some((start, end)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end), Ok(offset)) =
            (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16), u64::from_str_radix(offset, 16))
        else {
            continue;
        };
        for span in &file.spans {
            if seen[span.layer as usize] || span.end <= span.start {
                continue;
            }
            // The tensor's last byte: the loader copies a tensor front to back.
            let byte = span.end - 1;
            if byte < offset || byte - offset >= end - start {
                continue;
            }
            let address = start + (byte - offset);
            if page_present(&mut pagemap, address / page) {
                seen[span.layer as usize] = true;
            }
        }
    }
}

fn page_present(pagemap: &mut std::fs::File, page: u64) -> bool {
    let mut entry = [0u8; 8];
    pagemap.seek(SeekFrom::Start(page * 8)).is_ok()
        && pagemap.read_exact(&mut entry).is_ok()
        && u64::from_le_bytes(entry) & (1 << 63) != 0
}

/// Marks layers lying wholly before the position of a descriptor open on the file.
fn mark_read(files: &[FileLayout], seen: &mut [bool]) {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else { return };
    for fd in fds.flatten() {
        let Ok(target) = std::fs::read_link(fd.path()) else { continue };
        let Some(file) = files.iter().find(|f| f.path == target) else { continue };
        let info = std::fs::read_to_string(Path::new("/proc/self/fdinfo").join(fd.file_name())).unwrap_or_default();
        let Some(pos) = info.lines().find_map(|l| l.strip_prefix("pos:")).and_then(|p| p.trim().parse::<u64>().ok())
        else {
            continue;
        };
        let mut last_end: HashMap<u32, u64> = HashMap::new();
        for span in &file.spans {
            let end = last_end.entry(span.layer).or_default();
            *end = (*end).max(span.end);
        }
        for (layer, end) in last_end {
            if end <= pos {
                seen[layer as usize] = true;
            }
        }
    }
}

/// The kernel's page size, from `/proc/self/smaps` (4 KiB when it cannot be read).
fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        let Ok(file) = std::fs::File::open("/proc/self/smaps") else { return 4096 };
        std::io::BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("KernelPageSize:").map(|v| v.trim().trim_end_matches("kB").trim().to_owned()))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(4096)
    })
}

/// Sends [`LoadProgress`] while a load runs; stopping it (or dropping it) ends the thread.
#[derive(Debug)]
pub(crate) struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    /// Starts watching `layout` every `every`, sending to `sender` when something changes.
    pub fn start(layout: Layout, quantizing: bool, sender: watch::Sender<LoadProgress>, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let total = layout.layers();
        sender.send_replace(LoadProgress { stage: LoadStage::Layers, layers_done: 0, layers_total: total, quantizing });
        let thread = std::thread::Builder::new()
            .name("load-progress".into())
            .spawn(move || {
                let mut done = 0;
                while !stopped.load(Ordering::Relaxed) {
                    // Pages can be unmapped again once the engine has its tensors; never go back.
                    let now = layout.layers_read().max(done);
                    if now != done {
                        done = now;
                        let stage = if done == total { LoadStage::Finishing } else { LoadStage::Layers };
                        sender.send_replace(LoadProgress { stage, layers_done: done, layers_total: total, quantizing });
                    }
                    std::thread::sleep(every);
                }
            })
            .ok();
        Self { stop, thread }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gguf_like(dir: &Path) -> (PathBuf, Vec<(String, u64, u64)>) {
        let path = dir.join("model.gguf");
        std::fs::File::create(&path).and_then(|mut f| f.write_all(&vec![7u8; 40_000])).expect("write");
        let tensors = vec![
            ("token_embd.weight".to_owned(), 1_000, 5_000),
            ("blk.0.attn_q.weight".to_owned(), 5_000, 9_000),
            ("blk.0.ffn_up.weight".to_owned(), 9_000, 15_000),
            ("blk.1.attn_q.weight".to_owned(), 15_000, 20_000),
            ("blk.1.ffn_up.weight".to_owned(), 20_000, 26_000),
            ("blk.2.attn_q.weight".to_owned(), 26_000, 33_000),
            ("output.weight".to_owned(), 33_000, 40_000),
        ];
        (path, tensors)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_reader_position_counts_the_layers_behind_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, tensors) = gguf_like(dir.path());
        let layout = Layout::gguf(&path, &tensors);
        assert_eq!(layout.layers(), 3);
        assert_eq!(layout.layers_read(), 0, "nothing is open yet");

        let mut reader = std::fs::File::open(&path).expect("open");
        reader.seek(SeekFrom::Start(8_000)).expect("seek");
        assert_eq!(layout.layers_read(), 0, "layer 0 is half read");
        reader.seek(SeekFrom::Start(15_000)).expect("seek");
        assert_eq!(layout.layers_read(), 1);
        reader.seek(SeekFrom::Start(33_000)).expect("seek");
        assert_eq!(layout.layers_read(), 3);
        drop(reader);
        assert_eq!(layout.layers_read(), 0, "a closed file shows nothing; the watcher keeps its maximum");
    }

    #[test]
    fn safetensors_layers_come_from_the_headers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let header = serde_json::json!({
            "model.embed_tokens.weight": { "dtype": "F32", "shape": [4], "data_offsets": [0, 16] },
            "model.layers.0.mlp.up_proj.weight": { "dtype": "F32", "shape": [4], "data_offsets": [16, 32] },
            "model.layers.11.mlp.up_proj.weight": { "dtype": "F32", "shape": [4], "data_offsets": [32, 48] },
            "__metadata__": { "format": "pt" },
        });
        let path = dir.path().join("model.safetensors");
        std::fs::write(&path, crate::engine::safetensors::test_bytes(&header, 48)).expect("write");
        let layout = Layout::safetensors(&[path, dir.path().join("missing.safetensors")]);
        assert_eq!(layout.layers(), 12, "layer numbers run to 11");
        assert_eq!(layout.layers_read(), 0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_watcher_reports_each_change_and_stops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, tensors) = gguf_like(dir.path());
        let (tx, mut rx) = watch::channel(LoadProgress::default());
        let watcher = Watcher::start(Layout::gguf(&path, &tensors), false, tx, Duration::from_millis(5));
        assert_eq!(rx.borrow_and_update().layers_total, 3);
        let mut reader = std::fs::File::open(&path).expect("open");
        reader.seek(SeekFrom::Start(40_000)).expect("seek");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let last = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|p| p.layers_done == 3))
                .await
                .expect("the watcher saw the reader")
                .map(|p| *p)
                .expect("sender alive")
        });
        assert_eq!(last.stage, LoadStage::Finishing);
        drop(watcher);
        assert!(rx.has_changed().is_err(), "the thread ended and let go of the channel");
    }
}
