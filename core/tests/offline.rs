//! The app's offline switch (Models › Hugging Face access, kept in the database) against a real HTTP server on
//! 127.0.0.1 (`altiplano-testhub`): on, a running download stops and waits with its bytes, a new
//! one fails at once saying why, the endpoint cannot change, a restart starts nothing, and no
//! request reaches the server; off, the waiting download continues from its bytes and the
//! refused one starts.
//! (The environment switch, `ALTIPLANO_OFFLINE` / `--offline`, is checked on the CLI's
//! workflows under a connection log in cli/tests/offline.rs.)

mod common;

use std::time::Duration;

use altiplano_core::download::queue::{DownloadManager, JobState, OFFLINE_ENV};
use altiplano_core::download::OfflineReason;
use altiplano_core::error::ErrorKind;
use altiplano_core::store::Store;

use common::hub::{noise, quick, sha256, spec, wait_for_state, Fixture, REPO};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offline_switch_holds_every_download_and_releases_them_when_turned_off() {
    let body = noise(1 << 20, 21);
    let fx = Fixture::new(&[("w.gguf", body.clone()), ("other.gguf", noise(200_000, 22))]).await;
    // This binary's only test: it may set the process's environment.
    std::env::set_var("HF_ENDPOINT", fx.hub.url());
    std::env::remove_var("HF_TOKEN");
    std::env::remove_var(OFFLINE_ENV);
    let store = Store::open(&fx.dir.path().join("altiplano.sqlite3")).await.expect("store");
    let manager = DownloadManager::new(store.clone(), fx.cache(), quick());
    assert_eq!(manager.offline().await.expect("offline"), None, "online by default");

    fx.hub.throttle(Some(200 << 10));
    let job = manager.enqueue(&spec(&["w.gguf"]), None).await.expect("enqueued");
    let mut changes = manager.subscribe();
    while manager.job(job.id).await.expect("job").bytes_done < 100_000 {
        changes.changed().await.expect("changes");
    }

    manager.set_offline(true).await.expect("offline on");
    assert_eq!(manager.offline().await.expect("offline"), Some(OfflineReason::Setting));
    let waiting = wait_for_state(&manager, job.id, JobState::Queued).await;
    assert!(waiting.bytes_done >= 100_000, "{waiting:?}");
    assert!(fx.cache().incomplete_path(REPO, &sha256(&body)).exists(), "its bytes are kept");
    let asked = fx.hub.requests().len();

    // A new download fails at once and says why; the endpoint cannot change.
    let other = manager.enqueue(&spec(&["other.gguf"]), None).await.expect("recorded");
    let failed = wait_for_state(&manager, other.id, JobState::Failed).await;
    let error = failed.error.expect("why");
    assert_eq!(error.code, "offline");
    assert!(
        error.message.contains("offline") && error.message.contains("Models › Hugging Face access"),
        "{}",
        error.message
    );
    let refused = manager.set_endpoint("https://hf-mirror.example").await.expect_err("refused while offline");
    assert_eq!(refused.kind(), ErrorKind::Offline);
    assert_eq!(manager.endpoint().await.expect("endpoint"), fx.hub.url(), "unchanged");

    // The switch is kept in the database: a restart while offline starts nothing.
    let restarted = DownloadManager::new(store.clone(), fx.cache(), quick());
    assert_eq!(restarted.offline().await.expect("offline"), Some(OfflineReason::Setting));
    assert_eq!(restarted.resume_interrupted().await.expect("resume"), 0);
    drop(restarted);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let since: Vec<String> = fx.hub.requests().into_iter().skip(asked).collect();
    assert!(since.is_empty(), "requests reached the server while offline: {since:?}");
    assert_eq!(manager.job(job.id).await.expect("job").state, JobState::Queued, "still waiting");

    // Off: the waiting download continues from its bytes.
    fx.hub.throttle(None);
    let served = fx.hub.bytes_served("w.gguf");
    manager.set_offline(false).await.expect("offline off");
    let done = wait_for_state(&manager, job.id, JobState::Completed).await;
    assert!(done.model_id.is_some(), "{done:?}");
    let fetched_after = fx.hub.bytes_served("w.gguf") - served;
    assert!(
        fetched_after <= body.len() as u64 - waiting.bytes_done,
        "{fetched_after} bytes fetched after going online; {} were on disk",
        waiting.bytes_done
    );
    // The one refused for being offline goes too.
    let other = wait_for_state(&manager, other.id, JobState::Completed).await;
    assert!(other.error.is_none(), "{other:?}");
    std::env::remove_var("HF_ENDPOINT");
}
