//! Offline mode on the CLI's workflows, with every connection attempt logged: each command
//! runs under `strace`, which records each `connect`, `sendto` and `sendmsg` to an IP address
//! (DNS lookups included) — a firewall log that nothing in the process can bypass. Offline
//! (`--offline` or `ALTIPLANO_OFFLINE=1`), the runs are also put in a network namespace of
//! their own where one can be made, so nothing could get out even if it tried. Offline, the log
//! holds no attempt at all; online, only the endpoint the user chose appears.

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::hub::{noise, Fixture, REPO};

/// A network-touching system call to an IP address, as strace printed it.
#[derive(Debug)]
struct Attempt {
    line: String,
    loopback: bool,
    port: Option<u16>,
}

/// What `strace -f -e trace=connect,sendto,sendmsg` logged that reaches for an IP address.
fn attempts(log: &Path) -> Vec<Attempt> {
    let text = std::fs::read_to_string(log).expect("strace log");
    text.lines()
        .filter(|l| l.contains("sa_family=AF_INET"))
        .map(|l| {
            let address = l
                .split_once("inet_addr(\"")
                .or_else(|| l.split_once("inet_pton(AF_INET6, \""))
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(a, _)| a.to_owned())
                .unwrap_or_default();
            let port =
                l.split_once("htons(").and_then(|(_, rest)| rest.split_once(')')).and_then(|(p, _)| p.parse().ok());
            Attempt { loopback: address.starts_with("127.") || address == "::1", port, line: l.to_owned() }
        })
        .collect()
}

/// The command prefix that puts a run in a network namespace of its own, where this machine
/// allows one (as root, or through a user namespace).
fn namespace() -> Vec<&'static str> {
    for prefix in [vec!["unshare", "--net"], vec!["unshare", "--map-root-user", "--net"]] {
        let ok = Command::new(prefix[0]).args(&prefix[1..]).arg("true").status().is_ok_and(|s| s.success());
        if ok {
            return prefix;
        }
    }
    eprintln!("no network namespace can be made here; the connection log alone is checked");
    Vec::new()
}

struct Traced {
    out: Output,
    attempts: Vec<Attempt>,
}

/// Runs `altiplano args…` under strace (inside `prefix`), with `env` set.
fn traced(prefix: &[&str], data: &Path, env: &[(&str, &str)], args: &[&str]) -> Traced {
    let log = tempfile::NamedTempFile::new().expect("log file");
    let mut command: Vec<String> = prefix.iter().map(|s| (*s).to_owned()).collect();
    command.extend(["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o"].map(str::to_owned));
    command.push(log.path().display().to_string());
    command.push(env!("CARGO_BIN_EXE_altiplano").to_owned());
    command.extend(args.iter().map(|s| (*s).to_owned()));
    let mut run = Command::new(&command[0]);
    run.args(&command[1..])
        .env("ALTIPLANO_DATA_DIR", data)
        .env("ALTIPLANO_EMBEDDING_MODEL", "")
        .env("HF_HUB_CACHE", data.join("hub-cache"))
        .env_remove("ALTIPLANO_OFFLINE")
        .env_remove("HF_TOKEN")
        .env_remove("ALTIPLANO_MODEL");
    for (k, v) in env {
        run.env(k, v);
    }
    let out = run.output().unwrap_or_else(|e| panic!("cannot run strace (scripts/deps.sh installs it): {e}"));
    Traced { attempts: attempts(log.path()), out }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A small project and a short document for the workflows to read.
fn inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let project = dir.join("project");
    std::fs::create_dir_all(project.join("src")).expect("mkdir");
    std::fs::write(
        project.join("src/tax.rs"),
        "/// Value added tax on a net amount.\npub fn vat(net: f64) -> f64 {\n    net * 0.2\n}\n",
    )
    .expect("write");
    let notes = dir.join("notes.md");
    std::fs::write(
        &notes,
        "# Field notes\n\nThe llamas grazed near Lake Titicaca in June.\n\nWater was scarce in August.\n",
    )
    .expect("write");
    (project, notes)
}

/// A workflow: what it is, its environment and its arguments.
type Workflow<'a> = (&'a str, &'a [(&'a str, &'a str)], Vec<&'a str>);

