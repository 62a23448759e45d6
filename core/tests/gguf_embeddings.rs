//! GGUF embedding models on llama.cpp, with a real model: the starter all-MiniLM-L6-v2's own
//! weights written as GGUF by `scripts/bert-to-gguf.py` (the PyPI `gguf` package, in the test
//! venv `scripts/deps.sh test` makes; Hugging Face, where GGUF copies are published, is out of
//! reach here). The same weights on llama.cpp give candle's vectors; search works through
//! them; a chat model or a damaged file is refused with a message that says what to do.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use altiplano_core::codebase::{CodeIndex, Ranking, Retrieval};
use altiplano_core::engine::embed::{similarity, EmbedError, Embedder, Recipe};
use altiplano_core::search_models::{load_resolved, Resolved};

fn starter_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/starter/all-MiniLM-L6-v2")
}

/// The starter's weights as GGUF (`kind`: f32, f16 or q8_0), in `folder`.
fn starter_as_gguf(folder: &Path, kind: &str) -> PathBuf {
    let out = folder.join(format!("all-MiniLM-L6-v2.{kind}.gguf"));
    common::starter_embedding_as_gguf(&out, kind);
    out
}

const TEXTS: [&str; 6] = [
    "How do I reset my password?",
    "I forgot my login credentials",
    "The cat sat on the mat",
    "fn parse_header(bytes: &[u8]) -> Result<Header, Error> { todo!() }",
    "",
    "Le café est très chaud ce matin, naïvement servi.",
];

#[test]
fn the_same_weights_on_llama_cpp_give_candle_s_vectors() {
    let folder = tempfile::tempdir().unwrap();
    let candle = Embedder::load(&starter_dir()).unwrap();
    let long = "retrieval ".repeat(2000);
    let mut texts = TEXTS.to_vec();
    texts.push(long.as_str());
    let expected = candle.embed(&texts).unwrap();

    let file = starter_as_gguf(folder.path(), "f32");
    let llama = Embedder::load(&file).unwrap();
    assert_eq!(llama.dims(), 384);
    assert_eq!(llama.name(), "all-MiniLM-L6-v2.f32");
    assert_ne!(llama.id(), candle.id(), "vectors of the two files are kept apart");
    let got = llama.embed(&texts).unwrap();
    assert_eq!(got.len(), texts.len());
    for ((text, a), b) in texts.iter().zip(&got).zip(&expected) {
        assert!((similarity(a, a) - 1.0).abs() < 1e-4, "normalized");
        let same = similarity(a, b);
        assert!(same > 0.999, "{:.5} for {:?}", same, &text[..text.len().min(40)]);
    }
    // A question's vector, one at a time, is the same as in a batch.
    let one = llama.embed_query(TEXTS[0]).unwrap();
    assert!(similarity(&one, &got[0]) > 0.9999);
    assert!(similarity(&got[0], &got[1]) > similarity(&got[0], &got[2]) + 0.2);

    // 8-bit weights (what GGUF copies are usually published as): close, same neighbours.
    let q8 = Embedder::load(&starter_as_gguf(folder.path(), "q8_0")).unwrap();
    let small = q8.embed(&texts).unwrap();
    for (a, b) in small.iter().zip(&expected) {
        assert!(similarity(a, b) > 0.98, "{}", similarity(a, b));
    }
}

#[test]
fn code_search_is_hybrid_with_a_gguf_model_in_a_folder() {
    let models = tempfile::tempdir().unwrap();
    // As a download leaves a catalog GGUF model: a folder with its one file, named after it.
    let model = models.path().join("minilm-gguf");
    std::fs::create_dir(&model).unwrap();
    starter_as_gguf(&model, "q8_0");
    let embedder = Arc::new(Embedder::load(&model).unwrap());

    let folder = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(folder.path().join("src")).unwrap();
    std::fs::write(
        folder.path().join("src/weather.rs"),
        "/// Estimates the chance of rain for tomorrow from barometric pressure readings.\n\
         pub fn forecast_precipitation(pressure_hpa: &[f64]) -> f64 { 0.0 }\n",
    )
    .unwrap();
    std::fs::write(
        folder.path().join("src/money.rs"),
        "/// Converts an amount between currencies with the day's exchange rate.\n\
         pub fn convert_currency(amount_cents: i64, rate: f64) -> i64 { 0 }\n",
    )
    .unwrap();
    let index = CodeIndex::open(data.path(), folder.path()).unwrap().with_embedder(embedder);
    assert_eq!(index.retrieval(), Retrieval::Hybrid { model: "minilm-gguf".into() });
    let report = index.update(|_| {}).unwrap();
    assert_eq!(report.chunks_embedded, report.chunks_total);
    let hits = index.search_ranked("should I bring an umbrella when I go out", 2, Ranking::Dense).unwrap();
    assert_eq!(hits.first().map(|h| h.path.as_str()), Some("src/weather.rs"), "{hits:?}");
}

