//! `POST /v1/chat/completions` in OpenAI's wire format, whole or streamed.

use std::sync::Arc;

use altiplano_core::engine::{GenerationStats, PromptMessage, Role, Sampling};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde_json::json;

use crate::run::{self, Ask, Finish, Piece};
use crate::wire::{self, ApiError, ChatRequest, Content};
use crate::{authorize, body_bytes, fits, unix_seconds, Served};

/// A chat request read and checked: what to ask, and how to answer.
struct Checked {
    ask: Ask,
    stream: bool,
    include_usage: bool,
}

fn check(served: &Served, request: ChatRequest) -> Result<Checked, ApiError> {
    let invalid = |param: &'static str, message: String| ApiError::invalid(message, Some(param));
    served.check_model(&request.model)?;
    if request.n.is_some_and(|n| n != 1) {
        return Err(invalid("n", "Only n = 1 is supported: one choice per request.".into()));
    }
    if let Some(format) = &request.response_format {
        if format.get("type").and_then(|t| t.as_str()) != Some("text") {
            return Err(invalid(
                "response_format",
                "response_format json_object / json_schema is not supported by this server yet; ask for JSON in the prompt instead.".into(),
            ));
        }
    }
    if request.tools.as_ref().is_some_and(|t| t.as_array().is_none_or(|a| !a.is_empty())) {
        return Err(invalid("tools", "Tools are not supported by this server yet.".into()));
    }
    if request.messages.is_empty() {
        return Err(invalid("messages", "messages must hold at least one message.".into()));
    }
    let messages = prompt_messages(request.messages)?;
    if let Some(t) = request.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(invalid("temperature", format!("temperature {t} is out of range: 0 to 2.")));
        }
    }
    if let Some(p) = request.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(invalid("top_p", format!("top_p {p} is out of range: above 0, at most 1.")));
        }
    }
    let max_tokens = request.max_completion_tokens.or(request.max_tokens);
    if max_tokens == Some(0) {
        return Err(invalid("max_tokens", "max_tokens must be at least 1.".into()));
    }
    let stops = request.stop.map(wire::Stop::into_vec).unwrap_or_default();
    if stops.len() > 4 || stops.iter().any(String::is_empty) {
        return Err(invalid("stop", "stop takes up to 4 non-empty strings.".into()));
    }
    let sampling = sampling(request.temperature, request.top_p, max_tokens, request.seed);
    Ok(Checked {
        ask: Ask { messages, sampling, stops },
        stream: request.stream.unwrap_or(false),
        include_usage: request.stream_options.and_then(|o| o.include_usage).unwrap_or(false),
    })
}

/// OpenAI's messages as the engine takes them: text only, roles system (or developer), user
/// and assistant.
pub(crate) fn prompt_messages(given: Vec<wire::Message>) -> Result<Vec<PromptMessage>, ApiError> {
    let invalid = |param: &'static str, message: String| ApiError::invalid(message, Some(param));
    let mut messages = Vec::with_capacity(given.len());
    for (i, m) in given.into_iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(invalid(
                    "messages",
                    format!("messages[{i}].role {other:?} is not supported (system, developer, user, assistant)."),
                ))
            }
        };
        let content = match m.content {
            Content::Text(t) => t,
            Content::None => String::new(),
            Content::Parts(parts) => {
                let mut text = String::new();
                for part in parts {
                    match (part.kind.as_str(), part.text) {
                        ("text", Some(t)) => text.push_str(&t),
                        (kind, _) => {
                            return Err(invalid(
                                "messages",
                                format!("messages[{i}] has a {kind:?} part; only text is supported."),
                            ))
                        }
                    }
                }
                text
            }
        };
        messages.push(PromptMessage::new(role, content));
    }
    Ok(messages)
}

/// Sampling from a request's fields: temperature 0 is greedy; unset fields keep the defaults.
pub(crate) fn sampling(
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_tokens: Option<u32>,
    seed: Option<i64>,
) -> Sampling {
    let mut sampling = if temperature == Some(0.0) { Sampling::greedy() } else { Sampling::default() };
    if let Some(t) = temperature.filter(|t| *t > 0.0) {
        sampling.temperature = t;
    }
    if let Some(p) = top_p {
        sampling.top_p = p;
    }
    if let Some(n) = max_tokens {
        sampling.max_tokens = n as usize;
    }
    // Any 64-bit seed is accepted; the engine takes 32 bits of it.
    sampling.seed = seed.map(|s| s as u32);
    sampling
}

pub(crate) async fn chat_completions(
    State(served): State<Arc<Served>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&served, &headers)?;
    let body = body_bytes(body)?;
    let request: ChatRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("We could not parse the JSON body of your request: {e}"), None))?;
    let checked = check(&served, request)?;
    fits(&served, &checked.ask.messages).await?;
    let place = run::admit(&served)?;
    let id = served.next_id("chatcmpl-");
    let pieces = run::start(Arc::clone(&served), checked.ask, place, id.clone(), "chat.completions");
    let reply = Reply { served, id, created: unix_seconds() };
    if checked.stream {
        Ok(reply.stream(pieces, checked.include_usage).into_response())
    } else {
        Ok(Json(reply.whole(pieces).await?).into_response())
    }
}

