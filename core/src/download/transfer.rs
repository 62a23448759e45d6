//! Fetching one file into the hub cache so that no byte is lost and no bad byte is kept.
//!
//! Data is gathered in `blobs/<etag>.incomplete`; large files in several ranged parts at once.
//! Which bytes are on disk is recorded in `blobs/<etag>.incomplete.parts` (JSON), saved at
//! most every half second and only after the data it describes was flushed, so after a crash,
//! a kill or a reboot the next attempt asks only for what is missing. A file left
//! `.incomplete` by another tool (which writes from the start, in order) is continued from its
//! length. Each part reconnects after a dropped connection, an error status worth retrying, or
//! a stall (no bytes for [`DownloadOptions::stall_timeout`]), waiting longer after each failure
//! that made no progress. When every byte is there the file is hashed; only a match becomes
//! `blobs/<etag>` and gets its snapshot link. A mismatch is thrown away and fetched once more.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use sha1::Digest as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::cache::{write_atomically, HubCache};
use super::hub::{network, HubClient, RemoteFile};
use super::{DownloadError, DownloadOptions, FileState};

/// Everything one file's fetch needs.
pub(crate) struct FileFetch<'a> {
    pub client: &'a HubClient,
    pub cache: &'a HubCache,
    pub repo: &'a str,
    pub commit: &'a str,
    pub file: &'a RemoteFile,
    pub options: &'a DownloadOptions,
    /// Bytes of this file on disk; the progress ticker reads it.
    pub done: &'a AtomicU64,
    /// A [`FileState`] as u8; the progress ticker reads it.
    pub state: &'a AtomicU8,
    pub cancel: &'a CancellationToken,
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fetched {
    pub path: PathBuf,
    /// It was in the cache already; nothing was downloaded.
    pub reused: bool,
    /// The first copy failed its checksum and was fetched again.
    pub refetched: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Part {
    start: u64,
    end: u64,
    done: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Sidecar {
    size: u64,
    etag: String,
    parts: Vec<Part>,
}

impl Sidecar {
    fn done(&self) -> u64 {
        self.parts.iter().map(|p| p.done).sum()
    }
}

enum Failure {
    /// Worth another try: a dropped connection, a stall, a 5xx.
    Retry(String),
    /// The server ignores Range; fetch the file in one piece from the start.
    NoRanges,
    /// Stop: cancelled, refused, or the disk failed.
    Fatal(DownloadError),
}

fn set_state(state: &AtomicU8, value: FileState) {
    state.store(value as u8, Ordering::Relaxed);
}

/// Fetches `file` of `repo` at `commit` unless the cache has it; see the module docs.
pub(crate) async fn fetch(job: FileFetch<'_>) -> Result<Fetched, DownloadError> {
    job.client.ensure_online()?;
    let FileFetch { cache, repo, commit, file, .. } = job;
    let blob = cache.blob_path(repo, &file.etag);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DownloadError::Io { path, source }
    };
    if let Some(reused) = reuse(&job, &blob)? {
        return Ok(reused);
    }
    if let Some(parent) = blob.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let lock_path = cache.lock_path(repo, &file.etag);
    let _lock = lock(&lock_path, job.state, job.cancel).await?;
    // Another process may have finished it while this one waited for the lock.
    if let Some(reused) = reuse(&job, &blob)? {
        return Ok(reused);
    }

    let incomplete = cache.incomplete_path(repo, &file.etag);
    let sidecar_path = sidecar_path(&incomplete);
    let mut refetched = false;
    for attempt in 0..=job.options.checksum_retries {
        let sidecar = load_or_plan(&incomplete, &sidecar_path, file, job.options)?;
        job.done.store(sidecar.done(), Ordering::Relaxed);
        set_state(job.state, FileState::Downloading);
        let started = std::time::Instant::now();
        let hashed = download(&job, &incomplete, &sidecar_path, sidecar).await?;
        tracing::debug!(file = %file.path, elapsed = ?started.elapsed(), "all bytes on disk");

        set_state(job.state, FileState::Verifying);
        let started = std::time::Instant::now();
        let verified = verify(&incomplete, file, job.cancel, hashed).await?;
        tracing::debug!(file = %file.path, elapsed = ?started.elapsed(), "checksum computed");
        match verified {
            Ok(()) => {
                std::fs::rename(&incomplete, &blob).map_err(io(&blob))?;
                let _ = std::fs::remove_file(&sidecar_path);
                let path = cache.link_snapshot(repo, commit, &file.path, &file.etag).map_err(io(&blob))?;
                set_state(job.state, FileState::Done);
                return Ok(Fetched { path, reused: false, refetched });
            }
            Err(actual) => {
                let _ = std::fs::remove_file(&incomplete);
                let _ = std::fs::remove_file(&sidecar_path);
                job.done.store(0, Ordering::Relaxed);
                if attempt == job.options.checksum_retries {
                    return Err(DownloadError::ChecksumMismatch {
                        file: file.path.clone(),
                        expected: file.etag.clone(),
                        actual,
                    });
                }
                tracing::warn!(file = %file.path, expected = %file.etag, %actual, "checksum mismatch; fetching the file again");
                refetched = true;
            }
        }
    }
    unreachable!("the loop returns on its last attempt")
}

/// The blob is already in the cache (fetched earlier, or by another tool): link it.
fn reuse(job: &FileFetch<'_>, blob: &Path) -> Result<Option<Fetched>, DownloadError> {
    match std::fs::metadata(blob) {
        Ok(meta) if meta.len() == job.file.size => {
            let path = job
                .cache
                .link_snapshot(job.repo, job.commit, &job.file.path, &job.file.etag)
                .map_err(|source| DownloadError::Io { path: blob.to_path_buf(), source })?;
            job.done.store(job.file.size, Ordering::Relaxed);
            set_state(job.state, FileState::Reused);
            Ok(Some(Fetched { path, reused: true, refetched: false }))
        }
        _ => Ok(None),
    }
}

/// Holds the blob's lock file (the one Hugging Face's client uses too) until dropped.
async fn lock(path: &Path, state: &AtomicU8, cancel: &CancellationToken) -> Result<File, DownloadError> {
    let io = |source| DownloadError::Io { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(io)?;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                set_state(state, FileState::WaitingForOtherProcess);
                tokio::select! {
                    () = cancel.cancelled() => return Err(DownloadError::Cancelled),
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
    }
}

fn sidecar_path(incomplete: &Path) -> PathBuf {
    let mut name = incomplete.as_os_str().to_os_string();
    name.push(".parts");
    PathBuf::from(name)
}

/// What is on disk already, or a fresh plan of parts.
fn load_or_plan(
    incomplete: &Path,
    sidecar_path: &Path,
    file: &RemoteFile,
    options: &DownloadOptions,
) -> Result<Sidecar, DownloadError> {
    let on_disk = std::fs::metadata(incomplete).map(|m| m.len()).ok();
    if let Some(sidecar) = std::fs::read(sidecar_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Sidecar>(&bytes).ok())
        .filter(|s| s.size == file.size && s.etag == file.etag && on_disk.is_some() && parts_are_sane(s))
    {
        return Ok(sidecar);
    }
    // No record of ours: data from a tool that writes in order (or nothing at all).
    let have = on_disk.unwrap_or(0).min(file.size);
    let sidecar = if have > 0 {
        Sidecar { size: file.size, etag: file.etag.clone(), parts: vec![Part { start: 0, end: file.size, done: have }] }
    } else {
        Sidecar { size: file.size, etag: file.etag.clone(), parts: plan_parts(file.size, options) }
    };
    save_sidecar(sidecar_path, &sidecar)
        .map_err(|source| DownloadError::Io { path: sidecar_path.to_path_buf(), source })?;
    Ok(sidecar)
}

fn parts_are_sane(s: &Sidecar) -> bool {
    let mut expected_start = 0;
    for p in &s.parts {
        if p.start != expected_start || p.end < p.start || p.done > p.end - p.start {
            return false;
        }
        expected_start = p.end;
    }
    expected_start == s.size
}

fn plan_parts(size: u64, options: &DownloadOptions) -> Vec<Part> {
    let count = if size >= options.parallel_threshold {
        (options.parallel_parts.max(1) as u64).min(size.div_ceil(options.parallel_threshold / 2).max(1))
    } else {
        1
    };
    let step = size.div_ceil(count).max(1);
    let mut parts = Vec::new();
    let mut start = 0;
    while start < size || parts.is_empty() {
        let end = (start + step).min(size);
        parts.push(Part { start, end, done: 0 });
        start = end;
        if size == 0 {
            break;
        }
    }
    parts
}

fn save_sidecar(path: &Path, sidecar: &Sidecar) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(sidecar).map_err(std::io::Error::other)?;
    write_atomically(path, &bytes)
}

struct Chunk {
    part: usize,
    offset: u64,
    data: Bytes,
}

/// Runs every unfinished part until all bytes are on disk.
async fn download(
    job: &FileFetch<'_>,
    incomplete: &Path,
    sidecar_path: &Path,
    sidecar: Sidecar,
) -> Result<(Running, u64), DownloadError> {
    let mut sidecar = sidecar;
    loop {
        match download_parts(job, incomplete, sidecar_path, sidecar.clone()).await {
            Ok(hashed) => return Ok(hashed),
            Err(Failure::NoRanges) => {
                tracing::info!(file = %job.file.path, "the server ignores ranges; fetching the file from the start");
                sidecar.parts = vec![Part { start: 0, end: job.file.size, done: 0 }];
                let _ = std::fs::remove_file(incomplete);
                save_sidecar(sidecar_path, &sidecar)
                    .map_err(|source| DownloadError::Io { path: sidecar_path.to_path_buf(), source })?;
                job.done.store(0, Ordering::Relaxed);
            }
            Err(Failure::Retry(message)) => {
                return Err(DownloadError::Network { url: job.file.path.clone(), message });
            }
            Err(Failure::Fatal(e)) => return Err(e),
        }
    }
}

async fn download_parts(
    job: &FileFetch<'_>,
    incomplete: &Path,
    sidecar_path: &Path,
    sidecar: Sidecar,
) -> Result<(Running, u64), Failure> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(incomplete)
        .map_err(|source| Failure::Fatal(DownloadError::Io { path: incomplete.to_path_buf(), source }))?;
    let (tx, rx) = mpsc::channel::<Chunk>(64);
    let writer = {
        let sidecar = sidecar.clone();
        let sidecar_path = sidecar_path.to_path_buf();
        let interval = job.options.save_interval;
        let running = Running::for_etag(&job.file.etag, job.file.size);
        tokio::task::spawn_blocking(move || write_chunks(file, rx, sidecar, &sidecar_path, interval, running))
    };
    let url = job.client.resolve_url(job.repo, job.commit, &job.file.path);
    let parts = sidecar
        .parts
        .iter()
        .enumerate()
        .filter(|(_, p)| p.start + p.done < p.end)
        .map(|(index, p)| run_part(job, &url, index, p.clone(), tx.clone()));
    let result = futures::future::try_join_all(parts).await;
    drop(tx);
    let written = writer.await.map_err(|e| {
        Failure::Fatal(DownloadError::Io { path: incomplete.to_path_buf(), source: std::io::Error::other(e) })
    })?;
    // A disk error is the real cause even when the parts then failed to hand over their data.
    let hashed = written.map_err(|source| Failure::Fatal(DownloadError::from_write(incomplete, source)))?;
    result.map(|_| hashed)
}

