//! `altiplano documents ask FILE "question"`: a follow-up on a document, answered from its pages
//! by the core function the app's document view uses, and saved in the document's conversation.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use altiplano_core::documents::{self, desk};
use altiplano_core::engine::{CancellationToken, FinishReason, LoadOptions};
use altiplano_core::store::Store;
use serde_json::json;

use super::load;
use crate::args::DocumentsCommand;

pub async fn run(store: &Store, loader: &load::Loader, command: DocumentsCommand) -> anyhow::Result<ExitCode> {
    let DocumentsCommand::Ask { file, question, model, context, json } = command;
    let (doc, _) = documents::open(store, None, &file).await?;
    let engine = loader
        .chat_engine(store, model.as_deref(), None, |options| LoadOptions {
            max_parallel_replies: 1,
            context_tokens: context,
            ..options
        })
        .await?;

    // Ctrl-C stops the answer; what was written so far is kept and saved as stopped.
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let bar = load::embedding_bar();
    let live = !json && std::io::stderr().is_terminal();
    let search = desk::Search {
        embedder: load::search_model(store, altiplano_core::catalog::Purpose::Documents).await,
        on_embed: |done: u64, total: u64| {
            if live && bar.is_hidden() {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            bar.set_length(total);
            bar.set_position(done);
        },
        // One question per run: nothing to keep the index for.
        indexes: None,
    };
    let mut stdout = std::io::stdout().lock();
    let asked = desk::ask(store, &engine, doc.id, &question, search, context, cancel, |text| {
        if !json {
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
        }
    })
    .await;
    bar.finish_and_clear();
    let asked = asked?;
    drop(stdout);
    let stopped = asked.reason == FinishReason::Cancelled;
    let answer = &asked.answer;
    let shown: Vec<_> = answer
        .sources
        .iter()
        .map(|s| json!({ "first_page": s.first_page, "last_page": s.last_page, "summary": s.summary }))
        .collect();
    if json {
        let out = json!({
            "answer": answer.text,
            "citations": answer.citations,
            "removed_citations": answer.removed_citations,
            "sentences": answer.sentences,
            "coverage": answer.coverage,
            "pages_shown": shown,
            "retrieval": answer.retrieval,
            "conversation_id": asked.conversation_id,
            "stopped": stopped,
            "stats": {
                "prompt_tokens": answer.stats.prompt_tokens,
                "completion_tokens": answer.stats.completion_tokens,
                "time_to_first_token_ms": answer.stats.time_to_first_token.map(|d| d.as_millis() as u64),
                "decode_tokens_per_second": answer.stats.decode_tokens_per_second,
            },
        });
        println!("{out}");
    } else {
        println!();
        let pages: Vec<String> = answer
            .sources
            .iter()
            .map(|s| match (s.summary, s.first_page == s.last_page) {
                (false, _) | (true, true) => format!("p. {}", s.first_page),
                (true, false) => format!("summary of pp. {}-{}", s.first_page, s.last_page),
            })
            .collect();
        eprintln!("shown to the model: {}", if pages.is_empty() { "nothing".into() } else { pages.join(", ") });
        eprintln!("retrieval: {}", answer.retrieval);
        if answer.removed_citations > 0 {
            eprintln!("{} citation(s) of pages the model was not shown were removed", answer.removed_citations);
        }
        let unsourced = answer.sentences.iter().filter(|s| !s.sourced).count();
        if unsourced > 0 {
            eprintln!(
                "{unsourced} of {} sentences are backed by no page shown (marked {})",
                answer.sentences.len(),
                altiplano_core::sourcing::UNSUPPORTED
            );
        }
        if stopped {
            eprintln!("stopped; what was written is saved");
        }
        eprintln!(
            "saved in conversation {} (`altiplano conversations show {}`)",
            asked.conversation_id, asked.conversation_id
        );
    }
    Ok(if stopped { ExitCode::from(130) } else { ExitCode::SUCCESS })
}
