//! Retrieval benchmark: recall@5 and MRR of code search by keywords (BM25) alone, vectors
//! alone and hybrid, on a question set written from a code base's source, with the
//! embedding throughput and query latency. `bench/retrieval.sh` runs it on each set.
//!
//!   retrieval_eval SET.json SOURCE_DIR     (prints one JSON object)

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use altiplano_core::codebase::{CodeIndex, Ranking};
use altiplano_core::engine::embed::Embedder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [set, source] = args.as_slice() else {
        return Err("usage: retrieval_eval SET.json SOURCE_DIR".into());
    };
    let set: serde_json::Value = serde_json::from_slice(&std::fs::read(set)?)?;
    let questions: Vec<(String, Vec<String>)> = set["questions"]
        .as_array()
        .ok_or("the set has no questions")?
        .iter()
        .map(|q| {
            let expect = q["expect"].as_array().into_iter().flatten().filter_map(|p| p.as_str().map(str::to_owned));
            (q["q"].as_str().unwrap_or_default().to_owned(), expect.collect())
        })
        .collect();
    let model = altiplano_core::config::embedding_model().ok_or("no embedding model: run models/fetch-starter.sh")?;
    let embedder = Arc::new(Embedder::load(&model)?);
    let data = tempfile::tempdir()?;
    let index = CodeIndex::open(data.path(), &PathBuf::from(source))?.with_embedder(embedder);
    let report = index.update(|_| {})?;

    let mut out = serde_json::json!({
        "set": set["source"]["name"],
        "version": set["source"]["version"],
        "questions": questions.len(),
        "chunks": report.chunks_total,
        "chunks_per_second": report.chunks_embedded as f64 / (report.embed_ms.max(1) as f64 / 1000.0),
    });
    for (name, ranking) in [("bm25", Ranking::Keywords), ("dense", Ranking::Dense), ("hybrid", Ranking::Best)] {
        let (mut found, mut reciprocal, mut latencies) = (0usize, 0.0f64, Vec::new());
        let mut missed = Vec::new();
        for (question, expect) in &questions {
            let started = Instant::now();
            let hits = index.search_ranked(question, 10, ranking)?;
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            let first = hits.iter().position(|h| expect.contains(&h.path));
            if first.is_some_and(|r| r < 5) {
                found += 1;
            } else {
                missed.push(question.clone());
            }
            reciprocal += first.map_or(0.0, |r| 1.0 / (r as f64 + 1.0));
        }
        latencies.sort_by(f64::total_cmp);
        let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
        out[name] = serde_json::json!({
            "recall_at_5": found as f64 / questions.len() as f64,
            "mrr": reciprocal / questions.len() as f64,
            "query_ms_p50": pick(0.5),
            "query_ms_p90": pick(0.9),
            "missed": missed,
        });
    }
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}
