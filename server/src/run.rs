//! One served reply, whatever wire format asked for it: a place in the queue, the engine's
//! stream with stop strings applied, the client's departure noticed at once, the request
//! logged and (when the server keeps them) saved as a conversation.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use altiplano_core::chat::{keep_exchange, ExchangeEnd};
use altiplano_core::engine::{
    CancellationToken, EngineError, FinishReason, GenerationEvent, GenerationStats, PromptMessage, Sampling,
};
use axum::http::StatusCode;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use crate::stop::StopScan;
use crate::wire::ApiError;
use crate::Served;

/// What a reply is asked for.
pub(crate) struct Ask {
    pub messages: Vec<PromptMessage>,
    pub sampling: Sampling,
    pub stops: Vec<String>,
}

/// Why a reply ended, in the terms both wire formats use.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Finish {
    /// The model finished (or the engine stopped a reply that kept repeating itself).
    Stop,
    /// `max_tokens` or the context's end.
    Length,
    /// A stop string was met (this one).
    StopSequence(String),
}

/// One step of a served reply.
pub(crate) enum Piece {
    Text(String),
    Ended { finish: Finish, stats: GenerationStats },
    Failed(ApiError),
}

/// A place in the queue for one request, or a 429 saying when to come back.
pub(crate) fn admit(served: &Served) -> Result<OwnedSemaphorePermit, ApiError> {
    Arc::clone(&served.pending).try_acquire_owned().map_err(|_| {
        let mean_ms = served.mean_reply_ms.load(Ordering::Relaxed);
        // A place frees when the reply running now ends: on average within one reply's time.
        let wait = mean_ms.div_ceil(1000).max(1);
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "The server is busy: {} requests are already running or waiting (serve --queue sets how many). Try again in {wait} s.",
                served.queue
            ),
            "requests",
            None,
            Some("rate_limit_exceeded"),
        )
        .retry_after(wait)
    })
}

/// Starts the reply; its pieces come on the receiver. Dropping the receiver (the client went
/// away, or its handler was dropped) stops the generation.
pub(crate) fn start(
    served: Arc<Served>,
    ask: Ask,
    place: OwnedSemaphorePermit,
    id: String,
    endpoint: &'static str,
) -> mpsc::Receiver<Piece> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let _place = place;
        let started = Instant::now();
        let cancel = CancellationToken::new();
        let kept_messages = served.keep.is_some().then(|| ask.messages.clone());
        let mut events = served.engine.generate(ask.messages, ask.sampling, cancel.clone());
        let mut stops = StopScan::new(ask.stops);
        let mut text = String::new();
        let mut end = (FinishReason::Stop, GenerationStats::default());
        let mut failed = None;
        let mut left = false;
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                () = tx.closed() => {
                    left = true;
                    break;
                }
            };
            let Some(event) = event else { break };
            match event {
                Ok(GenerationEvent::Text(piece)) => {
                    let out = stops.push(&piece);
                    if stops.stopped() {
                        cancel.cancel();
                    }
                    if !out.is_empty() {
                        text.push_str(&out);
                        if tx.send(Piece::Text(out)).await.is_err() {
                            left = true;
                            break;
                        }
                    }
                }
                Ok(GenerationEvent::Finished { reason, stats }) => end = (reason, stats),
                Err(e) => failed = Some(e),
            }
        }
        let (reason, stats) = end;
        let kept_end = if left {
            cancel.cancel();
            tracing::info!(%id, endpoint, "the client went away; the reply is stopped");
            ExchangeEnd::Stopped
        } else {
            let rest = stops.finish();
            if !rest.is_empty() {
                text.push_str(&rest);
                let _ = tx.send(Piece::Text(rest)).await;
            }
            if let Some(e) = failed {
                let _ = tx.send(Piece::Failed(engine_error(e))).await;
                ExchangeEnd::Failed
            } else {
                let finish = match (stops.matched(), reason) {
                    (Some(s), _) => Finish::StopSequence(s.to_owned()),
                    (None, FinishReason::Length) => Finish::Length,
                    _ => Finish::Stop,
                };
                let seconds = started.elapsed().as_secs_f64();
                let ms = (seconds * 1000.0) as u64;
                let mean = served.mean_reply_ms.load(Ordering::Relaxed);
                served.mean_reply_ms.store(if mean == 0 { ms } else { (mean * 3 + ms) / 4 }, Ordering::Relaxed);
                tracing::info!(
                    %id,
                    endpoint,
                    prompt_tokens = stats.prompt_tokens,
                    completion_tokens = stats.completion_tokens,
                    tokens_per_second = stats.decode_tokens_per_second.unwrap_or(0.0),
                    seconds,
                    finish = ?finish,
                    "served a reply"
                );
                let _ = tx.send(Piece::Ended { finish, stats }).await;
                ExchangeEnd::Complete
            }
        };
        if let (Some(store), Some(messages)) = (&served.keep, kept_messages) {
            if let Err(e) = keep_exchange(store, "API", &messages, &text, &served.model_id, kept_end, &stats).await {
                tracing::warn!(%id, "could not keep the request as a conversation: {e}");
            }
        }
    });
    rx
}

/// The engine's failure as the client sees it: a too-long prompt is the client's to fix; the
/// rest is the server's, logged in full.
pub(crate) fn engine_error(e: EngineError) -> ApiError {
    match e {
        EngineError::PromptTooLong { .. } => ApiError::new(
            StatusCode::BAD_REQUEST,
            e.to_string(),
            "invalid_request_error",
            Some("messages"),
            Some("context_length_exceeded"),
        ),
        other => {
            tracing::error!("a served reply failed: {other}");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("The model failed: {other}"),
                "server_error",
                None,
                None,
            )
        }
    }
}