/// The disk side: writes each chunk at its offset. A second thread records progress every
/// `interval`: it copies the progress, flushes the file, then saves the copy — so the record
/// never claims a byte that is not on disk, and writing never waits for the flush. A third
/// hashes the file's complete prefix as it grows, so little is left to hash at the end; it
/// returns the running hash and how far it got.
fn write_chunks(
    file: File,
    mut rx: mpsc::Receiver<Chunk>,
    sidecar: Sidecar,
    sidecar_path: &Path,
    interval: Duration,
    running: Running,
) -> std::io::Result<(Running, u64)> {
    let progress = std::sync::Mutex::new(sidecar);
    let snapshot = || progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let writing_done = std::sync::atomic::AtomicBool::new(false);
    let (file, snapshot, writing_done_ref) = (&file, &snapshot, &writing_done);
    std::thread::scope(|scope| {
        let hasher = scope.spawn(move || -> std::io::Result<(Running, u64)> {
            let mut running = running;
            let mut hashed = 0u64;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                // Read the flag first: once it is set, the prefix read after it is final.
                let finished = writing_done_ref.load(Ordering::Acquire);
                let prefix = contiguous_prefix(&snapshot());
                while hashed < prefix {
                    let n = buf.len().min(usize::try_from(prefix - hashed).unwrap_or(usize::MAX));
                    read_at(file, &mut buf[..n], hashed)?;
                    running.update(&buf[..n]);
                    hashed += n as u64;
                }
                if finished {
                    return Ok((running, hashed));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let recorder = scope.spawn(move || -> std::io::Result<()> {
            let mut saved: Option<Sidecar> = None;
            loop {
                let last = !matches!(stopped.recv_timeout(interval), Err(std::sync::mpsc::RecvTimeoutError::Timeout));
                let current = snapshot();
                if saved.as_ref() != Some(&current) {
                    file.sync_data()?;
                    save_sidecar(sidecar_path, &current)?;
                    saved = Some(current);
                }
                if last {
                    return Ok(());
                }
            }
        });
        let mut written = Ok(());
        while let Some(chunk) = rx.blocking_recv() {
            if let Err(e) = write_at(file, &chunk.data, chunk.offset) {
                written = Err(e);
                break;
            }
            progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).parts[chunk.part].done +=
                chunk.data.len() as u64;
        }
        writing_done.store(true, Ordering::Release);
        drop(stop);
        let recorded = recorder.join().unwrap_or_else(|_| Err(std::io::Error::other("the progress recorder failed")));
        let hashed = hasher.join().unwrap_or_else(|_| Err(std::io::Error::other("the hasher failed")));
        written.and(recorded).and(hashed)
    })
}

/// Bytes from the start of the file that are all on disk.
fn contiguous_prefix(sidecar: &Sidecar) -> u64 {
    let mut prefix = 0;
    for part in &sidecar.parts {
        prefix = part.start + part.done;
        if part.start + part.done < part.end {
            break;
        }
    }
    prefix
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_read(file, buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(unix)]
fn write_at(file: &File, data: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, data, offset)
}

#[cfg(windows)]
fn write_at(file: &File, mut data: &[u8], mut offset: u64) -> std::io::Result<()> {
    while !data.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, data, offset)?;
        data = &data[n..];
        offset += n as u64;
    }
    Ok(())
}

