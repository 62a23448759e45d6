//! Shared helpers for the integration tests: the real starter model and temporary data folders.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

/// The starter model fetched by `models/fetch-starter.sh`.
pub fn starter_model() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/starter/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "the starter model is missing at {}; run models/fetch-starter.sh (the test command does)",
        path.display()
    );
    path
}

/// A fresh data folder.
pub fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("altiplano-test-").tempdir().expect("temporary folder")
}

/// The question the tiny starter model reliably answers (see DESIGN.md).
pub const FRANCE: &str = "What is the capital of France? Answer in one word.";
/// A prompt that gets a long reply.
pub const STORY: &str = "Write a long story about a dragon who learns to bake bread.";
/// Instructions long enough that reusing their KV cache shows.
pub const LONG_INSTRUCTIONS: &str = "You are a helpful geography assistant. Answer every question about \
     capitals with the name of the city only, in one word, without punctuation or explanation. If a \
     question is not about a capital, say that you only answer questions about capitals.";
/// A prompt on which the greedy starter model falls into repeating one line ("A single poem, a
/// single sea,") until the token limit, unless stopped.
pub const LOOPING: &str = "Write a poem about the sea where every line ends with the word sea.";

/// Resident memory of this process (Linux), bytes.
pub fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// A short greedy reply; the tokens it took.
pub async fn short_reply(engine: &altiplano_core::engine::Engine) -> u32 {
    use altiplano_core::engine::{CancellationToken, GenerationEvent, PromptMessage, Sampling};
    let sampling = Sampling { max_tokens: 64, ..Sampling::greedy() };
    let message = PromptMessage::new(altiplano_core::store::Role::User, STORY);
    let mut rx = engine.generate(vec![message], sampling, CancellationToken::new());
    let mut context = 0;
    while let Some(event) = rx.recv().await {
        if let GenerationEvent::Finished { stats, .. } = event.unwrap() {
            context = stats.prompt_tokens + stats.completion_tokens;
        }
    }
    context as u32
}

/// Holds an estimate to the bounds `memory_estimate.rs` explains: 15 % short, 25 % over.
pub fn check_estimate(engine: &str, grown: u64, estimate: u64, context: u32) {
    let ratio = estimate as f64 / grown as f64;
    eprintln!(
        "{engine}: resident growth {grown} bytes, estimate {estimate} bytes, ratio {ratio:.3}, context {context}"
    );
    assert!((0.85..=1.25).contains(&ratio), "{engine}: estimate {estimate} vs measured {grown} (ratio {ratio:.3})");
}
