//! Questions about a code folder: choose and index it, ask, and read the cited files.

use std::path::PathBuf;
use std::time::Instant;

use tauri::ipc::Channel;
use tauri_plugin_dialog::DialogExt;

use super::{SessionState, TextBatch};
use crate::dto::{ApiError, CodeAnswerDto, CodeStreamEvent, IndexProgressDto, ProjectDto, ProjectEventDto};

/// Opens a folder dialog (from Rust, so the webview never names paths), indexes the chosen
/// folder with progress on `on_progress`, and makes it the open code folder. `None` when the
/// dialog was cancelled.
#[tauri::command]
#[specta::specta]
pub async fn choose_project(
    app: tauri::AppHandle,
    session: SessionState<'_>,
    on_progress: Channel<IndexProgressDto>,
) -> Result<Option<ProjectDto>, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.dialog().file().set_title("Choose a code folder").pick_folder(move |f| {
        let _ = tx.send(f.and_then(|f| f.into_path().ok()));
    });
    let chosen: Option<PathBuf> = rx.await.unwrap_or(None);
    match chosen {
        Some(root) => Ok(Some(index(&app, &session, root, on_progress).await?)),
        None => Ok(None),
    }
}

/// Brings the open folder's index up to date (only changed files are read).
#[tauri::command]
#[specta::specta]
pub async fn reindex_project(
    app: tauri::AppHandle,
    session: SessionState<'_>,
    on_progress: Channel<IndexProgressDto>,
) -> Result<ProjectDto, ApiError> {
    let root = session
        .project()
        .await
        .map(|p| p.root().to_path_buf())
        .ok_or_else(|| ApiError::from(altiplano_core::session::SessionError::NoProject))?;
    index(&app, &session, root, on_progress).await
}

async fn index(
    app: &tauri::AppHandle,
    session: &SessionState<'_>,
    root: PathBuf,
    on_progress: Channel<IndexProgressDto>,
) -> Result<ProjectDto, ApiError> {
    let mut last = Instant::now();
    let (index, report) = session
        .open_project(
            &root,
            move |p| {
                // A few updates a second are enough for a progress bar.
                if last.elapsed().as_millis() >= 100 || p.files_done == p.files_total {
                    last = Instant::now();
                    let _ = on_progress.send(IndexProgressDto::from(&p));
                }
            },
            embedding_news(app),
        )
        .await?;
    let project = ProjectDto::new(&index, &report);
    // The latest news for whoever subscribes later (this caller has the result already).
    use tauri::Manager;
    app.state::<ProjectListeners>().latest(ProjectEventDto::Opened { project: project.clone(), dropped: false });
    Ok(project)
}

/// Answers a question about the open folder, streaming the text; `stop_reply` with the same
/// request id stops it.
#[tauri::command]
#[specta::specta]
pub async fn ask_code(
    session: SessionState<'_>,
    request_id: u32,
    question: String,
    on_event: Channel<CodeStreamEvent>,
) -> Result<CodeAnswerDto, ApiError> {
    let mut batch = TextBatch::new(on_event, |text| CodeStreamEvent::Text { text });
    let answered = session.ask_code(request_id, &question, |text| batch.push(text)).await;
    batch.flush();
    let (answer, conversation) = answered?;
    Ok(CodeAnswerDto::new(&answer, conversation))
}

/// A file of the open folder, for the read-only view a citation opens.
#[tauri::command]
#[specta::specta]
pub async fn read_project_file(session: SessionState<'_>, path: String) -> Result<String, ApiError> {
    Ok(session.read_project_file(&path).await?)
}

/// The UI's subscriptions to code folders opened in the background, and the latest news, which
/// a new subscriber hears first (the start-up folder may open before the UI subscribes).
#[derive(Default)]
pub struct ProjectListeners(std::sync::Mutex<Listeners>);

#[derive(Default)]
struct Listeners {
    channels: Vec<Channel<ProjectEventDto>>,
    latest: Option<ProjectEventDto>,
}

impl ProjectListeners {
    fn send(&self, event: ProjectEventDto) {
        self.send_news(event.clone());
        self.0.lock().unwrap_or_else(|p| p.into_inner()).latest = Some(event);
    }

    /// Sends `event` without keeping it as the latest news (progress of the open folder's
    /// embedding: a later subscriber needs the folder, not how far that was).
    fn send_news(&self, event: ProjectEventDto) {
        let mut listeners = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // A listener whose webview is gone fails to send and is dropped.
        listeners.channels.retain(|channel| channel.send(event.clone()).is_ok());
    }

    /// Keeps `event` as the latest news without sending it.
    fn latest(&self, event: ProjectEventDto) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).latest = Some(event);
    }
}

/// Tells every subscriber how far the open folder's background embedding is.
fn embedding_news(app: &tauri::AppHandle) -> impl FnMut(altiplano_core::codebase::IndexProgress) + Send + 'static {
    use tauri::Manager;
    let app = app.clone();
    move |p| {
        app.state::<ProjectListeners>().send_news(ProjectEventDto::Embedding { progress: IndexProgressDto::from(&p) })
    }
}

/// Subscribes to code folders opened in the background (dropped on the window, or the start-up
/// folder): their indexing progress, then the open project (or why it failed). The latest of
/// these comes at once.
#[tauri::command]
#[specta::specta]
pub fn watch_projects(listeners: tauri::State<'_, ProjectListeners>, on_event: Channel<ProjectEventDto>) {
    let mut listeners = listeners.0.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(latest) = &listeners.latest {
        if on_event.send(latest.clone()).is_err() {
            return;
        }
    }
    listeners.channels.push(on_event);
}

/// Opens the first folder among `paths` dropped on the window as the code folder. Files are
/// left alone (documents are read elsewhere). Paths stay on the Rust side.
pub fn open_dropped(app: &tauri::AppHandle, paths: &[PathBuf]) {
    if let Some(root) = paths.iter().find(|p| p.is_dir()).cloned() {
        open_in_background(app, root, true);
    }
}

/// Opens `root` as the code folder in the background, reporting to the [`ProjectListeners`]:
/// a dropped folder, or (`dropped` false) the start-up folder.
pub fn open_in_background(app: &tauri::AppHandle, root: PathBuf, dropped: bool) {
    use tauri::Manager;
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let session = app.state::<std::sync::Arc<altiplano_core::session::Session>>();
        let listeners = app.state::<ProjectListeners>();
        let progress_app = app.clone();
        let mut last = Instant::now();
        let opened = session
            .open_project(
                &root,
                move |p| {
                    if last.elapsed().as_millis() >= 100 || p.files_done == p.files_total {
                        last = Instant::now();
                        progress_app
                            .state::<ProjectListeners>()
                            .send(ProjectEventDto::Indexing { progress: IndexProgressDto::from(&p), dropped });
                    }
                },
                embedding_news(&app),
            )
            .await;
        if let Err(e) = &opened {
            tracing::warn!("code folder {} did not open: {e}", root.display());
        }
        listeners.send(match opened {
            Ok((index, report)) => ProjectEventDto::Opened { project: ProjectDto::new(&index, &report), dropped },
            Err(e) => ProjectEventDto::Failed { error: e.into(), dropped },
        });
    });
}
