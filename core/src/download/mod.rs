//! Model downloads that never lose a byte.
//!
//! Files come from any Hugging Face–compatible endpoint ([`hub`]) into the standard hub cache
//! ([`cache`]), so models fetched by other tools are reused and ours are usable by them. One
//! file at a time is fetched by `transfer`: resumable ranged parts, stall detection, retries
//! with backoff, and a checksum before the file becomes visible. [`pull`] fetches a set of files
//! (a catalog variant, one file, or a repo's model files) after checking the disk has room.
//! [`queue`] keeps a persistent list of downloads in SQLite that survives restarts and can be
//! paused, resumed and cancelled.

pub mod cache;
pub mod hub;
pub mod queue;
mod transfer;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use cache::HubCache;
pub use hub::{HubClient, RemoteFile, RepoListing};
pub use queue::OfflineReason;

/// Errors a download can end with; each says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// 401/403 from a gated repo.
    #[error(
        "{repo} is gated: {}accept its licence at {licence_url} with your Hugging Face account, then add an access token \
         (`altiplano models token set`, or Models → Hugging Face token)",
        if *had_token { "the token in use has no access to it; " } else { "" }
    )]
    Gated {
        /// The repo.
        repo: String,
        /// Where the licence is accepted.
        licence_url: String,
        /// A token was sent (and refused).
        had_token: bool,
    },
    /// 401/403 while the user's token was held back: the endpoint is plain HTTP on another
    /// computer, where anyone on the way could read it.
    #[error(
        "{repo} needs your Hugging Face token, which Altiplano does not send to {endpoint} over plain HTTP (anyone on \
         the way could read it); use an https:// endpoint, or a mirror on this computer"
    )]
    TokenWithheld {
        /// The repo.
        repo: String,
        /// The endpoint.
        endpoint: String,
    },
    /// 404: the repo, revision or file does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Another HTTP status.
    #[error("{url} answered HTTP {status}")]
    Http {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The network failed, and kept failing through the retries.
    #[error(
        "download of {url} failed: {message}; check the connection and retry (the bytes already fetched are kept)"
    )]
    Network {
        /// The URL or file.
        url: String,
        /// Why.
        message: String,
    },
    /// The endpoint answered something that is not what a Hugging Face endpoint says.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// The server sent a hash or commit id that is not one: Altiplano names cache files after
    /// these, so a value like `../../.bashrc` must never reach a path.
    #[error(
        "the server sent an invalid {what} for {subject} ({value:?} is not {expected}); it may not be a Hugging Face \
         endpoint, or something on the way changed its answer"
    )]
    InvalidHash {
        /// What the value was meant to be ("commit id", "file hash").
        what: &'static str,
        /// The repo or file it was for.
        subject: String,
        /// The value sent (cut to 80 characters).
        value: String,
        /// What a valid one looks like.
        expected: &'static str,
    },
    /// A revision that cannot be a branch, tag or commit (it would name a path outside the cache).
    #[error("{0:?} is not a revision; give a branch, a tag or a 40-digit commit id (for example main)")]
    BadRevision(String),
    /// The file failed its checksum twice.
    #[error("{file} failed its checksum twice (expected {expected}, got {actual}); the copy was discarded — retry later or try another mirror")]
    ChecksumMismatch {
        /// Path in the repo.
        file: String,
        /// The hash the server published.
        expected: String,
        /// The hash of what arrived.
        actual: String,
    },
    /// Not enough free disk space.
    #[error(
        "not enough disk space in {}: {} more is needed (including a {} margin) but {} is free; free some space or set HF_HOME to a larger disk",
        dir.display(), human_bytes(*needed), human_bytes(*margin), human_bytes(*available)
    )]
    DiskFull {
        /// The cache folder.
        dir: PathBuf,
        /// Bytes needed, margin included.
        needed: u64,
        /// The margin kept free.
        margin: u64,
        /// Bytes free.
        available: u64,
    },
    /// A file could not be read or written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The repo has several model files and none was named.
    #[error("{repo} has several model files; name one with --file: {}", candidates.join(", "))]
    NeedsFile {
        /// The repo.
        repo: String,
        /// Its model files.
        candidates: Vec<String>,
    },
    /// The repo has no model weights Altiplano can run.
    #[error("{0} has no GGUF or safetensors weights")]
    NoWeights(String),
    /// Not `org/name`.
    #[error(
        "{0:?} is not a model repo id; use the form org/name (for example bartowski/Meta-Llama-3.1-8B-Instruct-GGUF)"
    )]
    BadRepoId(String),
    /// The endpoint is not an http(s) URL.
    #[error("{0:?} is not a usable endpoint; give an http:// or https:// URL")]
    BadEndpoint(String),
    /// Offline mode is on: Altiplano opens no connection, so nothing can be fetched.
    #[error(
        "Altiplano is offline ({0}), so downloads are off; models already on disk keep working. Turn offline mode \
         off to download"
    )]
    Offline(OfflineReason),
    /// Stopped by pause or cancel.
    #[error("the download was stopped")]
    Cancelled,
}

