//! Shared helpers for the integration tests: the real starter model and temporary data folders.
//! The core's tests and the CLI's (`cli/tests`, which include this file by path) share them.
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(clippy::unwrap_used, reason = "test helpers too fail the test on the first unexpected error")]

pub mod harvest;
pub mod hub;

use std::path::{Path, PathBuf};

/// The starter model fetched by `models/fetch-starter.sh`.
pub fn starter_model() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/starter/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "the starter model is missing at {}; run models/fetch-starter.sh (the test command does)",
        path.display()
    );
    path
}

/// The test venv `scripts/deps.sh test` makes (`ALTIPLANO_TEST_VENV` or the default place).
pub fn test_python() -> PathBuf {
    let venv = std::env::var_os("ALTIPLANO_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/altiplano-test-venv"));
    let python = venv.join("bin/python");
    assert!(python.is_file(), "no test venv at {} (scripts/deps.sh test makes it)", venv.display());
    python
}

/// The starter embedding model's own weights written as one GGUF file (`kind`: f32, f16 or
/// q8_0) at `out`, by `scripts/bert-to-gguf.py` (the PyPI `gguf` package in the test venv).
pub fn starter_embedding_as_gguf(out: &Path, kind: &str) {
    let starter = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/starter/all-MiniLM-L6-v2");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/bert-to-gguf.py");
    let status = std::process::Command::new(test_python())
        .arg(script)
        .arg(starter)
        .arg(out)
        .args(["--type", kind])
        .status()
        .expect("run bert-to-gguf.py");
    assert!(status.success(), "bert-to-gguf.py failed (scripts/deps.sh test puts the gguf package in the venv)");
}

/// A file under `core/tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/fixtures").join(name)
}

/// The unpacked `serde_json` sources of the version in Cargo.lock: a real code base no one
/// here wrote (cargo has unpacked it into its registry).
pub fn serde_json_sources() -> PathBuf {
    registry_sources("serde_json", "src/de.rs")
}

/// The unpacked sources of the crate `name` at the version in Cargo.lock (its first, when the
/// lock holds several), found by a file it has (`marker`).
pub fn registry_sources(name: &str, marker: &str) -> PathBuf {
    let lock =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock")).expect("Cargo.lock");
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains(&format!("name = \"{name}\"\n")))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_owned())
        .unwrap_or_else(|| panic!("{name} in Cargo.lock"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cargo"));
    let registry = cargo_home.join("registry/src");
    std::fs::read_dir(&registry)
        .expect("cargo registry")
        .flatten()
        .map(|e| e.path().join(format!("{name}-{version}")))
        .find(|p| p.join(marker).is_file())
        .unwrap_or_else(|| panic!("{name}-{version} is not unpacked under {}", registry.display()))
}

/// A fixed English text of about 3,000 tokens: the start of the GPL-3 (Debian's
/// /usr/share/common-licenses/GPL-3; verbatim copies are allowed).
pub fn english_text() -> String {
    std::fs::read_to_string(fixture("gpl-3-excerpt.txt")).expect("fixture")
}

/// Starts the command `make` builds (a CLI that streams an answer to stdout and saves it in a
/// conversation, which `messages` reads as `conversations show --json` prints it) and kills it as
/// soon as part of its answer is saved (the first save comes 250 ms after the first token):
/// mid-answer. A sampled answer is sometimes shorter than that: a try that ended on its own, or
/// was killed only after its answer was saved as finished, is counted and another is made (up to
/// 5). Returns the number of tries, the last killed mid-answer.
pub fn kill_mid_answer(
    make: impl Fn() -> std::process::Command,
    messages: impl Fn() -> Vec<serde_json::Value>,
) -> usize {
    use std::os::unix::process::ExitStatusExt;
    let last_status = || messages().last().and_then(|m| m["status"].as_str().map(str::to_owned)).unwrap_or_default();
    let partly_saved = || {
        messages().last().is_some_and(|m| {
            m["role"] == "assistant"
                && m["status"] == "streaming"
                && m["content"].as_str().is_some_and(|t| !t.is_empty())
        })
    };
    for tries in 1..=5 {
        let mut child = make().stdout(std::process::Stdio::piped()).spawn().expect("start");
        let mut first = [0u8; 1];
        std::io::Read::read_exact(child.stdout.as_mut().expect("stdout"), &mut first).expect("the answer starts");
        let started = std::time::Instant::now();
        let finished_alone = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(status.success(), "a try that finished on its own succeeded: {status}");
                break true;
            }
            if partly_saved() || started.elapsed() > std::time::Duration::from_secs(10) {
                let _ = child.kill();
                let status = child.wait().expect("reaped");
                break status.signal() != Some(9);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        if !finished_alone && last_status() != "complete" {
            return tries;
        }
    }
    panic!("five answers in a row finished before their first save: nothing was killed mid-answer");
}

/// A fresh data folder.
pub fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("altiplano-test-").tempdir().expect("temporary folder")
}

/// The question the tiny starter model reliably answers (see DESIGN.md).
pub const FRANCE: &str = "What is the capital of France? Answer in one word.";
/// A prompt that gets a long reply.
pub const STORY: &str = "Write a long story about a dragon who learns to bake bread.";
/// Instructions long enough that reusing their KV cache shows.
pub const LONG_INSTRUCTIONS: &str = "You are a helpful geography assistant. Answer every question about \
     capitals with the name of the city only, in one word, without punctuation or explanation. If a \
     question is not about a capital, say that you only answer questions about capitals.";
/// A prompt on which the greedy starter model falls into repeating one line ("A single poem, a
/// single sea,") until the token limit, unless stopped.
pub const LOOPING: &str = "Write a poem about the sea where every line ends with the word sea.";

/// Resident memory of this process (Linux), bytes.
pub fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// A short greedy reply; the tokens it took.
pub async fn short_reply(engine: &altiplano_core::engine::Engine) -> u32 {
    use altiplano_core::engine::{CancellationToken, GenerationEvent, PromptMessage, Sampling};
    let sampling = Sampling { max_tokens: 64, ..Sampling::greedy() };
    let message = PromptMessage::new(altiplano_core::store::Role::User, STORY);
    let mut rx = engine.generate(vec![message], sampling, CancellationToken::new());
    let mut context = 0;
    while let Some(event) = rx.recv().await {
        if let GenerationEvent::Finished { stats, .. } = event.unwrap() {
            context = stats.prompt_tokens + stats.completion_tokens;
        }
    }
    context as u32
}

/// Holds an estimate to the bounds `memory_estimate.rs` explains: 15 % short, 25 % over.
pub fn check_estimate(engine: &str, grown: u64, estimate: u64, context: u32) {
    let ratio = estimate as f64 / grown as f64;
    eprintln!(
        "{engine}: resident growth {grown} bytes, estimate {estimate} bytes, ratio {ratio:.3}, context {context}"
    );
    assert!((0.85..=1.25).contains(&ratio), "{engine}: estimate {estimate} vs measured {grown} (ratio {ratio:.3})");
}
