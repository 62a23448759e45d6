//! The CLI's model commands on the real starter model: `altiplano models convert-gguf` and
//! `altiplano eval perplexity`.

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::process::Command;

#[test]
fn the_cli_converts_and_refuses_what_it_cannot_convert() {
    let dir = common::data_dir();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_altiplano"))
            .args(args)
            .env("ALTIPLANO_DATA_DIR", dir.path().join("data"))
            .output()
            .expect("run")
    };
    let out_dir = dir.path().join("out");
    let starter = common::starter_model();
    let out =
        run(&["models", "convert-gguf", starter.to_str().expect("utf-8"), out_dir.to_str().expect("utf-8"), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["tensors"], 272);

    let again = run(&["models", "convert-gguf", starter.to_str().expect("utf-8"), out_dir.to_str().expect("utf-8")]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"), "{}", String::from_utf8_lossy(&again.stderr));

    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"definitely not a gguf file").expect("write");
    let bad =
        run(&["models", "convert-gguf", junk.to_str().expect("utf-8"), dir.path().join("x").to_str().expect("utf-8")]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("not a GGUF file") && stderr.trim().lines().count() == 1, "{stderr}");
}

#[test]
fn the_cli_prints_perplexity_as_json() {
    let dir = common::data_dir();
    let text = dir.path().join("text.txt");
    std::fs::write(&text, &common::english_text()[..1500]).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_altiplano"))
        .args(["eval", "perplexity", "--json", "--model"])
        .arg(common::starter_model())
        .arg(&text)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(json["perplexity"].as_f64().is_some_and(|p| p > 1.0 && p < 1000.0), "{json}");
    assert!(json["tokens"].as_u64().is_some_and(|t| t > 200), "{json}");

    let missing = Command::new(env!("CARGO_BIN_EXE_altiplano"))
        .args(["eval", "perplexity", "--model"])
        .arg(common::starter_model())
        .arg(dir.path().join("missing.txt"))
        .output()
        .expect("run");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("missing.txt"));
}
