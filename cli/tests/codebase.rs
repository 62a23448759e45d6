//! The CLI's code commands on real folders: `altiplano code search` on the sources of
//! `serde_json` (which no one here wrote) and `altiplano code ask` with the real starter model.

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn the_cli_searches_a_folder_and_prints_relative_paths_as_json() {
    let data = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_altiplano"))
        .env("ALTIPLANO_DATA_DIR", data.path())
        .env("ALTIPLANO_EMBEDDING_MODEL", "")
        .args(["code", "search"])
        .arg(common::serde_json_sources())
        .args(["pretty printing indentation", "--limit", "3", "--json"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hits: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let hits = hits.as_array().expect("a list");
    assert_eq!(hits.len(), 3);
    for h in hits {
        let path = h["path"].as_str().expect("path");
        assert!(!path.starts_with('/'), "relative: {path}");
        assert!(h["start_line"].as_u64().expect("start") <= h["end_line"].as_u64().expect("end"));
        assert!(h["score"].as_f64().expect("score") > 0.0);
        assert!(h.get("symbol").is_some());
    }
    assert_eq!(hits[0]["path"], "src/ser.rs");

    let missing = Command::new(env!("CARGO_BIN_EXE_altiplano"))
        .env("ALTIPLANO_DATA_DIR", data.path())
        .env("ALTIPLANO_EMBEDDING_MODEL", "")
        .args(["code", "index", "/no/such/folder"])
        .output()
        .expect("run");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("is not a folder"));
}

#[test]
fn ask_answers_from_the_best_chunks_and_keeps_only_citations_of_what_the_model_saw() {
    let data = tempfile::tempdir().expect("tempdir");
    let project = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(project.path().join("src")).expect("mkdir");
    std::fs::write(
        project.path().join("src/tax.rs"),
        "/// Value added tax for a price in cents.\npub fn vat_cents(price_cents: u64) -> u64 {\n    price_cents * 21 / 100\n}\n",
    )
    .expect("write");
    std::fs::write(
        project.path().join("src/main.rs"),
        "mod tax;\nfn main() {\n    println!(\"{}\", tax::vat_cents(1000));\n}\n",
    )
    .expect("write");
    let model = altiplano_core::config::starter_model().expect("starter model path");
    let out = Command::new(env!("CARGO_BIN_EXE_altiplano"))
        .env("ALTIPLANO_DATA_DIR", data.path())
        .env("ALTIPLANO_EMBEDDING_MODEL", "")
        .args(["code", "ask"])
        .arg(project.path())
        .arg("How is the value added tax computed?")
        .arg("--model")
        .arg(&model)
        .args(["--greedy", "--json"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{:?} {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let excerpts = v["excerpts"].as_array().expect("excerpts");
    assert_eq!(excerpts[0]["path"], "src/tax.rs", "the best chunk comes first: {v}");
    assert_eq!(excerpts[0]["symbol"], "vat_cents");
    assert!(!v["answer"].as_str().expect("answer").trim().is_empty());
    for c in v["citations"].as_array().expect("citations") {
        assert!(
            excerpts.iter().any(|e| e["path"] == c["path"]
                && e["start_line"].as_u64() <= c["start_line"].as_u64()
                && c["end_line"].as_u64() <= e["end_line"].as_u64()),
            "{c} was not shown to the model"
        );
    }
    assert!(v["prompt_tokens"].as_u64().expect("prompt tokens") > 0);

    // Kept as the app keeps it: in the folder's conversation, with the excerpts shown.
    let conversation = v["conversation_id"].as_i64().expect("conversation").to_string();
    let show = |data: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_altiplano"))
            .env("ALTIPLANO_DATA_DIR", data)
            .env("ALTIPLANO_EMBEDDING_MODEL", "")
            .args(["conversations", "show", "--json", &conversation])
            .output()
            .expect("run");
        let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        shown["messages"].as_array().expect("messages").clone()
    };
    let messages = show(data.path());
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0]["content"], "How is the value added tax computed?");
    let saved = messages[1]["content"].as_str().expect("answer");
    assert!(saved.starts_with(v["answer"].as_str().expect("answer")), "{saved}");
    assert!(saved.contains("Sources shown to the model:\n- src/tax.rs:"), "{saved}");

    // Killed while it answers: the question was saved before the model started, and the
    // answer is kept as far as it was saved (the next start marks it interrupted).
    let question = "Explain every line of this project in great detail, file by file.";
    let tries = common::kill_mid_answer(
        || {
            let mut ask = Command::new(env!("CARGO_BIN_EXE_altiplano"));
            ask.env("ALTIPLANO_DATA_DIR", data.path())
                .env("ALTIPLANO_EMBEDDING_MODEL", "")
                .args(["code", "ask"])
                .arg(project.path())
                .arg(question)
                .arg("--model")
                .arg(&model);
            ask
        },
        || show(data.path()),
    );
    let messages = show(data.path());
    assert_eq!(messages.len(), 2 + 2 * tries, "{messages:?}");
    let (asked, killed) = (&messages[2 * tries], &messages[2 * tries + 1]);
    assert_eq!(asked["content"], question);
    assert_eq!(killed["status"], "interrupted", "{messages:?}");
    assert!(!killed["content"].as_str().expect("text").is_empty(), "what was streamed is kept");
}
