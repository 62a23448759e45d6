//! Search's embedding models through the CLI, as a user meets them: the catalog's models
//! listed, one downloaded by the download manager from a Hub on 127.0.0.1 (verified, resumable
//! like any model), chosen for documents or code, used by search — and the starter standing in
//! when the chosen one is gone.
//!
//! Hugging Face itself cannot be reached here, so the fake Hub serves the starter's real
//! weights under the multilingual model's repo: what is tested is the path every catalog
//! embedding model takes (download, record, choose, load with the entry's pooling and
//! prefixes, search), not that model's quality (BENCHMARKS.md has that).

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use altiplano_testhub::HubServer;
use common::hub::sha256;

const REPO: &str = "intfloat/multilingual-e5-small";
const ID: &str = "multilingual-e5-small";

fn run(data: &Path, hub: &HubServer, cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_altiplano"))
        .env("ALTIPLANO_DATA_DIR", data)
        .env_remove("ALTIPLANO_EMBEDDING_MODEL")
        .env("HF_ENDPOINT", hub.url())
        .env("HF_HUB_CACHE", cache)
        .env_remove("HF_TOKEN")
        .env_remove("ALTIPLANO_MODEL")
        .args(args)
        .output()
        .expect("run altiplano")
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `models search --json`'s entry for `id`.
fn status(data: &Path, hub: &HubServer, cache: &Path, id: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&ok(run(data, hub, cache, &["models", "search", "--json"]))).expect("json");
    let models = v["searchModels"].as_array().expect("searchModels");
    models.iter().find(|m| m["model"]["id"] == id).unwrap_or_else(|| panic!("{id} not listed: {v}")).clone()
}

/// A small code folder in `root`: tax in `src/tax.rs`, shipping in `src/ship.rs`.
fn tax_and_shipping(root: &Path) -> std::path::PathBuf {
    let project = root.join("project");
    std::fs::create_dir_all(project.join("src")).expect("mkdir");
    std::fs::write(
        project.join("src/tax.rs"),
        "/// Value added tax in cents.\npub fn vat_cents(net: u64) -> u64 {\n    net * 20 / 100\n}\n",
    )
    .expect("write");
    std::fs::write(
        project.join("src/ship.rs"),
        "/// Shipping cost by weight.\npub fn shipping(grams: u32) -> u32 {\n    grams / 100 + 3\n}\n",
    )
    .expect("write");
    project
}

