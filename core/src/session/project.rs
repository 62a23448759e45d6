//! The open code folder: its index, kept fresh by a file watcher while it is open, the report of
//! its last full indexing, and the folder to open at start-up (remembered in the store).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::SessionError;
use crate::codebase::{CodeError, CodeIndex, IndexProgress, IndexReport, Watch};
use crate::config::DataDir;
use crate::store::Store;

/// Setting key holding the last code folder opened.
const LAST_PROJECT_KEY: &str = "code.last_project";
/// Environment variable naming a code folder to open at start-up.
pub const PROJECT_ENV: &str = "ALTIPLANO_PROJECT";

/// See the module documentation.
#[derive(Debug)]
pub struct ProjectSlot {
    store: Store,
    data_dir: DataDir,
    open: tokio::sync::Mutex<Option<OpenProject>>,
}

/// The open code folder.
#[derive(Debug)]
struct OpenProject {
    index: Arc<CodeIndex>,
    report: IndexReport,
    _watch: Option<Watch>,
    /// Stops the background embedding when the folder is closed or another one opens.
    _embedding: tokio_util::sync::DropGuard,
}

impl ProjectSlot {
    /// No folder open; indexes live in `data_dir`, the last folder is remembered in `store`.
    pub fn new(store: Store, data_dir: DataDir) -> Self {
        Self { store, data_dir, open: tokio::sync::Mutex::new(None) }
    }

    /// Opens a code folder and brings its words up to date (only changed files are read);
    /// `progress` hears about it as files are handled. It becomes the folder `ask_code` uses as
    /// soon as keyword search is complete; the chunks without vectors are then embedded in the
    /// background (`on_embed` hears how far it is), each batch searchable as it is committed.
    pub async fn open(
        &self,
        root: &Path,
        search_model: Result<Option<Arc<crate::engine::embed::Embedder>>, crate::search_models::SearchModelError>,
        progress: impl FnMut(IndexProgress) + Send + 'static,
        mut on_embed: impl FnMut(IndexProgress) + Send + 'static,
    ) -> Result<(Arc<CodeIndex>, IndexReport), SessionError> {
        let data = self.data_dir.path().to_path_buf();
        let root = root.to_path_buf();
        let model = search_model.map_err(|e| e.to_string());
        let (index, report) = tokio::task::spawn_blocking(move || {
            let index = CodeIndex::open_with_model(&data, &root, model)?;
            let report = index.update_words(progress)?;
            Ok::<_, CodeError>((index, report))
        })
        .await
        .map_err(|e| CodeError::Io { path: PathBuf::new(), source: std::io::Error::other(e) })??;
        let index = Arc::new(index);
        let cancel = tokio_util::sync::CancellationToken::new();
        let (embedding, stop) = (Arc::clone(&index), cancel.clone());
        tokio::task::spawn_blocking(move || match embedding.embed_pending(&mut on_embed, &stop) {
            Ok(r) if r.chunks_embedded > 0 => {
                tracing::info!(chunks = r.chunks_embedded, ms = r.embed_ms, "code chunks embedded")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("embedding the code folder failed; search uses keywords for the rest: {e}"),
        });
        // Kept fresh while open: edits in the folder re-index just the files they touch.
        let watch = match Watch::start(Arc::clone(&index), |result| match result {
            Ok(r) if r.files_indexed + r.files_removed > 0 => {
                tracing::info!(indexed = r.files_indexed, removed = r.files_removed, "code index updated")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("code index update failed: {e}"),
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("the code folder cannot be watched ({e}); re-index by hand");
                None
            }
        };
        *self.open.lock().await = Some(OpenProject {
            index: Arc::clone(&index),
            report: report.clone(),
            _watch: watch,
            _embedding: cancel.drop_guard(),
        });
        if let Err(e) = self.store.set_setting(LAST_PROJECT_KEY, &index.root().to_string_lossy()).await {
            tracing::warn!("could not remember the code folder: {e}");
        }
        Ok((index, report))
    }

    /// The open code folder, if any.
    pub async fn index(&self) -> Option<Arc<CodeIndex>> {
        self.open.lock().await.as_ref().map(|p| Arc::clone(&p.index))
    }

    /// The open code folder with the report of its last full indexing.
    pub async fn report(&self) -> Option<(Arc<CodeIndex>, IndexReport)> {
        self.open.lock().await.as_ref().map(|p| (Arc::clone(&p.index), p.report.clone()))
    }

    /// The code folder to open at start-up: `ALTIPLANO_PROJECT`, else the last one opened
    /// (if it still exists).
    pub async fn startup(&self) -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os(PROJECT_ENV).filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(dir));
        }
        let last = self.store.setting(LAST_PROJECT_KEY).await.ok().flatten()?;
        Some(PathBuf::from(last)).filter(|p| p.is_dir())
    }

    /// A file of the open code folder, for the read-only view of a citation; paths that lead
    /// outside the folder are refused.
    pub async fn read_file(&self, path: &str) -> Result<String, SessionError> {
        let index = self.index().await.ok_or(SessionError::NoProject)?;
        let root = index.root().to_path_buf();
        let full = std::fs::canonicalize(root.join(path)).map_err(|_| SessionError::OutsideProject(path.to_owned()))?;
        if !full.starts_with(&root) || !full.is_file() {
            return Err(SessionError::OutsideProject(path.to_owned()));
        }
        let bytes = tokio::fs::read(&full).await.map_err(|_| SessionError::OutsideProject(path.to_owned()))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}
