// Hide the console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> std::process::ExitCode {
    // A child started to parse one document in isolation does only that.
    if let Some(code) = altiplano_core::documents::run_child_if_requested() {
        return code;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ALTIPLANO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,mistralrs_core=error")),
        )
        .init();
    match altiplano_app::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("altiplano: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
