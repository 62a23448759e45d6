//! `POST /v1/messages`: Anthropic's Messages API, whole or streamed, so tools written for it
//! can use the local model. Text content only; `system` as a string or text blocks;
//! `stop_sequences`, `temperature` (0 to 1; 0 is greedy), `top_p`, `top_k` (1 is greedy; other
//! values are not applied: the engines sample by temperature and top-p). Errors are Anthropic's
//! error objects, with the statuses its API uses.

use std::sync::Arc;

use altiplano_core::engine::{PromptMessage, Role};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

use crate::openai::sampling;
use crate::run::{self, Ask, Finish, Piece};
use crate::wire::{AnthropicError, ApiError};
use crate::{authorize, body_bytes, fits, Served};

#[derive(Debug, Deserialize)]
struct MessagesRequest {
    model: String,
    max_tokens: u32,
    messages: Vec<Message>,
    #[serde(default)]
    system: Option<Text>,
    #[serde(default)]
    stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    top_k: Option<u32>,
    #[serde(default)]
    tools: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    content: Text,
}

/// Text: a string, or content blocks.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Text {
    Plain(String),
    Blocks(Vec<Block>),
}

#[derive(Debug, Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

impl Text {
    fn into_string(self, at: &str) -> Result<String, ApiError> {
        match self {
            Text::Plain(s) => Ok(s),
            Text::Blocks(blocks) => {
                let mut text = String::new();
                for block in blocks {
                    match (block.kind.as_str(), block.text) {
                        ("text", Some(t)) => text.push_str(&t),
                        (kind, _) => {
                            return Err(ApiError::invalid(
                                format!("{at}: a {kind:?} block; this server takes text blocks only."),
                                None,
                            ))
                        }
                    }
                }
                Ok(text)
            }
        }
    }
}

fn check(served: &Served, request: MessagesRequest) -> Result<(Ask, bool), ApiError> {
    served.check_model(&request.model)?;
    let invalid = |message: String| ApiError::invalid(message, None);
    if request.max_tokens == 0 {
        return Err(invalid("max_tokens: must be at least 1.".into()));
    }
    if request.tools.as_ref().is_some_and(|t| t.as_array().is_none_or(|a| !a.is_empty())) {
        return Err(invalid("tools: tools are not supported by this server yet.".into()));
    }
    if request.messages.is_empty() {
        return Err(invalid("messages: at least one message is required.".into()));
    }
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = request.system {
        let system = system.into_string("system")?;
        if !system.is_empty() {
            messages.push(PromptMessage::new(Role::System, system));
        }
    }
    let last = request.messages.len() - 1;
    for (i, m) in request.messages.into_iter().enumerate() {
        let role = match m.role.as_str() {
            "user" => Role::User,
            "assistant" if i < last => Role::Assistant,
            "assistant" => {
                return Err(invalid(format!(
                    "messages.{i}: a final assistant message (a prefill for the reply to continue) is not supported by this server; end with a user message."
                )))
            }
            other => return Err(invalid(format!("messages.{i}.role: {other:?} is not one of user, assistant."))),
        };
        messages.push(PromptMessage::new(role, m.content.into_string(&format!("messages.{i}.content"))?));
    }
    if let Some(t) = request.temperature {
        if !(0.0..=1.0).contains(&t) {
            return Err(invalid(format!("temperature: {t} is out of range: 0 to 1.")));
        }
    }
    if let Some(p) = request.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(invalid(format!("top_p: {p} is out of range: above 0, at most 1.")));
        }
    }
    let stops = request.stop_sequences.unwrap_or_default();
    if stops.iter().any(String::is_empty) {
        return Err(invalid("stop_sequences: a stop sequence cannot be empty.".into()));
    }
    let greedy = request.temperature == Some(0.0) || request.top_k == Some(1);
    let temperature = if greedy { Some(0.0) } else { request.temperature };
    let sampling = sampling(temperature, request.top_p, Some(request.max_tokens), None);
    Ok((Ask { messages, sampling, stops }, request.stream.unwrap_or(false)))
}

