//! Remote engines: another program's OpenAI-compatible server as the chat model. The server
//! here is a real one on 127.0.0.1 — `altiplano serve` with the starter model, in a process
//! and data folder of its own — and the client is the CLI in another data folder: added with
//! its key (kept in the keyring; a wrong one is named), chosen, then chat, a document summary
//! with checked citations, a follow-up and a code answer all run through it; a server killed
//! mid-reply leaves the partial reply saved, marked interrupted, and a clear error.

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use common::harvest::write_pdf;

/// `altiplano serve` with the starter model and a key, killed when dropped.
struct Server {
    child: Child,
    url: String,
    /// Kept open, so that anything more the server prints does not end it.
    _stdout: BufReader<std::process::ChildStdout>,
    _data: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let data = common::data_dir();
        let mut child = Command::new(env!("CARGO_BIN_EXE_altiplano"))
            .env("ALTIPLANO_DATA_DIR", data.path())
            .env("ALTIPLANO_EMBEDDING_MODEL", "")
            .env("ALTIPLANO_MODEL", common::starter_model())
            .env("ALTIPLANO_LOG", "info")
            .args(["serve", "--port", "0", "--api-key", "lab-key"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        stdout.read_line(&mut line).expect("its first line");
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("a URL").to_owned();
        Self { child, url, _stdout: stdout, _data: data }
    }

    fn log(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut log = String::new();
        self.child.stderr.take().expect("stderr").read_to_string(&mut log).expect("log");
        log
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The CLI in a data folder of its own, with no local model named (so the chosen one runs).
fn cli(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_altiplano"));
    c.env("ALTIPLANO_DATA_DIR", dir).env("ALTIPLANO_EMBEDDING_MODEL", "").env_remove("ALTIPLANO_MODEL");
    c
}

fn run(mut command: Command) -> (bool, String, String) {
    let out = command.output().expect("run altiplano");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(mut command: Command) -> serde_json::Value {
    let out = command.output().expect("run altiplano");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn chat_summaries_follow_ups_and_code_answers_run_through_a_remote_server() {
    let server = Server::start();
    let client = common::data_dir();
    let dir = client.path();

    // A wrong key is named before anything is kept.
    let mut add = cli(dir);
    add.args(["remote", "add", "lab", &server.url, "--api-key", "not-the-key"]);
    let (ok, _, err) = run(add);
    assert!(!ok && err.contains("refused the API key") && err.contains("--api-key"), "{err}");
    assert_eq!(
        json({
            let mut c = cli(dir);
            c.args(["remote", "list", "--json"]);
            c
        }),
        serde_json::json!([]),
        "nothing kept"
    );

    // The right key: connected, described, kept and chosen.
    let mut add = cli(dir);
    add.args(["remote", "add", "lab", &server.url, "--api-key", "lab-key", "--use"]);
    let (ok, said, err) = run(add);
    assert!(ok, "{err}");
    assert!(said.contains("SmolLM2-135M-Instruct"), "the model is named: {said}");
    assert!(said.contains("tokens, as the server says"), "where the context came from: {said}");
    assert!(said.contains("counted by the server's tokenizer"), "how tokens are counted: {said}");
    let listed = json({
        let mut c = cli(dir);
        c.args(["remote", "list", "--json"]);
        c
    });
    assert_eq!(listed[0]["name"], "lab");
    assert_eq!(listed[0]["in_use"], true, "{listed}");
    assert!(!listed.to_string().contains("lab-key"), "the key is in the keyring, not the settings: {listed}");

    // Chat through it.
    let reply = json({
        let mut c = cli(dir);
        c.args(["chat", "--greedy", "--json", common::FRANCE]);
        c
    });
    assert!(reply["reply"].as_str().is_some_and(|r| r.contains("Paris")), "{reply}");
    assert!(reply["completion_tokens"].as_u64().is_some_and(|n| n > 0), "{reply}");
    assert!(reply["prompt_tokens"].as_u64().is_some_and(|n| n > 10), "{reply}");

    // A document summarized through it: citations checked against the pages, as locally.
    let file = dir.join("harvest.pdf");
    write_pdf(&file, 6);
    let summary = json({
        let mut c = cli(dir);
        c.args(["summarize", "--json"]).arg(&file);
        c
    });
    assert_eq!(summary["page_count"], 6, "{summary}");
    assert!(!summary["summary"].as_str().unwrap_or_default().trim().is_empty(), "{summary}");
    for c in summary["citations"].as_array().expect("citations") {
        let page = c["page"].as_u64().expect("page");
        assert!((1..=6).contains(&page), "a citation of a page the document has: {c}");
    }
    let sentences = summary["sentences"].as_array().expect("sentences");
    assert!(!sentences.is_empty(), "every sentence is checked: {summary}");
    // A follow-up.
    let answer = json({
        let mut c = cli(dir);
        c.args(["documents", "ask", "--json"])
            .arg(&file)
            .arg("How many tonnes of beans did Juliaca harvest in season 4?");
        c
    });
    assert!(!answer["answer"].as_str().unwrap_or_default().trim().is_empty(), "{answer}");

    // A code answer, its citations checked against the excerpts shown.
    let code = dir.join("project");
    std::fs::create_dir_all(&code).expect("folder");
    std::fs::write(
        code.join("fares.py"),
        "def fare(distance_km):\n    \"\"\"The fare for a ride: a base of 3 plus 2 per kilometre.\"\"\"\n    return 3 + 2 * distance_km\n",
    )
    .expect("file");
    let asked = json({
        let mut c = cli(dir);
        c.args(["code", "ask", "--greedy", "--json"]).arg(&code).arg("How is the fare computed?");
        c
    });
    assert!(!asked["answer"].as_str().unwrap_or_default().trim().is_empty(), "{asked}");

    // All of it was the server's work.
    let log = server.log();
    let served = log.matches("served a reply").count();
    assert!(served >= 4, "chat, summary, follow-up and code answer were served ({served}):\n{log}");

    // A local model chosen again replaces the remote.
    let (ok, _, err) = run({
        let mut c = cli(dir);
        c.args(["models", "use"]).arg(common::starter_model());
        c
    });
    assert!(ok, "{err}");
    let listed = json({
        let mut c = cli(dir);
        c.args(["remote", "list", "--json"]);
        c
    });
    assert_eq!(listed[0]["in_use"], false, "{listed}");
}

#[test]
fn a_server_killed_mid_reply_leaves_the_partial_reply_saved_and_a_clear_error() {
    let server = Server::start();
    let client = common::data_dir();
    let dir = client.path();
    let mut add = cli(dir);
    add.args(["remote", "add", "lab", &server.url, "--api-key", "lab-key", "--use"]);
    let (ok, _, err) = run(add);
    assert!(ok, "{err}");

    let mut chat = cli(dir)
        .args(["chat", "--max-tokens", "2000", common::STORY])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the chat");
    // Some of the reply is shown, and saved (every 250 ms), before the server dies.
    let mut shown = [0u8; 64];
    chat.stdout.as_mut().expect("stdout").read_exact(&mut shown).expect("the reply starts");
    std::thread::sleep(std::time::Duration::from_millis(600));
    drop(server);
    let out = chat.wait_with_output().expect("the chat ends");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the chat fails: {err}");
    assert!(err.contains("broke in the middle of the reply") && err.contains("what came is kept"), "{err}");

    let listed = json({
        let mut c = cli(dir);
        c.args(["conversations", "list", "--json"]);
        c
    });
    let id = listed[0]["id"].to_string();
    let shown_conversation = json({
        let mut c = cli(dir);
        c.args(["conversations", "show", &id, "--json"]);
        c
    });
    let reply = shown_conversation["messages"].as_array().and_then(|m| m.last().cloned()).expect("a reply");
    assert_eq!(reply["role"], "assistant");
    assert_eq!(reply["status"], "interrupted", "{reply}");
    let kept = reply["content"].as_str().unwrap_or_default();
    assert!(kept.len() >= shown.len(), "what was shown is kept ({} bytes): {reply}", kept.len());
    assert!(kept.as_bytes().starts_with(&shown), "{reply}");
}

#[test]
fn an_unreachable_server_and_a_missing_model_are_named() {
    let client = common::data_dir();
    let dir = client.path();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut add = cli(dir);
    add.args(["remote", "add", "gone", &format!("http://me:hunter2@127.0.0.1:{port}")]);
    let (ok, _, err) = run(add);
    assert!(!ok && err.contains("cannot reach the model server") && err.contains("is the server running"), "{err}");
    assert!(!err.contains("hunter2"), "a password in the address is never shown: {err}");

    let server = Server::start();
    let mut add = cli(dir);
    add.args(["remote", "add", "lab", &server.url, "--api-key", "lab-key", "--model", "llama-3.1-405b"]);
    let (ok, _, err) = run(add);
    assert!(!ok && err.contains("does not serve llama-3.1-405b") && err.contains("SmolLM2"), "{err}");

    // Offline, only this computer's servers are reached, and another is refused before any
    // connection.
    let mut add = cli(dir);
    add.env("ALTIPLANO_OFFLINE", "1").args(["remote", "add", "far", "http://gpu-box.invalid:8000/v1"]);
    let (ok, _, err) = run(add);
    assert!(!ok && err.contains("offline mode is on"), "{err}");
    let mut add = cli(dir);
    add.env("ALTIPLANO_OFFLINE", "1").args(["remote", "add", "lab", &server.url, "--api-key", "lab-key"]);
    let (ok, _, err) = run(add);
    assert!(ok, "a server on this computer is reached offline: {err}");
}

#[test]
fn a_server_that_accepts_but_never_answers_is_named_after_the_time_limit() {
    let client = common::data_dir();
    let dir = client.path();
    // A server that takes the connection and the request, and says nothing.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    // Held far past the limit: the error is the limit's, not a closed connection's.
    std::thread::spawn(move || {
        let (mut stream, _) = silent.accept().expect("a connection");
        let mut request = [0u8; 1024];
        let _ = std::io::Read::read(&mut stream, &mut request);
        std::thread::sleep(std::time::Duration::from_secs(60));
    });
    let mut add = cli(dir);
    add.env("ALTIPLANO_REMOTE_TIMEOUT", "2").args(["remote", "add", "slow", &format!("http://127.0.0.1:{port}/v1")]);
    let (ok, _, err) = run(add);
    assert!(!ok && err.contains("did not answer within 2 s"), "{err}");
}
