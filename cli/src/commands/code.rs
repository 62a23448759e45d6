//! `altiplano code …`: index a code folder, search it, and ask about it (answers are kept in
//! the folder's conversation, as the app keeps them).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use altiplano_core::codebase::{desk, CodeIndex, IndexReport};
use altiplano_core::config::DataDir;
use altiplano_core::engine::{CancellationToken, FinishReason, LoadOptions, Sampling};
use altiplano_core::store::Store;

use crate::args::CodeCommand;

pub async fn run(data_dir: &DataDir, loader: &super::load::Loader, command: CodeCommand) -> anyhow::Result<ExitCode> {
    match command {
        CodeCommand::Index { dir, json } => {
            let index = open_index(data_dir, &dir).await?;
            let live = !json && std::io::stderr().is_terminal();
            let report = index.update(|p| {
                if live {
                    show_progress(&p);
                }
            })?;
            if live {
                eprintln!();
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&index, &report);
            }
        }
        CodeCommand::Search { dir, query, limit, json } => {
            let index = open_index(data_dir, &dir).await?;
            let live = !json && std::io::stderr().is_terminal();
            index.update(|p| {
                if live {
                    show_progress(&p);
                }
            })?;
            let hits = index.search(&query, limit)?;
            if !json {
                eprintln!("retrieval: {}", index.retrieval());
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&hits)?);
            } else if hits.is_empty() {
                println!("nothing matches; try other words");
            } else {
                for h in hits {
                    let symbol = if h.symbol.is_empty() { String::new() } else { format!("  {}", h.symbol) };
                    println!("{}:{}-{}{symbol}  ({:.2})", h.path, h.start_line, h.end_line, h.score);
                }
            }
        }
        CodeCommand::Ask { dir, question, model, greedy, json } => {
            return ask(data_dir, loader, dir, question, model, greedy, json).await
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The folder's index with the search model chosen for code (the store holds the choice).
async fn open_index(data_dir: &DataDir, dir: &std::path::Path) -> anyhow::Result<CodeIndex> {
    let store = Store::open(&data_dir.database_path()).await?;
    let model = super::load::code_search_model(&store, altiplano_core::catalog::Purpose::Code).await;
    store.close().await;
    Ok(CodeIndex::open_with_model(data_dir.path(), dir, model)?)
}

async fn ask(
    data_dir: &DataDir,
    loader: &super::load::Loader,
    dir: std::path::PathBuf,
    question: String,
    model: Option<std::path::PathBuf>,
    greedy: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let index = open_index(data_dir, &dir).await?;
    index.update(|_| {})?;
    let store = Store::open(&data_dir.database_path()).await?;
    let engine = loader
        .chat_engine(&store, model.as_deref(), None, |options| LoadOptions { max_parallel_replies: 1, ..options })
        .await?;
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let sampling = if greedy { Sampling::greedy() } else { Sampling::default() };
    let mut stdout = std::io::stdout().lock();
    // The app's function: the question and answer are kept in the folder's conversation.
    let asked = desk::ask(&store, &index, &engine, &question, sampling, cancel, |text| {
        if !json {
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
        }
    })
    .await;
    store.close().await;
    let asked = asked?;
    let result = &asked.answer;
    if json {
        let value = serde_json::json!({
            "answer": result.answer.text,
            "citations": result.answer.citations,
            "removed_citations": result.answer.removed,
            "sentences": result.answer.sentences,
            "coverage": result.answer.coverage(),
            "excerpts": result.context.excerpts.iter().map(|e| serde_json::json!({
                "path": e.path, "start_line": e.start_line, "end_line": e.end_line, "symbol": e.symbol,
            })).collect::<Vec<_>>(),
            "repo_map_included": !result.context.repo_map.is_empty(),
            "prompt_tokens": result.stats.prompt_tokens,
            "completion_tokens": result.stats.completion_tokens,
            "stopped": result.reason == FinishReason::Cancelled,
            "conversation_id": asked.conversation_id,
        });
        writeln!(stdout, "{value}")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(stdout)?;
    if !result.answer.removed.is_empty() {
        writeln!(
            stdout,
            "\nnote: {} citation(s) named code the model was not shown and are not trustworthy: {}",
            result.answer.removed.len(),
            result.answer.removed.join(", ")
        )?;
    }
    let unsourced: Vec<&str> =
        result.answer.sentences.iter().filter(|s| s.sources.is_empty()).map(|s| s.text.as_str()).collect();
    if !result.answer.sentences.is_empty() {
        writeln!(
            stdout,
            "\nchecked: {} of {} sentence(s) are supported by the code shown",
            result.answer.sentences.len() - unsourced.len(),
            result.answer.sentences.len()
        )?;
        for sentence in unsourced {
            writeln!(stdout, "  no source: {sentence}")?;
        }
    }
    writeln!(stdout, "\nSources shown to the model:")?;
    for e in &result.context.excerpts {
        let symbol = if e.symbol.is_empty() { String::new() } else { format!("  {}", e.symbol) };
        writeln!(stdout, "  {}:{}-{}{symbol}", e.path, e.start_line, e.end_line)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(index: &CodeIndex, r: &IndexReport) {
    let secs = r.elapsed_ms as f64 / 1000.0;
    println!(
        "{}: {} files, {} indexed ({} chunks, {:.1} MB), {} unchanged, {} removed, {} skipped, in {secs:.2} s",
        index.root().display(),
        r.files_seen,
        r.files_indexed,
        r.chunks_indexed,
        r.bytes_indexed as f64 / 1e6,
        r.files_unchanged,
        r.files_removed,
        r.skipped_total()
    );
    for (reason, count) in &r.skipped {
        println!("  skipped {count} ({reason:?})");
    }
    if r.chunks_embedded > 0 {
        let rate = r.chunks_embedded as f64 / (r.embed_ms.max(1) as f64 / 1000.0);
        println!("  embedded {} chunks in {:.1} s ({rate:.0} chunks/s)", r.chunks_embedded, r.embed_ms as f64 / 1000.0);
    }
    println!("retrieval: {}", index.retrieval());
}

/// One line of indexing progress on the terminal: files, then the embedding's rate and time left.
fn show_progress(p: &altiplano_core::codebase::IndexProgress) {
    if p.chunks_to_embed > 0 {
        let left = p.embed_seconds_left().map(|s| format!(", about {s:.0} s left")).unwrap_or_default();
        eprint!(
            "\rembedding: {} of {} chunks ({:.0} chunks/s{left})        ",
            p.chunks_embedded, p.chunks_to_embed, p.chunks_per_second
        );
    } else {
        eprint!("\rindexing: {} of {} files ({:.0} files/s)   ", p.files_done, p.files_total, p.files_per_second);
    }
}
