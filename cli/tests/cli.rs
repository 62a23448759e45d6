//! The `altiplano` binary, driven as a user would: real model, real database in a temporary
//! data folder, real processes (one of them killed mid-reply).

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn altiplano(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_altiplano"));
    cmd.env("ALTIPLANO_DATA_DIR", data_dir).env("ALTIPLANO_EMBEDDING_MODEL", "").env_remove("ALTIPLANO_MODEL");
    cmd
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("altiplano runs");
    assert!(out.status.success(), "altiplano failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Q8_0 copies of GGUF files in the data folder `data_dir`.
fn copies(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("cache/repacked"))
        .map(|d| d.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "gguf")).count())
        .unwrap_or(0)
}

#[test]
fn with_altiplano_repack_0_a_q4_1_file_runs_as_it_is() {
    let dir = common::data_dir();
    let out = run_ok(
        altiplano(dir.path())
            .env("ALTIPLANO_REPACK", "0")
            .args(["chat", "--engine", "mistralrs", "--greedy", "--model"])
            .arg(common::starter_model())
            .arg(common::FRANCE),
    );
    assert!(out.contains("Paris"), "{out}");
    assert_eq!(copies(dir.path()), 0, "no copy written");

    // Without it, mistral.rs runs the Q4_1 starter from a Q8_0 copy written into the data folder.
    let out = run_ok(
        altiplano(dir.path())
            .args(["--engine", "mistralrs", "chat", "--greedy", "--model"])
            .arg(common::starter_model())
            .arg(common::FRANCE),
    );
    assert!(out.contains("Paris"), "{out}");
    assert_eq!(copies(dir.path()), 1, "the copy written");
}