#[test]
fn offline_the_cli_opens_no_connection_and_says_downloads_are_off() {
    let dir = common::data_dir();
    let data = dir.path().join("data");
    let (project, notes) = inputs(dir.path());
    let model = common::starter_model();
    let model = model.to_str().expect("utf-8");
    let (project, notes) = (project.to_str().expect("utf-8"), notes.to_str().expect("utf-8"));
    let ns = namespace();
    // The real Hub as the endpoint: reaching it would need DNS and a connection, both logged.
    let hub = [("HF_ENDPOINT", "https://huggingface.co")];
    let env_offline = [("HF_ENDPOINT", "https://huggingface.co"), ("ALTIPLANO_OFFLINE", "1")];

    let runs: Vec<Workflow> = vec![
        (
            "pull a repo",
            &hub,
            vec!["--offline", "models", "pull", "bartowski/SmolLM2-135M-Instruct-GGUF", "--file", "x.gguf"],
        ),
        ("pull a catalog variant", &env_offline, vec!["models", "pull", "llama-3.1-8b-instruct:q4_k_m"]),
        ("chat", &hub, vec!["--offline", "chat", "--model", model, "--max-tokens", "16", "Say hello."]),
        ("summarize", &env_offline, vec!["summarize", "--model", model, "--json", notes]),
        (
            "ask a document",
            &hub,
            vec!["--offline", "documents", "ask", notes, "When was water scarce?", "--model", model],
        ),
        ("code search", &env_offline, vec!["code", "search", project, "value added tax"]),
        ("code ask", &hub, vec!["--offline", "code", "ask", project, "How is VAT computed?", "--model", model]),
        ("list models", &env_offline, vec!["models", "list", "--json"]),
        ("plan", &hub, vec!["--offline", "plan"]),
    ];
    for (what, env, args) in runs {
        let run = traced(&ns, &data, env, &args);
        let (stdout, stderr) = (text(&run.out.stdout), text(&run.out.stderr));
        if what.starts_with("pull") {
            assert!(!run.out.status.success(), "{what}: a download cannot succeed offline");
            assert!(stderr.contains("offline") && stderr.contains("downloads are off"), "{what}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{what}: one line says it: {stderr}");
        } else {
            assert!(run.out.status.success(), "{what} works offline: {stderr}");
            assert!(!stdout.trim().is_empty(), "{what} printed its result");
        }
        assert!(run.attempts.is_empty(), "{what} reached for the network while offline: {:#?}", run.attempts);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_only_the_endpoint_the_user_chose_is_contacted() {
    let fx = Fixture::new(&[("w.gguf", noise(300_000, 31)), ("config.json", b"{}\n".to_vec())]).await;
    let data = fx.dir.path().join("data");
    let url = fx.hub.url();
    let env = [("HF_ENDPOINT", url.as_str())];
    // The server runs on this runtime: the blocking runs leave it its threads.
    let pull = tokio::task::block_in_place(|| traced(&[], &data, &env, &["models", "pull", REPO, "--file", "w.gguf"]));
    assert!(pull.out.status.success(), "{}", text(&pull.out.stderr));
    assert!(!pull.attempts.is_empty(), "the log records the connections a download makes");
    let elsewhere: Vec<&Attempt> =
        pull.attempts.iter().filter(|a| !(a.loopback && a.port == Some(fx.hub.port()))).collect();
    assert!(elsewhere.is_empty(), "contacted beyond {url}: {elsewhere:#?}");

    // Workflows that need no network open no connection, online too.
    let model = common::starter_model();
    let args = ["chat", "--model", model.to_str().expect("utf-8"), "--max-tokens", "8", "Hi."];
    let chat = tokio::task::block_in_place(|| traced(&[], &data, &env, &args));
    assert!(chat.out.status.success(), "{}", text(&chat.out.stderr));
    assert!(chat.attempts.is_empty(), "chat reached for the network: {:#?}", chat.attempts);
    let lines: Vec<&str> = pull.attempts.iter().map(|a| a.line.as_str()).collect();
    eprintln!("the download's connections: {lines:#?}");
}
