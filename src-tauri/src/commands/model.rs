//! The model: status, start-up load, the starter model and the file dialog.

use std::path::PathBuf;

use altiplano_core::choose;
use altiplano_core::config;
use altiplano_core::session::SessionError;
use tauri::ipc::Channel;
use tauri_plugin_dialog::DialogExt;

use super::SessionState;
use crate::dto::{
    ApiError, EngineDto, ModelDto, ModelStateDto, ModelsPageDto, PreferenceDto, PurposeDto, RemotesDto, SearchModelDto,
    StatusDto, UseStartedDto,
};

fn status(session: &SessionState<'_>, model: ModelStateDto) -> StatusDto {
    StatusDto {
        model,
        starter_model_available: config::starter_model().is_some_and(|p| p.is_file()),
        data_dir: session.data_dir().path().display().to_string(),
    }
}

#[tauri::command]
#[specta::specta]
pub fn get_status(session: SessionState<'_>) -> StatusDto {
    status(&session, session.model_state().into())
}

/// Sends the status now and at every change of the model's state: a load's progress in
/// layers, a download-then-load's start, the end of a load or its failure. At most twenty
/// updates a second (the latest state wins). Ends when the webview goes away.
#[tauri::command]
#[specta::specta]
pub async fn watch_status(session: SessionState<'_>, on_update: Channel<StatusDto>) -> Result<(), ApiError> {
    let mut changes = session.watch_model();
    loop {
        let state = changes.borrow_and_update().clone();
        if on_update.send(status(&session, state.into())).is_err() {
            return Ok(());
        }
        tokio::time::sleep(STATUS_INTERVAL).await;
        if changes.changed().await.is_err() {
            return Ok(());
        }
    }
}

/// The shortest time between two status updates.
const STATUS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

#[tauri::command]
#[specta::specta]
pub async fn use_starter_model(session: SessionState<'_>) -> Result<ModelDto, ApiError> {
    let path = choose::starter().map_err(SessionError::from)?;
    Ok(ModelDto::from(&session.load_model(&path).await?))
}

/// Opens a file dialog (from Rust, so the webview never names paths) and loads the chosen
/// GGUF file. `None` when the dialog was cancelled.
#[tauri::command]
#[specta::specta]
pub async fn choose_model_file(app: tauri::AppHandle, session: SessionState<'_>) -> Result<Option<ModelDto>, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.dialog().file().set_title("Choose a GGUF model").add_filter("GGUF model", &["gguf"]).pick_file(move |file| {
        let _ = tx.send(file.and_then(|f| f.into_path().ok()));
    });
    let chosen: Option<PathBuf> = rx.await.unwrap_or(None);
    match chosen {
        Some(path) => Ok(Some(ModelDto::from(&session.load_model(&path).await?))),
        None => Ok(None),
    }
}

/// This machine's hardware and every catalog variant planned for it at `context_tokens`, or,
/// when the page opens (`None`), at the context the recommended variant holds.
#[tauri::command]
#[specta::specta]
pub async fn plan_models(
    session: SessionState<'_>,
    context_tokens: Option<u32>,
    prefer: PreferenceDto,
) -> Result<ModelsPageDto, ApiError> {
    let (profile, catalog, plan, context_tokens) = session.plan(context_tokens, prefer.into()).await?;
    let measurements = session.measurements().await?;
    Ok(ModelsPageDto::new(&profile, &catalog, &plan, context_tokens, measurements))
}

/// "Use this model": a catalog variant id (downloaded first when it is not on disk) or a
/// library model id. Loaded as its plan says (on `engine` when given), measured, and made the
/// chat model.
#[tauri::command]
#[specta::specta]
pub async fn use_model(
    session: SessionState<'_>,
    target: String,
    engine: Option<EngineDto>,
) -> Result<UseStartedDto, ApiError> {
    Ok(session.inner().use_model(&target, None, engine.map(Into::into)).await?.into())
}

/// The catalog's embedding models: on disk or not, and what search uses each for.
#[tauri::command]
#[specta::specta]
pub async fn list_search_models(session: SessionState<'_>) -> Result<Vec<SearchModelDto>, ApiError> {
    Ok(session.search_models().await?.into_iter().map(Into::into).collect())
}

/// Makes embedding model `id` (on disk) the one search uses for `purpose`; it is loaded here,
/// so a broken download is reported now. Returns the list as it stands after.
#[tauri::command]
#[specta::specta]
pub async fn use_search_model(
    session: SessionState<'_>,
    purpose: PurposeDto,
    id: String,
) -> Result<Vec<SearchModelDto>, ApiError> {
    session.choose_search_model(purpose.into(), &id).await?;
    list_search_models(session).await
}

/// The remote model servers added, and which one is the chat model.
#[tauri::command]
#[specta::specta]
pub async fn list_remotes(session: SessionState<'_>) -> Result<RemotesDto, ApiError> {
    let (remotes, in_use) = session.remotes().await?;
    Ok(RemotesDto::new(remotes, in_use))
}

/// Adds a remote model server (connected once first: a wrong address, key or model is said
/// now) and makes it the chat model; its key goes to the system keyring.
#[tauri::command]
#[specta::specta]
pub async fn add_remote(
    session: SessionState<'_>,
    name: String,
    url: String,
    api_key: Option<String>,
    model: Option<String>,
    context_tokens: Option<u32>,
) -> Result<RemotesDto, ApiError> {
    let remote = altiplano_core::remotes::Remote {
        name,
        url,
        model: model.filter(|m| !m.trim().is_empty()),
        context_tokens: context_tokens.map(|n| n as usize),
    };
    session.add_remote(remote, api_key.as_deref().filter(|k| !k.trim().is_empty()), true).await?;
    list_remotes(session).await
}

/// Makes a remote server's model the chat model.
#[tauri::command]
#[specta::specta]
pub async fn use_remote(session: SessionState<'_>, name: String) -> Result<RemotesDto, ApiError> {
    session.use_remote(&name, None).await?;
    list_remotes(session).await
}

/// Removes a remote server and its key.
#[tauri::command]
#[specta::specta]
pub async fn remove_remote(session: SessionState<'_>, name: String) -> Result<RemotesDto, ApiError> {
    session.remove_remote(&name).await?;
    list_remotes(session).await
}
