//! `altiplano serve`: the chosen model over an OpenAI-compatible HTTP API until Ctrl+C.

use std::io::Write;
use std::process::ExitCode;

use altiplano_core::store::Store;
use altiplano_server::{ServeOptions, Server};

use super::load;
use crate::args::ServeArgs;

pub async fn run(store: &Store, loader: &load::Loader, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let options = ServeOptions {
        host: args.host,
        port: args.port,
        api_key: args.api_key,
        queue: usize::from(args.queue),
        cors: args.cors,
        keep: args.keep_conversations.then(|| store.clone()),
    };
    // A missing key or a bad origin is said before the model loads, not after.
    options.check()?;
    let (model, load_options) = loader.chosen(store, args.model.as_deref(), None).await?;
    let engine = loader.open(&model, load_options).await?;
    let server = Server::bind(engine, options).await?;
    let addr = server.local_addr();
    println!("serving {} at http://{addr}/v1 (Ctrl+C stops)", server.model_id());
    if server.keeps_conversations() {
        println!("requests are kept as conversations (altiplano conversations list)");
    }
    std::io::stdout().flush()?;
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    eprintln!("altiplano: server stopped");
    Ok(ExitCode::SUCCESS)
}