#[test]
fn chat_streams_saves_and_is_searchable() {
    let dir = common::data_dir();
    let model = common::starter_model();

    let out = run_ok(altiplano(dir.path()).arg("chat").arg("--model").arg(&model).arg("--greedy").arg(common::FRANCE));
    assert!(out.contains("Paris"), "{out}");
    // llama.cpp ran the Q4_1 starter as it is: no copy.
    assert_eq!(copies(dir.path()), 0);

    let list: Value =
        serde_json::from_str(&run_ok(altiplano(dir.path()).args(["conversations", "list", "--json"]))).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    let id = list[0]["id"].as_i64().unwrap();
    assert_eq!(list[0]["title"], common::FRANCE);

    // A follow-up in the same conversation, as JSON.
    let json: Value = serde_json::from_str(&run_ok(
        altiplano(dir.path())
            .args(["chat", "--greedy", "--json", "--conversation", &id.to_string(), "--model"])
            .arg(&model)
            .arg("What is 2 + 2?"),
    ))
    .unwrap();
    assert_eq!(json["conversation_id"], id);
    assert_eq!(json["finish_reason"], "stop");
    assert!(json["decode_tokens_per_second"].as_f64().unwrap() > 0.0, "{json}");
    assert!(json["time_to_first_token_ms"].as_i64().is_some(), "{json}");

    let shown: Value =
        serde_json::from_str(&run_ok(altiplano(dir.path()).args(["conversations", "show", &id.to_string(), "--json"])))
            .unwrap();
    let messages = shown["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    assert!(messages[1]["content"].as_str().unwrap().contains("Paris"));
    assert_eq!(messages[1]["status"], "complete");

    let hits: Value =
        serde_json::from_str(&run_ok(altiplano(dir.path()).args(["conversations", "search", "paris", "--json"])))
            .unwrap();
    assert!(hits.as_array().unwrap().iter().any(|h| h["conversation_id"] == id), "{hits}");

    run_ok(altiplano(dir.path()).args(["conversations", "rename", &id.to_string(), "Capitals"]));
    assert!(run_ok(altiplano(dir.path()).args(["conversations", "list"])).contains("Capitals"));
    run_ok(altiplano(dir.path()).args(["conversations", "delete", &id.to_string()]));
    assert!(run_ok(altiplano(dir.path()).args(["conversations", "list"])).contains("no conversations"));
}

#[test]
fn failures_exit_non_zero_with_one_line() {
    let dir = common::data_dir();
    let out = altiplano(dir.path()).args(["chat", "--model", "/no/such/model.gguf", "hi"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");

    let out = altiplano(dir.path()).args(["conversations", "show", "42"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("conversation 42 does not exist"));
}

/// Reads the newest assistant message straight from the database, read-only, so that looking
/// never writes to the database under test.
fn newest_reply(db: &Path) -> Option<(String, String)> {
    let output = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3,sys,json\n\
             c=sqlite3.connect('file:'+sys.argv[1]+'?mode=ro',uri=True)\n\
             r=c.execute(\"select content,status from messages where role='assistant' order by id desc limit 1\").fetchone()\n\
             print(json.dumps(r))",
        )
        .arg(db)
        .output()
        .ok()?;
    let value: Value = serde_json::from_slice(&output.stdout).ok()?;
    Some((value[0].as_str()?.to_string(), value[1].as_str()?.to_string()))
}

#[test]
fn killing_the_process_mid_reply_keeps_what_was_shown() {
    let dir = common::data_dir();
    let db = dir.path().join("altiplano.sqlite3");
    let mut child = altiplano(dir.path())
        .arg("chat")
        .arg("--model")
        .arg(common::starter_model())
        .args(["--greedy", "--max-tokens", "2000", common::STORY])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Wait for the reply to be saved part-way (the store writes at least every 500 ms).
    let deadline = Instant::now() + Duration::from_secs(120);
    let saved = loop {
        if let Some((content, status)) = newest_reply(&db) {
            if status == "streaming" && content.split_whitespace().count() >= 5 {
                break content;
            }
        }
        assert!(Instant::now() < deadline, "no partial reply was saved");
        assert!(child.try_wait().unwrap().is_none(), "the reply finished before it could be killed");
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let mut shown = String::new();
    child.stdout.take().unwrap().read_to_string(&mut shown).unwrap();

    assert!(shown.starts_with(&saved), "what was saved ({saved:?}) was shown first ({shown:?})");

    // The next start marks it interrupted and keeps the text.
    let json: Value =
        serde_json::from_str(&run_ok(altiplano(dir.path()).args(["conversations", "show", "1", "--json"]))).unwrap();
    let reply = &json["messages"][1];
    assert_eq!(reply["status"], "interrupted");
    let kept = reply["content"].as_str().unwrap();
    assert!(kept.len() >= saved.len() && shown.starts_with(kept), "kept {kept:?}, shown {shown:?}");
}

#[test]
fn hardware_prints_a_profile_the_planner_can_read() {
    let dir = common::data_dir();
    let json = run_ok(altiplano(dir.path()).args(["hardware", "--json"]));
    let profile = altiplano_core::hardware::HardwareProfile::from_json(&json).expect("a valid profile");
    assert!(profile.ram_bytes > 0 && profile.cpu.threads > 0);
    assert_eq!(profile.nodes, 1);
    // No store is created just to look at the hardware.
    assert!(!dir.path().join("altiplano.sqlite3").exists());

    let text = run_ok(altiplano(dir.path()).arg("hardware"));
    assert!(text.contains("CPU") && text.contains("Memory") && text.contains("GPU"), "{text}");
}

/// A profile that `altiplano hardware --json` printed on a real machine with an NVIDIA H200
/// (NVML loaded at run time), checked against `nvidia-smi` on the same machine:
/// "NVIDIA H200, 143771 MiB total, 143156 MiB free, compute capability 9.0".
#[test]
fn a_profile_detected_on_a_real_h200_reads_back() {
    let text = include_str!("../../core/tests/fixtures/hardware/h200-detected.json");
    let profile = altiplano_core::hardware::HardwareProfile::from_json(text).unwrap();
    let gpu = &profile.gpus[0];
    assert_eq!(gpu.vendor, altiplano_core::hardware::GpuVendor::Nvidia);
    assert_eq!(gpu.name, "NVIDIA H200");
    assert_eq!(gpu.memory_bytes / (1 << 20), 143_771, "NVML total equals nvidia-smi's MiB");
    assert_eq!(gpu.compute_capability(), Some((9, 0)));
}

#[test]
fn plan_reads_a_hardware_file_and_prints_json() {
    let dir = common::data_dir();
    let fixture = common::fixture("hardware/h200-detected.json");
    let json: Value =
        serde_json::from_str(&run_ok(altiplano(dir.path()).arg("plan").arg("--hardware").arg(&fixture).arg("--json")))
            .unwrap();
    let best = &json["recommended"];
    assert_eq!(best["model"], "llama-3.1-70b-instruct");
    assert_eq!(best["quant"], "FP8");
    assert_eq!(best["backend"], "cuda");
    assert_eq!(best["fit"], "gpu");
    assert!(best["tokens_per_second_estimate"].as_f64().unwrap() > 0.0);
    let device = &best["devices"][0];
    for field in ["device", "budget_bytes", "weights_bytes", "kv_cache_bytes", "overhead_bytes"] {
        assert!(!device[field].is_null(), "{field} missing: {device}");
    }
    assert_eq!(json["candidates"].as_array().unwrap().len(), 18, "3 models × 6 variants");
    assert!(json["reason_if_none"].is_null());

    // This machine, in words.
    let text = run_ok(altiplano(dir.path()).arg("plan"));
    assert!(text.contains("llama-3.1-405b-instruct") && text.contains("too large"), "{text}");
    assert!(text.starts_with("Planned for ") && text.contains("(--context to change)"), "{text}");
    let text = run_ok(altiplano(dir.path()).arg("plan").arg("--context").arg("4096"));
    assert!(text.starts_with("Planned for 4096 tokens of context (--context"), "{text}");

    // A broken profile is a one-line error naming the field.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"os": "linux"}"#).unwrap();
    let out = altiplano(dir.path()).arg("plan").arg("--hardware").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing field `cpu`"));
}
