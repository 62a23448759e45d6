//! The persistent download queue.
//!
//! Each download is a row in the `downloads` table, so the list survives restarts: a download
//! that was running or waiting when the process ended is started again by
//! [`DownloadManager::resume_interrupted`], and continues from the bytes on disk. One download
//! runs at a time (each splits large files into parallel parts); the others wait their turn as
//! `queued`. Pause keeps the bytes fetched so far; cancel deletes them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use sqlx::Row;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;

use super::hub::{DEFAULT_ENDPOINT, ENDPOINT_ENV};
use super::{DownloadError, DownloadOptions, HubCache, HubClient, PullProgress, PullSpec};
use crate::library::{Library, LibraryError, LocalModel};
use crate::store::{now_ms, Store, StoreError};

/// Setting key of the endpoint chosen in the app (a mirror); `HF_ENDPOINT` wins over it.
pub const ENDPOINT_SETTING: &str = "download.endpoint";

/// Setting key of the app's offline switch (`"1"` when on).
pub const OFFLINE_SETTING: &str = "network.offline";
/// Environment variable that turns offline mode on for the whole process (the CLI's
/// `--offline` sets it); it wins over the setting.
pub const OFFLINE_ENV: &str = "ALTIPLANO_OFFLINE";

/// Why offline mode is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OfflineReason {
    /// `ALTIPLANO_OFFLINE` (or the CLI's `--offline`).
    Environment,
    /// The app's switch (Models › Hugging Face access), kept in the database.
    Setting,
}

impl std::fmt::Display for OfflineReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OfflineReason::Environment => "ALTIPLANO_OFFLINE or --offline is set",
            OfflineReason::Setting => "switched on in Models › Hugging Face access",
        })
    }
}

/// Whether `ALTIPLANO_OFFLINE` asks for offline mode: set to anything but empty, `0`,
/// `false`, `no` or `off`.
pub fn offline_from_environment() -> bool {
    std::env::var(OFFLINE_ENV)
        .is_ok_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false" | "no" | "off"))
}

/// Where a download stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its turn.
    Queued,
    /// Fetching.
    Running,
    /// Stopped by the user; bytes kept.
    Paused,
    /// Done; the model is in the library.
    Completed,
    /// Stopped by an error; bytes kept, retry continues.
    Failed,
    /// Stopped by the user; bytes deleted.
    Cancelled,
}

impl JobState {
    fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "paused" => JobState::Paused,
            "completed" => JobState::Completed,
            "cancelled" => JobState::Cancelled,
            _ => JobState::Failed,
        }
    }
}

/// Why a download failed, with a code the UI maps to the action that fixes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobError {
    /// [`DownloadError::code`].
    pub code: String,
    /// The message.
    pub message: String,
}

/// One download.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DownloadJob {
    /// Row id.
    pub id: i64,
    /// Repo.
    pub repo: String,
    /// Revision asked for.
    pub revision: String,
    /// Files asked for (empty: the repo's model files).
    pub files: Vec<String>,
    /// Catalog variant id, when it is one.
    pub variant: Option<String>,
    /// Where it stands.
    pub state: JobState,
    /// Bytes on disk (last recorded).
    pub bytes_done: u64,
    /// Total bytes (once known).
    pub bytes_total: u64,
    /// Why it failed.
    pub error: Option<JobError>,
    /// The model it produced.
    pub model_id: Option<i64>,
    /// Live progress while it runs.
    pub progress: Option<PullProgress>,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last change (Unix ms).
    pub updated_at: i64,
}

/// Errors from queue operations (the downloads' own failures are recorded on the job).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// No download has this id.
    #[error("there is no download {0}")]
    NotFound(i64),
    /// The request is malformed.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Recording the model failed.
    #[error(transparent)]
    Library(#[from] LibraryError),
}

impl From<sqlx::Error> for QueueError {
    fn from(e: sqlx::Error) -> Self {
        QueueError::Store(StoreError::Database(e))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Pause,
    Cancel,
    /// Offline mode went on: the download waits, queued, until it goes off.
    Offline,
}

#[derive(Debug)]
struct Active {
    cancel: CancellationToken,
    stop: Option<Stop>,
    progress: watch::Receiver<PullProgress>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    library: Library,
    cache: HubCache,
    options: DownloadOptions,
    active: Mutex<HashMap<i64, Active>>,
    turn: Arc<Semaphore>,
    changed: watch::Sender<u64>,
}

/// See the module documentation. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DownloadManager {
    inner: Arc<Inner>,
}

