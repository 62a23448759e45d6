//! The engine against the real starter model, on both backends (llama.cpp and mistral.rs):
//! answers, streaming, stopping, reusing the KV cache, perplexity, and bad files.
#![allow(clippy::unwrap_used, reason = "test helpers too fail the test on the first unexpected error")]

mod common;

use std::io::Write;
use std::time::Duration;

use altiplano_core::engine::{
    CancellationToken, Engine, EngineError, EngineKind, FinishReason, GenerationEvent, LoadOptions, PromptMessage,
    Sampling,
};
use altiplano_core::store::Role;

/// Runs one async test body once per engine, as `NAME::llamacpp` and `NAME::mistralrs`.
macro_rules! on_both_engines {
    ($(async fn $name:ident($engine:ident: EngineKind) $body:block)*) => {$(
        mod $name {
            use super::*;
            async fn run($engine: EngineKind) $body
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn llamacpp() { run(EngineKind::LlamaCpp).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mistralrs() { run(EngineKind::MistralRs).await }
        }
    )*};
}

/// A progress channel for a load, and every value sent on it until it closes.
fn record_progress() -> (
    tokio::sync::watch::Sender<altiplano_core::engine::LoadProgress>,
    tokio::task::JoinHandle<Vec<altiplano_core::engine::LoadProgress>>,
) {
    let (tx, mut rx) = tokio::sync::watch::channel(altiplano_core::engine::LoadProgress::default());
    let seen = tokio::spawn(async move {
        let mut seen = Vec::new();
        while rx.changed().await.is_ok() {
            seen.push(*rx.borrow_and_update());
        }
        seen
    });
    (tx, seen)
}

fn on(engine: EngineKind) -> LoadOptions {
    LoadOptions { engine: Some(engine), ..LoadOptions::default() }
}

async fn load(engine: EngineKind) -> Engine {
    let loaded = Engine::load(&common::starter_model(), on(engine)).await.expect("the starter model loads");
    assert_eq!(loaded.kind(), engine);
    loaded
}

/// Collects a whole reply: its text and how it finished.
async fn reply(
    engine: &Engine,
    prompt: &str,
    sampling: Sampling,
) -> (String, FinishReason, altiplano_core::engine::GenerationStats) {
    reply_to(engine, vec![PromptMessage::new(Role::User, prompt)], sampling).await
}

async fn reply_to(
    engine: &Engine,
    messages: Vec<PromptMessage>,
    sampling: Sampling,
) -> (String, FinishReason, altiplano_core::engine::GenerationStats) {
    let mut rx = engine.generate(messages, sampling, CancellationToken::new());
    let mut text = String::new();
    while let Some(event) = rx.recv().await {
        match event.expect("generation succeeds") {
            GenerationEvent::Text(t) => text.push_str(&t),
            GenerationEvent::Finished { reason, stats } => return (text, reason, stats),
        }
    }
    panic!("the stream ended without a Finished event");
}

on_both_engines! {
async fn answers_a_question_and_reports_its_measurements(kind: EngineKind) {
    let engine = load(kind).await;
    assert_eq!(engine.info().architecture, "llama");
    assert!(engine.info().context_length >= 2048, "context {}", engine.info().context_length);

    let (text, reason, stats) = reply(&engine, common::FRANCE, Sampling::greedy()).await;
    assert!(text.contains("Paris"), "the reply should name Paris: {text:?}");
    assert_eq!(reason, FinishReason::Stop);
    assert!(stats.prompt_tokens > 5, "{stats:?}");
    assert!(stats.completion_tokens >= 2, "{stats:?}");
    assert!(stats.time_to_first_token.is_some(), "{stats:?}");
    assert!(stats.decode_tokens_per_second.is_some_and(|t| t > 0.0), "{stats:?}");

    // Greedy decoding is reproducible.
    let (again, _, _) = reply(&engine, common::FRANCE, Sampling::greedy()).await;
    assert_eq!(text, again);

    // The template counts the question and the assistant header.
    let tokens = engine.count_prompt_tokens(&[PromptMessage::new(Role::User, common::FRANCE)]).await.unwrap();
    assert_eq!(tokens, stats.prompt_tokens);
}

async fn stop_ends_a_reply_mid_stream_and_the_engine_stays_usable(kind: EngineKind) {
    let engine = load(kind).await;
    let cancel = CancellationToken::new();
    let sampling = Sampling { max_tokens: 1000, ..Sampling::greedy() };
    let mut rx = engine.generate(vec![PromptMessage::new(Role::User, common::STORY)], sampling, cancel.clone());

    let mut pieces = 0;
    let finished = loop {
        match rx.recv().await.expect("stream open").expect("generation succeeds") {
            GenerationEvent::Text(_) => {
                pieces += 1;
                if pieces == 5 {
                    cancel.cancel();
                }
            }
            GenerationEvent::Finished { reason, stats } => break (reason, stats),
        }
    };
    assert_eq!(finished.0, FinishReason::Cancelled);
    assert!(pieces >= 5);
    assert!(finished.1.completion_tokens < 100, "it went on after the stop: {:?}", finished.1);
    assert!(rx.recv().await.is_none(), "nothing may follow the Finished event");

    // The next request is served normally.
    let (text, reason, _) = reply(&engine, common::FRANCE, Sampling::greedy()).await;
    assert_eq!(reason, FinishReason::Stop);
    assert!(text.contains("Paris"), "{text:?}");
}

async fn max_tokens_ends_a_reply_with_length(kind: EngineKind) {
    let engine = load(kind).await;
    let (_, reason, stats) = reply(&engine, common::STORY, Sampling { max_tokens: 8, ..Sampling::greedy() }).await;
    assert_eq!(reason, FinishReason::Length);
    assert_eq!(stats.completion_tokens, 8);
}

async fn bad_model_files_give_clear_errors(kind: EngineKind) {
    let dir = common::data_dir();

    let missing = dir.path().join("nowhere.gguf");
    let err = Engine::load(&missing, on(kind)).await.unwrap_err();
    assert!(matches!(err, EngineError::ModelNotFound(_)), "{err:?}");
    assert!(err.to_string().contains("does not exist"), "{err}");

    let err = Engine::load(dir.path(), on(kind)).await.unwrap_err();
    assert!(matches!(err, EngineError::NotAFile(_)), "{err:?}");

    // Half a download.
    let full = std::fs::read(common::starter_model()).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    let err = Engine::load(&truncated, on(kind)).await.unwrap_err();
    match &err {
        EngineError::Truncated { expected, actual, .. } => {
            assert_eq!(*actual, (full.len() / 2) as u64);
            assert!(*expected >= full.len() as u64 - 64, "expected {expected}");
        }
        other => panic!("expected a truncation error, got {other:?}"),
    }
    assert!(err.to_string().contains("download it again"), "{err}");

    // Only the header survived.
    let header_only = dir.path().join("header.gguf");
    std::fs::write(&header_only, &full[..100]).unwrap();
    let err = Engine::load(&header_only, on(kind)).await.unwrap_err();
    assert!(matches!(err, EngineError::Truncated { .. } | EngineError::InvalidModel { .. }), "{err:?}");

    // Random bytes.
    let random = dir.path().join("random.gguf");
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let noise: Vec<u8> = (0..1_000_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(&random, &noise).unwrap();
    let err = Engine::load(&random, on(kind)).await.unwrap_err();
    assert!(matches!(err, EngineError::InvalidModel { .. }), "{err:?}");
    assert!(err.to_string().contains("not a GGUF file"), "{err}");

    // A GGUF header that claims a string of 2^60 bytes must not try to allocate it.
    let hostile = dir.path().join("hostile.gguf");
    let mut f = std::fs::File::create(&hostile).unwrap();
    f.write_all(b"GGUF").unwrap();
    f.write_all(&3u32.to_le_bytes()).unwrap();
    f.write_all(&1u64.to_le_bytes()).unwrap();
    f.write_all(&1u64.to_le_bytes()).unwrap();
    f.write_all(&(1u64 << 60).to_le_bytes()).unwrap();
    f.write_all(&[b'x'; 64]).unwrap();
    drop(f);
    let err = tokio::time::timeout(Duration::from_secs(10), Engine::load(&hostile, on(kind)))
        .await
        .expect("rejected quickly")
        .unwrap_err();
    assert!(matches!(err, EngineError::InvalidModel { .. }), "{err:?}");

    // A well-formed file of an architecture neither engine knows.
    let foreign = dir.path().join("foreign.gguf");
    std::fs::write(&foreign, gguf(&[("general.architecture", Meta::Str("frobnicator"))], &[])).unwrap();
    let err = Engine::load(&foreign, on(kind)).await.unwrap_err();
    assert!(matches!(err, EngineError::Load { .. } | EngineError::InvalidModel { .. }), "{err:?}");

    // Hostile numbers that a loader would divide by (no head at all) are refused before it
    // sees them: llama.cpp would stop the whole process.
    let headless = dir.path().join("headless.gguf");
    let meta = [
        ("general.architecture", Meta::Str("llama")),
        ("llama.block_count", Meta::U32(2)),
        ("llama.embedding_length", Meta::U32(64)),
        ("llama.attention.head_count", Meta::U32(0)),
    ];
    std::fs::write(&headless, gguf(&meta, &[])).unwrap();
    let err = Engine::load(&headless, on(kind)).await.unwrap_err();
    assert!(matches!(err, EngineError::InvalidModel { .. }), "{err:?}");
    assert!(err.to_string().contains("attention.head_count"), "{err}");

    // A tensor whose size is not a whole number of blocks of its type.
    let ragged = dir.path().join("ragged.gguf");
    std::fs::write(&ragged, gguf(&[("general.architecture", Meta::Str("llama"))], &[("x", 33, 2)])).unwrap();
    let err = Engine::load(&ragged, on(kind)).await.unwrap_err();
    assert!(err.to_string().contains("whole number"), "{err}");
}
}

/// A GGUF metadata value for [`gguf`].
enum Meta {
    Str(&'static str),
    U32(u32),
}

/// A GGUF v3 file with `metadata` and `tensors` (name, elements, GGML type), data zeroed.
fn gguf(metadata: &[(&str, Meta)], tensors: &[(&str, u64, u32)]) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((metadata.len() as u64).to_le_bytes());
    let string = |out: &mut Vec<u8>, s: &str| {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    };
    for (key, value) in metadata {
        string(&mut out, key);
        match value {
            Meta::Str(s) => {
                out.extend(8u32.to_le_bytes());
                string(&mut out, s);
            }
            Meta::U32(n) => {
                out.extend(4u32.to_le_bytes());
                out.extend(n.to_le_bytes());
            }
        }
    }
    for (name, elements, ty) in tensors {
        string(&mut out, name);
        out.extend(1u32.to_le_bytes());
        out.extend(elements.to_le_bytes());
        out.extend(ty.to_le_bytes());
        out.extend(0u64.to_le_bytes());
    }
    while !out.len().is_multiple_of(32) {
        out.push(0);
    }
    out.extend(std::iter::repeat_n(0u8, 4096));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_model_gets_its_engine_and_the_wrong_one_says_so() {
    assert_eq!(EngineKind::for_path(&common::starter_model()), EngineKind::LlamaCpp);
    let folder = common::data_dir();
    assert_eq!(EngineKind::for_path(folder.path()), EngineKind::MistralRs);
    let default = Engine::load(&common::starter_model(), LoadOptions::default()).await.expect("loads");
    assert_eq!(default.kind(), EngineKind::LlamaCpp, "GGUF files run on llama.cpp unless told otherwise");
    assert_eq!(default.info().engine, EngineKind::LlamaCpp);
    drop(default);

    // llama.cpp cannot run a safetensors folder: it says so, and what to do.
    let err = Engine::open(folder.path(), on(EngineKind::LlamaCpp)).await.unwrap_err();
    assert!(matches!(err, EngineError::WrongEngine { engine: EngineKind::LlamaCpp, .. }), "{err:?}");
    assert!(err.to_string().contains("--engine mistralrs"), "{err}");

    // An IQ quantization runs on llama.cpp only; mistral.rs refuses it before reading it.
    let dir = common::data_dir();
    let iq = dir.path().join("iq4.gguf");
    std::fs::write(&iq, gguf(&[("general.architecture", Meta::Str("llama"))], &[("token_embd.weight", 256, 23)]))
        .unwrap();
    let err = Engine::load(&iq, on(EngineKind::MistralRs)).await.unwrap_err();
    assert!(matches!(err, EngineError::WrongEngine { engine: EngineKind::MistralRs, .. }), "{err:?}");
    assert!(err.to_string().contains("--engine llamacpp"), "{err}");

    for (name, kind) in [("llamacpp", EngineKind::LlamaCpp), ("mistral.rs", EngineKind::MistralRs)] {
        assert_eq!(name.parse::<EngineKind>(), Ok(kind));
    }
    assert!("vllm".parse::<EngineKind>().unwrap_err().to_string().contains("llamacpp or mistralrs"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llamacpp_reuses_the_kv_cache_of_a_shared_prefix() {
    let engine = load(EngineKind::LlamaCpp).await;
    let system = PromptMessage::new(Role::System, common::LONG_INSTRUCTIONS);
    let first = vec![system.clone(), PromptMessage::new(Role::User, common::FRANCE)];
    let (answer, _, stats) = reply_to(&engine, first.clone(), Sampling::greedy()).await;
    assert_eq!(stats.reused_prompt_tokens, 0, "nothing computed before the first reply");

    // The next turn starts with the whole first exchange: only what follows is computed.
    let mut second = first.clone();
    second.push(PromptMessage::new(Role::Assistant, answer.clone()));
    second.push(PromptMessage::new(Role::User, "And of Italy? Answer in one word."));
    let (_, _, next) = reply_to(&engine, second.clone(), Sampling::greedy()).await;
    let system_tokens = engine.count_prompt_tokens(std::slice::from_ref(&system)).await.unwrap();
    assert!(
        next.reused_prompt_tokens >= system_tokens && next.reused_prompt_tokens < next.prompt_tokens,
        "reused {} of {} prompt tokens (the instructions alone are {system_tokens})",
        next.reused_prompt_tokens,
        next.prompt_tokens
    );

    // A different conversation keeps only what it shares (the instructions) and still gets
    // the answer a fresh engine gives.
    let (again, _, stats) = reply_to(&engine, first.clone(), Sampling::greedy()).await;
    assert!(stats.reused_prompt_tokens >= system_tokens, "{stats:?}");
    assert_eq!(again, answer, "a reused prefix changes nothing in a greedy reply");

    // A reply is reused as the model wrote it, even where its text reads back as other tokens
    // (likely in a hot, sampled reply): a follow-up computes only what comes after it.
    for seed in 1..=6 {
        let hot = Sampling { temperature: 8.0, top_p: 1.0, seed: Some(seed), max_tokens: 48, ..Sampling::default() };
        let (wild, _, said) = reply_to(&engine, first.clone(), hot).await;
        let mut follow = first.clone();
        follow.push(PromptMessage::new(Role::Assistant, wild));
        follow.push(PromptMessage::new(Role::User, "Say that again."));
        let (_, _, next) = reply_to(&engine, follow, Sampling::greedy()).await;
        assert!(
            next.reused_prompt_tokens + 1 >= said.prompt_tokens + said.completion_tokens,
            "seed {seed}: reused {} of {} tokens; the first exchange was {} + {}",
            next.reused_prompt_tokens,
            next.prompt_tokens,
            said.prompt_tokens,
            said.completion_tokens
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llamacpp_holds_the_context_asked_for_and_refuses_a_prompt_beyond_it() {
    let options = LoadOptions { context_tokens: Some(1024), ..on(EngineKind::LlamaCpp) };
    let engine = Engine::load(&common::starter_model(), options).await.expect("loads");
    assert_eq!(engine.info().context_length, 1024);
    assert_eq!(engine.usable_context(), 1024, "no cap on llama.cpp: the context it holds is usable");
    assert_eq!(engine.info().trained_context, 8192);

    let long = "The quick brown fox jumps over the lazy dog. ".repeat(200);
    let mut rx =
        engine.generate(vec![PromptMessage::new(Role::User, long)], Sampling::greedy(), CancellationToken::new());
    let err = rx.recv().await.expect("an event").expect_err("too long");
    assert!(matches!(err, EngineError::PromptTooLong { limit: 1023, .. }), "{err:?}");

    // Without a wish, the model's trained context, as far as memory allows.
    let full = load(EngineKind::LlamaCpp).await;
    assert_eq!(full.info().context_length, 8192);
    // An 8-bit KV cache (the plan's choice where a 16-bit one does not fit) still answers.
    let options = LoadOptions { kv_precision: altiplano_core::engine::KvPrecision::Q8, ..on(EngineKind::LlamaCpp) };
    let q8 = Engine::load(&common::starter_model(), options).await.expect("loads with a q8_0 cache");
    let (text, _, _) = reply(&q8, common::FRANCE, Sampling::greedy()).await;
    assert!(text.contains("Paris"), "{text:?}");
    drop(q8);
    // mistral.rs caps GGUF files where its RoPE handling ends.
    let mistral = load(EngineKind::MistralRs).await;
    assert_eq!(mistral.usable_context(), 8192.min(altiplano_core::engine::MISTRALRS_GGUF_CONTEXT_CAP));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llamacpp_reports_loading_in_layers() {
    use altiplano_core::engine::LoadStage;
    let (tx, seen) = record_progress();
    let engine = Engine::load(&common::starter_model(), LoadOptions { progress: Some(tx), ..on(EngineKind::LlamaCpp) })
        .await
        .expect("loads");
    // The channel closes once the model is loaded (a progress bar waits for that), while the
    // engine lives on.
    let seen = tokio::time::timeout(Duration::from_secs(30), seen).await.expect("progress ends").expect("progress");
    drop(engine);
    let layers: Vec<u32> = seen.iter().filter(|p| p.stage == LoadStage::Layers).map(|p| p.layers_done).collect();
    assert!(!layers.is_empty() && layers.windows(2).all(|w| w[0] <= w[1]), "layers climb: {seen:?}");
    assert!(seen.iter().all(|p| p.layers_total == 30 || p.stage == LoadStage::Checking), "{seen:?}");
    assert_eq!(seen.last().map(|p| (p.stage, p.layers_done)), Some((LoadStage::Done, 30)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_engines_score_a_text_alike() {
    let text = "The capital of France is Paris. It is known for the Eiffel Tower, the Louvre and its cafés. \
                Many people visit the city every year to see its museums, parks and old streets."
        .repeat(4);
    let mut scores = Vec::new();
    for kind in EngineKind::ALL {
        let options = LoadOptions { evaluation: true, ..on(kind) };
        let engine = Engine::load(&common::starter_model(), options).await.expect("loads");
        let result = engine.perplexity(&text, 64).await.expect("perplexity");
        assert!(result.perplexity.is_finite() && result.perplexity > 1.0, "{kind}: {result:?}");
        scores.push(result);
    }
    eprintln!("perplexity: llama.cpp {:?}, mistral.rs {:?}", scores[0], scores[1]);
    assert_eq!(scores[0].tokens, scores[1].tokens, "one tokenizer, read two ways");
    let ratio = scores[0].perplexity / scores[1].perplexity;
    assert!((0.97..=1.03).contains(&ratio), "llama.cpp {:?} against mistral.rs {:?}", scores[0], scores[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_that_loops_is_stopped_and_says_why() {
    // The starter model, greedy and with no penalty, repeats itself on this prompt.
    let engine = load(EngineKind::LlamaCpp).await;
    let sampling = Sampling { max_tokens: 600, ..Sampling::greedy() };
    let (text, reason, stats) = reply(&engine, common::LOOPING, sampling).await;
    assert_eq!(reason, FinishReason::Repeating, "{stats:?}: {text:?}");
    assert!(stats.completion_tokens < 600, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_cpu_q4_1_weights_run_from_a_q8_0_copy_written_once() {
    use altiplano_core::engine::LoadStage;
    let dir = tempfile::tempdir().expect("temp dir");
    let cache_dir = dir.path().join("repacked");
    // The copy is mistral.rs's (llama.cpp has fast Q4_1 kernels and loads the file as it is).
    let options = || LoadOptions { repack_dir: Some(cache_dir.clone()), ..on(EngineKind::MistralRs) };

    let (tx, seen) = record_progress();
    let first = Engine::load(&common::starter_model(), LoadOptions { progress: Some(tx), ..options() })
        .await
        .expect("the starter loads from its copy");
    let repacked = first.info().repacked.clone().expect("Q4_1 has no fast CPU kernel, so a copy is used");
    assert_eq!((repacked.from.as_str(), repacked.to.as_str(), repacked.written), ("Q4_1", "Q8_0", true));
    assert_eq!(repacked.cache.parent(), Some(cache_dir.as_path()));
    assert_eq!(first.info().name, "SmolLM2-135M-Instruct.Q4_1", "the model keeps its own name and path");
    assert!(first.info().path.ends_with("SmolLM2-135M-Instruct.Q4_1.gguf"));
    let (text, _, _) = reply(&first, common::FRANCE, Sampling::greedy()).await;
    assert!(text.contains("Paris"), "{text:?}");
    drop(first);
    let seen = seen.await.expect("progress");
    let converting: Vec<u32> =
        seen.iter().filter(|p| p.stage == LoadStage::Converting).map(|p| p.layers_done).collect();
    assert!(converting.len() > 2 && converting.windows(2).all(|w| w[0] <= w[1]), "converting climbs: {seen:?}");
    assert!(seen.iter().all(|p| p.stage != LoadStage::Converting || p.layers_total == 30), "{seen:?}");
    assert_eq!(seen.last().map(|p| p.stage), Some(LoadStage::Done));

    // The next load reads the copy without converting again.
    let second = Engine::load(&common::starter_model(), options()).await.expect("loads again");
    let again = second.info().repacked.clone().expect("the copy again");
    assert_eq!((again.cache, again.written), (repacked.cache, false));
    drop(second);

    // Where no copy can be written, the file loads as it is.
    let blocked = dir.path().join("not-a-folder");
    std::fs::write(&blocked, b"a file").expect("write");
    let plain = Engine::load(
        &common::starter_model(),
        LoadOptions { repack_dir: Some(blocked.join("repacked")), ..on(EngineKind::MistralRs) },
    )
    .await
    .expect("loads without a copy");
    assert_eq!(plain.info().repacked, None);
    let (text, _, _) = reply(&plain, common::FRANCE, Sampling::greedy()).await;
    assert!(text.contains("Paris"), "{text:?}");
}
