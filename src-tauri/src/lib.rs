//! Altiplano's desktop shell: a Tauri 2 window over `altiplano-core`.
//!
//! [`run`] opens the session (store in the data directory), starts loading the start-up model
//! in the background, and serves the UI's commands (see [`commands`]).

pub mod commands;
pub mod dto;

use std::sync::Arc;

use altiplano_core::config::DataDir;
use altiplano_core::session::Session;
use tauri::Manager;

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The CPU lacks features this build needs.
    #[error(transparent)]
    Cpu(#[from] altiplano_core::cpu::UnsupportedCpu),
    /// No usable data directory.
    #[error(transparent)]
    Config(#[from] altiplano_core::config::ConfigError),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// The store could not open.
    #[error(transparent)]
    Session(#[from] altiplano_core::session::SessionError),
    /// The window could not open.
    #[error("the window could not start: {0}")]
    Tauri(#[from] tauri::Error),
}

/// Files named on the command line, made absolute (folders and unknown paths are skipped).
fn startup_documents() -> Vec<std::path::PathBuf> {
    std::env::args_os()
        .skip(1)
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_file())
        .filter_map(|p| std::path::absolute(p).ok())
        .collect()
}

/// Every command the UI can call, and the TypeScript that calls them: `ui/src/lib/api/bindings.ts`
/// is generated from this (`cargo test -p altiplano-app bindings`), and `build.rs` grants the
/// window exactly these commands, read from this list.
pub fn wire() -> tauri_specta::Builder<tauri::Wry> {
    tauri_specta::Builder::<tauri::Wry>::new()
        .commands(tauri_specta::collect_commands![
            commands::model::get_status,
            commands::model::watch_status,
            commands::model::use_starter_model,
            commands::model::choose_model_file,
            commands::model::plan_models,
            commands::model::use_model,
            commands::model::list_search_models,
            commands::model::use_search_model,
            commands::model::list_remotes,
            commands::model::add_remote,
            commands::model::use_remote,
            commands::model::remove_remote,
            commands::conversations::list_conversations,
            commands::conversations::get_messages,
            commands::conversations::search_messages,
            commands::conversations::rename_conversation,
            commands::conversations::delete_conversation,
            commands::chat::send_message,
            commands::chat::regenerate_reply,
            commands::chat::stop_reply,
            commands::code::choose_project,
            commands::code::reindex_project,
            commands::code::ask_code,
            commands::code::read_project_file,
            commands::code::watch_projects,
            commands::documents::watch_documents,
            commands::documents::choose_documents,
            commands::documents::list_documents,
            commands::documents::get_document,
            commands::documents::forget_document,
            commands::documents::summarize_document,
            commands::documents::document_page,
            commands::documents::ask_document,
            commands::downloads::list_downloads,
            commands::downloads::watch_downloads,
            commands::downloads::start_download,
            commands::downloads::pause_download,
            commands::downloads::resume_download,
            commands::downloads::cancel_download,
            commands::downloads::forget_download,
            commands::downloads::set_hf_token,
            commands::downloads::clear_hf_token,
            commands::downloads::set_download_endpoint,
            commands::downloads::set_offline,
            commands::downloads::import_model,
            commands::downloads::remove_model,
            commands::downloads::load_local_model,
        ])
        // Errors reject the promise with an `ApiError`, as `invoke` does.
        .error_handling(tauri_specta::ErrorHandlingMode::Throw)
        // Ids, counts and byte sizes stay far below 2^53.
        .dangerously_cast_bigints_to_number()
        // One TypeScript type per DTO: the wire's types are serialized or deserialized only.
        .disable_serde_phases()
}

/// Starts the app; returns when the window closes.
pub fn run() -> Result<(), StartupError> {
    altiplano_core::cpu::check()?;
    let data_dir = DataDir::resolve()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    tauri::async_runtime::set(runtime.handle().clone());
    let session = runtime.block_on(Session::open(data_dir))?;

    tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .manage(commands::code::ProjectListeners::default())
        // Files named on the command line (`altiplano-app report.pdf`) open as documents.
        .manage(commands::documents::DocumentListeners::with_waiting(startup_documents()))
        .on_window_event(|window, event| {
            // A folder dropped on the window opens as the code folder; files open as documents.
            if let tauri::WindowEvent::DragDrop(tauri::DragDropEvent::Drop { paths, .. }) = event {
                commands::code::open_dropped(window.app_handle(), paths);
                commands::documents::open_paths(window.app_handle(), paths.clone());
            }
        })
        .setup({
            let session = Arc::clone(&session);
            move |app| {
                app.manage(Arc::clone(&session));
                let project_session = Arc::clone(&session);
                let handle = app.handle().clone();
                tauri::async_runtime::spawn(async move {
                    if let Some(root) = project_session.startup_project().await {
                        commands::code::open_in_background(&handle, root, false);
                    }
                });
                tauri::async_runtime::spawn(async move {
                    // A remote server chosen as the chat model is connected again; one that
                    // cannot be reached leaves the local model to load, and says why.
                    if let Some(remote) = session.startup_remote().await {
                        match session.model().connect(&remote).await {
                            Ok(_) => return,
                            Err(e) => tracing::warn!("the remote model {} is not reachable: {e}", remote.name),
                        }
                    }
                    if let Some(path) = session.startup_model().await {
                        let isq = session.startup_isq(&path).await;
                        if let Err(e) = session.load_model_with(&path, isq).await {
                            tracing::warn!("start-up model {} did not load: {e}", path.display());
                        }
                    }
                });
                Ok(())
            }
        })
        .invoke_handler(wire().invoke_handler())
        .run(tauri::generate_context!())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Writes the UI's bindings (test.sh fails when the committed file differs), and checks that
    /// the window's capability grants exactly the commands the bindings call.
    #[test]
    fn bindings() {
        let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/lib/api");
        let path = api.join("bindings.ts");
        let header =
            "// Generated by tauri-specta from src-tauri (`cargo test -p altiplano-app bindings`); do not edit.";
        super::wire()
            .export(specta_typescript::Typescript::default().header(header), &path)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        let generated = std::fs::read_to_string(&path).unwrap_or_default();
        // `name: (…) => __TAURI_INVOKE<T>("command", …)`
        let called: BTreeSet<String> = generated
            .lines()
            .filter_map(|line| line.split_once("__TAURI_INVOKE<")?.1.split_once(">(\"")?.1.split_once('"'))
            .map(|(name, _)| name.replace('_', "-"))
            .collect();
        assert!(!called.is_empty(), "the bindings call the commands: {generated}");

        let capability = Path::new(env!("CARGO_MANIFEST_DIR")).join("capabilities/default.json");
        let capability: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&capability).unwrap_or_default()).unwrap_or_default();
        let granted: BTreeSet<String> = capability["permissions"]
            .as_array()
            .map(|list| list.iter().filter_map(|p| p.as_str()?.strip_prefix("allow-").map(str::to_owned)).collect())
            .unwrap_or_default();
        assert_eq!(granted, called, "capabilities/default.json grants exactly the generated commands");
        // Tauri writes a permission file per declared command and never removes one: none is
        // left over from a command that is gone.
        let permissions = Path::new(env!("CARGO_MANIFEST_DIR")).join("permissions/autogenerated");
        let declared: BTreeSet<String> = std::fs::read_dir(&permissions)
            .map(|dir| {
                dir.flatten()
                    .filter_map(|e| e.file_name().to_str()?.strip_suffix(".toml").map(|n| n.replace('_', "-")))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(declared, called, "{} holds exactly the commands' permissions", permissions.display());
        // No per-type file of the old generator is left for the UI to import by mistake.
        assert!(!api.join("bindings").exists(), "{} is stale: remove it", api.join("bindings").display());
    }
}
