//! The third backend: a model another program serves over OpenAI's HTTP API — vLLM or SGLang
//! on a cluster, llama.cpp's server, LM Studio, Ollama, another Altiplano's `serve`. Chat,
//! summaries, follow-ups and code answers run through it as through a local engine.
//!
//! Connecting ([`Engine::connect`](super::Engine::connect)) asks the server for its models
//! (`GET /v1/models`) and settles three things before anything is asked of the model: which model (the one named, else the first), its
//! context length (the user's, else the server's `context_length`, `max_model_len` or
//! `meta.n_ctx_train`; without either the connection is refused, asking for one) and how tokens
//! are counted ([`TokenCounting`]: the server's own tokenizer endpoint, `POST /tokenize`, where
//! it has one — vLLM's, llama.cpp's, Altiplano's —, else a conservative estimate). Failures
//! are told, never silent: unreachable, a refused key, a model the server lacks, a server
//! slower than [`FIRST_BYTE_TIMEOUT`] to answer, a connection dropped mid-reply.

use std::time::{Duration, Instant};

use altiplano_formats::openai;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::generation::finish_stats;
use super::{
    CancellationToken, EngineError, FinishReason, GenerationEvent, GenerationStats, PromptMessage, Role, Sampling,
};
use crate::download::hub::redact;
use crate::error::with_causes;

/// How long a server may take to send the first byte of an answer, unless
/// [`FIRST_BYTE_TIMEOUT_ENV`] says otherwise.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
/// Seconds a server may take to start answering (default 30): more for a cluster that is slow
/// to start, less to fail fast.
pub const FIRST_BYTE_TIMEOUT_ENV: &str = "ALTIPLANO_REMOTE_TIMEOUT";

/// [`FIRST_BYTE_TIMEOUT`], or the seconds [`FIRST_BYTE_TIMEOUT_ENV`] gives.
fn first_byte_timeout() -> Duration {
    std::env::var(FIRST_BYTE_TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(FIRST_BYTE_TIMEOUT, Duration::from_secs)
}
/// How long a server may go silent in the middle of a reply.
const SILENCE_TIMEOUT: Duration = Duration::from_secs(120);
/// Bytes an estimate counts per token: fewer than any tokenizer of Llama 3.1's languages puts
/// in one on average, so an estimate errs on the long side and a prompt never overflows.
const ESTIMATE_BYTES_PER_TOKEN: usize = 3;
/// Tokens an estimate adds per message for the chat template's headers.
const ESTIMATE_TOKENS_PER_MESSAGE: usize = 8;

/// Where a remote model is and how to reach it.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteEndpoint {
    /// The server's OpenAI-compatible base URL (`http://host:8000/v1`; `/v1` is added when
    /// left out).
    pub url: String,
    /// The model to use; `None` takes the first the server lists.
    pub model: Option<String>,
    /// The key the server wants (`Authorization: Bearer KEY`).
    pub api_key: Option<String>,
    /// The model's context length, when the user knows it better than the server says.
    pub context_tokens: Option<usize>,
    /// Whether this computer may open network connections: when not, only a server on this
    /// computer (a loopback address) is reached.
    pub offline: bool,
}

impl std::fmt::Debug for RemoteEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteEndpoint")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "(redacted)"))
            .field("context_tokens", &self.context_tokens)
            .finish()
    }
}

/// How a remote model's tokens are counted (for fitting prompts into its context).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenCounting {
    /// The server's tokenizer, messages through its chat template (vLLM's and Altiplano's
    /// `/tokenize`).
    ServerTemplate,
    /// The server's tokenizer on text (llama.cpp's `/tokenize`); a few tokens per message are
    /// added for the template.
    ServerText,
    /// No tokenizer on the server: bytes / 3 and a few tokens per message, on the long side.
    Estimate,
}

impl TokenCounting {
    /// In words, for the faces to show.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ServerTemplate => "counted by the server's tokenizer",
            Self::ServerText => "counted by the server's tokenizer (template estimated)",
            Self::Estimate => "estimated (the server has no tokenizer endpoint)",
        }
    }
}

