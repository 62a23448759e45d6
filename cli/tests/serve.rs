//! `altiplano serve` with the real starter model, called by the official `openai` and
//! `anthropic` Python clients (tests/serve/, in the venv `scripts/deps.sh test` makes): models,
//! whole and streamed completions that agree, max_tokens, stop sequences, each API's error
//! objects, four clients at once, a client that leaves mid-stream stopping its reply; and from
//! plain HTTP, a full queue's 429, CORS only for the origins named, and requests kept as
//! conversations only when asked.

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use common::test_python as python;

/// `altiplano serve` running in a data folder of its own, killed when dropped.
struct Serving {
    child: std::process::Child,
    url: String,
    model: String,
    /// Kept open: the server prints more than its first line, and a closed pipe would end it.
    _stdout: BufReader<std::process::ChildStdout>,
    _data: tempfile::TempDir,
}

impl Serving {
    /// Starts `altiplano serve --port 0 ARGS` with the starter model and waits for its URL.
    fn start(args: &[&str]) -> Self {
        let data = tempfile::tempdir().expect("tempdir");
        Self::start_in(data, args)
    }

    fn start_in(data: tempfile::TempDir, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_altiplano"))
            .env("ALTIPLANO_DATA_DIR", data.path())
            .env("ALTIPLANO_EMBEDDING_MODEL", "")
            .env_remove("ALTIPLANO_MODEL")
            .env_remove("ALTIPLANO_API_KEY")
            .env("ALTIPLANO_LOG", "info,mistralrs_core=error")
            .args(["serve", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the server's first line");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_owned();
        assert!(url.ends_with("/v1"), "{line}");
        // "serving MODEL at URL (Ctrl+C stops)"
        let model = line.strip_prefix("serving ").and_then(|rest| rest.split(" at ").next()).expect("the model's id");
        let model = model.to_owned();
        Self { child, url, model, _stdout: stdout, _data: data }
    }

    /// Runs one of tests/serve's scripts against the server, then stops the server; fails
    /// with both sides' output unless the script passed. Returns what the script printed.
    fn run_script(mut self, script: &str, args: &[&str]) -> (String, String) {
        let client = Command::new(python())
            .arg(format!("{}/../tests/serve/{script}", env!("CARGO_MANIFEST_DIR")))
            .args(args)
            .env("NO_PROXY", "127.0.0.1")
            .output()
            .expect("run the client");
        let log = self.stop();
        let said = String::from_utf8_lossy(&client.stdout).into_owned();
        assert!(
            client.status.success() && said.contains("all checks passed"),
            "{said}\n{}\nserver log:\n{log}",
            String::from_utf8_lossy(&client.stderr)
        );
        (said, log)
    }

    /// Stops the server; returns its log.
    fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut log = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            stderr.read_to_string(&mut log).expect("the server's log");
        }
        log
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_openai_client_gets_what_openai_would_give_it() {
    let server = Serving::start(&["--api-key", "test-key"]);
    let url = server.url.clone();
    let (_, log) = server.run_script("openai_client.py", &[&url, "test-key"]);
    assert!(
        log.contains("the client went away; the reply is stopped"),
        "the reply left mid-stream was stopped:\n{log}"
    );
}

#[test]
fn the_anthropic_client_gets_what_anthropic_would_give_it() {
    let server = Serving::start(&["--api-key", "test-key"]);
    let root = server.url.trim_end_matches("/v1").to_owned();
    let model = server.model.clone();
    server.run_script("anthropic_client.py", &[&root, &model, "test-key"]);
}

/// Starts a server with `args` and runs one of `limits.py`'s checks against it.
fn limits(args: &[&str], check: &str) {
    let server = Serving::start(args);
    let (url, model) = (server.url.clone(), server.model.clone());
    server.run_script("limits.py", &[&url, &model, check]);
}

#[test]
fn a_full_queue_answers_429_with_retry_after_and_frees_its_place_when_a_client_leaves() {
    limits(&["--queue", "1"], "queue");
}

#[test]
fn only_the_origins_named_with_cors_may_call_from_a_web_page() {
    limits(&["--cors", "https://app.example"], "cors");
    limits(&[], "no-cors");
}

/// Runs `altiplano serve --port 0 ARGS`, which must fail before the model loads; its stderr.
fn refused_before_loading(args: &[&str]) -> String {
    let data = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_altiplano"))
        .env("ALTIPLANO_DATA_DIR", data.path())
        .env_remove("ALTIPLANO_API_KEY")
        .env_remove("ALTIPLANO_MODEL")
        .args(["serve", "--port", "0"])
        .args(args)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    assert!(!stderr.contains("loading"), "refused before the model loads: {stderr}");
    stderr
}

#[test]
fn a_cors_origin_that_is_not_an_origin_is_refused_before_loading() {
    let stderr = refused_before_loading(&["--cors", "app.example/page"]);
    assert!(stderr.contains("not a web origin") && stderr.contains("https://"), "{stderr}");
}

#[test]
fn requests_are_kept_as_searchable_conversations_when_asked() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().to_path_buf();
    let server = Serving::start_in(data, &["--keep-conversations"]);
    let url = server.url.clone();
    let model = server.model.clone();
    let altiplano = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_altiplano"))
            .env("ALTIPLANO_DATA_DIR", &dir)
            .args(args)
            .output()
            .expect("run altiplano");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("JSON")
    };
    // The data folder outlives the server: `Serving` owns it, so list while it still runs.
    let client = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/serve/limits.py"))
        .args([url.as_str(), model.as_str(), "keep"])
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .expect("run the client");
    let said = String::from_utf8_lossy(&client.stdout).into_owned();
    assert!(client.status.success(), "{said}{}", String::from_utf8_lossy(&client.stderr));
    let reply: String = said
        .lines()
        .find_map(|l| l.strip_prefix("REPLY "))
        .map(|r| serde_json::from_str(r).expect("the reply"))
        .expect("the reply printed");
    let listed = altiplano(&["conversations", "list", "--json"]);
    let listed = listed.as_array().expect("a list");
    assert_eq!(listed.len(), 2, "one conversation per request: {listed:?}");
    let counting = listed
        .iter()
        .find(|c| c["title"].as_str().is_some_and(|t| t.starts_with("API: Count from one")))
        .unwrap_or_else(|| panic!("a conversation titled after the request: {listed:?}"));
    let shown = altiplano(&["conversations", "show", &counting["id"].to_string(), "--json"]);
    let messages = shown["messages"].as_array().expect("messages");
    let roles: Vec<_> = messages.iter().map(|m| m["role"].as_str().unwrap_or("")).collect();
    assert_eq!(roles, ["system", "user", "assistant"], "{messages:?}");
    assert_eq!(messages[2]["content"].as_str(), Some(reply.as_str()), "the reply as the client got it");
    assert_eq!(messages[2]["status"].as_str(), Some("complete"), "{:?}", messages[2]);
    let found = altiplano(&["conversations", "search", "fruit", "--json"]);
    assert!(!found.as_array().expect("hits").is_empty(), "search covers served requests: {found}");
    drop(server);
}

#[test]
fn requests_are_not_kept_unless_asked() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().to_path_buf();
    let server = Serving::start_in(data, &[]);
    let url = server.url.clone();
    let model = server.model.clone();
    let client = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/serve/limits.py"))
        .args([url.as_str(), model.as_str(), "keep"])
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .expect("run the client");
    assert!(client.status.success(), "{}", String::from_utf8_lossy(&client.stderr));
    let out = Command::new(env!("CARGO_BIN_EXE_altiplano"))
        .env("ALTIPLANO_DATA_DIR", &dir)
        .args(["conversations", "list", "--json"])
        .output()
        .expect("run altiplano");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
    drop(server);
}

#[test]
fn listening_beyond_this_computer_needs_a_key_and_says_so_before_loading() {
    let stderr = refused_before_loading(&["--host", "0.0.0.0"]);
    assert!(stderr.contains("--api-key") && stderr.contains("127.0.0.1"), "{stderr}");
}
