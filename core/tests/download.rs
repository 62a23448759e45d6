//! Downloads against a real HTTP server on 127.0.0.1 (`altiplano-testhub`) that speaks the
//! Hugging Face endpoints and misbehaves on purpose: dropped connections, a corrupted byte,
//! stalls, gated repos, missing files, a slow link, a killed client.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use altiplano_core::download::queue::{DownloadManager, JobState};
use altiplano_core::download::{self, DownloadError, DownloadOptions, HubCache, HubClient, PullProgress, PullSpec};
use altiplano_core::library::Library;
use altiplano_core::secrets::HfToken;
use altiplano_core::store::Store;
use altiplano_testhub::HubServer;
use sha2::Digest;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const REPO: &str = "acme/tiny-GGUF";

/// Deterministic, incompressible bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

struct Fixture {
    dir: tempfile::TempDir,
    hub: HubServer,
}

impl Fixture {
    async fn new(files: &[(&str, Vec<u8>)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("hub").join(REPO);
        for (name, bytes) in files {
            let path = repo.join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, bytes).expect("write");
        }
        let hub = HubServer::start(dir.path().join("hub")).await.expect("server starts");
        Self { dir, hub }
    }

    fn cache(&self) -> HubCache {
        HubCache::at(self.dir.path().join("cache"))
    }

    fn client(&self, token: Option<&str>) -> HubClient {
        HubClient::new(&self.hub.url(), token.and_then(HfToken::new)).expect("client")
    }

    fn source(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join("hub").join(REPO).join(name)).expect("source")
    }

    async fn pull(
        &self,
        files: &[&str],
        options: &DownloadOptions,
        token: Option<&str>,
    ) -> Result<download::Pulled, DownloadError> {
        let spec = spec(files);
        let (tx, _rx) = watch::channel(PullProgress::default());
        download::pull(&self.client(token), &self.cache(), &spec, options, &tx, &CancellationToken::new()).await
    }
}

fn spec(files: &[&str]) -> PullSpec {
    PullSpec { repo: REPO.into(), revision: "main".into(), files: files.iter().map(|f| (*f).to_owned()).collect() }
}

/// Short waits so fault tests run quickly; parts from 256 KiB up.
fn quick() -> DownloadOptions {
    DownloadOptions {
        parallel_threshold: 256 << 10,
        stall_timeout: Duration::from_secs(2),
        retry_base: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        disk_margin: 0,
        save_interval: Duration::from_millis(100),
        ..DownloadOptions::default()
    }
}

fn commit_of(repo: &str) -> String {
    let mut h = sha1::Sha1::new();
    h.update(repo.as_bytes());
    hex::encode(h.finalize())
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn a_file_whose_connection_drops_five_times_completes_byte_identical_in_the_hub_layout() {
    let body = noise(3 << 20, 1);
    let fx = Fixture::new(&[("model.Q4_K_M.gguf", body.clone()), ("config.json", b"{\"a\":1}\n".to_vec())]).await;
    fx.hub.drop_connection("model.Q4_K_M.gguf", 5, 300_000);

    let pulled = fx.pull(&["model.Q4_K_M.gguf", "config.json"], &quick(), None).await.expect("completes");

    let local = &pulled.files[0].local_path;
    assert_eq!(std::fs::read(local).expect("read"), body, "byte-identical after five drops");
    assert!(fx.hub.content_requests("model.Q4_K_M.gguf") >= 6, "it reconnected");
    assert!(fx.hub.bytes_served("model.Q4_K_M.gguf") < body.len() as u64 + (1 << 20), "resumed, not restarted");
    // The standard layout: a snapshot link to a blob named by the SHA-256, and refs/main.
    let cache = fx.cache();
    let commit = commit_of(REPO);
    assert_eq!(pulled.commit, commit);
    let blob = cache.blob_path(REPO, &sha256(&body));
    assert_eq!(std::fs::canonicalize(local).expect("link"), std::fs::canonicalize(&blob).expect("blob"));
    assert_eq!(cache.local_commit(REPO, "main").as_deref(), Some(commit.as_str()));
    // Small files are named by their git blob id, as the Hub's ETag says.
    assert_eq!(std::fs::read(&pulled.files[1].local_path).expect("config"), b"{\"a\":1}\n");
    let leftovers: Vec<_> = std::fs::read_dir(cache.repo_dir(REPO).join("blobs"))
        .expect("blobs")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".incomplete"))
        .collect();
    assert!(leftovers.is_empty(), "no partial files left: {leftovers:?}");
}