/// Where a remote model's context length came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextSource {
    /// The server's model list said it.
    Server,
    /// The user gave it.
    User,
}

/// What connecting found.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteInfo {
    /// The base URL, with `/v1`.
    pub url: String,
    /// Every model the server lists.
    pub models: Vec<String>,
    /// How tokens are counted.
    pub token_counting: TokenCounting,
    /// Where the context length came from.
    pub context_source: ContextSource,
}

/// A connected remote model.
pub(super) struct Remote {
    client: reqwest::Client,
    base: String,
    /// `base` as messages show it: without user:password or a query.
    shown: String,
    root: String,
    model: String,
    key: Option<String>,
    pub(super) info: RemoteInfo,
    pub(super) context: usize,
}

/// `http://host:8000`, `http://host:8000/`, `http://host:8000/v1/` → `http://host:8000/v1`.
pub fn base_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.ends_with("/v1") {
        url.to_owned()
    } else {
        format!("{url}/v1")
    }
}

/// [`base_url`] of an http(s) address; `None` for anything else.
pub fn checked_base_url(url: &str) -> Option<String> {
    let base = base_url(url);
    let http = base.starts_with("http://") || base.starts_with("https://");
    (http && reqwest::Url::parse(&base).is_ok()).then_some(base)
}

/// A request's failure with its causes, the URL in it redacted as [`redact`] does.
fn causes(e: &reqwest::Error) -> String {
    let message = with_causes(e);
    match e.url() {
        Some(url) => message.replace(url.as_str(), &redact(url.as_str())),
        None => message,
    }
}

fn unreachable(url: &str, e: &reqwest::Error) -> EngineError {
    let reason = if e.is_timeout() {
        format!("it did not answer within {} s", first_byte_timeout().as_secs())
    } else if e.is_connect() {
        "nothing answers there (is the server running, and is the address right?)".to_owned()
    } else {
        causes(e)
    };
    EngineError::RemoteUnreachable { url: url.to_owned(), reason }
}

/// Largest answer read whole (a model list, a token count, an error).
const MAX_ANSWER_BYTES: usize = 8 << 20;