impl DownloadManager {
    /// A queue over `store`'s database, downloading into `cache`.
    pub fn new(store: Store, cache: HubCache, options: DownloadOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                library: Library::new(store.clone()),
                store,
                cache,
                options,
                active: Mutex::new(HashMap::new()),
                turn: Arc::new(Semaphore::new(1)),
                changed: watch::channel(0).0,
            }),
        }
    }

    /// The hub cache.
    pub fn cache(&self) -> &HubCache {
        &self.inner.cache
    }

    /// Changes whenever a download changes (state or progress); the value means nothing.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    fn bump(&self) {
        self.inner.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether `HF_ENDPOINT` sets the endpoint (so the setting is not used).
    pub fn endpoint_from_environment(&self) -> bool {
        std::env::var(ENDPOINT_ENV).is_ok_and(|v| !v.trim().is_empty())
    }

    /// The endpoint in use: `HF_ENDPOINT`, else the one chosen in settings, else the Hub.
    pub async fn endpoint(&self) -> Result<String, QueueError> {
        if self.endpoint_from_environment() {
            return Ok(std::env::var(ENDPOINT_ENV).unwrap_or_default());
        }
        Ok(self.inner.store.setting(ENDPOINT_SETTING).await?.unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned()))
    }

    /// Why offline mode is on, or `None` when it is off.
    pub async fn offline(&self) -> Result<Option<OfflineReason>, QueueError> {
        if offline_from_environment() {
            return Ok(Some(OfflineReason::Environment));
        }
        let on = self.inner.store.setting(OFFLINE_SETTING).await?.is_some_and(|v| v == "1");
        Ok(on.then_some(OfflineReason::Setting))
    }

    /// Turns the offline switch on or off. On: running downloads stop (their bytes are kept)
    /// and wait as `queued`. Off: those, and the ones that failed for being offline, start.
    pub async fn set_offline(&self, on: bool) -> Result<(), QueueError> {
        self.inner.store.set_setting(OFFLINE_SETTING, if on { "1" } else { "0" }).await?;
        if on {
            let ids: Vec<i64> = self.lock_active().keys().copied().collect();
            for id in ids {
                self.stop(id, Stop::Offline).await?;
            }
        } else if !offline_from_environment() {
            self.resume_interrupted().await?;
        }
        self.bump();
        Ok(())
    }

    /// Chooses the endpoint (a mirror); empty goes back to the Hub. Refused while offline.
    pub async fn set_endpoint(&self, endpoint: &str) -> Result<(), QueueError> {
        if let Some(reason) = self.offline().await? {
            return Err(DownloadError::Offline(reason).into());
        }
        let endpoint = endpoint.trim();
        let value = if endpoint.is_empty() { DEFAULT_ENDPOINT } else { endpoint };
        HubClient::new(value, None)?;
        self.inner.store.set_setting(ENDPOINT_SETTING, value).await?;
        Ok(())
    }

    /// A client for the endpoint in use, with the token from `HF_TOKEN` or the one the keyring
    /// keeps for this endpoint; while offline, one that opens no connection.
    pub async fn client(&self) -> Result<HubClient, QueueError> {
        let endpoint = self.endpoint().await?;
        if let Some(reason) = self.offline().await? {
            return Ok(HubClient::new(&endpoint, None)?.offline(reason));
        }
        let token = crate::secrets::hf_token(&endpoint).await.map(|(t, _)| t);
        Ok(HubClient::new(&endpoint, token)?)
    }

    /// Adds a download, or brings back the unfinished one for the same files, and starts it
    /// (it waits as `queued` while another runs).
    pub async fn enqueue(&self, spec: &PullSpec, variant: Option<&str>) -> Result<DownloadJob, QueueError> {
        let id = self.add(spec, variant).await?;
        self.start(id);
        self.job(id).await
    }

    /// Records a download without starting it (the CLI runs it in the foreground with
    /// [`DownloadManager::run`]); an unfinished one for the same files is reused.
    pub async fn add(&self, spec: &PullSpec, variant: Option<&str>) -> Result<i64, QueueError> {
        super::hub::validate_repo_id(&spec.repo)?;
        super::hub::validate_revision(&spec.revision)?;
        for file in &spec.files {
            super::hub::validate_repo_path(file)?;
        }
        let files = serde_json::to_string(&spec.files).unwrap_or_else(|_| "[]".into());
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM downloads WHERE repo = ? AND revision = ? AND files = ?
             AND state IN ('queued', 'running', 'paused', 'failed') ORDER BY id DESC LIMIT 1",
        )
        .bind(&spec.repo)
        .bind(&spec.revision)
        .bind(&files)
        .fetch_optional(self.inner.store.pool())
        .await?;
        let id = match existing {
            Some(id) => id,
            None => {
                let now = now_ms();
                sqlx::query_scalar(
                    "INSERT INTO downloads (repo, revision, files, variant, state, created_at, updated_at)
                     VALUES (?, ?, ?, ?, 'queued', ?, ?) RETURNING id",
                )
                .bind(&spec.repo)
                .bind(&spec.revision)
                .bind(&files)
                .bind(variant)
                .bind(now)
                .bind(now)
                .fetch_one(self.inner.store.pool())
                .await?
            }
        };
        self.bump();
        Ok(id)
    }

    /// Every download, newest first, with live progress for the running one.
    pub async fn list(&self) -> Result<Vec<DownloadJob>, QueueError> {
        let rows = sqlx::query("SELECT * FROM downloads ORDER BY id DESC").fetch_all(self.inner.store.pool()).await?;
        rows.iter().map(|r| self.row_to_job(r)).collect()
    }

    /// One download.
    pub async fn job(&self, id: i64) -> Result<DownloadJob, QueueError> {
        let row = sqlx::query("SELECT * FROM downloads WHERE id = ?")
            .bind(id)
            .fetch_optional(self.inner.store.pool())
            .await?;
        row.as_ref().map(|r| self.row_to_job(r)).transpose()?.ok_or(QueueError::NotFound(id))
    }

    fn row_to_job(&self, row: &sqlx::sqlite::SqliteRow) -> Result<DownloadJob, QueueError> {
        let id: i64 = row.try_get("id")?;
        let files: String = row.try_get("files")?;
        let code: Option<String> = row.try_get("error_code")?;
        let message: Option<String> = row.try_get("error")?;
        let progress = self.lock_active().get(&id).map(|a| a.progress.borrow().clone());
        let (mut done, mut total) =
            (row.try_get::<i64, _>("bytes_done")? as u64, row.try_get::<i64, _>("bytes_total")? as u64);
        if let Some(p) = progress.as_ref().filter(|p| p.bytes_total > 0) {
            (done, total) = (p.bytes_done, p.bytes_total);
        }
        Ok(DownloadJob {
            id,
            repo: row.try_get("repo")?,
            revision: row.try_get("revision")?,
            files: serde_json::from_str(&files).unwrap_or_default(),
            variant: row.try_get("variant")?,
            state: JobState::parse(&row.try_get::<String, _>("state")?),
            bytes_done: done,
            bytes_total: total,
            error: code.zip(message).map(|(code, message)| JobError { code, message }),
            model_id: row.try_get("model_id")?,
            progress,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    fn lock_active(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Active>> {
        // A panic while holding this lock leaves the map consistent (plain inserts/removes).
        self.inner.active.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a download in the background (no-op when it is already running).
    pub fn start(&self, id: i64) {
        let manager = self.clone();
        tokio::spawn(async move {
            let (tx, _rx) = watch::channel(PullProgress::default());
            if let Err(e) = manager.run(id, tx).await {
                tracing::debug!(id, error = %e, "download ended");
            }
        });
    }

    /// Runs a download in the current task until it completes, fails, or is paused or
    /// cancelled; progress goes to `progress`. The outcome is also recorded on the job.
    pub async fn run(&self, id: i64, progress: watch::Sender<PullProgress>) -> Result<LocalModel, DownloadError> {
        let job = self.job(id).await.map_err(|e| DownloadError::Protocol(e.to_string()))?;
        let cancel = CancellationToken::new();
        {
            let mut active = self.lock_active();
            if active.contains_key(&id) {
                return Err(DownloadError::Protocol(format!("download {id} is already running")));
            }
            active.insert(id, Active { cancel: cancel.clone(), stop: None, progress: progress.subscribe() });
        }
        self.set_state(id, JobState::Queued, None).await;
        let outcome = self.run_inner(&job, &progress, &cancel).await;
        let stop = self.lock_active().remove(&id).and_then(|a| a.stop);
        let last = progress.borrow().clone();
        let _ = sqlx::query("UPDATE downloads SET bytes_done = ?, bytes_total = MAX(bytes_total, ?) WHERE id = ?")
            .bind(last.bytes_done as i64)
            .bind(last.bytes_total as i64)
            .bind(id)
            .execute(self.inner.store.pool())
            .await;
        match &outcome {
            Ok(model) => {
                let _ = sqlx::query("UPDATE downloads SET model_id = ? WHERE id = ?")
                    .bind(model.id)
                    .bind(id)
                    .execute(self.inner.store.pool())
                    .await;
                self.set_state(id, JobState::Completed, None).await;
            }
            Err(DownloadError::Cancelled) if stop == Some(Stop::Cancel) => {
                self.discard(&job).await;
                self.set_state(id, JobState::Cancelled, None).await;
            }
            Err(DownloadError::Cancelled) if stop == Some(Stop::Offline) => {
                self.set_state(id, JobState::Queued, None).await;
            }
            Err(DownloadError::Cancelled) => self.set_state(id, JobState::Paused, None).await,
            Err(e) => self.set_state(id, JobState::Failed, Some(e)).await,
        }
        outcome
    }

    async fn run_inner(
        &self,
        job: &DownloadJob,
        progress: &watch::Sender<PullProgress>,
        cancel: &CancellationToken,
    ) -> Result<LocalModel, DownloadError> {
        let _turn = tokio::select! {
            () = cancel.cancelled() => return Err(DownloadError::Cancelled),
            permit = self.inner.turn.clone().acquire_owned() => permit.map_err(|_| DownloadError::Cancelled)?,
        };
        self.set_state(job.id, JobState::Running, None).await;
        let client = self.client().await.map_err(|e| match e {
            QueueError::Download(d) => d,
            other => DownloadError::Protocol(other.to_string()),
        })?;
        let spec = PullSpec { repo: job.repo.clone(), revision: job.revision.clone(), files: job.files.clone() };
        let forward = {
            let manager = self.clone();
            let mut rx = progress.subscribe();
            tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    manager.bump();
                }
            })
        };
        let pulled = super::pull(&client, &self.inner.cache, &spec, &self.inner.options, progress, cancel).await;
        forward.abort();
        let pulled = pulled?;
        self.inner
            .library
            .add_pulled(&pulled, job.variant.as_deref())
            .await
            .map_err(|e| DownloadError::Protocol(format!("the files are fetched but could not be recorded: {e}")))
    }

    async fn set_state(&self, id: i64, state: JobState, error: Option<&DownloadError>) {
        let result =
            sqlx::query("UPDATE downloads SET state = ?, error_code = ?, error = ?, updated_at = ? WHERE id = ?")
                .bind(state.as_str())
                .bind(error.map(|e| e.code()))
                .bind(error.map(|e| e.to_string()))
                .bind(now_ms())
                .bind(id)
                .execute(self.inner.store.pool())
                .await;
        if let Err(e) = result {
            tracing::error!(id, error = %e, "cannot record the download's state");
        }
        self.bump();
    }

    async fn stop(&self, id: i64, how: Stop) -> Result<bool, QueueError> {
        let mut active = self.lock_active();
        match active.get_mut(&id) {
            Some(a) => {
                a.stop = Some(how);
                a.cancel.cancel();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Pauses a download; the bytes fetched so far are kept.
    pub async fn pause(&self, id: i64) -> Result<(), QueueError> {
        let job = self.job(id).await?;
        if !self.stop(id, Stop::Pause).await? && job.state == JobState::Queued {
            self.set_state(id, JobState::Paused, None).await;
        }
        Ok(())
    }

    /// Continues a paused, failed or interrupted download from the bytes on disk.
    pub async fn resume(&self, id: i64) -> Result<(), QueueError> {
        let job = self.job(id).await?;
        if !self.lock_active().contains_key(&id) && job.state != JobState::Completed {
            self.start(id);
        }
        Ok(())
    }

    /// Stops a download and deletes its partial data.
    pub async fn cancel(&self, id: i64) -> Result<(), QueueError> {
        let job = self.job(id).await?;
        if !self.stop(id, Stop::Cancel).await? && job.state != JobState::Completed {
            self.discard(&job).await;
            self.set_state(id, JobState::Cancelled, None).await;
        }
        Ok(())
    }

    /// Drops a finished, failed or cancelled download from the list (its files stay).
    pub async fn forget(&self, id: i64) -> Result<(), QueueError> {
        if self.lock_active().contains_key(&id) {
            self.cancel(id).await?;
        }
        sqlx::query("DELETE FROM downloads WHERE id = ?").bind(id).execute(self.inner.store.pool()).await?;
        self.bump();
        Ok(())
    }

    async fn discard(&self, job: &DownloadJob) {
        let others_keep_bytes = self.list().await.map_or(true, |jobs| {
            jobs.iter().any(|other| {
                other.id != job.id
                    && other.repo == job.repo
                    && matches!(other.state, JobState::Queued | JobState::Running | JobState::Paused | JobState::Failed)
            })
        });
        if let Ok(client) = self.client().await {
            let spec = PullSpec { repo: job.repo.clone(), revision: job.revision.clone(), files: job.files.clone() };
            super::discard_partial(&client, &self.inner.cache, &spec, !others_keep_bytes).await;
        }
    }

    /// Starts again every download that was waiting or running when the last process ended,
    /// and those that failed only because Altiplano was offline (none while it still is: they
    /// wait for offline mode to go off).
    pub async fn resume_interrupted(&self) -> Result<usize, QueueError> {
        if self.offline().await?.is_some() {
            return Ok(0);
        }
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM downloads WHERE state IN ('queued', 'running')
             OR (state = 'failed' AND error_code = 'offline') ORDER BY id",
        )
        .fetch_all(self.inner.store.pool())
        .await?;
        for &id in &ids {
            self.start(id);
        }
        Ok(ids.len())
    }
}
