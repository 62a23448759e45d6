//! `altiplano serve` with the real starter model, called by the official `openai` Python client
//! (tests/serve/openai_client.py, in the venv `scripts/deps.sh test` makes): models, whole and
//! streamed completions that agree, max_tokens, stop sequences, OpenAI's error objects, four
//! clients at once, and a client that leaves mid-stream stopping its reply.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn python() -> PathBuf {
    let venv = std::env::var_os("ALTIPLANO_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/altiplano-test-venv"));
    let python = venv.join("bin/python");
    assert!(python.is_file(), "no test venv at {} (scripts/deps.sh test makes it)", venv.display());
    python
}

#[test]
fn the_openai_client_gets_what_openai_would_give_it() {
    let python = python();
    let data = tempfile::tempdir().expect("tempdir");
    let mut server = Command::new(env!("CARGO_BIN_EXE_altiplano"))
        .env("ALTIPLANO_DATA_DIR", data.path())
        .env("ALTIPLANO_EMBEDDING_MODEL", "")
        .env_remove("ALTIPLANO_MODEL")
        .env("ALTIPLANO_LOG", "info,mistralrs_core=error")
        .args(["serve", "--port", "0", "--api-key", "test-key"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut stdout = BufReader::new(server.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the server's first line");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"));
    assert!(url.ends_with("/v1"), "{line}");

    let client = Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/serve/openai_client.py"))
        .args([url, "test-key"])
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .expect("run the openai client");
    let _ = server.kill();
    let _ = server.wait();
    let mut log = String::new();
    server.stderr.take().expect("stderr").read_to_string(&mut log).expect("the server's log");
    let said = String::from_utf8_lossy(&client.stdout);
    assert!(client.status.success(), "{said}\n{}\nserver log:\n{log}", String::from_utf8_lossy(&client.stderr));
    assert!(said.contains("all checks passed"), "{said}");
    assert!(
        log.contains("the client went away; the reply is stopped"),
        "the reply left mid-stream was stopped:\n{log}"
    );
}

#[test]
fn listening_beyond_this_computer_needs_a_key_and_says_so_before_loading() {
    let data = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_altiplano"))
        .env("ALTIPLANO_DATA_DIR", data.path())
        .env_remove("ALTIPLANO_API_KEY")
        .env_remove("ALTIPLANO_MODEL")
        .args(["serve", "--host", "0.0.0.0", "--port", "0"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--api-key") && stderr.contains("127.0.0.1"), "{stderr}");
    assert!(!stderr.contains("loading"), "refused before the model loads: {stderr}");
}
