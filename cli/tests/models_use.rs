//! From recommendation to chat: `altiplano models use` downloads a catalog variant (from a real
//! HTTP server on 127.0.0.1 speaking the Hub's protocol, `altiplano-testhub`), loads it with
//! progress, measures what it takes here, and makes it the chat model; the planner then uses
//! the measured figures. Loads report layers read as they happen. (The app's session doing the
//! same is `session_use.rs`, in a process of its own.)

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use altiplano_core::convert::{convert_gguf, WeightType};
use altiplano_core::engine::{Engine, Isq, LoadOptions, LoadProgress, LoadStage};
use altiplano_testhub::HubServer;
use serde_json::Value;
use tokio::sync::watch;

/// The 8B Q4_K_M variant, which the fake Hub serves: its repo and file name are the catalog's,
/// its bytes the starter model's (a real Llama-architecture GGUF small enough for CI).
const VARIANT: &str = "llama-3.1-8b-instruct:q4_k_m";
const REPO: &str = "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF";
const FILE: &str = "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf";

fn altiplano(data_dir: &Path, hub: &str, cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_altiplano"));
    cmd.env("ALTIPLANO_DATA_DIR", data_dir)
        .env("ALTIPLANO_EMBEDDING_MODEL", "")
        .env("HF_ENDPOINT", hub)
        .env("HF_HUB_CACHE", cache)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env_remove("HF_TOKEN")
        .env_remove("ALTIPLANO_MODEL");
    cmd
}

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "altiplano failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_use_downloads_loads_measures_and_chat_then_starts_with_it() {
    let dir = common::data_dir();
    let hub_root = dir.path().join("hub");
    std::fs::create_dir_all(hub_root.join(REPO)).expect("mkdir");
    std::fs::copy(common::starter_model(), hub_root.join(REPO).join(FILE)).expect("copy");
    let hub = HubServer::start(hub_root).await.expect("hub");
    let (data, cache) = (dir.path().join("data"), dir.path().join("cache"));

    let used = json_of(
        &altiplano(&data, &hub.url(), &cache).args(["models", "use", VARIANT, "--json"]).output().expect("run"),
    );
    assert_eq!(used["model"]["variant"], VARIANT);
    assert!(used["model"]["path"].as_str().expect("path").ends_with(FILE));
    assert!(cache.join("models--bartowski--Meta-Llama-3.1-8B-Instruct-GGUF").is_dir(), "downloaded into the hub cache");
    let m = &used["measurement"];
    assert_eq!(m["model_key"], VARIANT);
    let resident = m["resident_bytes"].as_u64().expect("resident");
    assert!(resident > 50_000_000 && resident < 2_000_000_000, "a 98 MB model with its runtime: {resident}");
    let measured_speed = m["decode_tokens_per_second"].as_f64().expect("decode speed measured");
    assert!(measured_speed > 0.0);
    assert!(m["estimated_bytes"].as_u64().expect("estimate") > 4_000_000_000, "the planner's figure for 8B Q4_K_M");

    // The planner now uses the figures measured here for that variant.
    let plan = json_of(&altiplano(&data, &hub.url(), &cache).args(["plan", "--json"]).output().expect("run"));
    let row = plan["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .find(|c| c["model"] == "llama-3.1-8b-instruct" && c["quant"] == "Q4_K_M")
        .expect("the 8B Q4_K_M candidate");
    assert_eq!(row["measured"]["tokens_per_second"].as_f64(), Some(measured_speed));
    assert_eq!(row["tokens_per_second_estimate"].as_f64(), Some(measured_speed));
    assert!(row["explanation"].as_str().expect("explanation").contains("Measured on this machine"), "{row}");
    let other = plan["candidates"].as_array().expect("candidates").iter().find(|c| c["quant"] == "Q8_0").expect("Q8_0");
    assert!(other["measured"].is_null(), "only the measured variant changes");

    // `chat` with no --model runs the chosen model, offline: the Hub is gone.
    hub.shutdown();
    let reply = json_of(
        &altiplano(&data, &hub.url(), &cache)
            .args(["chat", "--json", "--greedy", "--max-tokens", "16", common::FRANCE])
            .output()
            .expect("run"),
    );
    assert_eq!(reply["model"], "Meta-Llama-3.1-8B-Instruct-Q4_K_M");
    assert!(reply["reply"].as_str().expect("reply").contains("Paris"), "{reply}");

    // Choosing it again finds it on disk: no Hub needed.
    let again = json_of(
        &altiplano(&data, &hub.url(), &cache).args(["models", "use", VARIANT, "--json"]).output().expect("run"),
    );
    assert_eq!(again["model"]["id"], used["model"]["id"]);

    // Bad targets get one line saying what is wrong.
    for (args, expected) in [
        (vec!["models", "use", "llama-9b:q1"], "not a model file or folder"),
        (vec!["models", "use", VARIANT, "--isq", "q4k"], "(--isq) applies to safetensors folders"),
    ] {
        let out = altiplano(&data, &hub.url(), &cache).args(&args).output().expect("run");
        assert!(!out.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// Collects every progress report until the sender goes away.
fn collect(mut rx: watch::Receiver<LoadProgress>) -> tokio::task::JoinHandle<Vec<LoadProgress>> {
    tokio::spawn(async move {
        let mut seen = vec![*rx.borrow_and_update()];
        while rx.changed().await.is_ok() {
            seen.push(*rx.borrow_and_update());
        }
        seen
    })
}

fn assert_climbs(seen: &[LoadProgress], layers: u32) {
    let counting: Vec<u32> = seen.iter().filter(|p| p.stage != LoadStage::Checking).map(|p| p.layers_done).collect();
    assert!(counting.windows(2).all(|w| w[0] <= w[1]), "layers only go up: {counting:?}");
    assert!(seen.iter().filter(|p| p.stage != LoadStage::Checking).all(|p| p.layers_total == layers), "{seen:?}");
    let last = seen.last().expect("reports");
    assert_eq!((last.stage, last.layers_done, last.layers_total), (LoadStage::Done, layers, layers));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_report_layers_as_the_engine_reads_them() {
    // GGUF: read through a file descriptor.
    let (tx, rx) = watch::channel(LoadProgress::default());
    let seen = collect(rx);
    let options = LoadOptions { max_parallel_replies: 1, progress: Some(tx), ..Default::default() };
    let engine = Engine::load(&common::starter_model(), options).await.expect("load");
    assert_climbs(&seen.await.expect("collector"), 30);
    drop(engine);

    // Safetensors, quantized in place: memory-mapped, layer by layer, with quantization.
    let dir = common::data_dir();
    let folder = dir.path().join("hf");
    convert_gguf(&common::starter_model(), &folder, WeightType::F32).expect("convert");
    let (tx, rx) = watch::channel(LoadProgress::default());
    let seen = collect(rx);
    let options =
        LoadOptions { max_parallel_replies: 1, isq: Some(Isq::Q8_0), progress: Some(tx), ..Default::default() };
    let engine = Engine::open(&folder, options).await.expect("load");
    let seen = seen.await.expect("collector");
    assert_climbs(&seen, 30);
    // (The first value may be the channel's initial one, sent by nobody.)
    assert!(seen.iter().skip(1).all(|p| p.quantizing), "reported as quantizing: {seen:?}");
    let between: Vec<u32> = seen.iter().map(|p| p.layers_done).filter(|n| *n > 0 && *n < 30).collect();
    assert!(!between.is_empty(), "the layers were seen arriving, not only at the end: {seen:?}");
    drop(engine);
}