pub(crate) async fn messages(
    State(served): State<Arc<Served>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AnthropicError> {
    authorize(&served, &headers)?;
    let body = body_bytes(body)?;
    let request: MessagesRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("The request body is not a valid Messages request: {e}"), None))?;
    let (ask, stream) = check(&served, request)?;
    let input_tokens = fits(&served, &ask.messages).await?;
    let place = run::admit(&served)?;
    let id = served.next_id("msg_");
    let pieces = run::start(Arc::clone(&served), ask, place, id.clone(), "messages");
    let reply = Reply { served, id, input_tokens };
    if stream {
        Ok(reply.stream(pieces).into_response())
    } else {
        Ok(Json(reply.whole(pieces).await?).into_response())
    }
}

/// Anthropic's `stop_reason` and `stop_sequence`.
fn stop_reason(finish: &Finish) -> (&'static str, Option<&str>) {
    match finish {
        Finish::Stop => ("end_turn", None),
        Finish::Length => ("max_tokens", None),
        Finish::StopSequence(s) => ("stop_sequence", Some(s.as_str())),
    }
}

struct Reply {
    served: Arc<Served>,
    id: String,
    input_tokens: usize,
}

impl Reply {
    async fn whole(self, mut pieces: tokio::sync::mpsc::Receiver<Piece>) -> Result<serde_json::Value, ApiError> {
        let mut text = String::new();
        let mut end = None;
        while let Some(piece) = pieces.recv().await {
            match piece {
                Piece::Text(t) => text.push_str(&t),
                Piece::Ended { finish, stats } => end = Some((finish, stats)),
                Piece::Failed(e) => return Err(e),
            }
        }
        let (finish, stats) = end.unwrap_or((Finish::Stop, Default::default()));
        let (reason, sequence) = stop_reason(&finish);
        Ok(json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.served.model_id,
            "content": [{ "type": "text", "text": text }],
            "stop_reason": reason,
            "stop_sequence": sequence,
            "usage": { "input_tokens": stats.prompt_tokens.max(self.input_tokens), "output_tokens": stats.completion_tokens },
        }))
    }

    fn event(name: &'static str, data: serde_json::Value) -> Event {
        Event::default().event(name).data(data.to_string())
    }

    fn events(piece: Piece) -> Vec<Event> {
        match piece {
            Piece::Text(t) => vec![Self::event(
                "content_block_delta",
                json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": t } }),
            )],
            Piece::Failed(e) => vec![Self::event("error", e.anthropic_body())],
            Piece::Ended { finish, stats } => {
                let (reason, sequence) = stop_reason(&finish);
                vec![
                    Self::event("content_block_stop", json!({ "type": "content_block_stop", "index": 0 })),
                    Self::event(
                        "message_delta",
                        json!({
                            "type": "message_delta",
                            "delta": { "stop_reason": reason, "stop_sequence": sequence },
                            "usage": { "output_tokens": stats.completion_tokens },
                        }),
                    ),
                    Self::event("message_stop", json!({ "type": "message_stop" })),
                ]
            }
        }
    }

    /// The reply as Anthropic's events: `message_start`, one text block's start, deltas and
    /// stop, `message_delta` with the stop reason and usage, `message_stop`.
    fn stream(self, pieces: tokio::sync::mpsc::Receiver<Piece>) -> impl IntoResponse {
        let opening = vec![
            Self::event(
                "message_start",
                json!({
                    "type": "message_start",
                    "message": {
                        "id": self.id,
                        "type": "message",
                        "role": "assistant",
                        "model": self.served.model_id,
                        "content": [],
                        "stop_reason": null,
                        "stop_sequence": null,
                        "usage": { "input_tokens": self.input_tokens, "output_tokens": 0 },
                    },
                }),
            ),
            Self::event(
                "content_block_start",
                json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
            ),
            Self::event("ping", json!({ "type": "ping" })),
        ];
        let rest = futures::stream::unfold(pieces, |mut pieces| async move {
            let piece = pieces.recv().await?;
            Some((futures::stream::iter(Self::events(piece)), pieces))
        })
        .flatten();
        let events = futures::stream::iter(opening).chain(rest).map(Ok::<_, std::convert::Infallible>);
        Sse::new(events)
    }
}
