//! Documents: open files (dialog, drop, command line), summarize them with progress, read the
//! cited pages and ask follow-up questions. Paths never come from the webview: the dialog and
//! the drop handler run in Rust.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use altiplano_core::documents::SummaryOptions;
use tauri::ipc::Channel;
use tauri::Manager;
use tauri_plugin_dialog::DialogExt;

use super::{SessionState, TextBatch};
use crate::dto::{
    ApiError, DocumentAnswerDto, DocumentDto, DocumentEventDto, OpenedDocumentDto, SummaryDto, SummaryProgressDto,
};

/// Kinds of file offered by the dialog (any file can still be dropped).
const EXTENSIONS: &[&str] = &["pdf", "docx", "md", "markdown", "html", "htm", "txt", "text", "rst", "csv"];

/// The UI's subscriptions to documents as they open, and files named on the command line that
/// wait for the first subscriber.
#[derive(Default)]
pub struct DocumentListeners {
    channels: Mutex<Vec<Channel<DocumentEventDto>>>,
    waiting: Mutex<Vec<PathBuf>>,
    next_key: AtomicU32,
}

impl DocumentListeners {
    /// Files to open once the window listens (from the command line).
    pub fn with_waiting(paths: Vec<PathBuf>) -> Self {
        Self { waiting: Mutex::new(paths), ..Self::default() }
    }

    fn send(&self, event: DocumentEventDto) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        // A listener whose webview is gone fails to send and is dropped.
        channels.retain(|channel| channel.send(event.clone()).is_ok());
    }
}

/// Subscribes to documents as they open (dropped, chosen, or named on the command line).
#[tauri::command]
#[specta::specta]
pub fn watch_documents(app: tauri::AppHandle, on_event: Channel<DocumentEventDto>) {
    let listeners = app.state::<DocumentListeners>();
    listeners.channels.lock().unwrap_or_else(|p| p.into_inner()).push(on_event);
    let waiting = std::mem::take(&mut *listeners.waiting.lock().unwrap_or_else(|p| p.into_inner()));
    open_paths(&app, waiting);
}

/// Opens the file dialog; the chosen files open one after another, reported to the
/// subscribers of `watch_documents`. False when the dialog was cancelled.
#[tauri::command]
#[specta::specta]
pub async fn choose_documents(app: tauri::AppHandle) -> Result<bool, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.dialog().file().set_title("Open documents").add_filter("Documents", EXTENSIONS).pick_files(move |files| {
        let paths: Vec<PathBuf> = files.unwrap_or_default().into_iter().filter_map(|f| f.into_path().ok()).collect();
        let _ = tx.send(paths);
    });
    let chosen = rx.await.unwrap_or_default();
    let any = !chosen.is_empty();
    open_paths(&app, chosen);
    Ok(any)
}

/// Opens the files among `paths` (folders are left to the Code tab), one after another.
pub fn open_paths(app: &tauri::AppHandle, paths: Vec<PathBuf>) {
    let files: Vec<PathBuf> = paths.into_iter().filter(|p| !p.is_dir()).collect();
    if files.is_empty() {
        return;
    }
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let session = app.state::<std::sync::Arc<altiplano_core::session::Session>>();
        let listeners = app.state::<DocumentListeners>();
        for path in files {
            let key = listeners.next_key.fetch_add(1, Ordering::Relaxed);
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            listeners.send(DocumentEventDto::Opening { key, name: name.clone() });
            listeners.send(match session.open_document(&path).await {
                Ok((document, summary)) => DocumentEventDto::Opened {
                    key,
                    opened: OpenedDocumentDto {
                        document: DocumentDto::from(&document),
                        summary: summary.as_ref().map(SummaryDto::from),
                    },
                },
                Err(e) => DocumentEventDto::Failed { key, name, error: e.into() },
            });
        }
    });
}

/// Documents opened before, most recent first.
#[tauri::command]
#[specta::specta]
pub async fn list_documents(session: SessionState<'_>) -> Result<Vec<DocumentDto>, ApiError> {
    Ok(session.documents().await?.iter().map(DocumentDto::from).collect())
}

/// A document opened before, with its summary if finished.
#[tauri::command]
#[specta::specta]
pub async fn get_document(session: SessionState<'_>, document_id: i64) -> Result<OpenedDocumentDto, ApiError> {
    let (document, summary) = session.document(document_id).await?;
    Ok(OpenedDocumentDto { document: DocumentDto::from(&document), summary: summary.as_ref().map(SummaryDto::from) })
}

/// Forgets a document and its summaries; its conversation stays.
#[tauri::command]
#[specta::specta]
pub async fn forget_document(session: SessionState<'_>, document_id: i64) -> Result<(), ApiError> {
    Ok(session.forget_document(document_id).await?)
}

/// Summarizes a document with progress on `on_progress`; `stop_reply` with the same request
/// id stops it (finished parts are kept, and the next call continues). `fresh` starts over.
#[tauri::command]
#[specta::specta]
pub async fn summarize_document(
    session: SessionState<'_>,
    request_id: u32,
    document_id: i64,
    fresh: bool,
    on_progress: Channel<SummaryProgressDto>,
) -> Result<SummaryDto, ApiError> {
    let mut last = Instant::now();
    let summary = session
        .summarize_document(request_id, document_id, fresh, SummaryOptions::default(), move |p| {
            // Counting is fast: a few updates a second are enough.
            let counting =
                matches!(p, altiplano_core::documents::SummaryProgress::Counting { done, pages } if done != pages);
            if !counting || last.elapsed().as_millis() >= 150 {
                last = Instant::now();
                let _ = on_progress.send(SummaryProgressDto::from(&p));
            }
        })
        .await?;
    Ok(SummaryDto::from(&summary))
}

/// The text of one page, for the view a citation opens.
#[tauri::command]
#[specta::specta]
pub async fn document_page(session: SessionState<'_>, document_id: i64, page: u32) -> Result<String, ApiError> {
    Ok(session.document_page(document_id, page).await?.text)
}

/// Answers a follow-up question about a document, streaming the text; `stop_reply` with the
/// same request id stops it.
#[tauri::command]
#[specta::specta]
pub async fn ask_document(
    session: SessionState<'_>,
    request_id: u32,
    document_id: i64,
    question: String,
    on_event: Channel<crate::dto::CodeStreamEvent>,
) -> Result<DocumentAnswerDto, ApiError> {
    let mut batch = TextBatch::new(on_event, |text| crate::dto::CodeStreamEvent::Text { text });
    let asked = session.ask_document(request_id, document_id, &question, |text| batch.push(text)).await;
    batch.flush();
    let asked = asked?;
    Ok(DocumentAnswerDto::new(&asked.answer, asked.conversation_id))
}
