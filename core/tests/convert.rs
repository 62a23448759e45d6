//! GGUF → safetensors folder conversion and loading safetensors models (with in-situ
//! quantization) through the real mistral.rs, with the real starter model.

mod common;

use std::path::Path;

use altiplano_core::convert::{convert_gguf, WeightType};
use altiplano_core::engine::{
    CancellationToken, Engine, EngineError, EngineKind, GenerationEvent, Isq, LoadOptions, PromptMessage, Sampling,
};
use altiplano_core::store::Role;

async fn answer(engine: &Engine, question: &str, max_tokens: usize) -> String {
    let messages = vec![PromptMessage::new(Role::User, question)];
    let mut rx = engine.generate(messages, Sampling { max_tokens, ..Sampling::greedy() }, CancellationToken::new());
    let mut text = String::new();
    while let Some(event) = rx.recv().await {
        if let GenerationEvent::Text(piece) = event.expect("generation") {
            text.push_str(&piece);
        }
    }
    text
}

fn options(isq: Option<Isq>) -> LoadOptions {
    LoadOptions { max_parallel_replies: 1, isq, ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_converted_starter_model_answers_as_the_gguf_does_also_quantized_in_place() {
    let dir = common::data_dir();
    let folder = dir.path().join("smollm2-hf");
    let converted = convert_gguf(&common::starter_model(), &folder, WeightType::Bf16).expect("convert");
    assert_eq!(converted.tensors, 30 * 9 + 2, "30 layers of 9 tensors, the embedding and the final norm (tied head)");
    for file in
        ["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]
    {
        assert!(folder.join(file).is_file(), "{file} written");
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("config.json")).expect("config")).expect("json");
    assert_eq!((config["num_hidden_layers"].as_u64(), config["num_key_value_heads"].as_u64()), (Some(30), Some(3)));
    assert_eq!(config["tie_word_embeddings"], true);

    let gguf = Engine::load(&common::starter_model(), options(None)).await.expect("gguf");
    let hf = Engine::open(&folder, options(None)).await.expect("safetensors");
    // The same prompt becomes the same tokens: the tokenizer splits text as llama.cpp does.
    let prompt = [PromptMessage::new(Role::User, common::FRANCE)];
    assert_eq!(
        hf.count_prompt_tokens(&prompt).await.expect("count"),
        gguf.count_prompt_tokens(&prompt).await.expect("count")
    );
    let from_gguf = answer(&gguf, common::FRANCE, 16).await;
    let from_hf = answer(&hf, common::FRANCE, 16).await;
    assert!(from_hf.contains("Paris"), "{from_hf:?}");
    assert_eq!(from_hf, from_gguf, "greedy answers agree");
    drop((gguf, hf));

    // The cap on GGUF files on mistral.rs (no Llama 3.1 RoPE scaling in its GGUF loader) is not
    // a safetensors model's: one made for 16,384 tokens may use them all.
    let mut long = config.clone();
    long["max_position_embeddings"] = serde_json::json!(16_384);
    std::fs::write(folder.join("config.json"), serde_json::to_string_pretty(&long).expect("json")).expect("write");
    let hf = Engine::open(&folder, options(None)).await.expect("safetensors");
    assert_eq!((hf.info().context_length, hf.usable_context()), (16_384, 16_384));
    drop(hf);
    std::fs::write(folder.join("config.json"), serde_json::to_string_pretty(&config).expect("json")).expect("write");

    // All three in-situ quantizations load and answer.
    for isq in [Isq::Q8_0, Isq::Q4k, Isq::Fp8] {
        let engine = Engine::open(&folder, options(Some(isq))).await.unwrap_or_else(|e| panic!("{isq:?}: {e}"));
        assert!(engine.info().name.contains("ISQ"), "{}", engine.info().name);
        let text = answer(&engine, common::FRANCE, 12).await;
        eprintln!("{isq:?}: {text:?}");
        assert!(text.contains("Paris"), "{isq:?}: {text:?}");
    }
}

fn load_error(folder: &Path) -> String {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    match runtime.block_on(Engine::open(folder, options(None))) {
        Ok(_) => panic!("{} loaded", folder.display()),
        Err(e) => {
            assert!(matches!(e, EngineError::InvalidModel { .. }), "{e:?}");
            e.to_string()
        }
    }
}

#[test]
fn broken_folders_name_the_file_at_fault() {
    let dir = common::data_dir();
    let good = dir.path().join("good");
    convert_gguf(&common::starter_model(), &good, WeightType::Bf16).expect("convert");
    let copy = |name: &str| {
        let to = dir.path().join(name);
        std::fs::create_dir_all(&to).expect("mkdir");
        for entry in std::fs::read_dir(&good).expect("list") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
        to
    };
    let missing = copy("missing-config");
    std::fs::remove_file(missing.join("config.json")).expect("rm");
    assert!(load_error(&missing).contains("config.json cannot be read"));

    let malformed = copy("malformed-tokenizer");
    std::fs::write(malformed.join("tokenizer.json"), "{ not json").expect("write");
    assert!(load_error(&malformed).contains("tokenizer.json is not valid JSON"));

    let truncated = copy("truncated-weights");
    let weights = truncated.join("model.safetensors");
    let file = std::fs::OpenOptions::new().write(true).open(&weights).expect("open");
    file.set_len(10_000_000).expect("truncate");
    let message = load_error(&truncated);
    assert!(message.contains("model.safetensors is truncated"), "{message}");

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    assert!(load_error(&empty).contains("config.json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quantizing_in_place_costs_little_perplexity() {
    let dir = common::data_dir();
    let folder = dir.path().join("smollm2-hf");
    convert_gguf(&common::starter_model(), &folder, WeightType::Bf16).expect("convert");
    let text = common::english_text();
    let mut measured = Vec::new();
    for isq in [None, Some(Isq::Q8_0), Some(Isq::Fp8), Some(Isq::Q4k)] {
        let engine =
            Engine::open(&folder, LoadOptions { max_parallel_replies: 1, isq, evaluation: true, ..Default::default() })
                .await
                .unwrap_or_else(|e| panic!("{isq:?}: {e}"));
        let result = engine.perplexity(&text, 512).await.expect("perplexity");
        assert!(result.tokens >= 2000, "the text is long enough: {} tokens", result.tokens);
        assert!(result.perplexity.is_finite() && result.perplexity > 1.0, "{isq:?}: {result:?}");
        measured.push((isq, result.perplexity));
    }
    let base = measured[0].1;
    for (isq, ppl) in &measured {
        eprintln!("{isq:?}: perplexity {ppl:.3} ({:+.1}% against unquantized)", (ppl / base - 1.0) * 100.0);
    }
    assert!((measured[1].1 / base - 1.0).abs() <= 0.02, "Q8_0 within 2%: {measured:?}");
    assert!((measured[2].1 / base - 1.0).abs() <= 0.05, "FP8 within 5%: {measured:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_situ_quantized_model_is_cached_reused_and_redone_when_its_files_change() {
    use altiplano_core::engine::QuantizationCache;
    let dir = common::data_dir();
    let folder = dir.path().join("smollm2-hf");
    convert_gguf(&common::starter_model(), &folder, WeightType::Bf16).expect("convert");
    let mut answers = Vec::new();
    let mut load = async |expected: QuantizationCache| {
        let started = std::time::Instant::now();
        let engine = Engine::open(&folder, options(Some(Isq::Q4k))).await.expect("load");
        eprintln!("Q4K load, cache {:?}: {:?}", engine.info().quantization_cache, started.elapsed());
        assert_eq!(engine.info().quantization_cache, Some(expected));
        answers.push(answer(&engine, common::FRANCE, 12).await);
    };
    load(QuantizationCache::Written).await;
    load(QuantizationCache::Reused).await;
    // A changed weight file (here: a new modification time) makes the cache stale.
    let weights = std::fs::File::options().append(true).open(folder.join("model.safetensors")).expect("open");
    weights.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5)).expect("touch");
    load(QuantizationCache::Written).await;
    assert!(answers.iter().all(|a| a == &answers[0] && a.contains("Paris")), "{answers:?}");
    let caches: Vec<_> = std::fs::read_dir(folder.join(".altiplano-uqff")).expect("cache").flatten().collect();
    assert_eq!(caches.len(), 1, "the stale cache was removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_safetensors_model_in_the_library_is_used_for_chat_and_again_at_the_next_start() {
    use altiplano_core::chat::{ChatOptions, Turn};
    use altiplano_core::config::DataDir;
    use altiplano_core::session::{ModelState, Session};
    let dir = common::data_dir();
    let folder = dir.path().join("smollm2-hf");
    convert_gguf(&common::starter_model(), &folder, WeightType::Bf16).expect("convert");
    let data = dir.path().join("data");
    {
        let session = Session::open(DataDir::at(data.clone()).expect("data dir")).await.expect("session");
        let model = session.library().import(&folder).await.expect("import");
        let (info, measured) = session.load_library_model(model.id, None, None).await.expect("use for chat");
        assert_eq!(info.name, "smollm2-hf");
        assert_eq!(measured.isq, None, "as stored");
        assert!(matches!(session.model_state(), ModelState::Ready { .. }));
        let options = ChatOptions { sampling: Sampling { max_tokens: 12, ..Sampling::greedy() }, system_prompt: None };
        let outcome = session.chat(1, Turn::new(None, common::FRANCE.into(), options), |_| {}).await.expect("chat");
        assert!(outcome.reply.content.contains("Paris"), "{:?}", outcome.reply.content);

        // Quantized in place, as the Models page offers, it is remembered that way for the next
        // start; and a GGUF file cannot be quantized again.
        let (info, measured) =
            session.load_library_model(model.id, Some(Isq::Q8_0), None).await.expect("load with ISQ");
        assert_eq!(info.name, "smollm2-hf (ISQ Q8_0)");
        assert_eq!(measured.isq.as_deref(), Some("q8_0"));
        let gguf = session.library().import(&common::starter_model()).await.expect("import the GGUF");
        let refused = session.load_library_model(gguf.id, Some(Isq::Q4k), None).await.expect_err("ISQ on GGUF");
        assert!(refused.to_string().contains("GGUF"), "{refused}");
        let ModelState::Ready { info: in_use } = session.model_state() else { panic!("a model stays in use") };
        assert_eq!(in_use.name, info.name, "the model in use stays");

        // The GGUF file runs on llama.cpp as it is; on mistral.rs, from a Q8_0 copy in the data
        // folder, which goes when it is removed.
        let (gguf_info, _) = session.load_library_model(gguf.id, None, None).await.expect("use the GGUF file");
        assert_eq!((gguf_info.engine, gguf_info.repacked), (EngineKind::LlamaCpp, None));
        let on_mistral = Some(EngineKind::MistralRs);
        let (gguf_info, measured) =
            session.load_library_model(gguf.id, None, on_mistral).await.expect("use the GGUF file on mistral.rs");
        assert_eq!((gguf_info.engine, measured.engine), (EngineKind::MistralRs, EngineKind::MistralRs));
        let copy = gguf_info.repacked.expect("a Q8_0 copy of the Q4_1 file").cache;
        assert!(copy.starts_with(&data) && copy.is_file(), "{}", copy.display());
        session.load_library_model(model.id, Some(Isq::Q8_0), None).await.expect("back to the folder");
        session.remove_library_model(gguf.id).await.expect("remove the GGUF file");
        assert!(!copy.exists(), "the copy went with the model");
        assert!(common::starter_model().is_file(), "an imported file itself stays");
    }
    let session = Session::open(DataDir::at(data).expect("data dir")).await.expect("session");
    let path = session.startup_model().await.expect("a start-up model");
    assert_eq!(path, std::fs::canonicalize(&folder).unwrap_or(folder.clone()));
    assert_eq!(session.startup_isq(&path).await, Some(Isq::Q8_0));
}
