//! What a reply is asked with ([`Sampling`], [`PromptMessage`]) and what it gives
//! ([`GenerationEvent`], [`GenerationStats`], [`FinishReason`], [`Completion`], [`Perplexity`]).

use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions to the model.
    System,
    /// The person.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The name the chat template and the store use.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// A role name that is none of `system`, `user`, `assistant`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown message role {0:?}")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "system" => Ok(Role::System),
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

/// The result of [`Engine::perplexity`](super::Engine::perplexity).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Perplexity {
    /// exp(mean negative log-likelihood per predicted token).
    pub perplexity: f64,
    /// Tokens of the text.
    pub tokens: usize,
}

/// How tokens are picked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Softmax temperature; ignored when `greedy`.
    pub temperature: f64,
    /// Nucleus sampling mass; ignored when `greedy`.
    pub top_p: f64,
    /// Always pick the most likely token (reproducible; for tests and benchmarks).
    pub greedy: bool,
    /// Upper bound on the reply's length in tokens.
    pub max_tokens: usize,
    /// Penalty on tokens of the last 64 generated (1.0: none); also applied when `greedy`.
    pub repetition_penalty: f32,
    /// DRY ("don't repeat yourself") penalty on repeated sequences of tokens (0: none;
    /// llama.cpp only).
    pub dry_multiplier: f32,
    /// Seed of the random choices; ignored when `greedy`. `None`: on llama.cpp the next of a
    /// fixed sequence (each reply draws differently, and a session's replies repeat from run
    /// to run, as mistral.rs's once-seeded sampler does).
    pub seed: Option<u32>,
}

impl Default for Sampling {
    /// Meta's recommended chat settings for Llama 3.1 (temperature 0.6, top-p 0.9), with a
    /// light repetition penalty (1.1, as Ollama's) and DRY (0.8, its authors' suggestion), which
    /// keep small models from looping.
    fn default() -> Self {
        Self {
            temperature: 0.6,
            top_p: 0.9,
            greedy: false,
            max_tokens: 2048,
            repetition_penalty: 1.1,
            dry_multiplier: 0.8,
            seed: None,
        }
    }
}

impl Sampling {
    /// Greedy decoding with no penalties: the same prompt always gives the same reply, the
    /// same on both engines.
    pub fn greedy() -> Self {
        Self { greedy: true, repetition_penalty: 1.0, dry_multiplier: 0.0, ..Self::default() }
    }
}

/// One message of the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptMessage {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
}

impl PromptMessage {
    /// A message.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self { role, content: content.into() }
    }
}

/// Why a reply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model finished its answer.
    Stop,
    /// The reply reached `max_tokens` or the end of the context.
    Length,
    /// The caller cancelled.
    Cancelled,
    /// The reply kept repeating the same text and was stopped.
    Repeating,
}

/// Measurements of one reply.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct GenerationStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// From the request to the first text.
    pub time_to_first_token: Option<Duration>,
    /// Tokens per second after the first token.
    pub decode_tokens_per_second: Option<f64>,
    /// Tokens at the start of the prompt whose KV cache was kept from an earlier reply and not
    /// computed again (llama.cpp; mistral.rs's prefix cache does not say).
    pub reused_prompt_tokens: usize,
}

/// One step of a streamed reply.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEvent {
    /// More text.
    Text(String),
    /// The reply ended.
    Finished {
        /// Why.
        reason: FinishReason,
        /// Measurements.
        stats: GenerationStats,
    },
}

/// A whole reply, from [`Engine::complete`](super::Engine::complete).
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The text.
    pub text: String,
    /// Why it ended.
    pub reason: FinishReason,
    /// Measurements.
    pub stats: GenerationStats,
}

pub(super) fn finish_stats(stats: &mut GenerationStats, first: Option<Instant>, last: Instant) {
    if let Some(first) = first {
        let decode = last.saturating_duration_since(first).as_secs_f64();
        // The first token is part of prompt processing; decode speed counts the ones after it.
        if decode > 0.0 && stats.completion_tokens > 1 {
            stats.decode_tokens_per_second = Some((stats.completion_tokens - 1) as f64 / decode);
        }
    }
}