/// One ranged part, reconnecting until it is complete or failing is the only honest answer.
async fn run_part(
    job: &FileFetch<'_>,
    url: &str,
    index: usize,
    part: Part,
    tx: mpsc::Sender<Chunk>,
) -> Result<(), Failure> {
    let mut done = part.done;
    let mut failures = 0u32;
    loop {
        if part.start + done >= part.end {
            return Ok(());
        }
        let before = done;
        let outcome = tokio::select! {
            () = job.cancel.cancelled() => return Err(Failure::Fatal(DownloadError::Cancelled)),
            outcome = attempt(job, url, index, &part, &mut done, &tx) => outcome,
        };
        match outcome {
            Ok(()) => return Ok(()),
            Err(Failure::Retry(message)) => {
                if done > before {
                    failures = 0;
                }
                failures += 1;
                if failures > job.options.retry_attempts {
                    return Err(Failure::Retry(format!(
                        "gave up after {failures} tries in a row without progress: {message}"
                    )));
                }
                let wait = job.options.backoff(failures);
                tracing::info!(file = %job.file.path, part = index, %message, ?wait, "reconnecting");
                tokio::select! {
                    () = job.cancel.cancelled() => return Err(Failure::Fatal(DownloadError::Cancelled)),
                    () = tokio::time::sleep(wait) => {}
                }
            }
            Err(other) => return Err(other),
        }
    }
}

