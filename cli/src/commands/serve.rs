//! `altiplano serve`: the chosen model over an OpenAI-compatible HTTP API until Ctrl+C.

use std::io::Write;
use std::process::ExitCode;

use altiplano_core::engine::LoadOptions;
use altiplano_core::store::Store;
use altiplano_server::{ServeOptions, Server};

use super::load;
use crate::args::ServeArgs;

pub async fn run(store: &Store, loader: &load::Loader, args: ServeArgs) -> anyhow::Result<ExitCode> {
    // A key is needed off loopback: said before the model loads, not after.
    if !args.host.is_loopback() && args.api_key.as_deref().is_none_or(|k| k.trim().is_empty()) {
        return Err(altiplano_server::ServeError::KeyNeeded { host: args.host }.into());
    }
    let (model, options) = loader.chosen(store, args.model.as_deref(), None).await?;
    let engine = loader.open(&model, LoadOptions { ..options }).await?;
    let server = Server::bind(engine, ServeOptions { host: args.host, port: args.port, api_key: args.api_key }).await?;
    let addr = server.local_addr();
    println!("serving {} at http://{addr}/v1 (Ctrl+C stops)", server.model_id());
    std::io::stdout().flush()?;
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    eprintln!("altiplano: server stopped");
    Ok(ExitCode::SUCCESS)
}