/// OpenAI's name for why a reply ended.
fn finish_name(finish: &Finish) -> &'static str {
    match finish {
        Finish::Length => "length",
        Finish::Stop | Finish::StopSequence(_) => "stop",
    }
}

fn usage(stats: &GenerationStats) -> serde_json::Value {
    json!({
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "total_tokens": stats.prompt_tokens + stats.completion_tokens,
    })
}

/// One reply in the making.
struct Reply {
    served: Arc<Served>,
    id: String,
    created: u64,
}

impl Reply {
    async fn whole(self, mut pieces: tokio::sync::mpsc::Receiver<Piece>) -> Result<serde_json::Value, ApiError> {
        let mut text = String::new();
        let mut end = (Finish::Stop, GenerationStats::default());
        while let Some(piece) = pieces.recv().await {
            match piece {
                Piece::Text(t) => text.push_str(&t),
                Piece::Ended { finish, stats } => end = (finish, stats),
                Piece::Failed(e) => return Err(e),
            }
        }
        Ok(json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.served.model_id,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": text, "refusal": null },
                "logprobs": null,
                "finish_reason": finish_name(&end.0),
            }],
            "usage": usage(&end.1),
            "system_fingerprint": null,
        }))
    }

    fn chunk(&self, delta: serde_json::Value, finish: Option<&str>) -> Event {
        let body = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.served.model_id,
            "system_fingerprint": null,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
        });
        Event::default().data(body.to_string())
    }

    /// The events one piece of the reply makes.
    fn events(&self, piece: Piece, include_usage: bool) -> Vec<Event> {
        match piece {
            Piece::Text(t) => vec![self.chunk(json!({ "content": t }), None)],
            Piece::Failed(e) => vec![Event::default().data(e.body().to_string()), Event::default().data("[DONE]")],
            Piece::Ended { finish, stats } => {
                let mut events = vec![self.chunk(json!({}), Some(finish_name(&finish)))];
                if include_usage {
                    let body = json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.served.model_id,
                        "choices": [],
                        "usage": usage(&stats),
                    });
                    events.push(Event::default().data(body.to_string()));
                }
                events.push(Event::default().data("[DONE]"));
                events
            }
        }
    }

    /// The reply as server-sent events: the role, the text as it comes, the finish (and the
    /// usage when asked), then `[DONE]`. The client leaving drops the stream, and with it the
    /// receiver, which stops the generation.
    fn stream(self, pieces: tokio::sync::mpsc::Receiver<Piece>, include_usage: bool) -> impl IntoResponse {
        let opening = self.chunk(json!({ "role": "assistant", "content": "" }), None);
        let rest = futures::stream::unfold((pieces, self), move |(mut pieces, reply)| async move {
            let piece = pieces.recv().await?;
            let events = reply.events(piece, include_usage);
            Some((futures::stream::iter(events), (pieces, reply)))
        })
        .flatten();
        let events = futures::stream::once(async { opening }).chain(rest).map(Ok::<_, std::convert::Infallible>);
        Sse::new(events)
    }
}

/// The status for a request that cannot be served because its prompt is too long.
pub(crate) fn too_long(context: usize, prompt_tokens: usize) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("This model's context is {context} tokens; the messages take {prompt_tokens}. Shorten them."),
        "invalid_request_error",
        Some("messages"),
        Some("context_length_exceeded"),
    )
}

/// `POST /tokenize`'s body, as vLLM takes it: `prompt` (text, no special tokens unless asked)
/// or `messages` (through the chat template, with the reply's header).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TokenizeRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    messages: Option<Vec<wire::Message>>,
}

/// `POST /tokenize`: how many tokens a text or a conversation takes for the served model
/// (`{"count", "max_model_len"}`), so a client fitting prompts into the context counts as the
/// model does. Another Altiplano using this one as a remote engine relies on it.
pub(crate) async fn tokenize(
    State(served): State<Arc<Served>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&served, &headers)?;
    let body = body_bytes(body)?;
    let request: TokenizeRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("We could not parse the JSON body of your request: {e}"), None))?;
    if let Some(model) = &request.model {
        served.check_model(model)?;
    }
    let count = match (request.prompt, request.messages) {
        (Some(text), None) => served.engine.count_text_tokens(&text).await,
        (None, Some(messages)) => served.engine.count_prompt_tokens(&prompt_messages(messages)?).await,
        _ => return Err(ApiError::invalid("Give either prompt (text) or messages.".to_owned(), None)),
    }
    .map_err(run::engine_error)?;
    Ok(Json(json!({ "count": count, "max_model_len": served.engine.usable_context() })))
}