async fn attempt(
    job: &FileFetch<'_>,
    url: &str,
    index: usize,
    part: &Part,
    done: &mut u64,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(), Failure> {
    let from = part.start + *done;
    let whole_file = from == 0 && part.end == job.file.size;
    let request = job.client.get(url).header(RANGE, format!("bytes={from}-{}", part.end - 1));
    let response = tokio::time::timeout(job.options.stall_timeout, request.send())
        .await
        .map_err(|_| Failure::Retry("no answer from the server".into()))?
        .map_err(|e| Failure::Retry(network(url, &e).to_string()))?;
    let status = response.status();
    match status {
        StatusCode::PARTIAL_CONTENT => {
            let starts_at = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse::<u64>().ok());
            if starts_at != Some(from) {
                return Err(Failure::NoRanges);
            }
        }
        StatusCode::OK if whole_file => {}
        StatusCode::OK => return Err(Failure::NoRanges),
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS || s == StatusCode::REQUEST_TIMEOUT => {
            return Err(Failure::Retry(format!("the server answered {s}")));
        }
        _ => {
            let checked = job.client.check(job.repo, job.commit, Some(&job.file.path), response);
            return Err(Failure::Fatal(match checked {
                Err(e) => e,
                Ok(r) => DownloadError::Http { url: super::hub::redact(r.url().as_str()), status: status.as_u16() },
            }));
        }
    }
    let mut body = response.bytes_stream();
    loop {
        let next = tokio::time::timeout(job.options.stall_timeout, body.next())
            .await
            .map_err(|_| Failure::Retry(format!("no data for {:?}", job.options.stall_timeout)))?;
        let data = match next {
            None => {
                return if part.start + *done >= part.end {
                    Ok(())
                } else {
                    Err(Failure::Retry("the connection closed early".into()))
                };
            }
            Some(Err(e)) => return Err(Failure::Retry(network(url, &e).to_string())),
            Some(Ok(data)) => data,
        };
        // Never write past the part, whatever the server sends.
        let room = part.end - (part.start + *done);
        let data = if data.len() as u64 > room { data.slice(..room as usize) } else { data };
        let len = data.len() as u64;
        tx.send(Chunk { part: index, offset: part.start + *done, data })
            .await
            .map_err(|_| Failure::Fatal(DownloadError::Cancelled))?;
        *done += len;
        job.done.fetch_add(len, Ordering::Relaxed);
    }
}