fn purposes(v: &serde_json::Value) -> Vec<String> {
    v.as_array().expect("purposes").iter().map(|p| p.as_str().expect("purpose").to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedding_model_is_downloaded_chosen_and_used_and_the_starter_stands_in_when_it_is_gone() {
    let starter = altiplano_core::config::starter_embedding_dir().expect("run models/fetch-starter.sh");
    let tmp = tempfile::tempdir().expect("tempdir");
    let served = tmp.path().join("hub").join(REPO);
    std::fs::create_dir_all(&served).expect("mkdir");
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(starter.join(file), served.join(file)).expect("copy");
    }
    let hub = HubServer::start(tmp.path().join("hub")).await.expect("hub starts");
    let (data, cache) = (tmp.path().join("data"), tmp.path().join("cache"));
    let project = tax_and_shipping(tmp.path());
    let dir = project.to_str().expect("utf-8 path");

    // At first: the starter serves both, the others are listed with their size.
    let e5 = status(&data, &hub, &cache, ID);
    assert!(e5["path"].is_null(), "{e5}");
    assert_eq!(e5["model"]["languages"].as_array().map(Vec::len), Some(8), "{e5}");
    let mini = status(&data, &hub, &cache, "all-minilm-l6-v2");
    assert_eq!(purposes(&mini["usedFor"]), ["documents", "code"], "{mini}");
    let table = ok(run(&data, &hub, &cache, &["models", "search"]));
    assert!(table.contains("not downloaded (about 448.8 MiB)"), "{table}");

    // Choosing one that is not on disk says how to get it, and changes nothing.
    let out = run(&data, &hub, &cache, &["models", "use-search", ID, "--for", "documents"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("altiplano models pull {ID}")), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    // Downloaded like any model: its catalog files, checked, recorded.
    let pulled: serde_json::Value =
        serde_json::from_str(&ok(run(&data, &hub, &cache, &["models", "pull", ID, "--json"]))).expect("json");
    assert_eq!(pulled["variant"], ID, "{pulled}");
    let folder = Path::new(pulled["path"].as_str().expect("path")).to_path_buf();
    assert_eq!(
        sha256(&std::fs::read(folder.join("model.safetensors")).expect("weights")),
        sha256(&std::fs::read(served.join("model.safetensors")).expect("source"))
    );
    assert_eq!(
        hub.bytes_served("model.safetensors"),
        std::fs::metadata(served.join("model.safetensors")).expect("size").len()
    );

    // It is not a chat model, and says so.
    let out = run(&data, &hub, &cache, &["models", "use", ID]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is an embedding model for search"), "{out:?}");

    // Chosen for documents: code keeps the starter.
    ok(run(&data, &hub, &cache, &["models", "use-search", ID, "--for", "documents"]));
    let e5 = status(&data, &hub, &cache, ID);
    assert_eq!(purposes(&e5["usedFor"]), ["documents"], "{e5}");
    assert_eq!(purposes(&status(&data, &hub, &cache, "all-minilm-l6-v2")["usedFor"]), ["code"]);
    let index = |what: &str| -> serde_json::Value {
        serde_json::from_str(&ok(run(&data, &hub, &cache, &["code", what, dir, "--json"]))).expect("json")
    };
    let first = index("index");
    assert_eq!(first["chunks_embedded"], 2, "{first}");
    let out = run(&data, &hub, &cache, &["code", "search", dir, "tax on a price"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("all-MiniLM-L6-v2 embeddings"), "{out:?}");

    // Chosen for code too: every chunk gets the new model's vector, once.
    ok(run(&data, &hub, &cache, &["models", "use-search", ID, "--for", "code"]));
    assert_eq!(index("index")["chunks_embedded"], 2, "the new model embeds every chunk");
    assert_eq!(index("index")["chunks_embedded"], 0, "and only once");
    let out = run(&data, &hub, &cache, &["code", "search", dir, "tax on a price"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("hybrid: keywords and {ID} embeddings")), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).lines().next().is_some_and(|l| l.starts_with("src/tax.rs:")),
        "{out:?}"
    );

    // Its files gone: search keeps working on the starter, and the listing says why.
    std::fs::remove_file(folder.join("model.safetensors")).expect("remove");
    let e5 = status(&data, &hub, &cache, ID);
    assert!(e5["path"].is_null() && purposes(&e5["usedFor"]).is_empty(), "{e5}");
    assert_eq!(purposes(&e5["chosenFor"]), ["documents", "code"], "the choice is kept: {e5}");
    assert_eq!(purposes(&status(&data, &hub, &cache, "all-minilm-l6-v2")["usedFor"]), ["documents", "code"]);
    let table = ok(run(&data, &hub, &cache, &["models", "search"]));
    assert!(table.contains("the starter stands in until it is downloaded"), "{table}");
    let out = run(&data, &hub, &cache, &["code", "search", dir, "tax on a price"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("all-MiniLM-L6-v2 embeddings"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gguf_embedding_model_is_downloaded_chosen_and_run_on_llama_cpp() {
    const GGUF_REPO: &str = "second-state/All-MiniLM-L6-v2-Embedding-GGUF";
    const GGUF_ID: &str = "all-minilm-l6-v2-gguf";
    let tmp = tempfile::tempdir().expect("tempdir");
    let served = tmp.path().join("hub").join(GGUF_REPO);
    std::fs::create_dir_all(&served).expect("mkdir");
    // The starter's weights at 8 bits, as the catalog's GGUF copy of them is published.
    common::starter_embedding_as_gguf(&served.join("all-MiniLM-L6-v2-Q8_0.gguf"), "q8_0");
    let hub = HubServer::start(tmp.path().join("hub")).await.expect("hub starts");
    let (data, cache) = (tmp.path().join("data"), tmp.path().join("cache"));
    let project = tax_and_shipping(tmp.path());
    let dir = project.to_str().expect("utf-8 path");

    let pulled: serde_json::Value =
        serde_json::from_str(&ok(run(&data, &hub, &cache, &["models", "pull", GGUF_ID, "--json"]))).expect("json");
    assert_eq!(pulled["variant"], GGUF_ID, "{pulled}");
    ok(run(&data, &hub, &cache, &["models", "use-search", GGUF_ID, "--for", "code"]));
    assert_eq!(purposes(&status(&data, &hub, &cache, GGUF_ID)["usedFor"]), ["code"]);

    let index: serde_json::Value =
        serde_json::from_str(&ok(run(&data, &hub, &cache, &["code", "index", dir, "--json"]))).expect("json");
    assert_eq!(index["chunks_embedded"], 2, "{index}");
    let out = run(&data, &hub, &cache, &["code", "search", dir, "tax on a price"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("hybrid: keywords and all-MiniLM-L6-v2 (GGUF Q8_0) embeddings"), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).lines().next().is_some_and(|l| l.starts_with("src/tax.rs:")),
        "{out:?}"
    );
}
