//! Benchmark: how fast Stop takes effect.
//!
//! Starts a long greedy reply from the starter model, cancels it after a few tokens, and
//! measures (1) cancel → `Finished { Cancelled }` on the reply's channel, which is what the UI
//! waits for, and (2) cancel → first token of the next reply, which shows that the engine really
//! stopped working on the old one. Run with `cargo run -p altiplano-core --example
//! stop_latency` (the dev profile optimises dependencies), on the engine `ALTIPLANO_ENGINE`
//! names (`llamacpp`, the default for GGUF, or `mistralrs`); `bench/run.sh` records both.

use std::time::Instant;

use altiplano_core::engine::{CancellationToken, Engine, GenerationEvent, LoadOptions, PromptMessage, Sampling};
use altiplano_core::store::Role;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let model = std::env::args().nth(1).map(Into::into).unwrap_or_else(|| {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/starter/SmolLM2-135M-Instruct.Q4_1.gguf")
    });
    let kind = std::env::var("ALTIPLANO_ENGINE").ok().map(|e| e.parse()).transpose()?;
    let engine = Engine::load(&model, LoadOptions { engine: kind, ..LoadOptions::default() }).await?;
    let story = vec![PromptMessage::new(Role::User, "Write a long story about a dragon who learns to bake bread.")];
    let question = vec![PromptMessage::new(Role::User, "What is 2 + 2?")];
    // Baseline: time to first token of the follow-up question on an idle engine.
    let mut idle_first_token = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let mut rx = engine.generate(
            question.clone(),
            Sampling { max_tokens: 4, ..Sampling::greedy() },
            CancellationToken::new(),
        );
        let mut first = None;
        while let Some(event) = rx.recv().await {
            if let GenerationEvent::Text(_) = event? {
                first.get_or_insert(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        idle_first_token.extend(first);
    }
    eprintln!("idle first-token times (ms): {idle_first_token:?}");
    let mut to_finished = Vec::new();
    let mut to_next_token = Vec::new();
    for _ in 0..10 {
        let cancel = CancellationToken::new();
        let mut rx =
            engine.generate(story.clone(), Sampling { max_tokens: 1000, ..Sampling::greedy() }, cancel.clone());
        let mut seen = 0;
        let mut cancelled_at = None;
        while let Some(event) = rx.recv().await {
            match event? {
                GenerationEvent::Text(_) => {
                    seen += 1;
                    if seen == 8 {
                        cancelled_at = Some(Instant::now());
                        cancel.cancel();
                    }
                }
                GenerationEvent::Finished { .. } => break,
            }
        }
        let cancelled_at = cancelled_at.ok_or_else(|| anyhow::anyhow!("the reply ended before 8 tokens"))?;
        to_finished.push(cancelled_at.elapsed().as_secs_f64() * 1000.0);

        let mut next = engine.generate(
            question.clone(),
            Sampling { max_tokens: 4, ..Sampling::greedy() },
            CancellationToken::new(),
        );
        while let Some(event) = next.recv().await {
            if let GenerationEvent::Text(_) = event? {
                to_next_token.push(cancelled_at.elapsed().as_secs_f64() * 1000.0);
                break;
            }
        }
        while next.recv().await.is_some() {}
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let worst = |v: &Vec<f64>| v.iter().copied().fold(0.0, f64::max);
    println!(
        "{{\"cancel_to_finished_ms_median\": {:.2}, \"cancel_to_finished_ms_max\": {:.2}, \"cancel_to_next_first_token_ms_median\": {:.1}, \"cancel_to_next_first_token_ms_max\": {:.1}, \"idle_first_token_ms_median\": {:.1}}}",
        median(&mut to_finished),
        worst(&to_finished),
        median(&mut to_next_token),
        worst(&to_next_token),
        median(&mut idle_first_token)
    );
    Ok(())
}
