//! `altiplano remote`: model servers reached over an OpenAI-compatible API.

use std::process::ExitCode;

use altiplano_core::engine::Engine;
use altiplano_core::remotes::{self, Remote};
use altiplano_core::store::Store;
use serde_json::json;

use crate::args::RemoteCommand;

pub async fn run(store: &Store, command: RemoteCommand) -> anyhow::Result<ExitCode> {
    match command {
        RemoteCommand::Add { name, url, api_key, model, context, use_now } => {
            let remote = Remote { name, url, model, context_tokens: context };
            let (remote, engine) = remotes::add(store, remote, api_key.as_deref()).await?;
            describe(&remote, &engine);
            if use_now {
                remotes::use_remote(store, &remote.name, None).await?;
                println!("{} is now the chat model (`altiplano models use` chooses a local one again)", remote.name);
            }
        }
        RemoteCommand::List { json } => {
            let all = remotes::list(store).await?;
            let in_use = remotes::in_use(store).await?;
            if json {
                let rows: Vec<_> = all
                    .iter()
                    .map(|r| {
                        json!({
                            "name": r.name,
                            "url": r.url,
                            "model": r.model,
                            "context_tokens": r.context_tokens,
                            "in_use": in_use.as_deref() == Some(r.name.as_str()),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if all.is_empty() {
                println!("No remote servers; `altiplano remote add NAME URL` adds one.");
            } else {
                for r in &all {
                    let mark = if in_use.as_deref() == Some(r.name.as_str()) { "*" } else { " " };
                    let model = r.model.as_deref().unwrap_or("(its first model)");
                    println!("{mark} {:<16} {:<40} {model}", r.name, r.url);
                }
                if in_use.is_some() {
                    println!("* the chat model");
                }
            }
        }
        RemoteCommand::Rm { name } => {
            remotes::remove(store, &name).await?;
            println!("removed {name}");
        }
        RemoteCommand::Use { name, model } => {
            let wanted = remotes::with_model(store, &name, model.clone()).await?;
            let engine = remotes::connect(&wanted).await?;
            let remote = remotes::use_remote(store, &name, model).await?;
            describe(&remote, &engine);
            println!("{name} is now the chat model (`altiplano models use` chooses a local one again)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What connecting found: the model, its context and where that came from, how tokens are
/// counted, and what else the server has.
fn describe(remote: &Remote, engine: &Engine) {
    let info = engine.info();
    println!("{}: {} at {}", remote.name, info.name, remote.url);
    if let Some(found) = engine.remote_info() {
        let source = match found.context_source {
            altiplano_core::engine::remote::ContextSource::Server => "as the server says",
            altiplano_core::engine::remote::ContextSource::User => "as given",
        };
        println!("  context: {} tokens, {source}", info.context_length);
        println!("  tokens: {}", found.token_counting.describe());
        if found.models.len() > 1 {
            println!(
                "  the server also serves: {}",
                found.models.iter().filter(|m| **m != info.name).cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
}
