//! Benchmark: indexing and searching a large real code base.
//!
//! `code_index DIR` indexes DIR from scratch into a temporary data folder, re-indexes with no
//! change, re-indexes after appending a line to one file, and runs a set of questions, then
//! prints one JSON object with files/s, MB/s, the re-index times and query latencies.
//! `bench/code_index.sh` builds the corpus (copies of real crates' sources) and records it.

use std::time::Instant;

use altiplano_core::codebase::CodeIndex;

const QUERIES: &[&str] = &[
    "where is the tensor matmul implemented",
    "how are segments merged in the index",
    "parse a GGUF file header",
    "tokenizer chat template",
    "async runtime spawn blocking task",
    "how is a sqlite connection opened",
    "quantized matrix multiplication kernel",
    "error when the file is truncated",
    "cpu feature detection avx2",
    "serialize a struct to json",
];

fn main() -> anyhow::Result<()> {
    let dir =
        std::path::PathBuf::from(std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: code_index DIR"))?);
    let data = tempfile::tempdir()?;
    let index = CodeIndex::open(data.path(), &dir)?;

    let cold = index.update(|_| {})?;
    let started = Instant::now();
    let unchanged = index.update(|_| {})?;
    let no_change_ms = started.elapsed().as_secs_f64() * 1000.0;

    // Change one file: the first indexed Rust file the walk finds.
    let victim = walk_first_rs(&dir).ok_or_else(|| anyhow::anyhow!("no .rs file under {}", dir.display()))?;
    let original = std::fs::read(&victim)?;
    let mut changed = original.clone();
    changed.extend_from_slice(b"\n// benchmark edit\n");
    std::fs::write(&victim, &changed)?;
    let started = Instant::now();
    let one = index.update(|_| {})?;
    let one_change_ms = started.elapsed().as_secs_f64() * 1000.0;
    std::fs::write(&victim, &original)?;

    let mut latencies = Vec::new();
    for _ in 0..3 {
        for q in QUERIES {
            let started = Instant::now();
            let hits = index.search(q, 10)?;
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            assert!(!hits.is_empty(), "no hits for {q}");
        }
    }
    latencies.sort_by(f64::total_cmp);
    let secs = cold.elapsed_ms as f64 / 1000.0;
    let report = serde_json::json!({
        "files_seen": cold.files_seen,
        "files_indexed": cold.files_indexed,
        "files_skipped": cold.skipped_total(),
        "skipped": cold.skipped,
        "mb_indexed": cold.bytes_indexed as f64 / 1e6,
        "chunks": cold.chunks_total,
        "cold_seconds": secs,
        "files_per_second": cold.files_indexed as f64 / secs,
        "mb_per_second": cold.bytes_indexed as f64 / 1e6 / secs,
        "no_change_reindex_ms": no_change_ms,
        "no_change_files_read": unchanged.files_read,
        "one_change_reindex_ms": one_change_ms,
        "one_change_files_read": one.files_read,
        "query_ms_median": latencies[latencies.len() / 2],
        "query_ms_p90": latencies[latencies.len() * 9 / 10],
        "queries": latencies.len(),
    });
    println!("{report}");
    Ok(())
}

fn walk_first_rs(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d).ok()?.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                return Some(p);
            }
        }
    }
    None
}
