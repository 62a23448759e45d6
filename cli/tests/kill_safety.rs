//! Kill safety, measured: the CLI is killed with SIGKILL at random moments while it writes a
//! chat reply, answers about a document, summarizes, indexes a code folder and downloads (from a
//! real HTTP server on 127.0.0.1). After every kill the database passes `PRAGMA
//! integrity_check`, and a reply keeps at least everything the CLI had shown 500 ms before the
//! kill; at the end the summary, the index and the download complete, the download having
//! continued from its bytes each time.
//!
//! `ALTIPLANO_KILLS` sets the number of kills (default 15, about a fifth per workflow;
//! `scripts/kill-safety.sh` runs 100); `ALTIPLANO_KILL_SEED` replays the moments of an earlier run (it prints its seed).

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::hub::{noise, sha256, Fixture, REPO};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Row};

/// What a reply must keep: everything shown up to this long before the kill.
const SHOWN_BEFORE: Duration = Duration::from_millis(500);

/// xorshift: the kill moments, reproducible from the printed seed.
struct Moments(u64);

impl Moments {
    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let span = (high - low).as_millis() as u64;
        low + Duration::from_millis(self.0 % span.max(1))
    }
}

/// Pieces of output and when each arrived.
type Shown = Arc<Mutex<Vec<(Instant, Vec<u8>)>>>;

/// A running CLI whose stdout is collected with the time each piece arrived.
struct Watched {
    child: Child,
    shown: Shown,
    started: Instant,
}

impl Watched {
    fn start(mut command: Command) -> Self {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start");
        let mut stdout = child.stdout.take().expect("stdout");
        let shown: Shown = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&shown);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("lock").push((Instant::now(), buf[..n].to_vec()));
            }
        });
        Self { child, shown, started: Instant::now() }
    }

    /// Waits for the first output (up to a minute); false if the process ended first.
    fn first_output(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.shown.lock().expect("lock").is_empty() {
            if self.child.try_wait().expect("poll").is_some() || Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Kills it after `delay`; `Some(what it had shown SHOWN_BEFORE before the kill)` when the
    /// kill is what ended it, `None` when it had finished by itself.
    fn kill_after(mut self, delay: Duration) -> Option<Vec<u8>> {
        std::thread::sleep(delay);
        let at = Instant::now();
        let _ = self.child.kill();
        let status = self.child.wait().expect("reaped");
        if status.signal() != Some(9) {
            return None;
        }
        let shown = self.shown.lock().expect("lock");
        Some(shown.iter().filter(|(t, _)| *t + SHOWN_BEFORE <= at).flat_map(|(_, b)| b.clone()).collect())
    }
}

async fn connect(db: &Path) -> sqlx::SqliteConnection {
    SqliteConnectOptions::new().filename(db).connect().await.expect("open the database")
}

async fn integrity(db: &Path) -> String {
    let mut conn = connect(db).await;
    sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut conn).await.expect("integrity check")
}

