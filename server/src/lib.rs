//! The OpenAI-compatible HTTP face of Altiplano: the loaded model served on a local port, in
//! OpenAI's wire format, so that editors, notebooks, agents and scripts can use it.
//!
//! - `GET /health`, `GET /v1/models` (the served model, with its context length) and
//!   `POST /v1/chat/completions` (streamed as server-sent events ending in `[DONE]`, or whole;
//!   `max_tokens` / `max_completion_tokens`, `temperature` (0: greedy), `top_p`, `seed`,
//!   `stop`, `stream_options.include_usage`).
//! - Errors are OpenAI's error objects (`{"error": {"message", "type", "param", "code"}}`) with
//!   the status OpenAI uses: malformed JSON and bad fields 400, a wrong key 401, an unknown
//!   model or URL 404, a too-long prompt 400 `context_length_exceeded`; nothing the client can
//!   send gets a 500 with a Rust message.
//! - A key (`Authorization: Bearer KEY`) is checked when one is set; listening anywhere but on
//!   a loopback address requires one.
//! - Each request runs on the engine (which queues or batches them); a client that goes away
//!   mid-reply cancels its generation at once.
//!
//! The handlers are an adapter over [`altiplano_core::engine::Engine`], as the app's commands
//! and the CLI are.

mod stop;
mod wire;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use altiplano_core::engine::{
    CancellationToken, Engine, EngineError, FinishReason, GenerationEvent, GenerationStats, PromptMessage, Role,
    Sampling,
};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

pub use wire::ApiError;
use wire::{ChatRequest, Content};

/// Largest request body: a whole 128K-token prompt fits with room to spare.
const BODY_LIMIT: usize = 16 << 20;

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The address to listen on (127.0.0.1 unless the user says otherwise).
    pub host: IpAddr,
    /// The port; 0 picks a free one.
    pub port: u16,
    /// The key clients must send; required off loopback.
    pub api_key: Option<String>,
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Listening beyond this computer without a key.
    #[error("listening on {host} lets other computers use the model; give it a key (--api-key KEY or ALTIPLANO_API_KEY) or listen on 127.0.0.1")]
    KeyNeeded {
        /// The address asked for.
        host: IpAddr,
    },
    /// The address is taken or not allowed.
    #[error("cannot listen on {addr}: {source} (another program may be using the port; try --port)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("the server stopped: {0}")]
    Serve(std::io::Error),
}

/// A server bound to its address, ready to [`Server::run`].
pub struct Server {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    state: Arc<Served>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).field("model", &self.state.model_id).finish()
    }
}

/// What every handler shares.
struct Served {
    engine: Engine,
    model_id: String,
    api_key: Option<String>,
    /// When the model started being served (Unix seconds), for `/v1/models`.
    since: u64,
    requests: AtomicU64,
}

impl Server {
    /// Binds `options`' address for `engine`'s model.
    pub async fn bind(engine: Engine, options: ServeOptions) -> Result<Self, ServeError> {
        let api_key = options.api_key.filter(|k| !k.trim().is_empty());
        if !options.host.is_loopback() && api_key.is_none() {
            return Err(ServeError::KeyNeeded { host: options.host });
        }
        let addr = SocketAddr::new(options.host, options.port);
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind { addr, source })?;
        let model_id = engine.info().name.clone();
        let state = Arc::new(Served { engine, model_id, api_key, since: unix_seconds(), requests: AtomicU64::new(0) });
        Ok(Self { listener, addr, state })
    }

    /// The address it listens on (with the port picked, when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The id clients name the model by (`model` in requests, `/v1/models`).
    pub fn model_id(&self) -> &str {
        &self.state.model_id
    }

    /// Serves until `shutdown` completes; requests in flight are finished first.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
        axum::serve(self.listener, router(self.state)).with_graceful_shutdown(shutdown).await.map_err(ServeError::Serve)
    }
}

fn router(state: Arc<Served>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat_completions))
        .fallback(unknown_url)
        .method_not_allowed_fallback(unknown_url)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