#[test]
fn a_chat_model_or_a_damaged_file_is_refused_with_what_to_do() {
    let chat = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/starter/SmolLM2-135M-Instruct.Q4_1.gguf");
    let err = Embedder::load(&chat).unwrap_err();
    assert!(matches!(err, EmbedError::NotEmbedding { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("not a sentence-embedding model") && message.contains("models search"), "{message}");

    let folder = tempfile::tempdir().unwrap();
    let file = starter_as_gguf(folder.path(), "q8_0");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 3]).unwrap();
    let err = Embedder::load(&file).unwrap_err();
    assert!(matches!(err, EmbedError::Damaged { .. }), "{err:?}");
    assert!(err.to_string().contains("fetch it again"), "{err}");
}

#[test]
fn search_runs_the_starter_from_a_gguf_copy_made_once_and_falls_back_to_candle() {
    let starter = starter_dir();
    let candle = Embedder::load(&starter).unwrap();
    assert_eq!(candle.engine(), "candle");
    let expected = candle.embed(&TEXTS).unwrap();

    // The core's own converter: the same vectors on llama.cpp. A half-written copy a killed
    // process left a day ago is swept; one being written now is not.
    let copies = tempfile::tempdir().unwrap();
    let (old, fresh) = (copies.path().join("x.partial-1"), copies.path().join("y.partial-2"));
    for file in [&old, &fresh] {
        std::fs::write(file, b"half a GGUF").unwrap();
    }
    let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
    std::fs::File::options().write(true).open(&old).unwrap().set_modified(day_ago).unwrap();
    let resolved = Resolved { id: None, dir: starter.clone(), recipe: Recipe::from_folder(&starter) };
    let fast = load_resolved(&resolved, copies.path()).unwrap();
    assert_eq!((fast.engine(), fast.name(), fast.dims()), ("llama.cpp", "all-MiniLM-L6-v2", 384));
    for (a, b) in fast.embed(&TEXTS).unwrap().iter().zip(&expected) {
        assert!(similarity(a, b) > 0.999, "{}", similarity(a, b));
    }
    assert!(!old.exists() && fresh.exists(), "the stale half-written copy is swept, the fresh one kept");
    std::fs::remove_file(&fresh).unwrap();
    let made: Vec<_> = std::fs::read_dir(copies.path()).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(made.len(), 1, "one copy, no partial file left: {made:?}");
    let written = std::fs::metadata(&made[0]).unwrap().modified().unwrap();
    drop(fast);
    let again = load_resolved(&resolved, copies.path()).unwrap();
    assert_eq!(again.engine(), "llama.cpp");
    assert_eq!(std::fs::metadata(&made[0]).unwrap().modified().unwrap(), written, "the copy is made once");

    // A cased tokenizer would be read otherwise by llama.cpp: no copy, candle runs it.
    let cased = tempfile::tempdir().unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(starter.join(file), cased.path().join(file)).unwrap();
    }
    let tokenizer = std::fs::read_to_string(starter.join("tokenizer.json")).unwrap();
    let mut tokenizer: serde_json::Value = serde_json::from_str(&tokenizer).unwrap();
    tokenizer["normalizer"]["lowercase"] = serde_json::Value::Bool(false);
    std::fs::write(cased.path().join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let other = tempfile::tempdir().unwrap();
    let resolved = Resolved { id: None, dir: cased.path().to_path_buf(), recipe: Recipe::from_folder(cased.path()) };
    assert_eq!(load_resolved(&resolved, other.path()).unwrap().engine(), "candle");
    assert_eq!(std::fs::read_dir(other.path()).map(|d| d.count()).unwrap_or(0), 0, "nothing written");
}