async fn last_reply(db: &Path) -> Option<String> {
    let mut conn = connect(db).await;
    sqlx::query("SELECT content FROM messages WHERE role = 'assistant' ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut conn)
        .await
        .expect("read the reply")
        .map(|row| row.get("content"))
}

#[derive(Debug, Default)]
struct Tally {
    kills: usize,
    finished_first: usize,
    intact: usize,
    replies_checked: usize,
    replies_kept: usize,
    bytes_shown_checked: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_moments_nothing_shown_is_lost_and_everything_continues() {
    let kills: usize = std::env::var("ALTIPLANO_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(15);
    let seed: u64 = std::env::var("ALTIPLANO_KILL_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as u64
    }) | 1;
    eprintln!("kill safety: {kills} kills, ALTIPLANO_KILL_SEED={seed}");
    let mut moments = Moments(seed);

    let body = noise(40 << 20, 41);
    let fx = Fixture::new(&[("big.gguf", body.clone())]).await;
    fx.hub.throttle(Some(8 << 20));
    let data = fx.dir.path().join("data");
    let db = data.join("altiplano.sqlite3");
    let model = common::starter_model();
    let document = fx.dir.path().join("licence.txt");
    std::fs::write(&document, common::english_text()).expect("write");
    // A large real code base (about a second to index here), so a kill finds it indexing.
    let code = common::registry_sources("mistralrs-core", "src/lib.rs");

    let cli = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_altiplano"));
        command
            .env("ALTIPLANO_DATA_DIR", &data)
            .env("ALTIPLANO_EMBEDDING_MODEL", "")
            .env("ALTIPLANO_MODEL", &model)
            .env("HF_ENDPOINT", fx.hub.url())
            .env("HF_HUB_CACHE", fx.dir.path().join("cache"))
            .env_remove("HF_TOKEN")
            .env_remove("ALTIPLANO_OFFLINE")
            .args(args);
        command
    };
    let path = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let (document_arg, code_arg) = (path(&document), path(&code));
    let workflows: [(&str, Vec<&str>, bool); 5] = [
        ("chat", vec!["chat", common::STORY], true),
        (
            "document answer",
            vec!["documents", "ask", &document_arg, "Explain every section of this text in detail."],
            true,
        ),
        ("summary", vec!["summarize", "--chunk-tokens", "400", &document_arg], false),
        ("indexing", vec!["code", "index", &code_arg], false),
        ("download", vec!["models", "pull", REPO, "--file", "big.gguf"], false),
    ];
    // The database exists before the first kill.
    assert!(cli(&["conversations", "list"]).status().expect("run").success());

    let mut tally = Tally::default();
    let mut per_workflow = [0usize; 5];
    let mut downloads_finished = 0u64;
    let mut summary_done = false;
    let mut round = 0;
    while tally.kills < kills {
        let which = round % workflows.len();
        round += 1;
        let (name, args, streams) = &workflows[which];
        let mut args = args.clone();
        if which == 2 && summary_done {
            args.push("--fresh");
        }
        let delay = match which {
            // Replies: killed 0.6 to 3 s after their first word.
            0 | 1 => moments.between(Duration::from_millis(600), Duration::from_secs(3)),
            // Indexing takes about a second: killed 50 to 900 ms after the start.
            3 => moments.between(Duration::from_millis(50), Duration::from_millis(900)),
            // Summaries and downloads print little: killed 0.3 to 4 s after the start.
            _ => moments.between(Duration::from_millis(300), Duration::from_secs(4)),
        };
        // The testhub serves on this runtime: the blocking part leaves it its threads.
        let shown = tokio::task::block_in_place(|| {
            let mut run = Watched::start(cli(&args));
            if *streams && !run.first_output() {
                return None;
            }
            let delay = if *streams { delay } else { delay.saturating_sub(run.started.elapsed()) };
            run.kill_after(delay)
        });
        let Some(shown) = shown else {
            // It finished before its kill: not counted. What it finished is undone so that the
            // next round of this workflow has work to kill.
            tally.finished_first += 1;
            match which {
                2 => summary_done = true,
                3 => {
                    let _ = std::fs::remove_dir_all(data.join("code"));
                }
                4 => {
                    downloads_finished += 1;
                    let _ = std::fs::remove_dir_all(fx.dir.path().join("cache"));
                }
                _ => {}
            }
            continue;
        };
        tally.kills += 1;
        per_workflow[which] += 1;
        let check = integrity(&db).await;
        assert_eq!(check, "ok", "after killing the {name} (kill {})", tally.kills);
        tally.intact += 1;
        if *streams && !shown.is_empty() {
            tally.replies_checked += 1;
            let saved = last_reply(&db).await.unwrap_or_default();
            assert!(
                saved.as_bytes().starts_with(&shown),
                "the {name} killed at kill {} lost what was shown: shown {:?}, saved {:?}",
                tally.kills,
                String::from_utf8_lossy(&shown),
                saved
            );
            tally.replies_kept += 1;
            tally.bytes_shown_checked += shown.len();
        }
    }

    // Everything continues. The summary and the index finish; the download finishes from its bytes.
    fx.hub.throttle(None);
    for (name, args) in [
        ("summary", vec!["summarize", "--chunk-tokens", "400", &document_arg]),
        ("indexing", vec!["code", "index", "--json", &code_arg]),
        ("download", vec!["models", "pull", REPO, "--file", "big.gguf"]),
    ] {
        let out = tokio::task::block_in_place(|| cli(&args).output()).expect("run");
        assert!(out.status.success(), "the {name} continues after the kills: {}", String::from_utf8_lossy(&out.stderr));
        if name == "indexing" {
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
            assert!(report["files_seen"].as_u64().expect("files") > 10, "{report}");
        }
        if name == "download" {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let file = PathBuf::from(stdout.lines().last().expect("path"));
            assert_eq!(sha256(&std::fs::read(file).expect("read")), sha256(&body), "byte-identical");
        }
    }
    let search =
        tokio::task::block_in_place(|| cli(&["code", "search", &code_arg, "paged attention block engine"]).output())
            .expect("run");
    assert!(String::from_utf8_lossy(&search.stdout).contains("paged_attention"), "the index answers after the kills");
    let check = integrity(&db).await;
    assert_eq!(check, "ok");

    // Every download but the last started from nothing (its finished copy was removed); what
    // was served beyond those copies was fetched twice because of a kill.
    let served = fx.hub.bytes_served("big.gguf");
    let download_kills = per_workflow[4] as u64;
    let fetched_twice = served.saturating_sub((downloads_finished + 1) * body.len() as u64);
    assert!(
        fetched_twice <= download_kills.max(1) * body.len() as u64 / 10,
        "downloads continue from their bytes: {fetched_twice} bytes fetched twice over {download_kills} kills"
    );
    eprintln!(
        "kill safety: {} kills (chat {}, document answers {}, summaries {}, indexing {}, downloads {}); \
         integrity_check ok after {}/{}; replies keeping what was shown 500 ms before the kill: {}/{} \
         ({} bytes checked); {} runs finished before their kill and were not counted; the download \
         fetched {:.1} MiB of 40 MiB twice over {} kills",
        tally.kills,
        per_workflow[0],
        per_workflow[1],
        per_workflow[2],
        per_workflow[3],
        per_workflow[4],
        tally.intact,
        tally.kills,
        tally.replies_kept,
        tally.replies_checked,
        tally.bytes_shown_checked,
        tally.finished_first,
        fetched_twice as f64 / (1 << 20) as f64,
        download_kills
    );
    assert!(tally.replies_checked > 0, "some replies were killed after showing text");
}
