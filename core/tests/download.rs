//! Downloads against a real HTTP server on 127.0.0.1 (`altiplano-testhub`) that speaks the
//! Hugging Face endpoints and misbehaves on purpose: dropped connections, a corrupted byte,
//! stalls, gated repos, missing files, a slow link, a killed client.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use altiplano_core::download::queue::{DownloadManager, JobState};
use altiplano_core::download::{self, DownloadError, DownloadOptions, PullProgress, PullSpec};
use altiplano_core::library::Library;
use altiplano_core::store::Store;
use sha2::Digest;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use common::hub::{noise, quick, sha256, spec, wait_for_state, Fixture, REPO};

fn commit_of(repo: &str) -> String {
    let mut h = sha1::Sha1::new();
    h.update(repo.as_bytes());
    hex::encode(h.finalize())
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

/// A server — a mirror set in Settings or `HF_ENDPOINT`, or anyone on the path of an `http://`
/// endpoint — that sends a path where a hash or commit id belongs gets a clear error, fetches
/// nothing, and writes nothing outside the cache; a revision that would leave `refs/` is refused.
#[tokio::test]
async fn a_server_that_sends_paths_for_hashes_or_commits_writes_nothing_outside_the_cache() {
    let fx = Fixture::new(&[("w.gguf", noise(50_000, 21)), ("config.json", b"{}".to_vec())]).await;
    let victim = fx.dir.path().join("victim.txt");
    std::fs::write(&victim, b"keep me").expect("victim");
    let escapes = [victim.display().to_string(), "../../../victim.txt".into(), "not-a-hash".into(), String::new()];
    for file in ["w.gguf", "config.json"] {
        for hostile in &escapes {
            fx.hub.clear_faults();
            fx.hub.advertise_hash(file, hostile);
            let e = fx.pull(&[file], &quick(), None).await.expect_err("refused");
            assert!(e.to_string().contains(&format!("the server sent an invalid file hash for {file}")), "{e}");
            assert_eq!(e.code(), "network");
        }
        assert_eq!(fx.hub.content_requests(file), 0, "no byte of {file} was fetched");
    }
    for hostile in ["../../../victim.txt", "main", "/tmp"] {
        fx.hub.clear_faults();
        fx.hub.advertise_commit(hostile);
        let e = fx.pull(&["w.gguf"], &quick(), None).await.expect_err("refused");
        assert!(e.to_string().contains("the server sent an invalid commit id"), "{e}");
    }
    fx.hub.clear_faults();

    let client = fx.client(None);
    let (tx, _rx) = watch::channel(PullProgress::default());
    for revision in ["../../../victim.txt", "a/../../b", ".git", ""] {
        let spec = PullSpec { revision: revision.into(), ..spec(&["w.gguf"]) };
        let e = download::pull(&client, &fx.cache(), &spec, &quick(), &tx, &CancellationToken::new())
            .await
            .expect_err("refused");
        assert!(matches!(e, DownloadError::BadRevision(_)), "{revision:?}: {e}");
    }
    assert_eq!(std::fs::read(&victim).expect("victim"), b"keep me");
    let outside: Vec<_> = std::fs::read_dir(fx.dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !["hub", "cache", "victim.txt"].contains(&n.as_str()))
        .collect();
    assert!(outside.is_empty(), "written beside the cache: {outside:?}");

    // The honest answer still downloads.
    let pulled = fx.pull(&["w.gguf"], &quick(), None).await.expect("pulled");
    assert_eq!(std::fs::read(&pulled.files[0].local_path).expect("read"), fx.source("w.gguf"));
}

/// A server that accepts the connection and never answers the file list or a file's HEAD
/// request: the wait ends after the stall timeout (retried, then reported), and at once on
/// Cancel, so the download queue's permit is never held by a silent server.
#[tokio::test]
async fn a_server_that_never_answers_metadata_times_out_and_cancel_ends_the_wait() {
    let fx = Fixture::new(&[("w.gguf", noise(10_000, 22))]).await;
    fx.hub.hang_metadata(true);
    let patient = DownloadOptions { stall_timeout: Duration::from_millis(300), retry_attempts: 1, ..quick() };
    for files in [&[][..], &["w.gguf"][..]] {
        let waited = tokio::time::timeout(Duration::from_secs(60), fx.pull(files, &patient, None)).await;
        let e = waited.expect("the pull gives up instead of hanging").expect_err("no answer");
        assert!(e.to_string().contains("no answer within"), "{e}");
        assert_eq!(e.code(), "network");
    }

    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stopper.cancel();
    });
    let slow = DownloadOptions { stall_timeout: Duration::from_secs(600), ..quick() };
    let (tx, _rx) = watch::channel(PullProgress::default());
    let (client, cache, spec) = (fx.client(None), fx.cache(), spec(&["w.gguf"]));
    let pull = download::pull(&client, &cache, &spec, &slow, &tx, &cancel);
    let ended = tokio::time::timeout(Duration::from_secs(60), pull).await.expect("Cancel ends the wait");
    assert!(matches!(ended, Err(DownloadError::Cancelled)), "{ended:?}");
    fx.hub.hang_metadata(false);
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

    // Cancelled offline (the endpoint gone, so no file list says which bytes are whose), the
    // partial data still goes: no other download of the repo keeps bytes there.
    manager.forget(other.id).await.expect("forget");
    let again = manager.enqueue(&spec(&["other.gguf"]), None).await.expect("enqueued");
    while manager.job(again.id).await.expect("job").bytes_done == 0 {
        changes.changed().await.expect("changes");
    }
    manager.pause(again.id).await.expect("pause");
    wait_for_state(&manager, again.id, JobState::Paused).await;
    assert!(fx.cache().incomplete_path(REPO, &other_sha).exists(), "pause keeps the bytes");
    fx.hub.shutdown();
    manager.cancel(again.id).await.expect("cancel offline");
    assert!(!fx.cache().incomplete_path(REPO, &other_sha).exists(), "cancel offline deletes the bytes too");
    assert!(fx.cache().blob_path(REPO, &sha256(&body)).exists(), "verified files stay");

    // Removing the downloaded model deletes its files.
    Library::new(store.clone()).remove(model.id, &fx.cache()).await.expect("remove");
    assert!(!model.path.exists());
    assert!(!fx.cache().blob_path(REPO, &sha256(&body)).exists());
    std::env::remove_var("HF_ENDPOINT");
}

/// Offline (here: the server gone), a file asked for by name that is not in the cache fails;
/// the model already cached from the same repo is not handed back in its place.
#[tokio::test]
async fn offline_a_named_file_not_in_the_cache_is_not_replaced_by_another_of_the_repo() {
    let fx = Fixture::new(&[("w.gguf", noise(200_000, 19)), ("second.gguf", noise(200_000, 20))]).await;
    fx.pull(&["w.gguf"], &quick(), None).await.expect("the first file is fetched");
    fx.hub.shutdown();
    let options = DownloadOptions { retry_attempts: 0, ..quick() };
    let result = fx.pull(&["second.gguf"], &options, None).await;
    assert!(matches!(result, Err(DownloadError::Network { .. })), "{result:?}");
    let again = fx.pull(&["w.gguf"], &options, None).await.expect("a cached file needs no network");
    assert_eq!(again.files[0].path, "w.gguf");
}