impl DownloadError {
    /// A stable code for the UI, which picks the action that fixes it.
    pub fn code(&self) -> &'static str {
        match self {
            DownloadError::Gated { .. } => "gated",
            DownloadError::NotFound(_) | DownloadError::NeedsFile { .. } | DownloadError::NoWeights(_) => "not_found",
            DownloadError::BadRepoId(_)
            | DownloadError::BadEndpoint(_)
            | DownloadError::BadRevision(_)
            | DownloadError::TokenWithheld { .. } => "invalid",
            DownloadError::Http { .. }
            | DownloadError::Network { .. }
            | DownloadError::Protocol(_)
            | DownloadError::InvalidHash { .. } => "network",
            DownloadError::ChecksumMismatch { .. } => "checksum",
            DownloadError::DiskFull { .. } => "disk_full",
            DownloadError::Io { .. } => "io",
            DownloadError::Offline(_) => "offline",
            DownloadError::Cancelled => "cancelled",
        }
    }

    fn from_write(path: &Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::StorageFull {
            let dir = path.parent().unwrap_or(path).to_path_buf();
            let available = crate::hardware::free_space(&dir);
            DownloadError::DiskFull { dir, needed: 0, margin: 0, available }
        } else {
            DownloadError::Io { path: path.to_path_buf(), source }
        }
    }
}

/// `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// How hard to try.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Files at least this large are fetched in parallel parts.
    pub parallel_threshold: u64,
    /// How many parts at most.
    pub parallel_parts: usize,
    /// Reconnect when no byte arrives for this long.
    pub stall_timeout: Duration,
    /// Tries in a row without progress before giving up.
    pub retry_attempts: u32,
    /// First wait between tries; doubles each time.
    pub retry_base: Duration,
    /// Longest wait between tries.
    pub retry_max: Duration,
    /// Fetches after a checksum mismatch.
    pub checksum_retries: u32,
    /// Disk space kept free beyond what the files need.
    pub disk_margin: u64,
    /// How often progress on disk is recorded.
    pub save_interval: Duration,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        Self {
            parallel_threshold: 64 << 20,
            parallel_parts: 4,
            stall_timeout: Duration::from_secs(30),
            retry_attempts: 8,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            checksum_retries: 1,
            disk_margin: 512 << 20,
            save_interval: Duration::from_millis(500),
        }
    }
}

impl DownloadOptions {
    /// The wait before try number `failures` (1-based): base × 2^(n−1), capped.
    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.retry_base.saturating_mul(factor).min(self.retry_max)
    }
}

/// Where one file stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum FileState {
    /// Not started.
    Waiting = 0,
    /// Bytes are arriving.
    Downloading = 1,
    /// Checking the hash.
    Verifying = 2,
    /// Fetched and verified.
    Done = 3,
    /// Was in the cache already.
    Reused = 4,
    /// Another process is fetching the same file.
    WaitingForOtherProcess = 5,
}

impl FileState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => FileState::Downloading,
            2 => FileState::Verifying,
            3 => FileState::Done,
            4 => FileState::Reused,
            5 => FileState::WaitingForOtherProcess,
            _ => FileState::Waiting,
        }
    }
}

