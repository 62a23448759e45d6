//! Benchmark: one engine on one GGUF file, in one process, as `bench/engines.py` drives it.
//!
//! `engine_bench MODEL ENGINE THREADS PROMPTS.json` loads the model once and prints one JSON
//! line: decode tokens/s and time to first token on short prompts, prompt processing tokens/s
//! on a long document, and a follow-up question's time to first token with the KV cache of the
//! shared prefix kept (`second_turn_ttft_reuse_ms`) against the same prompt computed from
//! scratch (`second_turn_ttft_fresh_ms`). Every prompt but the follow-up opens with a system
//! message of its own, so no figure but that one benefits from a cache. The prompts come from
//! the file, so the peer (llama-cpp-python) is measured on the same text.

use std::time::Instant;

use altiplano_core::engine::{
    CancellationToken, Engine, EngineKind, GenerationEvent, GenerationStats, LoadOptions, PromptMessage, Sampling,
};
use altiplano_core::store::Role;

#[derive(serde::Deserialize)]
struct Prompts {
    short: Vec<String>,
    document: String,
    question: String,
    follow_up: String,
    max_tokens: usize,
    repeat: usize,
    /// How often the short prompts are run (decode speed is noisy; they are cheap).
    #[serde(default)]
    short_repeat: Option<usize>,
}

struct Run {
    text: String,
    stats: GenerationStats,
    ttft_ms: f64,
    /// Decode speed measured as the peer's is: the reply's text tokenized again, over the time
    /// from its first piece of text to its last (an engine's own count could differ from what
    /// a tokenizer makes of the text, on random weights especially).
    decode_tps: f64,
}

async fn run(engine: &Engine, messages: Vec<PromptMessage>, max_tokens: usize) -> anyhow::Result<Run> {
    let started = Instant::now();
    let sampling = Sampling { max_tokens, ..Sampling::greedy() };
    let mut rx = engine.generate(messages, sampling, CancellationToken::new());
    let mut text = String::new();
    let (mut first, mut last) = (None, started);
    while let Some(event) = rx.recv().await {
        match event? {
            GenerationEvent::Text(piece) if !piece.is_empty() => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                text.push_str(&piece);
            }
            GenerationEvent::Text(_) => {}
            GenerationEvent::Finished { stats, .. } => {
                let tokens = engine.count_text_tokens(&text).await? as f64;
                let span = first.map(|f| (last - f).as_secs_f64()).unwrap_or(0.0);
                let decode_tps = if tokens > 1.0 && span > 0.0 { (tokens - 1.0) / span } else { f64::NAN };
                let ttft_ms = first.map(|f| (f - started).as_secs_f64() * 1000.0).unwrap_or(f64::NAN);
                return Ok(Run { text, stats, ttft_ms, decode_tps });
            }
        }
    }
    anyhow::bail!("the reply ended without finishing")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A system message no other prompt starts with, so nothing of it is in any cache.
fn fresh(tag: usize) -> PromptMessage {
    PromptMessage::new(Role::System, format!("Session {tag}. You are a helpful assistant."))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, engine, threads, prompts] = args.as_slice() else {
        anyhow::bail!("usage: engine_bench MODEL llamacpp|mistralrs THREADS PROMPTS.json");
    };
    let kind: EngineKind = engine.parse()?;
    let prompts: Prompts = serde_json::from_str(&std::fs::read_to_string(prompts)?)?;
    let options = LoadOptions {
        engine: Some(kind),
        max_parallel_replies: 1,
        threads: Some(threads.parse()?),
        context_tokens: Some(8192),
        ..LoadOptions::default()
    };
    // The first load also starts the engine (llama.cpp loads its CPU kernel libraries); the
    // second is what loading a model costs, as the peer's is timed after its library loaded.
    let loading = Instant::now();
    let engine = Engine::load(std::path::Path::new(model), options.clone()).await?;
    let first_load_ms = loading.elapsed().as_secs_f64() * 1000.0;
    drop(engine);
    let loading = Instant::now();
    let engine = Engine::load(std::path::Path::new(model), options).await?;
    let load_ms = loading.elapsed().as_secs_f64() * 1000.0;
    let mut tag = 0;
    let mut next_tag = || {
        tag += 1;
        tag
    };

    let (mut decode, mut short_ttft, mut texts) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..prompts.short_repeat.unwrap_or(prompts.repeat) {
        for prompt in &prompts.short {
            let messages = vec![fresh(next_tag()), PromptMessage::new(Role::User, prompt.clone())];
            let r = run(&engine, messages, prompts.max_tokens).await?;
            decode.push(r.decode_tps);
            short_ttft.push(r.ttft_ms);
            texts.push(r.text);
        }
    }

    let ask = format!("{}\n\n{}", prompts.document, prompts.question);
    let (mut prompt_tps, mut prompt_tokens, mut decode_after) = (Vec::new(), 0, Vec::new());
    let (mut reuse, mut scratch, mut reused_tokens, mut second_tokens) = (Vec::new(), Vec::new(), 0, 0);
    for _ in 0..prompts.repeat {
        // The document from scratch: prompt processing speed.
        let system = fresh(next_tag());
        let first = vec![system.clone(), PromptMessage::new(Role::User, ask.clone())];
        let r = run(&engine, first.clone(), 32).await?;
        prompt_tokens = r.stats.prompt_tokens;
        prompt_tps.push(r.stats.prompt_tokens as f64 / (r.ttft_ms / 1000.0));
        decode_after.push(r.decode_tps);

        // The follow-up right after: the document's KV cache is kept.
        let mut second = first;
        second.push(PromptMessage::new(Role::Assistant, r.text.clone()));
        second.push(PromptMessage::new(Role::User, prompts.follow_up.clone()));
        let again = run(&engine, second.clone(), 16).await?;
        reuse.push(again.ttft_ms);
        reused_tokens = again.stats.reused_prompt_tokens;
        second_tokens = again.stats.prompt_tokens;

        // The same follow-up after an unrelated prompt has replaced the cache.
        run(&engine, vec![fresh(next_tag()), PromptMessage::new(Role::User, "Hello.".to_owned())], 4).await?;
        scratch.push(run(&engine, second, 16).await?.ttft_ms);
    }
    let result = serde_json::json!({
        "engine": kind.wire_name(),
        "load_ms": load_ms,
        "first_load_ms": first_load_ms,
        "decode_tps": median(decode),
        "ttft_ms": median(short_ttft),
        "long_prompt_tokens": prompt_tokens,
        "prompt_tps": median(prompt_tps),
        "decode_after_long_prompt_tps": median(decode_after),
        "second_turn_ttft_reuse_ms": median(reuse),
        "second_turn_ttft_fresh_ms": median(scratch),
        "second_turn_reused_tokens": reused_tokens,
        "second_turn_prompt_tokens": second_tokens,
        "texts": texts,
    });
    println!("{result}");
    Ok(())
}
