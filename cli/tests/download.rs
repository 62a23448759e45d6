//! The CLI's downloads against a fake Hub on 127.0.0.1: a killed `models pull` continues from
//! the bytes on disk, failures print one line, imports are checked, and the token lives in the
//! real OS keyring.

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::hub::{noise, sha256, Fixture, REPO};

fn altiplano(data_dir: &Path, fx: &Fixture) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_altiplano"));
    cmd.env("ALTIPLANO_DATA_DIR", data_dir)
        .env("ALTIPLANO_EMBEDDING_MODEL", "")
        .env("HF_ENDPOINT", fx.hub.url())
        .env("HF_HUB_CACHE", fx.dir.path().join("cache"))
        .env_remove("HF_TOKEN")
        .env_remove("ALTIPLANO_MODEL");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_cli_download_continues_from_the_bytes_on_disk() {
    let body = noise(80 << 20, 16);
    let fx = Fixture::new(&[("big.gguf", body.clone())]).await;
    let data = fx.dir.path().join("data");
    fx.hub.throttle(Some(8 << 20));

    let mut child = altiplano(&data, &fx)
        .args(["models", "pull", REPO, "--file", "big.gguf"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    while fx.hub.bytes_served("big.gguf") < body.len() as u64 * 2 / 5 {
        assert!(Instant::now() < deadline, "the download never got going");
        assert!(child.try_wait().expect("poll").is_none(), "the CLI ended early");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
    let served_first = fx.hub.bytes_served("big.gguf");

    fx.hub.throttle(None);
    let out = altiplano(&data, &fx).args(["models", "pull", REPO, "--file", "big.gguf"]).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = PathBuf::from(stdout.lines().last().expect("path line"));
    assert_eq!(sha256(&std::fs::read(&path).expect("read")), sha256(&body));
    let twice = fx.hub.bytes_served("big.gguf") - body.len() as u64;
    eprintln!("fetched twice after the kill: {twice} bytes of {served_first} fetched before it");
    assert!(twice < body.len() as u64 / 10, "{twice} bytes fetched twice");

    let list = altiplano(&data, &fx).args(["models", "list", "--json"]).output().expect("list");
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).expect("json");
    assert_eq!(list["models"].as_array().expect("models").len(), 1);
    assert_eq!(list["downloads"].as_array().expect("downloads").len(), 0, "no unfinished download left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reports_failures_in_one_line_and_imports_checked_models() {
    let fx = Fixture::new(&[("w.gguf", noise(1000, 17))]).await;
    let data = fx.dir.path().join("data");
    let out = altiplano(&data, &fx).args(["models", "pull", REPO, "--file", "missing.gguf"]).output().expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("missing.gguf"), "{stderr}");

    let out = altiplano(&data, &fx).args(["models", "pull", "llama-3.1-8b-instruct:q3"]).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a catalog variant"));

    // Import: the real starter model is accepted; a truncated copy is refused.
    let starter = altiplano_core::config::starter_model().expect("starter path");
    let out = altiplano(&data, &fx).arg("models").arg("import").arg(&starter).output().expect("import");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&starter).expect("starter");
    let truncated = fx.dir.path().join("cut.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let out = altiplano(&data, &fx).arg("models").arg("import").arg(&truncated).output().expect("import");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated"), "{}", String::from_utf8_lossy(&out.stderr));
    let list = altiplano(&data, &fx).args(["models", "list", "--json"]).output().expect("list");
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).expect("json");
    let models = list["models"].as_array().expect("models");
    assert_eq!(models.len(), 1);
    assert_eq!(models[0]["source"], "import");
}

/// The token in the real OS keyring (Secret Service). `./test.sh` runs the tests inside a
/// private D-Bus session with an unlocked gnome-keyring and sets `ALTIPLANO_TEST_KEYRING=1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_lives_in_the_os_keyring_and_never_in_logs() {
    if std::env::var("ALTIPLANO_TEST_KEYRING").as_deref() != Ok("1") {
        eprintln!("skipped: run through ./test.sh for a private Secret Service (ALTIPLANO_TEST_KEYRING=1)");
        return;
    }
    let fx = Fixture::new(&[("w.gguf", noise(1000, 18))]).await;
    fx.hub.gate(REPO, "hf_KEYRINGsecret");
    let data = fx.dir.path().join("data");
    let run = |args: &[&str], stdin: &str| {
        let mut child = altiplano(&data, &fx)
            .args(args)
            .env("ALTIPLANO_LOG", "trace")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write");
        child.wait_with_output().expect("run")
    };
    let out = run(&["models", "token", "clear"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["models", "pull", REPO, "--file", "w.gguf"], "");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is gated"), "no token yet");

    let out = run(&["models", "token", "set"], "hf_KEYRINGsecret\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let endpoint = fx.hub.url();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("sent only to {endpoint}")));
    let stored = altiplano_core::secrets::stored_hf_token(&endpoint).await.expect("keyring").expect("stored");
    assert_eq!(stored.expose(), "hf_KEYRINGsecret");
    assert!(
        altiplano_core::secrets::stored_hf_token("https://huggingface.co").await.expect("keyring").is_none(),
        "kept for the endpoint it was added for, not for the Hub"
    );

    // The same server under another name is another endpoint: the token is not sent there.
    let other = endpoint.replace("127.0.0.1", "localhost");
    let elsewhere = |args: &[&str]| altiplano(&data, &fx).env("HF_ENDPOINT", &other).args(args).output().expect("run");
    let status = elsewhere(&["models", "token", "status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains(&format!("no token for {other}")));
    fx.hub.reset_stats();
    let out = elsewhere(&["models", "pull", REPO, "--file", "w.gguf"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is gated"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        fx.hub.auth_headers_seen().iter().all(|h| !h.contains("KEYRINGsecret")),
        "the token went to an endpoint it was not added for"
    );

    let out = run(&["models", "pull", REPO, "--file", "w.gguf"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(logs.lines().count() > 5, "trace logging was on");
    assert!(!logs.contains("KEYRINGsecret"), "the token leaked into the logs");
    let on_disk = walk(fx.dir.path())
        .into_iter()
        .filter(|p| !p.starts_with(fx.dir.path().join("hub")))
        .any(|p| std::fs::read(&p).map(|b| b.windows(16).any(|w| w == b"hf_KEYRINGsecret")).unwrap_or(false));
    assert!(!on_disk, "the token was written to a file");

    let out = run(&["models", "token", "clear"], "");
    assert!(out.status.success());
    assert!(altiplano_core::secrets::stored_hf_token(&endpoint).await.expect("keyring").is_none());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