/// Progress of one file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileProgress {
    /// Path in the repo.
    pub path: String,
    /// Bytes on disk.
    pub bytes_done: u64,
    /// Size.
    pub bytes_total: u64,
    /// Recent rate.
    pub bytes_per_second: f64,
    /// Seconds left at the recent rate.
    pub eta_seconds: Option<f64>,
    /// Where it stands.
    pub state: FileState,
}

/// Progress of a whole pull.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PullProgress {
    /// Each file.
    pub files: Vec<FileProgress>,
    /// Bytes on disk, all files.
    pub bytes_done: u64,
    /// Total size, all files.
    pub bytes_total: u64,
    /// Recent rate, all files.
    pub bytes_per_second: f64,
    /// Seconds left at the recent rate.
    pub eta_seconds: Option<f64>,
}

/// What to pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSpec {
    /// `org/name`.
    pub repo: String,
    /// Branch, tag or commit.
    pub revision: String,
    /// Files in the repo; empty means "the model": every safetensors weight with its JSON and
    /// tokenizer files, or the repo's single GGUF file.
    pub files: Vec<String>,
}

/// A finished pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The repo.
    pub repo: String,
    /// The commit.
    pub commit: String,
    /// The snapshot folder.
    pub snapshot_dir: PathBuf,
    /// Each file's local path (in the snapshot), repo path, and whether it was reused.
    pub files: Vec<PulledFile>,
}

/// One file of a finished pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledFile {
    /// Path in the repo.
    pub path: String,
    /// Where loaders find it.
    pub local_path: PathBuf,
    /// Size.
    pub size: u64,
    /// Found in the cache; nothing downloaded.
    pub reused: bool,
}

impl Pulled {
    /// What a loader opens: the GGUF file, or the snapshot folder of a safetensors model.
    pub fn model_path(&self) -> PathBuf {
        let ggufs: Vec<_> = self.files.iter().filter(|f| f.path.ends_with(".gguf")).collect();
        match ggufs.first() {
            Some(first) => first.local_path.clone(),
            None => self.snapshot_dir.clone(),
        }
    }
}

/// What `pull` means for a target the user typed: a catalog variant id
/// (`llama-3.1-8b-instruct:q4_k_m`), a catalog embedding model's id (`multilingual-e5-small`:
/// the files search needs) or a repo id (`org/name`, with `files` to pick files).
/// Returns the spec and, for a variant, its id.
pub fn spec_for_target(
    catalog: &crate::catalog::Catalog,
    target: &str,
    files: &[String],
    revision: &str,
) -> Result<(PullSpec, Option<String>), DownloadError> {
    let target = target.trim();
    if let Some((model, variant)) = catalog.find_variant(target) {
        let id = crate::catalog::Catalog::variant_id(model, variant);
        let repo = variant.repo.clone().ok_or_else(|| {
            DownloadError::NotFound(format!(
                "{id} is not downloaded from a Hub repo ({}); models/fetch-starter.sh installs it",
                variant.source.as_deref().unwrap_or("no source")
            ))
        })?;
        let files = if files.is_empty() { variant.files.clone() } else { files.to_vec() };
        return Ok((PullSpec { repo, revision: revision.to_owned(), files }, Some(id)));
    }
    if let Some(model) = catalog.embedding(target) {
        let files = if files.is_empty() { model.files.clone() } else { files.to_vec() };
        let spec = PullSpec { repo: model.repo.clone(), revision: revision.to_owned(), files };
        return Ok((spec, Some(model.id.clone())));
    }
    if target.contains(':') {
        return Err(DownloadError::NotFound(format!(
            "{target:?} is not a catalog variant; known variants: {}",
            catalog.variant_ids().join(", ")
        )));
    }
    hub::validate_repo_id(target)?;
    Ok((PullSpec { repo: target.to_owned(), revision: revision.to_owned(), files: files.to_vec() }, None))
}

