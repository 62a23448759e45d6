//! A fake Hugging Face Hub serving a repo of files the test writes, and what the download
//! tests measure with it.

use std::time::{Duration, Instant};

use altiplano_core::download::queue::{DownloadJob, DownloadManager, JobState};
use altiplano_core::download::{self, DownloadError, DownloadOptions, HubCache, HubClient, PullProgress, PullSpec};
use altiplano_core::secrets::HfToken;
use altiplano_testhub::HubServer;
use sha2::Digest;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub const REPO: &str = "acme/tiny-GGUF";

/// Deterministic, incompressible bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
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

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub hub: HubServer,
}

impl Fixture {
    pub async fn new(files: &[(&str, Vec<u8>)]) -> Self {
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

    pub fn cache(&self) -> HubCache {
        HubCache::at(self.dir.path().join("cache"))
    }

    pub fn client(&self, token: Option<&str>) -> HubClient {
        HubClient::new(&self.hub.url(), token.and_then(HfToken::new)).expect("client")
    }

    pub fn source(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join("hub").join(REPO).join(name)).expect("source")
    }

    pub async fn pull(
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

pub fn spec(files: &[&str]) -> PullSpec {
    PullSpec { repo: REPO.into(), revision: "main".into(), files: files.iter().map(|f| (*f).to_owned()).collect() }
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Short waits so fault tests run quickly; parts from 256 KiB up.
pub fn quick() -> DownloadOptions {
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

/// Waits (up to a minute) until download `id` is in `state`.
pub async fn wait_for_state(manager: &DownloadManager, id: i64, state: JobState) -> DownloadJob {
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