fn unix_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The key check: `Authorization: Bearer KEY` (or `x-api-key: KEY`) when a key is set.
fn authorize(served: &Served, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &served.api_key else { return Ok(()) };
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    let given = bearer.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    match given {
        Some(g) if g.trim() == key => Ok(()),
        Some(_) => Err(ApiError::unauthorized("Incorrect API key provided.")),
        None => Err(ApiError::unauthorized(
            "No API key provided: send it as `Authorization: Bearer KEY` (this server was started with --api-key).",
        )),
    }
}

async fn health(State(served): State<Arc<Served>>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "model": served.model_id }))
}

async fn models(State(served): State<Arc<Served>>, headers: HeaderMap) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&served, &headers)?;
    let info = served.engine.info();
    Ok(Json(json!({
        "object": "list",
        "data": [{
            "id": served.model_id,
            "object": "model",
            "created": served.since,
            "owned_by": "altiplano",
            "context_length": served.engine.usable_context(),
            "architecture": info.architecture,
        }],
    })))
}

async fn unknown_url(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "Unknown request URL: {method} {}. This server serves /v1/models and /v1/chat/completions.",
            uri.path()
        ),
        "invalid_request_error",
        None,
        Some("unknown_url"),
    )
}

/// A chat request read and checked: the prompt, sampling, stops, and how to answer.
struct Checked {
    messages: Vec<PromptMessage>,
    sampling: Sampling,
    stops: Vec<String>,
    stream: bool,
    include_usage: bool,
}

fn check(served: &Served, request: ChatRequest) -> Result<Checked, ApiError> {
    let invalid = |param: &'static str, message: String| ApiError::invalid(message, Some(param));
    if request.model != served.model_id {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "The model `{}` does not exist; this server serves `{}` (GET /v1/models).",
                request.model, served.model_id
            ),
            "invalid_request_error",
            Some("model"),
            Some("model_not_found"),
        ));
    }
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
    let mut messages = Vec::with_capacity(request.messages.len());
    for (i, m) in request.messages.into_iter().enumerate() {
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
    let mut sampling = if request.temperature == Some(0.0) { Sampling::greedy() } else { Sampling::default() };
    if let Some(t) = request.temperature.filter(|t| *t > 0.0) {
        sampling.temperature = t;
    }
    if let Some(p) = request.top_p {
        sampling.top_p = p;
    }
    if let Some(n) = max_tokens {
        sampling.max_tokens = n as usize;
    }
    // Any 64-bit seed is accepted; the engine takes 32 bits of it.
    sampling.seed = request.seed.map(|s| s as u32);
    Ok(Checked {
        messages,
        sampling,
        stops,
        stream: request.stream.unwrap_or(false),
        include_usage: request.stream_options.and_then(|o| o.include_usage).unwrap_or(false),
    })
}

async fn chat_completions(
    State(served): State<Arc<Served>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&served, &headers)?;
    let body = body.map_err(|e| {
        ApiError::new(
            e.status(),
            format!("The request body could not be read: {e}"),
            "invalid_request_error",
            None,
            None,
        )
    })?;
    let request: ChatRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("We could not parse the JSON body of your request: {e}"), None))?;
    let checked = check(&served, request)?;
    let prompt_tokens = served.engine.count_prompt_tokens(&checked.messages).await.map_err(engine_error)?;
    let context = served.engine.usable_context();
    if prompt_tokens >= context {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("This model's context is {context} tokens; the messages take {prompt_tokens}. Shorten them."),
            "invalid_request_error",
            Some("messages"),
            Some("context_length_exceeded"),
        ));
    }
    let n = served.requests.fetch_add(1, Ordering::Relaxed);
    let id = format!("chatcmpl-{:x}{n:04x}", unix_seconds());
    let reply = Reply { served: Arc::clone(&served), id, created: unix_seconds(), started: Instant::now() };
    if checked.stream {
        Ok(reply.stream(checked).into_response())
    } else {
        Ok(Json(reply.whole(checked).await?).into_response())
    }
}

/// OpenAI's name for why a reply ended.
fn finish_name(reason: FinishReason, stopped: bool) -> &'static str {
    match reason {
        FinishReason::Length if !stopped => "length",
        _ => "stop",
    }
}

fn usage(stats: &GenerationStats) -> serde_json::Value {
    json!({
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "total_tokens": stats.prompt_tokens + stats.completion_tokens,
    })
}

