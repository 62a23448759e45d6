//! Downloads, the models on disk and the Hugging Face token.

use std::path::PathBuf;
use std::time::Duration;

use altiplano_core::engine::Isq;
use altiplano_core::secrets::{self, TokenSource};
use tauri::ipc::Channel;
use tauri_plugin_dialog::DialogExt;

use super::SessionState;
use crate::dto::{
    ApiError, DownloadJobDto, DownloadsDto, EngineDto, LocalModelDto, ModelDto, OfflineReasonDto, TokenSourceDto,
};

/// Updates are sent at most this often while a download runs.
const UPDATE_INTERVAL: Duration = Duration::from_millis(250);

/// The token status is read from the keyring (a D-Bus round trip) at most this often while
/// progress streams; the commands that change it make the UI ask again at once.
const TOKEN_REFRESH: Duration = Duration::from_secs(10);

async fn snapshot(session: &SessionState<'_>) -> Result<DownloadsDto, ApiError> {
    let endpoint = session.downloads().endpoint().await?;
    snapshot_with(session, secrets::hf_token(&endpoint).await.map(|(_, source)| source)).await
}

async fn snapshot_with(session: &SessionState<'_>, token: Option<TokenSource>) -> Result<DownloadsDto, ApiError> {
    let downloads = session.downloads();
    let endpoint = downloads.endpoint().await?;
    Ok(DownloadsDto {
        jobs: downloads.list().await?.into_iter().map(DownloadJobDto::from).collect(),
        models: session.library().list().await?.into_iter().map(LocalModelDto::from).collect(),
        has_token: token.is_some(),
        token_source: token.map(TokenSourceDto::from),
        endpoint_carries_token: altiplano_core::download::hub::carries_secrets(&endpoint),
        endpoint,
        endpoint_from_environment: downloads.endpoint_from_environment(),
        cache_dir: downloads.cache().root().display().to_string(),
        offline: downloads.offline().await?.map(OfflineReasonDto::from),
    })
}

#[tauri::command]
#[specta::specta]
pub async fn list_downloads(session: SessionState<'_>) -> Result<DownloadsDto, ApiError> {
    snapshot(&session).await
}

/// Sends the downloads panel's state now and whenever it changes (at most four times a
/// second), until the webview goes away. The UI keeps one such subscription for its lifetime.
#[tauri::command]
#[specta::specta]
pub async fn watch_downloads(session: SessionState<'_>, on_update: Channel<DownloadsDto>) -> Result<(), ApiError> {
    let mut changes = session.downloads().subscribe();
    let mut token = None;
    let mut token_read = None::<std::time::Instant>;
    loop {
        if token_read.is_none_or(|t| t.elapsed() >= TOKEN_REFRESH) {
            let endpoint = session.downloads().endpoint().await?;
            token = secrets::hf_token(&endpoint).await.map(|(_, source)| source);
            token_read = Some(std::time::Instant::now());
        }
        if on_update.send(snapshot_with(&session, token).await?).is_err() {
            return Ok(());
        }
        tokio::time::sleep(UPDATE_INTERVAL).await;
        if changes.changed().await.is_err() {
            return Ok(());
        }
    }
}

/// Starts a download: a catalog variant id, or a repo id with an optional file.
#[tauri::command]
#[specta::specta]
pub async fn start_download(
    session: SessionState<'_>,
    target: String,
    file: Option<String>,
    revision: Option<String>,
) -> Result<DownloadJobDto, ApiError> {
    let files: Vec<String> = file.into_iter().collect();
    Ok(session.start_download(&target, &files, revision.as_deref()).await?.into())
}

#[tauri::command]
#[specta::specta]
pub async fn pause_download(session: SessionState<'_>, id: i64) -> Result<(), ApiError> {
    Ok(session.downloads().pause(id).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn resume_download(session: SessionState<'_>, id: i64) -> Result<(), ApiError> {
    Ok(session.downloads().resume(id).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn cancel_download(session: SessionState<'_>, id: i64) -> Result<(), ApiError> {
    Ok(session.downloads().cancel(id).await?)
}

/// Removes a finished, failed or cancelled download from the list.
#[tauri::command]
#[specta::specta]
pub async fn forget_download(session: SessionState<'_>, id: i64) -> Result<(), ApiError> {
    Ok(session.downloads().forget(id).await?)
}

/// Keeps the token in the OS keyring for the endpoint in use; it is sent there only.
#[tauri::command]
#[specta::specta]
pub async fn set_hf_token(session: SessionState<'_>, token: String) -> Result<(), ApiError> {
    Ok(secrets::set_hf_token(&session.downloads().endpoint().await?, &token).await?)
}

/// Removes the token kept for the endpoint in use.
#[tauri::command]
#[specta::specta]
pub async fn clear_hf_token(session: SessionState<'_>) -> Result<(), ApiError> {
    Ok(secrets::clear_hf_token(&session.downloads().endpoint().await?).await?)
}

/// Chooses the endpoint (a Hugging Face mirror); empty means the Hub itself.
#[tauri::command]
#[specta::specta]
pub async fn set_download_endpoint(session: SessionState<'_>, endpoint: String) -> Result<(), ApiError> {
    Ok(session.downloads().set_endpoint(&endpoint).await?)
}

/// Turns offline mode on (running downloads stop and wait) or off (they continue).
#[tauri::command]
#[specta::specta]
pub async fn set_offline(session: SessionState<'_>, on: bool) -> Result<(), ApiError> {
    Ok(session.downloads().set_offline(on).await?)
}

/// Opens a dialog (from Rust, so the webview never names paths) for a GGUF file or a
/// safetensors folder, checks it and adds it to the library. `None` when cancelled.
#[tauri::command]
#[specta::specta]
pub async fn import_model(
    app: tauri::AppHandle,
    session: SessionState<'_>,
    folder: bool,
) -> Result<Option<LocalModelDto>, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let dialog = app.dialog().file();
    if folder {
        dialog.set_title("Choose a safetensors model folder").pick_folder(move |f| {
            let _ = tx.send(f.and_then(|f| f.into_path().ok()));
        });
    } else {
        dialog.set_title("Choose a GGUF model").add_filter("GGUF model", &["gguf"]).pick_file(move |f| {
            let _ = tx.send(f.and_then(|f| f.into_path().ok()));
        });
    }
    let chosen: Option<PathBuf> = rx.await.unwrap_or(None);
    match chosen {
        Some(path) => Ok(Some(session.library().import(&path).await?.into())),
        None => Ok(None),
    }
}

/// Removes a model: downloaded files are deleted, imported ones only forgotten.
#[tauri::command]
#[specta::specta]
pub async fn remove_model(session: SessionState<'_>, id: i64) -> Result<(), ApiError> {
    session.remove_library_model(id).await?;
    Ok(())
}

/// Loads a model from the library as the chat model, measured and remembered; a safetensors
/// model quantized in place with `isq` (`q4k`, `q5k`, `q6k`, `q8_0`, `fp8`) when given; on
/// `engine` when given (else the one its format runs on).
#[tauri::command]
#[specta::specta]
pub async fn load_local_model(
    session: SessionState<'_>,
    id: i64,
    isq: Option<String>,
    engine: Option<EngineDto>,
) -> Result<ModelDto, ApiError> {
    let isq = isq.as_deref().map(str::parse::<Isq>).transpose().map_err(ApiError::from)?;
    let (info, _) = session.load_library_model(id, isq, engine.map(Into::into)).await?;
    Ok(ModelDto::from(&info))
}
