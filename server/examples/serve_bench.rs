//! Benchmark: what serving over HTTP costs, and what several clients at once get.
//!
//! `serve_bench MODEL [THREADS] [TOKENS] [ROUNDS]` loads the model once, serves it on
//! 127.0.0.1 as `altiplano serve` does, and then, in turn round after round, asks the same
//! reply of the engine in-process and through `POST /v1/chat/completions` (streamed, as an
//! editor asks): decode tokens/s of each, measured alike (completion tokens after the first,
//! over the time from the first piece of text to the last). Then 1, 2 and 4 clients at once,
//! each asking a reply of TOKENS: the total tokens/s the server gives them. Prints one JSON
//! line. Every reply has a system message of its own, so no prompt cache favours either side,
//! and both sides sample with the same seed, so they write the same text.

use std::path::Path;
use std::time::Instant;

use altiplano_core::engine::{
    CancellationToken, Engine, EngineKind, GenerationEvent, LoadOptions, PromptMessage, Role, Sampling,
};
use altiplano_server::{ServeOptions, Server};
use futures::StreamExt;
use serde_json::json;

const QUESTION: &str = "Write a long story about a lighthouse keeper and a storm.";

/// One reply's figures.
struct Measured {
    completion_tokens: usize,
    decode_tps: f64,
}

fn decode_tps(tokens: usize, first: Option<Instant>, last: Instant) -> f64 {
    let span = first.map_or(0.0, |f| (last - f).as_secs_f64());
    if tokens > 1 && span > 0.0 {
        (tokens - 1) as f64 / span
    } else {
        f64::NAN
    }
}

fn sampling(tokens: usize, seed: u32) -> Sampling {
    Sampling { max_tokens: tokens, seed: Some(seed), ..Sampling::default() }
}

fn system(tag: usize) -> String {
    format!("Session {tag}. You are a storyteller.")
}

async fn in_process(engine: &Engine, tag: usize, tokens: usize) -> anyhow::Result<Measured> {
    let messages = vec![PromptMessage::new(Role::System, system(tag)), PromptMessage::new(Role::User, QUESTION)];
    let mut rx = engine.generate(messages, sampling(tokens, tag as u32), CancellationToken::new());
    let (mut first, mut last) = (None, Instant::now());
    while let Some(event) = rx.recv().await {
        match event? {
            GenerationEvent::Text(piece) if !piece.is_empty() => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
            }
            GenerationEvent::Text(_) => {}
            GenerationEvent::Finished { stats, .. } => {
                let n = stats.completion_tokens;
                return Ok(Measured { completion_tokens: n, decode_tps: decode_tps(n, first, last) });
            }
        }
    }
    anyhow::bail!("the reply ended without finishing")
}

async fn over_http(
    client: &reqwest::Client,
    url: &str,
    model: &str,
    tag: usize,
    tokens: usize,
) -> anyhow::Result<Measured> {
    let body = json!({
        "model": model,
        "messages": [{"role": "system", "content": system(tag)}, {"role": "user", "content": QUESTION}],
        "max_tokens": tokens,
        "seed": tag,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let response = client.post(format!("{url}/chat/completions")).json(&body).send().await?.error_for_status()?;
    let mut bytes = response.bytes_stream();
    let (mut first, mut last, mut pending, mut completion_tokens) = (None, Instant::now(), String::new(), None);
    while let Some(chunk) = bytes.next().await {
        pending.push_str(std::str::from_utf8(&chunk?)?);
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            let Some(data) = event.trim().strip_prefix("data: ") else { continue };
            if data == "[DONE]" {
                continue;
            }
            let value: serde_json::Value = serde_json::from_str(data)?;
            if let Some(n) = value["usage"]["completion_tokens"].as_u64() {
                completion_tokens = Some(n as usize);
            }
            if value["choices"][0]["delta"]["content"].as_str().is_some_and(|t| !t.is_empty()) {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
            }
        }
    }
    let n = completion_tokens.ok_or_else(|| anyhow::anyhow!("no usage in the stream"))?;
    Ok(Measured { completion_tokens: n, decode_tps: decode_tps(n, first, last) })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(model) = args.first() else {
        anyhow::bail!("usage: serve_bench MODEL [THREADS] [TOKENS] [ROUNDS]");
    };
    let number = |i: usize, default: usize| args.get(i).map_or(Ok(default), |a| a.parse());
    let threads = number(1, std::thread::available_parallelism().map_or(2, usize::from))?;
    let tokens = number(2, 128)?;
    let rounds = number(3, 7)?;
    let options = LoadOptions {
        engine: Some(EngineKind::LlamaCpp),
        threads: Some(threads),
        context_tokens: Some(4096),
        ..LoadOptions::default()
    };
    let engine = Engine::load(Path::new(model), options).await?;
    let server = Server::bind(engine.clone(), ServeOptions::local(0)).await?;
    let url = format!("http://{}/v1", server.local_addr());
    let model_id = server.model_id().to_owned();
    tokio::spawn(server.run(futures::future::pending()));
    let client = reqwest::Client::new();

    // A warm-up of each, then the two in turn, so a drift of the machine's speed hits both.
    let mut tag = 0;
    let mut next = || {
        tag += 1;
        tag
    };
    in_process(&engine, next(), tokens).await?;
    over_http(&client, &url, &model_id, next(), tokens).await?;
    let (mut direct, mut served, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        // The same tag both ways: the same prompt and seed, so the same text.
        let t = next();
        let a = in_process(&engine, t, tokens).await?;
        let b = over_http(&client, &url, &model_id, t, tokens).await?;
        ratios.push(b.decode_tps / a.decode_tps);
        direct.push(a.decode_tps);
        served.push(b.decode_tps);
    }

    let mut concurrent = serde_json::Map::new();
    for clients in [1usize, 2, 4] {
        let started = Instant::now();
        let replies = futures::future::try_join_all((0..clients).map(|_| {
            let t = next();
            let (client, url, model_id) = (&client, &url, &model_id);
            async move { over_http(client, url, model_id, t, tokens).await }
        }))
        .await?;
        let seconds = started.elapsed().as_secs_f64();
        let total: usize = replies.iter().map(|r| r.completion_tokens).sum();
        concurrent.insert(
            clients.to_string(),
            json!({ "total_tokens_per_second": total as f64 / seconds, "completion_tokens": total, "seconds": seconds }),
        );
    }

    let result = json!({
        "model": model_id,
        "threads": threads,
        "tokens": tokens,
        "rounds": rounds,
        "in_process_decode_tps": median(direct),
        "served_decode_tps": median(served),
        "served_over_in_process": median(ratios),
        "concurrent_clients": concurrent,
    });
    println!("{result}");
    Ok(())
}