#[tokio::test]
async fn a_corrupted_byte_is_detected_and_the_file_fetched_again() {
    let body = noise(1 << 20, 2);
    let fx = Fixture::new(&[("w.gguf", body.clone())]).await;
    fx.hub.corrupt_once("w.gguf");

    let pulled = fx.pull(&["w.gguf"], &quick(), None).await.expect("second copy is good");

    assert_eq!(std::fs::read(&pulled.files[0].local_path).expect("read"), body);
    assert!(fx.hub.bytes_served("w.gguf") >= 2 * body.len() as u64, "the bad copy was discarded and fetched again");
}

#[tokio::test]
async fn a_file_corrupted_every_time_is_reported_and_never_made_visible() {
    let body = noise(64 << 10, 3);
    let fx = Fixture::new(&[("w.gguf", body)]).await;
    fx.hub.corrupt_once("w.gguf");
    let first = fx.pull(&["w.gguf"], &DownloadOptions { checksum_retries: 0, ..quick() }, None).await;
    match first {
        Err(e @ DownloadError::ChecksumMismatch { .. }) => assert!(e.to_string().contains("checksum"), "{e}"),
        other => panic!("expected a checksum error, got {other:?}"),
    }
    let cache = fx.cache();
    assert!(cache.cached_file(REPO, &commit_of(REPO), "w.gguf").is_none(), "a bad file never becomes visible");
}

