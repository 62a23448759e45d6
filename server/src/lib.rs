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
//! - `POST /tokenize` (vLLM's form: `prompt` or `messages` → `count`, `max_model_len`), so a
//!   client — another Altiplano using this one as a remote engine — counts tokens as the model
//!   does.
//! - `POST /v1/messages`: Anthropic's Messages API (whole, or streamed as its named events), so
//!   tools written for it can use the local model too; its errors are Anthropic's error objects.
//! - Each request takes a place in a queue of [`ServeOptions::queue`] (running or waiting; the
//!   engine runs them in turn or batches them); a full queue answers 429 with `Retry-After`. A
//!   client that goes away mid-reply cancels its generation at once.
//! - Browsers' cross-origin requests are refused unless their origin is named
//!   ([`ServeOptions::cors`]).
//! - With [`ServeOptions::keep`], every request is kept as a conversation, so the app's history
//!   and search cover what was asked through the API.
//!
//! The handlers are an adapter over [`altiplano_core::engine::Engine`], as the app's commands
//! and the CLI are.

mod anthropic;
mod openai;
mod run;
mod stop;
mod wire;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use altiplano_core::engine::{Engine, PromptMessage};
use altiplano_core::store::Store;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::Semaphore;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use wire::{AnthropicError, ApiError};

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
    /// How many requests may be running or waiting at once; one more gets 429.
    pub queue: usize,
    /// Web origins (`https://example.com`) whose pages may call the server; none by default.
    pub cors: Vec<String>,
    /// Where to keep each request as a conversation, when the user wants them kept.
    pub keep: Option<Store>,
}

impl ServeOptions {
    /// The default queue: enough for a handful of editors and scripts at once.
    pub const DEFAULT_QUEUE: u16 = 16;

    /// Loopback on `port`, no key, the default queue, no CORS, nothing kept.
    pub fn local(port: u16) -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port,
            api_key: None,
            queue: usize::from(Self::DEFAULT_QUEUE),
            cors: Vec::new(),
            keep: None,
        }
    }

    /// Whether these options can be served: a key where one is needed, origins that are
    /// origins. [`Server::bind`] checks this too; a face calls it first to say so before a
    /// model loads.
    pub fn check(&self) -> Result<(), ServeError> {
        if !self.host.is_loopback() && self.api_key.as_deref().is_none_or(|k| k.trim().is_empty()) {
            return Err(ServeError::KeyNeeded { host: self.host });
        }
        cors_layer(&self.cors).map(drop)
    }
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
    /// A `--cors` origin that is not an origin.
    #[error(
        "{0:?} is not a web origin; give one like https://example.com (scheme, host, and port if not the default)"
    )]
    BadOrigin(String),
    /// The server failed while running.
    #[error("the server stopped: {0}")]
    Serve(std::io::Error),
}

/// A server bound to its address, ready to [`Server::run`].
pub struct Server {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    state: Arc<Served>,
    cors: Option<CorsLayer>,
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
    /// Places for requests running or waiting.
    pending: Arc<Semaphore>,
    queue: usize,
    /// How long replies take, a moving average in milliseconds (for `Retry-After`).
    mean_reply_ms: AtomicU64,
    keep: Option<Store>,
}

impl Served {
    /// A request's `model` must name the served model.
    fn check_model(&self, model: &str) -> Result<(), ApiError> {
        if model == self.model_id {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("The model `{model}` does not exist; this server serves `{}` (GET /v1/models).", self.model_id),
            "invalid_request_error",
            Some("model"),
            Some("model_not_found"),
        ))
    }

    /// A new id for a reply: `prefix`, the time and a counter.
    fn next_id(&self, prefix: &str) -> String {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}{:x}{n:04x}", unix_seconds())
    }
}

