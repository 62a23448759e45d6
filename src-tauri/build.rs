// Declaring the app's commands makes Tauri generate one permission per command
// (`allow-<name>`); capabilities/default.json grants the window exactly the ones the UI calls.
const COMMANDS: &[&str] = &[
    "get_status",
    "watch_status",
    "use_starter_model",
    "choose_model_file",
    "plan_models",
    "use_model",
    "list_conversations",
    "get_messages",
    "search_messages",
    "rename_conversation",
    "delete_conversation",
    "send_message",
    "regenerate_reply",
    "stop_reply",
    "choose_project",
    "reindex_project",
    "ask_code",
    "read_project_file",
    "current_project",
    "watch_projects",
    "watch_documents",
    "choose_documents",
    "list_documents",
    "get_document",
    "forget_document",
    "summarize_document",
    "document_page",
    "ask_document",
    "list_downloads",
    "watch_downloads",
    "start_download",
    "pause_download",
    "resume_download",
    "cancel_download",
    "forget_download",
    "set_hf_token",
    "clear_hf_token",
    "set_download_endpoint",
    "import_model",
    "remove_model",
    "load_local_model",
];

fn main() {
    // Built, llama.cpp's libraries sit beside the binary (`$ORIGIN`, set by llama-cpp-sys-2);
    // installed from a package (scripts/package.sh), in `/usr/lib/altiplano`.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,$ORIGIN/../lib/altiplano");
    }
    tauri_build::try_build(
        tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri build script");
}