/// Fetches `spec` into `cache`; progress goes to `progress` about five times a second.
pub async fn pull(
    client: &HubClient,
    cache: &HubCache,
    spec: &PullSpec,
    options: &DownloadOptions,
    progress: &watch::Sender<PullProgress>,
    cancel: &CancellationToken,
) -> Result<Pulled, DownloadError> {
    hub::validate_repo_id(&spec.repo)?;
    hub::validate_revision(&spec.revision)?;
    for file in &spec.files {
        hub::validate_repo_path(file)?;
    }
    if let Some(pulled) = offline_hit(cache, spec) {
        publish_done(&pulled, progress);
        return Ok(pulled);
    }
    let (commit, files) = match resolve(client, spec, options, cancel).await {
        Ok(resolved) => resolved,
        // Offline, but a snapshot of the whole model may be there already (named files were
        // looked for above: another file of the repo is not the one asked for).
        Err(e @ (DownloadError::Network { .. } | DownloadError::Offline(_))) if spec.files.is_empty() => {
            return match cache
                .local_commit(&spec.repo, &spec.revision)
                .and_then(|c| offline_model(cache, &spec.repo, &c))
            {
                Some(pulled) => {
                    publish_done(&pulled, progress);
                    Ok(pulled)
                }
                None => Err(e),
            };
        }
        Err(e) => return Err(e),
    };
    for file in &files {
        hub::validate_repo_path(&file.path)?;
    }
    check_disk(cache, &spec.repo, &files, options.disk_margin)?;

    let slots: Arc<Vec<(AtomicU64, AtomicU8)>> =
        Arc::new(files.iter().map(|_| (AtomicU64::new(0), AtomicU8::new(FileState::Waiting as u8))).collect());
    let ticker = {
        let slots = slots.clone();
        let files = files.clone();
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut meter = RateMeter::new();
            loop {
                progress.send_replace(meter.sample(&files, &slots));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let result = async {
        let mut fetched = Vec::new();
        for (file, slot) in files.iter().zip(slots.iter()) {
            let outcome = transfer::fetch(transfer::FileFetch {
                client,
                cache,
                repo: &spec.repo,
                commit: &commit,
                file,
                options,
                done: &slot.0,
                state: &slot.1,
                cancel,
            })
            .await?;
            if outcome.refetched {
                tracing::info!(file = %file.path, "fetched again after a checksum mismatch");
            }
            fetched.push(PulledFile {
                path: file.path.clone(),
                local_path: outcome.path,
                size: file.size,
                reused: outcome.reused,
            });
        }
        Ok::<_, DownloadError>(fetched)
    }
    .await;
    ticker.abort();
    progress.send_replace(RateMeter::new().sample(&files, &slots));
    let fetched = result?;
    cache
        .write_ref(&spec.repo, &spec.revision, &commit)
        .map_err(|source| DownloadError::Io { path: cache.repo_dir(&spec.repo), source })?;
    Ok(Pulled {
        snapshot_dir: cache.snapshot_dir(&spec.repo, &commit),
        repo: spec.repo.clone(),
        commit,
        files: fetched,
    })
}

/// Removes the partial data of `spec`'s files (after a cancel). The file list names them, so
/// the endpoint is asked; when it cannot answer (offline) and `whole_repo_is_ours` — no other
/// unfinished download of the repo keeps bytes there — every partial file of the repo goes, so
/// a cancel offline does not leave gigabytes behind.
pub async fn discard_partial(client: &HubClient, cache: &HubCache, spec: &PullSpec, whole_repo_is_ours: bool) {
    let options =
        DownloadOptions { retry_attempts: 1, stall_timeout: Duration::from_secs(15), ..DownloadOptions::default() };
    match resolve(client, spec, &options, &CancellationToken::new()).await {
        Ok((_, files)) => {
            for file in files {
                transfer::discard_partial(cache, &spec.repo, &file.etag);
            }
        }
        Err(e) if whole_repo_is_ours => {
            tracing::info!(%e, repo = %spec.repo, "the file list is out of reach; removing the repo's partial files");
            transfer::discard_all_partial(cache, &spec.repo);
        }
        Err(e) => {
            tracing::warn!(%e, repo = %spec.repo, "partial files kept: another download of the repo may need them")
        }
    }
}

fn publish_done(pulled: &Pulled, progress: &watch::Sender<PullProgress>) {
    let files: Vec<FileProgress> = pulled
        .files
        .iter()
        .map(|f| FileProgress {
            path: f.path.clone(),
            bytes_done: f.size,
            bytes_total: f.size,
            bytes_per_second: 0.0,
            eta_seconds: Some(0.0),
            state: FileState::Reused,
        })
        .collect();
    let total = files.iter().map(|f| f.bytes_total).sum();
    progress.send_replace(PullProgress {
        files,
        bytes_done: total,
        bytes_total: total,
        bytes_per_second: 0.0,
        eta_seconds: Some(0.0),
    });
}

/// Named files already in the cache for a revision it knows: no network at all.
fn offline_hit(cache: &HubCache, spec: &PullSpec) -> Option<Pulled> {
    if spec.files.is_empty() {
        return None;
    }
    let commit = cache.local_commit(&spec.repo, &spec.revision)?;
    let mut files = Vec::new();
    for name in expand_split_gguf(&spec.files) {
        let (local_path, size) = cache.cached_file(&spec.repo, &commit, &name)?;
        files.push(PulledFile { path: name, local_path, size, reused: true });
    }
    Some(Pulled { repo: spec.repo.clone(), snapshot_dir: cache.snapshot_dir(&spec.repo, &commit), commit, files })
}

fn offline_model(cache: &HubCache, repo: &str, commit: &str) -> Option<Pulled> {
    let names = cache.snapshot_files(repo, commit);
    let listed: Vec<RemoteFile> =
        names.iter().map(|n| RemoteFile { path: n.clone(), size: 0, etag: String::new() }).collect();
    let chosen = select_model_files(repo, &listed).ok()?;
    let files = chosen
        .into_iter()
        .map(|f| {
            let (local_path, size) = cache.cached_file(repo, commit, &f.path)?;
            Some(PulledFile { path: f.path, local_path, size, reused: true })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Pulled {
        repo: repo.to_owned(),
        commit: commit.to_owned(),
        snapshot_dir: cache.snapshot_dir(repo, commit),
        files,
    })
}

/// The commit and the files to fetch, from the endpoint.
async fn resolve(
    client: &HubClient,
    spec: &PullSpec,
    options: &DownloadOptions,
    cancel: &CancellationToken,
) -> Result<(String, Vec<RemoteFile>), DownloadError> {
    if spec.files.is_empty() {
        let listing = retrying(options, cancel, client.endpoint(), || client.list(&spec.repo, &spec.revision)).await?;
        let files = select_model_files(&spec.repo, &listing.files)?;
        return Ok((listing.commit, files));
    }
    let mut commit = None;
    let mut files = Vec::new();
    for name in expand_split_gguf(&spec.files) {
        // Every file comes from the commit the first one resolved to, even if the branch moves.
        let revision = commit.clone().unwrap_or_else(|| spec.revision.clone());
        let (file_commit, file) =
            retrying(options, cancel, client.endpoint(), || client.file_metadata(&spec.repo, &revision, &name)).await?;
        commit.get_or_insert(file_commit);
        files.push(file);
    }
    let commit = commit.ok_or_else(|| DownloadError::NotFound(format!("no files named for {}", spec.repo)))?;
    Ok((commit, files))
}

/// Runs `request` again after a network error or a status worth retrying (5xx, 429), waiting
/// longer each time, as the transfer itself does.
async fn retrying<T, F, Fut>(
    options: &DownloadOptions,
    cancel: &CancellationToken,
    endpoint: &str,
    mut request: F,
) -> Result<T, DownloadError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DownloadError>>,
{
    let mut failures = 0;
    loop {
        // No answer within the stall timeout is a network failure (retried); Cancel and Pause
        // end the wait at once, so one stalled server never holds the download queue.
        let attempt = tokio::select! {
            () = cancel.cancelled() => return Err(DownloadError::Cancelled),
            attempt = tokio::time::timeout(options.stall_timeout, request()) => attempt,
        };
        let attempt = attempt.unwrap_or_else(|_| {
            Err(DownloadError::Network {
                url: endpoint.to_owned(),
                message: format!("no answer within {:?}", options.stall_timeout),
            })
        });
        let error = match attempt {
            Ok(value) => return Ok(value),
            Err(e @ DownloadError::Network { .. }) => e,
            Err(e @ DownloadError::Http { status, .. }) if status >= 500 || status == 429 || status == 408 => e,
            Err(other) => return Err(other),
        };
        failures += 1;
        if failures > options.retry_attempts {
            return Err(error);
        }
        tracing::info!(%error, failures, "retrying");
        tokio::select! {
            () = cancel.cancelled() => return Err(DownloadError::Cancelled),
            () = tokio::time::sleep(options.backoff(failures)) => {}
        }
    }
}

/// `model-00001-of-00003.gguf` stands for all three parts.
fn expand_split_gguf(files: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for name in files {
        let parts = name.strip_suffix(".gguf").and_then(|stem| {
            let (head, total) = stem.rsplit_once("-of-")?;
            let (prefix, index) = head.rsplit_once('-')?;
            let width = total.len();
            let total: u32 = total.parse().ok()?;
            (index.len() == width && index.parse::<u32>().ok()? >= 1 && total <= 999).then(|| {
                (1..=total).map(|i| format!("{prefix}-{i:0width$}-of-{total:0width$}.gguf")).collect::<Vec<_>>()
            })
        });
        for part in parts.unwrap_or_else(|| vec![name.clone()]) {
            if !out.contains(&part) {
                out.push(part);
            }
        }
    }
    out
}

/// A repo's model files: its safetensors weights with JSON and tokenizer files, or its single
/// GGUF file.
fn select_model_files(repo: &str, files: &[RemoteFile]) -> Result<Vec<RemoteFile>, DownloadError> {
    let top_level = |f: &&RemoteFile| !f.path.starts_with("original/");
    let safetensors: Vec<_> = files.iter().filter(top_level).filter(|f| f.path.ends_with(".safetensors")).collect();
    if !safetensors.is_empty() {
        let wanted = |f: &&RemoteFile| {
            f.path.ends_with(".safetensors")
                || f.path.ends_with(".json")
                || f.path == "tokenizer.model"
                || f.path.ends_with(".jinja")
        };
        return Ok(files.iter().filter(top_level).filter(wanted).cloned().collect());
    }
    let ggufs: Vec<String> = files.iter().filter(|f| f.path.ends_with(".gguf")).map(|f| f.path.clone()).collect();
    let sets = expand_split_gguf(&ggufs);
    let first_parts: Vec<&String> = ggufs
        .iter()
        .filter(|g| !(g.contains("-of-") && !g.contains("-00001-of-") && !g.contains("-0001-of-")))
        .collect();
    match (first_parts.len(), sets.len()) {
        (0, _) => Err(DownloadError::NoWeights(repo.to_owned())),
        (1, _) => {
            let chosen = expand_split_gguf(&[first_parts[0].clone()]);
            Ok(files.iter().filter(|f| chosen.contains(&f.path)).cloned().collect())
        }
        _ => Err(DownloadError::NeedsFile {
            repo: repo.to_owned(),
            candidates: first_parts.into_iter().cloned().collect(),
        }),
    }
}

/// Refuses to start when the disk cannot hold what is still missing plus a margin.
fn check_disk(cache: &HubCache, repo: &str, files: &[RemoteFile], margin: u64) -> Result<(), DownloadError> {
    let missing: u64 = files.iter().map(|f| transfer::bytes_missing(cache, repo, f)).sum();
    if missing == 0 {
        return Ok(());
    }
    let dir = cache.root().to_path_buf();
    let available = crate::hardware::free_space(&dir);
    let needed = missing.saturating_add(margin);
    if available < needed {
        return Err(DownloadError::DiskFull { dir, needed, margin, available });
    }
    Ok(())
}

/// Rates over the last few seconds.
struct RateMeter {
    window: VecDeque<(Instant, Vec<u64>)>,
}

impl RateMeter {
    const WINDOW: Duration = Duration::from_secs(5);

    fn new() -> Self {
        Self { window: VecDeque::new() }
    }

    fn sample(&mut self, files: &[RemoteFile], slots: &[(AtomicU64, AtomicU8)]) -> PullProgress {
        let now = Instant::now();
        let done: Vec<u64> = slots.iter().map(|s| s.0.load(Ordering::Relaxed)).collect();
        self.window.push_back((now, done.clone()));
        while self.window.len() > 2 && self.window.front().is_some_and(|(t, _)| now.duration_since(*t) > Self::WINDOW) {
            self.window.pop_front();
        }
        let (oldest_time, oldest) = self.window.front().cloned().unwrap_or((now, done.clone()));
        let elapsed = now.duration_since(oldest_time).as_secs_f64();
        let rate = |new: u64, old: u64| if elapsed > 0.0 { new.saturating_sub(old) as f64 / elapsed } else { 0.0 };
        let eta = |left: u64, rate: f64| {
            if left == 0 {
                Some(0.0)
            } else if rate > 0.0 {
                Some(left as f64 / rate)
            } else {
                None
            }
        };
        let files: Vec<FileProgress> = files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let r = rate(done[i], oldest[i]);
                FileProgress {
                    path: f.path.clone(),
                    bytes_done: done[i].min(f.size),
                    bytes_total: f.size,
                    bytes_per_second: r,
                    eta_seconds: eta(f.size.saturating_sub(done[i]), r),
                    state: FileState::from_u8(slots[i].1.load(Ordering::Relaxed)),
                }
            })
            .collect();
        let bytes_done = files.iter().map(|f| f.bytes_done).sum();
        let bytes_total = files.iter().map(|f| f.bytes_total).sum();
        let total_rate = rate(done.iter().sum(), oldest.iter().sum());
        PullProgress {
            files,
            bytes_done,
            bytes_total,
            bytes_per_second: total_rate,
            eta_seconds: eta(bytes_total - bytes_done.min(bytes_total), total_rate),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(path: &str) -> RemoteFile {
        RemoteFile { path: path.into(), size: 1, etag: "e".into() }
    }

    #[test]
    fn split_gguf_names_stand_for_every_part() {
        assert_eq!(
            expand_split_gguf(&["m-Q8_0-00001-of-00003.gguf".into()]),
            vec!["m-Q8_0-00001-of-00003.gguf", "m-Q8_0-00002-of-00003.gguf", "m-Q8_0-00003-of-00003.gguf"]
        );
        assert_eq!(expand_split_gguf(&["plain.gguf".into()]), vec!["plain.gguf"]);
    }

    #[test]
    fn the_model_files_of_a_repo_are_chosen_or_the_choice_is_asked_for() {
        let st = [
            remote("config.json"),
            remote("model-00001-of-00002.safetensors"),
            remote("model-00002-of-00002.safetensors"),
            remote("tokenizer.json"),
            remote("original/consolidated.00.pth"),
            remote("original/params.json"),
            remote("README.md"),
        ];
        let chosen: Vec<_> = select_model_files("o/r", &st).expect("safetensors").into_iter().map(|f| f.path).collect();
        assert_eq!(
            chosen,
            vec![
                "config.json",
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors",
                "tokenizer.json"
            ]
        );

        let one = [remote("README.md"), remote("m.Q4_K_M.gguf")];
        assert_eq!(select_model_files("o/r", &one).expect("one gguf")[0].path, "m.Q4_K_M.gguf");

        let split = [remote("big-00001-of-00002.gguf"), remote("big-00002-of-00002.gguf")];
        assert_eq!(select_model_files("o/r", &split).expect("one split set").len(), 2);

        let many = [remote("m.Q4_K_M.gguf"), remote("m.Q8_0.gguf")];
        match select_model_files("o/r", &many) {
            Err(DownloadError::NeedsFile { candidates, .. }) => {
                assert_eq!(candidates, vec!["m.Q4_K_M.gguf", "m.Q8_0.gguf"])
            }
            other => panic!("expected NeedsFile, got {other:?}"),
        }
        assert!(matches!(select_model_files("o/r", &[remote("README.md")]), Err(DownloadError::NoWeights(_))));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let o = DownloadOptions {
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_millis(700),
            ..Default::default()
        };
        let waits: Vec<_> = (1..=5).map(|n| o.backoff(n).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400, 700, 700]);
    }

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }
}