impl Server {
    /// Binds `options`' address for `engine`'s model.
    pub async fn bind(engine: Engine, options: ServeOptions) -> Result<Self, ServeError> {
        options.check()?;
        let api_key = options.api_key.filter(|k| !k.trim().is_empty());
        let cors = cors_layer(&options.cors)?;
        let addr = SocketAddr::new(options.host, options.port);
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind { addr, source })?;
        let model_id = engine.info().name.clone();
        let queue = options.queue.max(1);
        let state = Arc::new(Served {
            engine,
            model_id,
            api_key,
            since: unix_seconds(),
            requests: AtomicU64::new(0),
            pending: Arc::new(Semaphore::new(queue)),
            queue,
            mean_reply_ms: AtomicU64::new(0),
            keep: options.keep,
        });
        Ok(Self { listener, addr, state, cors })
    }

    /// The address it listens on (with the port picked, when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether requests are kept as conversations.
    pub fn keeps_conversations(&self) -> bool {
        self.state.keep.is_some()
    }

    /// The id clients name the model by (`model` in requests, `/v1/models`).
    pub fn model_id(&self) -> &str {
        &self.state.model_id
    }

    /// Serves until `shutdown` completes; requests in flight are finished first.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
        let mut router = router(self.state);
        if let Some(cors) = self.cors {
            router = router.layer(cors);
        }
        axum::serve(self.listener, router).with_graceful_shutdown(shutdown).await.map_err(ServeError::Serve)
    }
}

fn router(state: Arc<Served>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/messages", post(anthropic::messages))
        .route("/tokenize", post(openai::tokenize))
        .fallback(unknown_url)
        .method_not_allowed_fallback(unknown_url)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// The CORS layer for the origins named, if any: those pages may send requests with a key.
fn cors_layer(origins: &[String]) -> Result<Option<CorsLayer>, ServeError> {
    if origins.is_empty() {
        return Ok(None);
    }
    let mut allowed = Vec::with_capacity(origins.len());
    for origin in origins {
        let trimmed = origin.trim().trim_end_matches('/');
        // An origin is a scheme, a host and maybe a port: what a browser sends in `Origin`.
        let valid = trimmed.parse::<Uri>().is_ok_and(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.authority().is_some_and(|a| !a.host().is_empty() && !a.as_str().contains('@'))
                && uri.path() == "/"
                && uri.query().is_none()
        });
        let value = HeaderValue::from_str(trimmed).ok().filter(|_| valid);
        allowed.push(value.ok_or_else(|| ServeError::BadOrigin(origin.clone()))?);
    }
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderName::from_static("x-api-key"),
                axum::http::HeaderName::from_static("anthropic-version"),
            ]),
    ))
}

/// The request's body, or the reason it could not be read.
fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        ApiError::new(
            e.status(),
            format!("The request body could not be read: {e}"),
            "invalid_request_error",
            None,
            None,
        )
    })
}

/// A prompt must leave room in the context for at least one token of reply.
async fn fits(served: &Served, messages: &[PromptMessage]) -> Result<usize, ApiError> {
    let prompt_tokens = served.engine.count_prompt_tokens(messages).await.map_err(run::engine_error)?;
    let context = served.engine.usable_context();
    if prompt_tokens >= context {
        return Err(openai::too_long(context, prompt_tokens));
    }
    Ok(prompt_tokens)
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
            "Unknown request URL: {method} {}. This server serves /v1/models, /v1/chat/completions, /v1/messages and /tokenize.",
            uri.path()
        ),
        "invalid_request_error",
        None,
        Some("unknown_url"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cors(origins: &[&str]) -> ServeOptions {
        ServeOptions { cors: origins.iter().map(|o| (*o).to_owned()).collect(), ..ServeOptions::local(0) }
    }

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for good in ["https://app.example", "http://localhost:5173", "https://app.example/"] {
            assert!(with_cors(&[good]).check().is_ok(), "{good}");
        }
        for bad in ["app.example", "https://", "https://app.example/page", "ftp://app.example", "https://a b"] {
            let err = with_cors(&["https://fine.example", bad]).check().expect_err(bad);
            assert!(matches!(&err, ServeError::BadOrigin(o) if o == bad), "{bad}: {err}");
            assert!(err.to_string().contains("https://example.com"), "the message shows a good one: {err}");
        }
    }

    #[test]
    fn a_key_is_needed_off_loopback_only() {
        let anywhere = ServeOptions { host: IpAddr::from([0, 0, 0, 0]), ..ServeOptions::local(0) };
        assert!(matches!(anywhere.check(), Err(ServeError::KeyNeeded { .. })));
        let blank = ServeOptions { api_key: Some("  ".into()), ..anywhere.clone() };
        assert!(matches!(blank.check(), Err(ServeError::KeyNeeded { .. })), "a blank key is no key");
        let keyed = ServeOptions { api_key: Some("k".into()), ..anywhere };
        assert!(keyed.check().is_ok());
        let v6 = ServeOptions { host: IpAddr::from(std::net::Ipv6Addr::LOCALHOST), ..ServeOptions::local(0) };
        assert!(v6.check().is_ok(), "::1 is loopback");
    }
}
