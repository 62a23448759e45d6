//! `altiplano`: the command-line face of `altiplano-core`.
//!
//! Each subcommand lives in its own file under `commands/`; the argument types are in
//! `args.rs`. Failures print one line, `altiplano: <what went wrong>`, and exit non-zero.

mod args;
mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A child started to parse one document in isolation does only that.
    if let Some(code) = altiplano_core::documents::run_child_if_requested() {
        return code;
    }
    // `altiplano … | head` closes the pipe early; printing then fails. That is the reader's
    // choice, not an error: stop quietly instead of showing a panic.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default_hook(info);
    }));
    let cli = args::Cli::parse();
    if cli.offline {
        // Still one thread: nothing reads the environment concurrently. The core (and any
        // child) reads offline mode from this variable.
        std::env::set_var(altiplano_core::download::queue::OFFLINE_ENV, "1");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ALTIPLANO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,mistralrs_core=error")),
        )
        .with_writer(std::io::stderr)
        .init();

    if let Err(e) = altiplano_core::cpu::check() {
        eprintln!("altiplano: {e}");
        return ExitCode::FAILURE;
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("altiplano: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("altiplano: {e:#}");
            ExitCode::FAILURE
        }
    }
}