fn engine_error(e: EngineError) -> ApiError {
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

/// One reply in the making.
struct Reply {
    served: Arc<Served>,
    id: String,
    created: u64,
    started: Instant,
}

impl Reply {
    fn log(&self, stats: &GenerationStats, finish: &str) {
        let seconds = self.started.elapsed().as_secs_f64();
        tracing::info!(
            id = %self.id,
            prompt_tokens = stats.prompt_tokens,
            completion_tokens = stats.completion_tokens,
            tokens_per_second = stats.decode_tokens_per_second.unwrap_or(0.0),
            seconds,
            finish,
            "chat completion"
        );
    }

    async fn whole(self, checked: Checked) -> Result<serde_json::Value, ApiError> {
        let cancel = CancellationToken::new();
        // The client gone (this future dropped): the generation stops too.
        let _stop_on_drop = cancel.clone().drop_guard();
        let mut rx = self.served.engine.generate(checked.messages, checked.sampling, cancel.clone());
        let mut stops = stop::StopScan::new(checked.stops);
        let mut text = String::new();
        let mut end = (FinishReason::Stop, GenerationStats::default());
        while let Some(event) = rx.recv().await {
            match event.map_err(engine_error)? {
                GenerationEvent::Text(piece) => {
                    text.push_str(&stops.push(&piece));
                    if stops.stopped() {
                        cancel.cancel();
                    }
                }
                GenerationEvent::Finished { reason, stats } => end = (reason, stats),
            }
        }
        text.push_str(&stops.finish());
        let finish = finish_name(end.0, stops.stopped());
        self.log(&end.1, finish);
        Ok(json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.served.model_id,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": text, "refusal": null },
                "logprobs": null,
                "finish_reason": finish,
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

    /// The reply as server-sent events: the role, the text as it comes, the finish (and the
    /// usage when asked), then `[DONE]`. A client that disconnects stops the generation.
    fn stream(self, checked: Checked) -> impl IntoResponse {
        let (tx, mut events) = tokio::sync::mpsc::channel::<Event>(64);
        tokio::spawn(async move {
            let cancel = CancellationToken::new();
            let mut rx = self.served.engine.generate(checked.messages, checked.sampling, cancel.clone());
            let mut stops = stop::StopScan::new(checked.stops);
            let mut end = (FinishReason::Stop, GenerationStats::default());
            let mut failed = None;
            let _ = tx.send(self.chunk(json!({ "role": "assistant", "content": "" }), None)).await;
            loop {
                let event = tokio::select! {
                    event = rx.recv() => event,
                    () = tx.closed() => {
                        cancel.cancel();
                        tracing::info!(id = %self.id, "the client went away; the reply is stopped");
                        return;
                    }
                };
                let Some(event) = event else { break };
                match event {
                    Ok(GenerationEvent::Text(piece)) => {
                        let text = stops.push(&piece);
                        if stops.stopped() {
                            cancel.cancel();
                        }
                        if !text.is_empty() && tx.send(self.chunk(json!({ "content": text }), None)).await.is_err() {
                            cancel.cancel();
                            return;
                        }
                    }
                    Ok(GenerationEvent::Finished { reason, stats }) => end = (reason, stats),
                    Err(e) => failed = Some(engine_error(e)),
                }
            }
            let rest = stops.finish();
            if !rest.is_empty() {
                let _ = tx.send(self.chunk(json!({ "content": rest }), None)).await;
            }
            if let Some(error) = failed {
                let _ = tx.send(Event::default().data(error.body().to_string())).await;
            } else {
                let finish = finish_name(end.0, stops.stopped());
                self.log(&end.1, finish);
                let _ = tx.send(self.chunk(json!({}), Some(finish))).await;
                if checked.include_usage {
                    let body = json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.served.model_id,
                        "choices": [],
                        "usage": usage(&end.1),
                    });
                    let _ = tx.send(Event::default().data(body.to_string())).await;
                }
            }
            let _ = tx.send(Event::default().data("[DONE]")).await;
        });
        let stream =
            futures::stream::poll_fn(move |cx| events.poll_recv(cx).map(|e| e.map(Ok::<_, std::convert::Infallible>)));
        Sse::new(stream)
    }
}
