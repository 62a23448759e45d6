//! One module per subcommand.

mod chat;
mod code;
mod conversations;
mod documents;
mod eval;
mod extract;
mod hardware;
mod load;
mod models;
mod plan;
mod remote;
mod serve;
mod summarize;

use std::process::ExitCode;

use altiplano_core::config::DataDir;
use altiplano_core::store::Store;

use crate::args::{Cli, Command};

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let data_dir = match cli.data_dir {
        Some(dir) => DataDir::at(dir)?,
        None => DataDir::resolve()?,
    };
    let loader = load::Loader::new(&data_dir, cli.engine);
    // Looking at hardware needs no database.
    let command = match cli.command {
        Command::Hardware { json } => return hardware::run(&data_dir, json),
        Command::Code(command) => return code::run(&data_dir, &loader, command).await,
        Command::Extract { file, json } => return extract::run(&file, json).await,
        Command::Eval(command) => return eval::run(&loader, command).await,
        other => other,
    };
    let store = Store::open(&data_dir.database_path()).await?;
    let result = match command {
        Command::Chat(args) => chat::run(&store, &loader, args).await,
        Command::Plan(args) => plan::run(&data_dir, &store, args).await,
        Command::Conversations(command) => conversations::run(&store, command).await,
        Command::Models(command) => models::run(&store, &data_dir, &loader, command).await,
        Command::Summarize(args) => summarize::run(&store, &loader, args).await,
        Command::Documents(command) => documents::run(&store, &loader, command).await,
        Command::Serve(args) => serve::run(&store, &loader, args).await,
        Command::Remote(command) => remote::run(&store, command).await,
        Command::Hardware { .. } | Command::Code(_) | Command::Extract { .. } | Command::Eval(_) => {
            unreachable!("handled above, without opening the store")
        }
    };
    store.close().await;
    result
}