/// An answer's body, at most [`MAX_ANSWER_BYTES`]: a server cannot make this program hold
/// more.
async fn capped_body(url: &str, response: reqwest::Response) -> Result<Vec<u8>, EngineError> {
    let mut body = Vec::new();
    let mut bytes = response.bytes_stream();
    while let Some(chunk) = bytes.next().await {
        let chunk = chunk.map_err(|e| unreachable(url, &e))?;
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(EngineError::RemoteFailed {
                url: url.to_owned(),
                status: 200,
                message: format!("it answered with more than {} MiB", MAX_ANSWER_BYTES >> 20),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The error an unsuccessful answer stands for.
async fn refusal(url: &str, model: &str, response: reqwest::Response) -> EngineError {
    let status = response.status();
    let message = openai::error_message(&capped_body(url, response).await.unwrap_or_default());
    match status.as_u16() {
        401 | 403 => EngineError::RemoteRefused { url: url.to_owned(), status: status.as_u16(), message },
        404 if message.to_lowercase().contains("model") => {
            EngineError::RemoteModelMissing { url: url.to_owned(), model: model.to_owned(), available: Vec::new() }
        }
        _ if message.contains("context_length_exceeded") || message.contains("maximum context length") => {
            EngineError::Generation(format!("the server says the prompt is too long: {message}"))
        }
        _ => EngineError::RemoteFailed { url: url.to_owned(), status: status.as_u16(), message },
    }
}

fn is_loopback(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else { return false };
    let Some(host) = parsed.host_str() else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Connects to `endpoint`: its model, context length and token counting, or why not.
pub(super) async fn connect(endpoint: &RemoteEndpoint) -> Result<Remote, EngineError> {
    let Some(base) = checked_base_url(&endpoint.url) else {
        return Err(EngineError::RemoteUnreachable {
            url: base_url(&endpoint.url),
            reason: "that is not an http:// or https:// address (e.g. http://gpu-box:8000/v1)".into(),
        });
    };
    // Messages name the server without what grants access (user:password, a query's token).
    let shown = redact(&base);
    if endpoint.offline && !is_loopback(&base) {
        return Err(EngineError::RemoteUnreachable {
            url: shown,
            reason: "offline mode is on, and this server is not on this computer; turn offline mode off to use it"
                .into(),
        });
    }
    let root = base.trim_end_matches("/v1").to_owned();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(SILENCE_TIMEOUT)
        .build()
        .map_err(|e| EngineError::RemoteUnreachable { url: shown.clone(), reason: causes(&e) })?;
    let key = endpoint.api_key.clone().filter(|k| !k.trim().is_empty());
    let mut remote = Remote {
        client,
        base: base.clone(),
        shown: shown.clone(),
        root,
        model: String::new(),
        key,
        info: RemoteInfo {
            url: shown.clone(),
            models: Vec::new(),
            token_counting: TokenCounting::Estimate,
            context_source: ContextSource::User,
        },
        context: 0,
    };
    let response = tokio::time::timeout(first_byte_timeout(), remote.request(reqwest::Method::GET, "/models").send())
        .await
        .map_err(|_| EngineError::RemoteUnreachable {
            url: shown.clone(),
            reason: format!("it did not answer within {} s", first_byte_timeout().as_secs()),
        })?
        .map_err(|e| unreachable(&shown, &e))?;
    if !response.status().is_success() {
        return Err(refusal(&shown, endpoint.model.as_deref().unwrap_or(""), response).await);
    }
    let body = capped_body(&shown, response).await?;
    let listed = openai::parse_models(&body).map_err(|problem| EngineError::RemoteFailed {
        url: shown.clone(),
        status: 200,
        message: problem.to_string(),
    })?;
    remote.info.models = listed.iter().map(|m| m.id.clone()).collect();
    let entry = match &endpoint.model {
        Some(wanted) => listed.iter().find(|m| m.id == *wanted).ok_or_else(|| EngineError::RemoteModelMissing {
            url: shown.clone(),
            model: wanted.clone(),
            available: remote.info.models.clone(),
        })?,
        None => listed.first().ok_or_else(|| EngineError::RemoteModelMissing {
            url: shown.clone(),
            model: String::new(),
            available: Vec::new(),
        })?,
    };
    remote.model = entry.id.clone();
    (remote.context, remote.info.context_source) = match (endpoint.context_tokens, entry.context) {
        (Some(user), _) => (user, ContextSource::User),
        (None, Some(listed)) => (listed, ContextSource::Server),
        (None, None) => return Err(EngineError::RemoteContextUnknown { url: shown, model: remote.model }),
    };
    remote.info.token_counting = remote.probe_tokenizer().await;
    Ok(remote)
}

impl Remote {
    /// The served model's id.
    pub(super) fn model(&self) -> &str {
        &self.model
    }

    /// A request for `path`: under the base URL (`/models`, `/chat/completions`), except
    /// `/tokenize`, which servers keep at their root.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let under = if path == "/tokenize" { &self.root } else { &self.base };
        let url = format!("{under}{path}");
        let request = self.client.request(method, url);
        match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// Asks `/tokenize` how it counts: vLLM's (and Altiplano's) form first, then llama.cpp's.
    async fn probe_tokenizer(&self) -> TokenCounting {
        let probe = [("Hello, world", TokenCounting::ServerTemplate), ("Hello, world", TokenCounting::ServerText)];
        for (text, kind) in probe {
            let body = match kind {
                TokenCounting::ServerTemplate => json!({ "model": self.model, "prompt": text }),
                _ => json!({ "content": text }),
            };
            let answer = self.request(reqwest::Method::POST, "/tokenize").json(&body).send().await;
            let Ok(response) = answer else { continue };
            if !response.status().is_success() {
                continue;
            }
            let Ok(body) = capped_body(&self.shown, response).await else { continue };
            let Ok(value) = serde_json::from_slice::<Value>(&body) else { continue };
            let counted = match kind {
                TokenCounting::ServerTemplate => value["count"].as_u64().is_some(),
                _ => value["tokens"].as_array().is_some_and(|t| !t.is_empty()),
            };
            if counted {
                return kind;
            }
        }
        TokenCounting::Estimate
    }

    async fn tokenize(&self, body: Value) -> Result<Value, EngineError> {
        let response = self
            .request(reqwest::Method::POST, "/tokenize")
            .json(&body)
            .send()
            .await
            .map_err(|e| unreachable(&self.shown, &e))?;
        if !response.status().is_success() {
            return Err(refusal(&self.shown, &self.model, response).await);
        }
        let body = capped_body(&self.shown, response).await?;
        serde_json::from_slice(&body).map_err(|e| EngineError::RemoteFailed {
            url: self.shown.clone(),
            status: 200,
            message: format!("its /tokenize answer is not JSON: {e}"),
        })
    }

    pub(super) async fn count_text_tokens(&self, text: &str) -> Result<usize, EngineError> {
        match self.info.token_counting {
            TokenCounting::ServerTemplate => {
                let v =
                    self.tokenize(json!({ "model": self.model, "prompt": text, "add_special_tokens": false })).await?;
                Ok(v["count"].as_u64().unwrap_or(0) as usize)
            }
            TokenCounting::ServerText => {
                let v = self.tokenize(json!({ "content": text })).await?;
                Ok(v["tokens"].as_array().map_or(0, Vec::len))
            }
            TokenCounting::Estimate => Ok(text.len().div_ceil(ESTIMATE_BYTES_PER_TOKEN)),
        }
    }

    pub(super) async fn count_prompt_tokens(&self, messages: &[PromptMessage]) -> Result<usize, EngineError> {
        if self.info.token_counting == TokenCounting::ServerTemplate {
            let v = self.tokenize(json!({ "model": self.model, "messages": wire_messages(messages) })).await?;
            return Ok(v["count"].as_u64().unwrap_or(0) as usize);
        }
        let mut total = ESTIMATE_TOKENS_PER_MESSAGE;
        for m in messages {
            total += self.count_text_tokens(&m.content).await? + ESTIMATE_TOKENS_PER_MESSAGE;
        }
        Ok(total)
    }

    /// Streams a reply: OpenAI's chat completions with `stream: true`, read as server-sent
    /// events; cancelling drops the connection, which tells the server to stop.
    pub(super) async fn stream_reply(
        &self,
        messages: Vec<PromptMessage>,
        sampling: Sampling,
        cancel: &CancellationToken,
        tx: &mpsc::Sender<Result<GenerationEvent, EngineError>>,
    ) -> Result<(FinishReason, GenerationStats), EngineError> {
        let started = Instant::now();
        let mut body = json!({
            "model": self.model,
            "messages": wire_messages(&messages),
            "stream": true,
            "stream_options": { "include_usage": true },
            "max_tokens": sampling.max_tokens,
            "temperature": if sampling.greedy { 0.0 } else { sampling.temperature },
            "top_p": if sampling.greedy { 1.0 } else { sampling.top_p },
        });
        if let Some(seed) = sampling.seed {
            body["seed"] = json!(seed);
        }
        let mut stats = GenerationStats::default();
        let send = self.request(reqwest::Method::POST, "/chat/completions").json(&body).send();
        let response = tokio::select! {
            biased;
            () = cancel.cancelled() => return Ok((FinishReason::Cancelled, stats)),
            answer = tokio::time::timeout(first_byte_timeout(), send) => answer
                .map_err(|_| EngineError::RemoteUnreachable {
                    url: self.shown.clone(),
                    reason: format!("it sent nothing for {} s", first_byte_timeout().as_secs()),
                })?
                .map_err(|e| unreachable(&self.shown, &e))?,
        };
        if !response.status().is_success() {
            return Err(refusal(&self.shown, &self.model, response).await);
        }
        let mut bytes = response.bytes_stream();
        let mut splitter = openai::EventSplitter::new();
        let (mut first, mut last, mut pieces) = (None, started, 0usize);
        let mut reason = None;
        let mut usage = None;
        let broken = |problem: openai::Problem| EngineError::RemoteFailed {
            url: self.shown.clone(),
            status: 200,
            message: problem.to_string(),
        };
        loop {
            let chunk = tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    stats.completion_tokens = pieces;
                    finish_stats(&mut stats, first, last);
                    return Ok((FinishReason::Cancelled, stats));
                }
                chunk = bytes.next() => chunk,
            };
            let (events, closed) = match chunk {
                Some(chunk) => {
                    let chunk = chunk
                        .map_err(|e| EngineError::RemoteDropped { url: self.shown.clone(), reason: causes(&e) })?;
                    (splitter.push(&chunk).map_err(broken)?, false)
                }
                None => (splitter.finish().map_err(broken)?, true),
            };
            let ended = events.iter().any(|e| e.done);
            for event in events {
                if let Some(counts) = event.usage {
                    usage = Some(counts);
                }
                if let Some(finish) = event.finish {
                    reason = Some(match finish {
                        openai::Finish::Length => FinishReason::Length,
                        openai::Finish::Stop => FinishReason::Stop,
                    });
                }
                if let Some(piece) = event.text {
                    let now = Instant::now();
                    if first.is_none() {
                        first = Some(now);
                        stats.time_to_first_token = Some(now - started);
                    }
                    last = now;
                    pieces += 1;
                    if tx.send(Ok(GenerationEvent::Text(piece))).await.is_err() {
                        return Ok((FinishReason::Cancelled, stats));
                    }
                }
            }
            if ended || closed {
                break;
            }
        }
        let Some(reason) = reason else {
            return Err(EngineError::RemoteDropped {
                url: self.shown.clone(),
                reason: "the connection closed before the reply was finished".into(),
            });
        };
        stats.completion_tokens = pieces;
        if let Some((prompt, completion)) = usage {
            stats.prompt_tokens = prompt.map_or(0, |n| n as usize);
            stats.completion_tokens = completion.map_or(pieces, |n| n as usize);
        }
        if stats.prompt_tokens == 0 {
            stats.prompt_tokens = self.count_prompt_tokens(&messages).await.unwrap_or(0);
        }
        finish_stats(&mut stats, first, last);
        Ok((reason, stats))
    }
}

fn wire_messages(messages: &[PromptMessage]) -> Value {
    Value::Array(
        messages
            .iter()
            .map(|m| {
                let role = match m.role {
                    Role::System => "system",
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                json!({ "role": role, "content": m.content })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_end_in_v1_once() {
        for (given, base) in [
            ("http://gpu:8000", "http://gpu:8000/v1"),
            ("http://gpu:8000/", "http://gpu:8000/v1"),
            ("http://gpu:8000/v1", "http://gpu:8000/v1"),
            (" https://llm.example/v1/ ", "https://llm.example/v1"),
        ] {
            assert_eq!(base_url(given), base, "{given}");
        }
    }

    #[test]
    fn only_this_computer_is_reached_offline() {
        assert!(is_loopback("http://127.0.0.1:8080/v1"));
        assert!(is_loopback("http://localhost:8080/v1"));
        assert!(is_loopback("http://[::1]:8080/v1"));
        assert!(!is_loopback("http://10.0.0.5:8000/v1"));
        assert!(!is_loopback("https://llm.example/v1"));
    }

    #[test]
    fn a_key_never_shows_in_debug_output() {
        let endpoint = RemoteEndpoint {
            url: "http://x".into(),
            model: None,
            api_key: Some("sk-SECRET".into()),
            context_tokens: None,
            offline: false,
        };
        assert!(!format!("{endpoint:?}").contains("SECRET"));
    }
}
