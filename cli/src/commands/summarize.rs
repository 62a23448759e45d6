//! `altiplano summarize FILE...`: a faithful summary of each document with page citations.
//! Summaries are saved (keyed by the file's bytes), so a file summarized before prints at once;
//! Ctrl+C stops, keeping finished parts for the next run.

use std::process::ExitCode;
use std::time::Duration;

use altiplano_core::documents::{self, SummaryOptions, SummaryProgress};
use altiplano_core::engine::{CancellationToken, Engine, LoadOptions};
use altiplano_core::store::Store;
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::SummarizeArgs;

pub async fn run(store: &Store, loader: &super::load::Loader, args: SummarizeArgs) -> anyhow::Result<ExitCode> {
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let options =
        SummaryOptions { context_tokens: args.context, chunk_tokens: args.chunk_tokens, ..Default::default() };
    let mut engine: Option<Engine> = None;
    // Loaded with the engine, when a summary is to be written: its pages get vectors first.
    let mut embedder = None;
    let mut failed = false;
    for file in &args.files {
        let (doc, cached) = match documents::open(store, None, file).await {
            Ok(opened) => opened,
            Err(e) => {
                eprintln!("altiplano: {e}");
                failed = true;
                continue;
            }
        };
        let summary = match cached.filter(|_| !args.fresh) {
            Some(summary) => summary,
            None => {
                if engine.is_none() {
                    engine = Some(
                        loader
                            .chat_engine(store, args.model.as_deref(), None, |options| LoadOptions {
                                max_parallel_replies: 1,
                                context_tokens: args.context,
                                ..options
                            })
                            .await?,
                    );
                }
                let engine = engine.as_ref().expect("loaded above");
                if embedder.is_none() {
                    embedder =
                        Some(super::load::search_model(store, altiplano_core::catalog::Purpose::Documents).await);
                }
                let bar = progress_bar(&doc.title);
                let search = embedder.clone().flatten();
                let result = documents::desk::summarize(
                    store,
                    engine,
                    doc.id,
                    args.fresh,
                    options,
                    search,
                    cancel.clone(),
                    |p| show(&bar, &p),
                )
                .await;
                bar.finish_and_clear();
                match result {
                    Ok(summary) => summary,
                    Err(e) => {
                        eprintln!("altiplano: {}: {e}", doc.path);
                        failed = true;
                        if cancel.is_cancelled() {
                            break;
                        }
                        continue;
                    }
                }
            }
        };
        if args.json {
            let out = serde_json::json!({
                "file": file.display().to_string(),
                "page_count": doc.page_count,
                "summary": summary.text,
                "citations": summary.citations,
                "sentences": summary.sentences,
                "coverage": summary.coverage,
                "warnings": doc.warnings,
            });
            println!("{}", serde_json::to_string(&out)?);
        } else {
            println!("# {} ({} pages)\n\n{}\n", doc.title, doc.page_count, summary.text);
            let unsourced = summary.sentences.iter().filter(|s| !s.sourced).count();
            if !summary.sentences.is_empty() {
                println!(
                    "checked: {} of {} sentence(s) cite a page that supports them{}\n",
                    summary.sentences.len() - unsourced,
                    summary.sentences.len(),
                    if unsourced > 0 { "; the others are marked [no source]" } else { "" }
                );
            }
            if summary.removed_citations > 0 {
                println!(
                    "note: {} citation(s) named pages outside the part being summarized and were removed\n",
                    summary.removed_citations
                );
            }
            for warning in &doc.warnings {
                eprintln!("warning: {warning}");
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn progress_bar(title: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix:24!} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(title.to_owned());
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

fn show(bar: &ProgressBar, progress: &SummaryProgress) {
    match progress {
        SummaryProgress::Embedding { done, total } => {
            bar.set_length(*total);
            bar.set_position(*done);
            bar.set_message("embedding pages for search");
        }
        SummaryProgress::Counting { done, pages } => {
            bar.set_length(u64::from(*pages));
            bar.set_position(u64::from(*done));
            bar.set_message("counting tokens");
        }
        SummaryProgress::Writing { level, item, items, step, steps, first_page, last_page, eta_ms } => {
            bar.set_length(u64::from(*steps));
            bar.set_position(u64::from(step - 1));
            let what = if *level == 0 && *items > 1 {
                "part"
            } else if *items == 1 {
                "final summary"
            } else {
                "merging"
            };
            let eta = eta_ms.map(|ms| format!(", about {}s left", ms / 1000)).unwrap_or_default();
            bar.set_message(format!("{what} {item}/{items} (pp. {first_page}–{last_page}){eta}"));
        }
        SummaryProgress::Node { .. } => bar.inc(1),
    }
}
