//! `altiplano chat`: one turn, streamed to stdout.

use std::io::Write;
use std::process::ExitCode;

use altiplano_core::chat::{self, ChatEvent, ChatOptions, Turn};
use altiplano_core::engine::{CancellationToken, FinishReason, LoadOptions, Sampling};
use altiplano_core::store::Store;
use serde_json::json;

use super::load;
use crate::args::ChatArgs;

pub async fn run(store: &Store, loader: &load::Loader, args: ChatArgs) -> anyhow::Result<ExitCode> {
    let engine = loader
        .chat_engine(store, args.model.as_deref(), args.isq.map(Into::into), |options| LoadOptions {
            max_parallel_replies: 1,
            ..options
        })
        .await?;
    let sampling = if args.greedy {
        Sampling { max_tokens: args.max_tokens, ..Sampling::greedy() }
    } else {
        Sampling {
            temperature: args.temperature,
            top_p: args.top_p,
            max_tokens: args.max_tokens,
            seed: args.seed,
            ..Sampling::default()
        }
    };
    let options = ChatOptions { sampling, system_prompt: args.system.clone() };
    let turn = Turn::new(args.conversation, args.prompt.clone(), options);

    // Ctrl-C stops the reply; what was written so far is kept and saved as stopped.
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });

    let streaming = !args.json;
    let mut stdout = std::io::stdout().lock();
    let outcome = chat::run(store, &engine, turn, cancel, |event| match event {
        ChatEvent::Started { conversation, omitted_messages, .. } => {
            if omitted_messages > 0 {
                eprintln!(
                    "note: the {omitted_messages} oldest messages of conversation {} no longer fit the \
                     model's {}-token context and were left out of this prompt",
                    conversation.id,
                    engine.usable_context()
                );
            }
        }
        ChatEvent::Text(text) if streaming => {
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
        }
        ChatEvent::Text(_) => {}
    })
    .await?;

    let stats = outcome.reply.stats;
    if args.json {
        let value = json!({
            "conversation_id": outcome.conversation_id,
            "message_id": outcome.reply.id,
            "reply": outcome.reply.content,
            "finish_reason": outcome.reason,
            "omitted_messages": outcome.omitted_messages,
            "model": engine.info().name,
            "prompt_tokens": stats.prompt_tokens,
            "completion_tokens": stats.completion_tokens,
            "time_to_first_token_ms": stats.time_to_first_token_ms,
            "decode_tokens_per_second": stats.decode_tokens_per_second,
        });
        writeln!(stdout, "{value}")?;
    } else {
        writeln!(stdout)?;
        let speed = stats.decode_tokens_per_second.map(|t| format!("{t:.1} tok/s")).unwrap_or_else(|| "–".into());
        let first = stats
            .time_to_first_token_ms
            .map(|ms| format!("{:.2} s to first token", ms as f64 / 1000.0))
            .unwrap_or_else(|| "no tokens".into());
        eprintln!(
            "[conversation {} · {} tokens · {speed} · {first}{}]",
            outcome.conversation_id,
            stats.completion_tokens.unwrap_or(0),
            match outcome.reason {
                FinishReason::Cancelled => " · stopped",
                FinishReason::Repeating => " · stopped: the reply kept repeating itself",
                _ => "",
            }
        );
    }
    Ok(if outcome.reason == FinishReason::Cancelled { ExitCode::from(130) } else { ExitCode::SUCCESS })
}
