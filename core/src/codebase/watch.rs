//! Keeping an open folder's index fresh: file-system events (notify) are gathered for a moment
//! and then trigger an incremental update, which reads only the files that changed.

use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::{CodeError, CodeIndex};

/// Events are gathered this long before an update runs.
const SETTLE: Duration = Duration::from_millis(700);

/// Watches a folder while alive; dropping it stops the watching.
pub struct Watch {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watch")
    }
}

impl Watch {
    /// Starts watching `index`'s folder; each burst of changes ends in `index.update`, whose
    /// report goes to `on_update`.
    pub fn start(
        index: Arc<CodeIndex>,
        on_update: impl Fn(Result<super::IndexReport, CodeError>) + Send + 'static,
    ) -> Result<Self, CodeError> {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                let _ = tx.send(());
            }
        })
        .map_err(|e| CodeError::Io { path: index.root().to_path_buf(), source: std::io::Error::other(e) })?;
        watcher
            .watch(index.root(), RecursiveMode::Recursive)
            .map_err(|e| CodeError::Io { path: index.root().to_path_buf(), source: std::io::Error::other(e) })?;
        std::thread::Builder::new()
            .name("altiplano-code-watch".into())
            .spawn(move || {
                // Ends when the watcher (the sender's owner) is dropped.
                while rx.recv().is_ok() {
                    while rx.recv_timeout(SETTLE).is_ok() {}
                    on_update(index.update(|_| {}));
                }
            })
            .map_err(|e| CodeError::Io { path: std::path::PathBuf::new(), source: e })?;
        Ok(Self { _watcher: watcher })
    }
}
