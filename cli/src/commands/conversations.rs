//! `altiplano conversations …`: the saved history.

use std::io::IsTerminal;
use std::process::ExitCode;

use altiplano_core::store::{MessageStatus, Role, Store, MATCH_END, MATCH_START};

use crate::args::ConversationsCommand;

pub async fn run(store: &Store, command: ConversationsCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConversationsCommand::List { json } => {
            let conversations = store.list_conversations().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&conversations)?);
            } else if conversations.is_empty() {
                println!("no conversations yet");
            } else {
                for c in conversations {
                    println!("{:>6}  {}", c.id, c.title);
                }
            }
        }
        ConversationsCommand::Show { id, json } => {
            let conversation = store.conversation(id).await?;
            let messages = store.messages(id).await?;
            if json {
                let value = serde_json::json!({ "conversation": conversation, "messages": messages });
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!("# {}\n", conversation.title);
                for m in messages {
                    let who = match m.role {
                        Role::User => "you",
                        Role::Assistant => "assistant",
                        Role::System => "system",
                    };
                    let note = match m.status {
                        MessageStatus::Complete => String::new(),
                        MessageStatus::Streaming => " (still being written)".into(),
                        MessageStatus::Stopped => " (stopped)".into(),
                        MessageStatus::Interrupted => " (interrupted)".into(),
                        MessageStatus::Failed => format!(" (failed: {})", m.error.unwrap_or_default()),
                    };
                    println!("[{who}]{note}\n{}\n", m.content);
                }
            }
        }
        ConversationsCommand::Search { text, limit, json } => {
            let hits = store.search(&text, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&hits)?);
            } else if hits.is_empty() {
                println!("no messages match {text:?}");
            } else {
                // Matches in bold on a terminal; plain text when piped.
                let (bold, plain) = if std::io::stdout().is_terminal() { ("\x1b[1m", "\x1b[0m") } else { ("", "") };
                for hit in hits {
                    let snippet = hit.snippet.replace(MATCH_START, bold).replace(MATCH_END, plain).replace('\n', " ");
                    println!("{:>6}  {}\n        {snippet}", hit.conversation_id, hit.conversation_title);
                }
            }
        }
        ConversationsCommand::Rename { id, title } => {
            let c = store.rename_conversation(id, &title).await?;
            println!("{:>6}  {}", c.id, c.title);
        }
        ConversationsCommand::Delete { id } => {
            store.delete_conversation(id).await?;
            println!("deleted conversation {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
