//! The engine against the real starter model: answers, streaming, stopping, and bad files.

mod common;

use std::io::Write;
use std::time::Duration;

use altiplano_core::engine::{
    CancellationToken, Engine, EngineError, FinishReason, GenerationEvent, LoadOptions, PromptMessage, Sampling,
};
use altiplano_core::store::Role;

async fn load() -> Engine {
    Engine::load(&common::starter_model(), LoadOptions::default()).await.expect("the starter model loads")
}

/// Collects a whole reply: its text and how it finished.
async fn reply(
    engine: &Engine,
    prompt: &str,
    sampling: Sampling,
) -> (String, FinishReason, altiplano_core::engine::GenerationStats) {
    let mut rx = engine.generate(vec![PromptMessage::new(Role::User, prompt)], sampling, CancellationToken::new());
    let mut text = String::new();
    while let Some(event) = rx.recv().await {
        match event.expect("generation succeeds") {
            GenerationEvent::Text(t) => text.push_str(&t),
            GenerationEvent::Finished { reason, stats } => return (text, reason, stats),
        }
    }
    panic!("the stream ended without a Finished event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_a_question_and_reports_its_measurements() {
    let engine = load().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_a_reply_mid_stream_and_the_engine_stays_usable() {
    let engine = load().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_tokens_ends_a_reply_with_length() {
    let engine = load().await;
    let (_, reason, stats) = reply(&engine, common::STORY, Sampling { max_tokens: 8, ..Sampling::greedy() }).await;
    assert_eq!(reason, FinishReason::Length);
    assert_eq!(stats.completion_tokens, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_model_files_give_clear_errors() {
    let dir = common::data_dir();

    let missing = dir.path().join("nowhere.gguf");
    let err = Engine::load(&missing, LoadOptions::default()).await.unwrap_err();
    assert!(matches!(err, EngineError::ModelNotFound(_)), "{err:?}");
    assert!(err.to_string().contains("does not exist"), "{err}");

    let err = Engine::load(dir.path(), LoadOptions::default()).await.unwrap_err();
    assert!(matches!(err, EngineError::NotAFile(_)), "{err:?}");

    // Half a download.
    let full = std::fs::read(common::starter_model()).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    let err = Engine::load(&truncated, LoadOptions::default()).await.unwrap_err();
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
    let err = Engine::load(&header_only, LoadOptions::default()).await.unwrap_err();
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
    let err = Engine::load(&random, LoadOptions::default()).await.unwrap_err();
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
    let err = tokio::time::timeout(Duration::from_secs(10), Engine::load(&hostile, LoadOptions::default()))
        .await
        .expect("rejected quickly")
        .unwrap_err();
    assert!(matches!(err, EngineError::InvalidModel { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_cpu_q4_1_weights_run_from_a_q8_0_copy_written_once() {
    use altiplano_core::engine::{LoadProgress, LoadStage};
    let dir = tempfile::tempdir().expect("temp dir");
    let cache_dir = dir.path().join("repacked");
    let options = || LoadOptions { repack_dir: Some(cache_dir.clone()), ..LoadOptions::default() };

    let (tx, mut rx) = tokio::sync::watch::channel(LoadProgress::default());
    let seen = tokio::spawn(async move {
        let mut seen = Vec::new();
        while rx.changed().await.is_ok() {
            seen.push(*rx.borrow_and_update());
        }
        seen
    });
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
        LoadOptions { repack_dir: Some(blocked.join("repacked")), ..LoadOptions::default() },
    )
    .await
    .expect("loads without a copy");
    assert_eq!(plain.info().repacked, None);
    let (text, _, _) = reply(&plain, common::FRANCE, Sampling::greedy()).await;
    assert!(text.contains("Paris"), "{text:?}");
}