/// A running hash of the kind the etag names: SHA-256 for large (LFS) files, the git blob id
/// (SHA-1 over `blob <len>\0` and the content) for small ones.
#[derive(Clone)]
pub(crate) enum Running {
    Sha256(sha2::Sha256),
    GitBlob(sha1::Sha1),
    /// The etag is neither: only the size can be checked.
    Unknown,
}

impl Running {
    pub(crate) fn for_etag(etag: &str, len: u64) -> Self {
        let hex = etag.bytes().all(|b| b.is_ascii_hexdigit());
        match etag.len() {
            64 if hex => Running::Sha256(sha2::Sha256::new()),
            40 if hex => {
                let mut h = sha1::Sha1::new();
                h.update(format!("blob {len}\0").as_bytes());
                Running::GitBlob(h)
            }
            _ => Running::Unknown,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Running::Sha256(h) => h.update(bytes),
            Running::GitBlob(h) => h.update(bytes),
            Running::Unknown => {}
        }
    }

    fn finish(self) -> Option<String> {
        match self {
            Running::Sha256(h) => Some(hex::encode(h.finalize())),
            Running::GitBlob(h) => Some(hex::encode(h.finalize())),
            Running::Unknown => None,
        }
    }
}

/// `Ok(Ok(()))` when the file matches its etag; `Ok(Err(actual))` when it does not. `hashed`
/// is the hash of the file's first bytes, computed while it downloaded.
async fn verify(
    path: &Path,
    file: &RemoteFile,
    cancel: &CancellationToken,
    hashed: (Running, u64),
) -> Result<Result<(), String>, DownloadError> {
    let size = std::fs::metadata(path).map_err(|source| DownloadError::Io { path: path.to_path_buf(), source })?.len();
    if size != file.size {
        return Ok(Err(format!("{size} bytes instead of {}", file.size)));
    }
    let path = path.to_path_buf();
    let cancel = cancel.clone();
    let (running, from) = hashed;
    let digest = tokio::task::spawn_blocking(move || finish_hash(&path, running, from, &cancel))
        .await
        .map_err(|e| DownloadError::Io { path: PathBuf::new(), source: std::io::Error::other(e) })??;
    Ok(match digest {
        Some(actual) if actual != file.etag => Err(actual),
        Some(_) => Ok(()),
        // Hashes are checked where they arrive (`hub.rs`), so this cannot happen; never a
        // size-only pass.
        None => Err(file.etag.clone()),
    })
}

/// Hashes the file from `from` to its end into `running` and returns the digest.
fn finish_hash(
    path: &Path,
    mut running: Running,
    from: u64,
    cancel: &CancellationToken,
) -> Result<Option<String>, DownloadError> {
    use std::io::{Read, Seek, SeekFrom};
    if matches!(running, Running::Unknown) {
        return Ok(None);
    }
    let io = |source| DownloadError::Io { path: path.to_path_buf(), source };
    let mut file = File::open(path).map_err(io)?;
    file.seek(SeekFrom::Start(from)).map_err(io)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if cancel.is_cancelled() {
            return Err(DownloadError::Cancelled);
        }
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            return Ok(running.finish());
        }
        running.update(&buf[..n]);
    }
}