#[tokio::test]
async fn a_stalled_connection_is_dropped_and_resumed() {
    let body = noise(512 << 10, 4);
    let fx = Fixture::new(&[("w.gguf", body.clone())]).await;
    fx.hub.stall("w.gguf", 100_000);
    let options =
        DownloadOptions { stall_timeout: Duration::from_millis(500), parallel_threshold: u64::MAX, ..quick() };
    let pulled = fx.pull(&["w.gguf"], &options, None).await.expect("recovers from the stall");
    assert_eq!(std::fs::read(&pulled.files[0].local_path).expect("read"), body);
    assert_eq!(fx.hub.content_requests("w.gguf"), 2);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_and_reported_when_they_persist() {
    let body = noise(10_000, 5);
    let fx = Fixture::new(&[("w.gguf", body.clone())]).await;
    // Metadata and content requests alike answer 503 four times, then work.
    fx.hub.fail_status("w.gguf", 503, 4);
    let pulled = fx.pull(&["w.gguf"], &quick(), None).await.expect("retries through the 503s");
    assert_eq!(std::fs::read(&pulled.files[0].local_path).expect("read"), body);
    assert!(fx.hub.requests().len() >= 6, "{:?}", fx.hub.requests());

    let fx = Fixture::new(&[("w.gguf", body)]).await;
    fx.hub.fail_status("w.gguf", 503, 1000);
    let e = fx.pull(&["w.gguf"], &DownloadOptions { retry_attempts: 3, ..quick() }, None).await.expect_err("gives up");
    assert!(matches!(e, DownloadError::Http { status: 503, .. }), "{e:?}");
    assert_eq!(fx.hub.requests().len(), 4, "one try and three retries");
}

#[tokio::test]
async fn a_gated_repo_asks_for_the_licence_and_a_token_which_is_sent_and_never_logged() {
    let fx = Fixture::new(&[("w.gguf", noise(1000, 6))]).await;
    fx.hub.gate(REPO, "hf_SECRETtoken");

    let e = fx.pull(&["w.gguf"], &quick(), None).await.expect_err("401");
    let message = e.to_string();
    assert_eq!(e.code(), "gated");
    assert!(message.contains(&format!("{}/{REPO}", fx.hub.url())), "names the licence page: {message}");
    assert!(message.contains("altiplano models token set"), "says how to add a token: {message}");

    let e = fx.pull(&["w.gguf"], &quick(), Some("hf_wrong")).await.expect_err("403");
    assert!(e.to_string().contains("no access"), "{e}");
    assert!(!format!("{e:?}").contains("hf_wrong"));

    fx.pull(&["w.gguf"], &quick(), Some("hf_SECRETtoken")).await.expect("the right token works");
    assert!(fx.hub.auth_headers_seen().contains(&"Bearer hf_SECRETtoken".to_owned()));
}

#[tokio::test]
async fn missing_repos_files_and_revisions_get_clear_errors() {
    let fx = Fixture::new(&[("w.gguf", noise(1000, 7))]).await;
    let e = fx.pull(&["nope.gguf"], &quick(), None).await.expect_err("404");
    assert!(e.to_string().contains("has no file \"nope.gguf\""), "{e}");

    let client = fx.client(None);
    let (tx, _rx) = watch::channel(PullProgress::default());
    let missing_repo = PullSpec { repo: "acme/none".into(), revision: "main".into(), files: vec![] };
    let e = download::pull(&client, &fx.cache(), &missing_repo, &quick(), &tx, &CancellationToken::new())
        .await
        .expect_err("404");
    assert!(e.to_string().contains("no model repo \"acme/none\""), "{e}");

    let bad_rev = PullSpec { revision: "v9".into(), ..spec(&["w.gguf"]) };
    let e = download::pull(&client, &fx.cache(), &bad_rev, &quick(), &tx, &CancellationToken::new())
        .await
        .expect_err("404");
    assert!(e.to_string().contains("not found"), "{e}");

    let hostile = PullSpec { files: vec!["../../etc/passwd".into()], ..spec(&[]) };
    assert!(download::pull(&client, &fx.cache(), &hostile, &quick(), &tx, &CancellationToken::new()).await.is_err());
}

#[tokio::test]
async fn a_repo_is_resolved_to_its_model_files_or_asks_which_one() {
    let fx = Fixture::new(&[
        ("a.Q4_K_M.gguf", noise(1000, 8)),
        ("a.Q8_0.gguf", noise(2000, 9)),
        ("README.md", b"hi".to_vec()),
    ])
    .await;
    let e = fx.pull(&[], &quick(), None).await.expect_err("two candidates");
    assert!(e.to_string().contains("--file") && e.to_string().contains("a.Q8_0.gguf"), "{e}");
    std::fs::remove_file(fx.dir.path().join("hub").join(REPO).join("a.Q8_0.gguf")).expect("rm");
    let pulled = fx.pull(&[], &quick(), None).await.expect("the one GGUF");
    assert_eq!(pulled.files.len(), 1);
    assert_eq!(pulled.model_path(), pulled.files[0].local_path);
}

#[tokio::test]
async fn too_little_disk_space_is_refused_before_any_byte_is_fetched() {
    let fx = Fixture::new(&[("huge.gguf", noise(1000, 10))]).await;
    fx.hub.advertise_size("huge.gguf", 1 << 52); // 4 PiB
    let e = fx.pull(&["huge.gguf"], &quick(), None).await.expect_err("no room");
    assert_eq!(e.code(), "disk_full");
    assert!(e.to_string().contains("not enough disk space"), "{e}");
    assert_eq!(fx.hub.content_requests("huge.gguf"), 0);
}

#[tokio::test]
async fn another_tools_cache_entry_is_reused_without_any_request() {
    let body = noise(200_000, 11);
    let fx = Fixture::new(&[("w.gguf", body.clone())]).await;
    // What Hugging Face's own client leaves behind.
    let cache = fx.cache();
    let commit = commit_of(REPO);
    let etag = sha256(&body);
    std::fs::create_dir_all(cache.repo_dir(REPO).join("blobs")).expect("mkdir");
    std::fs::write(cache.blob_path(REPO, &etag), &body).expect("blob");
    cache.link_snapshot(REPO, &commit, "w.gguf", &etag).expect("link");
    cache.write_ref(REPO, "main", &commit).expect("ref");
    fx.hub.reset_stats();

    let pulled = fx.pull(&["w.gguf"], &quick(), None).await.expect("reused");
    assert!(pulled.files[0].reused);
    assert!(fx.hub.requests().is_empty(), "no request at all: {:?}", fx.hub.requests());
    assert_eq!(std::fs::read(&pulled.files[0].local_path).expect("read"), body);
}

#[tokio::test]
async fn a_partial_file_left_by_another_tool_is_continued_from_its_length() {
    let body = noise(400_000, 12);
    let fx = Fixture::new(&[("w.gguf", body.clone())]).await;
    let cache = fx.cache();
    std::fs::create_dir_all(cache.repo_dir(REPO).join("blobs")).expect("mkdir");
    std::fs::write(cache.incomplete_path(REPO, &sha256(&body)), &body[..300_000]).expect("partial");
    let pulled = fx.pull(&["w.gguf"], &quick(), None).await.expect("continues");
    assert_eq!(std::fs::read(&pulled.files[0].local_path).expect("read"), body);
    assert_eq!(fx.hub.bytes_served("w.gguf"), 100_000, "only the missing bytes were fetched");
}

#[tokio::test]
async fn a_slow_download_is_cancelled_promptly_and_keeps_its_bytes() {
    let body = noise(2 << 20, 13);
    let fx = Fixture::new(&[("w.gguf", body.clone())]).await;
    fx.hub.throttle(Some(256 << 10));
    let client = fx.client(None);
    let cache = fx.cache();
    let cancel = CancellationToken::new();
    let (tx, rx) = watch::channel(PullProgress::default());
    let options = quick();
    let spec = spec(&["w.gguf"]);
    let pull = download::pull(&client, &cache, &spec, &options, &tx, &cancel);
    let stopper = async {
        let mut rx = rx.clone();
        let mut best_rate = 0.0f64;
        while rx.borrow().bytes_done < 200_000 {
            rx.changed().await.expect("progress");
            best_rate = best_rate.max(rx.borrow().bytes_per_second);
        }
        cancel.cancel();
        (Instant::now(), best_rate)
    };
    let (result, (cancelled_at, rate)) = tokio::join!(pull, stopper);
    let took = cancelled_at.elapsed();
    assert!(matches!(result, Err(DownloadError::Cancelled)), "{result:?}");
    // Promptly: well before the slow transfer could have finished (8 s at this rate).
    assert!(took < Duration::from_secs(3), "cancel took {took:?}");
    let progress = rx.borrow().clone();
    assert!(progress.bytes_done >= 200_000 && progress.bytes_total == body.len() as u64, "{progress:?}");
    // The rate is measured over a few seconds; the throttle is 256 KiB/s.
    assert!(rate > 50_000.0 && rate < 600_000.0, "rate {rate}");

    fx.hub.throttle(None);
    let pulled = fx.pull(&["w.gguf"], &quick(), None).await.expect("resumes");
    assert_eq!(std::fs::read(&pulled.files[0].local_path).expect("read"), body);
    let refetched = fx.hub.bytes_served("w.gguf") - body.len() as u64;
    assert!(refetched < body.len() as u64 / 10, "only a little fetched twice: {refetched}");
}

async fn store_in(dir: &Path) -> Store {
    Store::open(&dir.join("altiplano.sqlite3")).await.expect("store")
}

async fn wait_for_state(
    manager: &DownloadManager,
    id: i64,
    state: JobState,
) -> altiplano_core::download::queue::DownloadJob {
    let mut changes = manager.subscribe();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = manager.job(id).await.expect("job");
        if job.state == state {
            return job;
        }
        assert!(Instant::now() < deadline, "download {id} never became {state:?}: {job:?}");
        let _ = tokio::time::timeout(Duration::from_millis(200), changes.changed()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_pauses_resumes_cancels_survives_a_restart_and_records_the_model() {
    let body = noise(1 << 20, 14);
    let fx = Fixture::new(&[("w.gguf", body.clone()), ("other.gguf", noise(300_000, 15))]).await;
    // Only this test in this binary reads HF_ENDPOINT in-process (the others pass a client).
    std::env::set_var("HF_ENDPOINT", fx.hub.url());
    std::env::remove_var("HF_TOKEN");
    let store = store_in(fx.dir.path()).await;
    let manager = DownloadManager::new(store.clone(), fx.cache(), quick());

    fx.hub.throttle(Some(200 << 10));
    let job = manager.enqueue(&spec(&["w.gguf"]), None).await.expect("enqueued");
    let mut changes = manager.subscribe();
    while manager.job(job.id).await.expect("job").bytes_done < 100_000 {
        changes.changed().await.expect("changes");
    }
    manager.pause(job.id).await.expect("pause");
    let paused = wait_for_state(&manager, job.id, JobState::Paused).await;
    assert!(paused.bytes_done >= 100_000, "{paused:?}");
    let partial = fx.cache().incomplete_path(REPO, &sha256(&body));
    assert!(partial.exists(), "pause keeps the bytes");

    // Resumed, then the process dies mid-transfer (the task is dropped; the row still says
    // running). A new manager over the same database finds the download and continues it.
    let (tx, _rx) = watch::channel(PullProgress::default());
    let running = tokio::spawn({
        let manager = manager.clone();
        async move { manager.run(job.id, tx).await }
    });
    while manager.job(job.id).await.expect("job").bytes_done < paused.bytes_done + 50_000 {
        changes.changed().await.expect("changes");
    }
    running.abort();
    let _ = running.await;
    assert_eq!(manager.job(job.id).await.expect("job").state, JobState::Running);
    drop(manager);
    let served_before_restart = fx.hub.bytes_served("w.gguf");
    let manager = DownloadManager::new(store.clone(), fx.cache(), quick());
    let mut changes = manager.subscribe();
    fx.hub.throttle(None);
    assert_eq!(manager.resume_interrupted().await.expect("resume"), 1);
    let done = wait_for_state(&manager, job.id, JobState::Completed).await;
    let model = Library::new(store.clone()).get(done.model_id.expect("model recorded")).await.expect("model");
    assert_eq!(std::fs::read(&model.path).expect("read"), body);
    // The restart continued from the bytes on disk: at least those kept at the pause were not
    // fetched again. (Bytes in flight when the task died are lost and fetched again; how many
    // depends on socket buffers, so the total served is not a fixed figure.)
    let served_after_restart = fx.hub.bytes_served("w.gguf") - served_before_restart;
    assert!(
        served_after_restart <= body.len() as u64 - paused.bytes_done,
        "after the restart {served_after_restart} bytes were fetched; {} were on disk at the pause",
        paused.bytes_done
    );

    // Cancel deletes the partial data.
    fx.hub.throttle(Some(100 << 10));
    let other = manager.enqueue(&spec(&["other.gguf"]), None).await.expect("enqueued");
    while manager.job(other.id).await.expect("job").bytes_done == 0 {
        changes.changed().await.expect("changes");
    }
    manager.cancel(other.id).await.expect("cancel");
    wait_for_state(&manager, other.id, JobState::Cancelled).await;
    let other_sha = sha256(&fx.source("other.gguf"));
    assert!(!fx.cache().incomplete_path(REPO, &other_sha).exists(), "cancel deletes the bytes");

    // Removing the downloaded model deletes its files.
    Library::new(store.clone()).remove(model.id, &fx.cache()).await.expect("remove");
    assert!(!model.path.exists());
    assert!(!fx.cache().blob_path(REPO, &sha256(&body)).exists());
    std::env::remove_var("HF_ENDPOINT");
}

fn altiplano(data_dir: &Path, fx: &Fixture) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_altiplano"));
    cmd.env("ALTIPLANO_DATA_DIR", data_dir)
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
    let stored = altiplano_core::secrets::stored_hf_token().await.expect("keyring").expect("stored");
    assert_eq!(stored.expose(), "hf_KEYRINGsecret");

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
    assert!(altiplano_core::secrets::stored_hf_token().await.expect("keyring").is_none());
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
