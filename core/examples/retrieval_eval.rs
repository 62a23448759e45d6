//! Retrieval benchmark: recall@5 and MRR of code search (or of a document's follow-up page
//! search) by keywords (BM25) alone, vectors alone and hybrid, on a question set written from
//! a code base's source (or a PDF), with the embedding throughput and query latency.
//! `bench/retrieval.sh` runs it on each set.
//!
//!   retrieval_eval SET.json SOURCE_DIR     a code set (prints one JSON object)
//!   retrieval_eval SET.json FILE.pdf       a document set: "expect_pages" per question

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use altiplano_core::codebase::{CodeIndex, Ranking};
use altiplano_core::documents::followup::{self, Dense};
use altiplano_core::engine::embed::Embedder;

const RANKINGS: [(&str, Ranking); 3] =
    [("bm25", Ranking::Keywords), ("dense", Ranking::Dense), ("hybrid", Ranking::Best)];

fn main() -> std::process::ExitCode {
    // The document reader's child process is this program again.
    if let Some(code) = altiplano_core::documents::run_child_if_requested() {
        return code;
    }
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("retrieval_eval: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [set, source] = args.as_slice() else {
        return Err("usage: retrieval_eval SET.json SOURCE_DIR|FILE.pdf".into());
    };
    if Path::new(source).is_file() {
        return tokio::runtime::Runtime::new()?.block_on(documents(set, Path::new(source)));
    }
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
    let (embedder, _copies) = embedder()?;
    let embedder = Arc::new(embedder);
    let data = tempfile::tempdir()?;
    let index = CodeIndex::open(data.path(), &PathBuf::from(source))?.with_embedder(Arc::clone(&embedder));
    let report = index.update(|_| {})?;

    let mut out = serde_json::json!({
        "engine": embedder.engine(),
        "set": set["source"]["name"],
        "version": set["source"]["version"],
        "questions": questions.len(),
        "chunks": report.chunks_total,
        "chunks_per_second": report.chunks_embedded as f64 / (report.embed_ms.max(1) as f64 / 1000.0),
    });
    for (name, ranking) in RANKINGS {
        out[name] = score(&questions, |question, expect| {
            let hits = index.search_ranked(question, 10, ranking)?;
            Ok(hits.iter().position(|h| expect.contains(&h.path)))
        })?;
    }
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

/// Follow-up page search on a PDF: the document opened as the app opens it, its pages embedded
/// as a first summary embeds them, each question ranked as a follow-up ranks (no summary nodes).
async fn documents(set: &str, file: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use altiplano_core::documents::{saved, vectors};
    let set: serde_json::Value = serde_json::from_slice(&std::fs::read(set)?)?;
    let questions: Vec<(String, Vec<u32>)> = set["questions"]
        .as_array()
        .ok_or("the set has no questions")?
        .iter()
        .map(|q| {
            let expect =
                q["expect_pages"].as_array().into_iter().flatten().filter_map(|p| p.as_u64().map(|p| p as u32));
            (q["q"].as_str().unwrap_or_default().to_owned(), expect.collect())
        })
        .collect();
    let (embedder, _copies) = embedder()?;
    let embedder = Arc::new(embedder);
    let data = tempfile::tempdir()?;
    let store = altiplano_core::store::Store::open(&data.path().join("db.sqlite3")).await?;
    let (doc, _) = altiplano_core::documents::open(&store, None, file).await?;
    let pages = saved::pages(&store, doc.id).await?;
    let started = Instant::now();
    let mut windows = 0;
    let cancel = altiplano_core::engine::CancellationToken::new();
    let page_vectors =
        vectors::ensure(&store, doc.id, &pages, embedder.clone(), &cancel, |done, _| windows = done).await?;
    let embed_seconds = started.elapsed().as_secs_f64();
    // Built once, as the app keeps it between a document's questions.
    let started = Instant::now();
    let index = followup::PageIndex::build(&pages, &[])?;
    let index_ms = started.elapsed().as_secs_f64() * 1000.0;

    let mut out = serde_json::json!({
        "engine": embedder.engine(),
        "set": set["source"]["package"],
        "version": set["source"]["version"],
        "file": file.file_name().map(|n| n.to_string_lossy().into_owned()),
        "questions": questions.len(),
        "pages": pages.len(),
        "chunks": windows,
        "chunks_per_second": windows as f64 / embed_seconds.max(1e-3),
        "index_ms": index_ms,
    });
    for (name, ranking) in RANKINGS {
        out[name] = score(&questions, |question, expect| {
            // Keywords alone do not wait for the question's vector.
            let query = if ranking == Ranking::Keywords { Vec::new() } else { embedder.embed_query(question)? };
            let dense =
                (ranking != Ranking::Keywords).then_some(Dense { query: &query, pages: &page_vectors, nodes: None });
            let hits = index.rank_by(question, 10, dense, ranking)?;
            Ok(hits.iter().position(|h| expect.contains(&h.first_page)))
        })?;
    }
    // Tuning: RETRIEVAL_EVAL_WINDOWS="150/120+60/45" scores hybrid with pages cut into those
    // windows (words/stride; several sizes together: a page scores by its best window of any).
    if let Ok(spec) = std::env::var("RETRIEVAL_EVAL_WINDOWS") {
        let sizes: Vec<(usize, usize)> = spec
            .split('+')
            .filter_map(|s| s.split_once('/'))
            .filter_map(|(w, s)| Some((w.trim().parse().ok()?, s.trim().parse().ok()?)))
            .filter(|&(w, s)| w > 0 && s > 0)
            .collect();
        let mut by_page = std::collections::BTreeMap::new();
        let started = Instant::now();
        let mut count = 0;
        for page in &pages {
            let words: Vec<&str> = page.text.split_whitespace().collect();
            let mut texts = Vec::new();
            for &(size, stride) in &sizes {
                let mut start = 0;
                while start < words.len() {
                    let end = (start + size).min(words.len());
                    texts.push(words[start..end].join(" "));
                    if end == words.len() {
                        break;
                    }
                    start += stride;
                }
            }
            count += texts.len();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            if !refs.is_empty() {
                by_page.insert(page.number, embedder.embed(&refs)?);
            }
        }
        let tuned = vectors::PageVectors::from_pages(by_page);
        let mut scored = score(&questions, |question, expect| {
            let query = embedder.embed_query(question)?;
            let dense = Some(Dense { query: &query, pages: &tuned, nodes: None });
            let hits = index.rank_by(question, 10, dense, Ranking::Best)?;
            Ok(hits.iter().position(|h| expect.contains(&h.first_page)))
        })?;
        scored["windows"] = count.into();
        scored["windows_per_second"] = (count as f64 / started.elapsed().as_secs_f64().max(1e-3)).into();
        out[format!("hybrid_windows_{spec}")] = scored;
    }
    // Tuning: RETRIEVAL_EVAL_CONVEX=0.5,0.7 scores a convex mix of normalized scores with those
    // shares of the vectors, in place of rank fusion.
    let shares = std::env::var("RETRIEVAL_EVAL_CONVEX").unwrap_or_default();
    for share in shares.split(',').filter_map(|w| w.trim().parse::<f32>().ok()) {
        out[format!("convex_{share}")] = score(&questions, |question, expect| {
            let query = embedder.embed_query(question)?;
            let dense = Dense { query: &query, pages: &page_vectors, nodes: None };
            let hits = index.rank_convex(question, 10, dense, share)?;
            Ok(hits.iter().position(|h| expect.contains(&h.first_page)))
        })?;
    }
    // Tuning: RETRIEVAL_EVAL_WEIGHTS=0.25,0.5 scores the fusion with those keyword weights too.
    let weights = std::env::var("RETRIEVAL_EVAL_WEIGHTS").unwrap_or_default();
    for weight in weights.split(',').filter_map(|w| w.trim().parse::<f32>().ok()) {
        out[format!("hybrid_keywords_{weight}")] = score(&questions, |question, expect| {
            let query = embedder.embed_query(question)?;
            let dense = Some(Dense { query: &query, pages: &page_vectors, nodes: None });
            let hits = index.rank_weighted(question, 10, dense, Ranking::Best, weight)?;
            Ok(hits.iter().position(|h| expect.contains(&h.first_page)))
        })?;
    }
    println!("{}", serde_json::to_string(&out)?);
    store.close().await;
    Ok(())
}

/// Recall@5, MRR and latency over `questions` of one ranking, `first_hit` giving the place
/// (0-based) of the first expected hit among a question's results, and timed.
fn score<E>(
    questions: &[(String, Vec<E>)],
    mut first_hit: impl FnMut(&str, &[E]) -> Result<Option<usize>, Box<dyn std::error::Error>>,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let (mut found, mut reciprocal, mut latencies) = (0usize, 0.0f64, Vec::new());
    let mut missed = Vec::new();
    for (question, expect) in questions {
        let started = Instant::now();
        let first = first_hit(question, expect)?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        if first.is_some_and(|r| r < 5) {
            found += 1;
        } else {
            // With the place of its first right answer (1-based) when it is in the top 10.
            missed.push(serde_json::json!({ "q": question, "first": first.map(|r| r + 1) }));
        }
        reciprocal += first.map_or(0.0, |r| 1.0 / (r as f64 + 1.0));
    }
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| latencies.get(((latencies.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
    Ok(serde_json::json!({
        "recall_at_5": found as f64 / questions.len().max(1) as f64,
        "mrr": reciprocal / questions.len().max(1) as f64,
        "query_ms_p50": pick(0.5),
        "query_ms_p90": pick(0.9),
        "missed": missed,
    }))
}

/// The model to score: `ALTIPLANO_EMBEDDING_MODEL`'s folder (or GGUF file), else the starter;
/// run as the catalog's entry `RETRIEVAL_EVAL_RECIPE` says (its pooling and prefixes) when that
/// is set; on the engine search would run it on (a safetensors BERT folder from its GGUF copy
/// on llama.cpp, made in a temporary folder; `ALTIPLANO_EMBEDDING_ENGINE=candle` for candle).
/// The copy's folder is returned with it, to live as long as it.
fn embedder() -> Result<(Embedder, tempfile::TempDir), Box<dyn std::error::Error>> {
    let dir = altiplano_core::config::embedding_override()
        .flatten()
        .or_else(altiplano_core::config::starter_embedding_dir)
        .ok_or("no embedding model: run models/fetch-starter.sh")?;
    let recipe = match std::env::var("RETRIEVAL_EVAL_RECIPE") {
        Ok(id) if !id.is_empty() => {
            let catalog = altiplano_core::catalog::Catalog::builtin()?;
            let model = catalog.embedding(&id).ok_or_else(|| format!("{id} is not a catalog embedding model"))?;
            altiplano_core::engine::embed::Recipe::of(model)
        }
        _ => altiplano_core::engine::embed::Recipe::from_folder(&dir),
    };
    let copies = tempfile::tempdir()?;
    let resolved = altiplano_core::search_models::Resolved { id: None, dir, recipe };
    Ok((altiplano_core::search_models::load_resolved(&resolved, copies.path())?, copies))
}