/// The file's hash of the kind `etag` names; `None` when the etag is neither kind.
#[cfg(test)]
fn hash_file(path: &Path, etag: &str, cancel: &CancellationToken) -> Result<Option<String>, DownloadError> {
    let len = std::fs::metadata(path).map_err(|source| DownloadError::Io { path: path.to_path_buf(), source })?.len();
    finish_hash(path, Running::for_etag(etag, len), 0, cancel)
}

/// Bytes still to fetch for `file`, counting what a resumable partial copy already holds.
pub(crate) fn bytes_missing(cache: &HubCache, repo: &str, file: &RemoteFile) -> u64 {
    if std::fs::metadata(cache.blob_path(repo, &file.etag)).map(|m| m.len() == file.size).unwrap_or(false) {
        return 0;
    }
    let incomplete = cache.incomplete_path(repo, &file.etag);
    let have = std::fs::read(sidecar_path(&incomplete))
        .ok()
        .and_then(|b| serde_json::from_slice::<Sidecar>(&b).ok())
        .filter(|s| s.size == file.size)
        .map(|s| s.done())
        .or_else(|| std::fs::metadata(&incomplete).ok().map(|m| m.len()))
        .unwrap_or(0);
    file.size.saturating_sub(have)
}

/// Deletes a file's partial data (after a cancel).
pub(crate) fn discard_partial(cache: &HubCache, repo: &str, etag: &str) {
    let incomplete = cache.incomplete_path(repo, etag);
    let _ = std::fs::remove_file(sidecar_path(&incomplete));
    let _ = std::fs::remove_file(incomplete);
}

/// Removes every partial file (`*.incomplete` and its record) of `repo`; verified blobs stay.
pub(crate) fn discard_all_partial(cache: &HubCache, repo: &str) {
    let Ok(entries) = std::fs::read_dir(cache.repo_dir(repo).join("blobs")) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".incomplete") || name.ends_with(".incomplete.parts") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_file_exactly_once() {
        let options = DownloadOptions { parallel_threshold: 100, parallel_parts: 4, ..DownloadOptions::default() };
        for size in [0u64, 1, 99, 100, 101, 1000, 12_345] {
            let parts = plan_parts(size, &options);
            let sidecar = Sidecar { size, etag: "e".into(), parts: parts.clone() };
            assert!(parts_are_sane(&sidecar), "size {size}: {parts:?}");
            assert!(parts.len() <= 4);
            if size >= 1000 {
                assert_eq!(parts.len(), 4, "large files are split");
            }
            if size < 100 {
                assert_eq!(parts.len(), 1, "small files are not");
            }
        }
    }

    #[test]
    fn the_hashed_prefix_stops_at_the_first_gap() {
        let parts = |done: [u64; 3]| Sidecar {
            size: 30,
            etag: "e".into(),
            parts: (0..3).map(|i| Part { start: i * 10, end: i * 10 + 10, done: done[i as usize] }).collect(),
        };
        assert_eq!(contiguous_prefix(&parts([4, 10, 10])), 4);
        assert_eq!(contiguous_prefix(&parts([10, 3, 10])), 13);
        assert_eq!(contiguous_prefix(&parts([10, 10, 10])), 30);
    }

    #[test]
    fn a_damaged_progress_record_is_not_trusted() {
        let bad = Sidecar { size: 10, etag: "e".into(), parts: vec![Part { start: 0, end: 10, done: 11 }] };
        assert!(!parts_are_sane(&bad));
        let gap = Sidecar {
            size: 10,
            etag: "e".into(),
            parts: vec![Part { start: 0, end: 4, done: 0 }, Part { start: 5, end: 10, done: 0 }],
        };
        assert!(!parts_are_sane(&gap));
    }

    #[test]
    fn git_blob_ids_are_computed_like_git() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, "hello\n").expect("write");
        let id = hash_file(&path, "ce013625030ba8dba906f756967f9e9ca394464a", &CancellationToken::new()).expect("hash");
        assert_eq!(id.as_deref(), Some("ce013625030ba8dba906f756967f9e9ca394464a"));
        let sha = hash_file(&path, &"0".repeat(64), &CancellationToken::new()).expect("hash");
        assert_eq!(sha.as_deref(), Some("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"));
    }
}
