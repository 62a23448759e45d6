//! One chat turn, end to end.
//!
//! [`run`] takes a [`Turn`] (a new message, or "regenerate the last reply"), puts the
//! conversation's history through the model's chat template, leaves out the oldest turns when
//! they no longer fit the context window (and says how many, in [`ChatEvent::Started`]),
//! streams the reply to the caller and saves it to the store while it streams — at least every
//! [`SAVE_INTERVAL`] — so a process killed mid-reply keeps what was shown.

use std::time::Duration;

use crate::engine::{
    CancellationToken, Engine, EngineError, FinishReason, GenerationEvent, GenerationStats, PromptMessage, Sampling,
};
use crate::store::{Conversation, Message, MessageStatus, ReplyStats, Role, Store, StoreError};

/// How often a streaming reply is written to the store: a process killed at any moment keeps
/// everything it had shown half a second before (one small SQLite write each time).
pub const SAVE_INTERVAL: Duration = Duration::from_millis(250);

/// Errors from a chat turn.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The message is empty.
    #[error("the message is empty; type something to send")]
    EmptyMessage,
    /// Regenerate on a conversation whose last message is not a reply to a user message.
    #[error("there is no reply to regenerate in conversation {0}")]
    NothingToRegenerate(i64),
}

/// Settings for a turn.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatOptions {
    /// How tokens are picked.
    pub sampling: Sampling,
    /// Instructions sent before the history, if any.
    pub system_prompt: Option<String>,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnKind {
    /// Send a new message, in an existing conversation or (with `None`) a new one.
    Send {
        /// The conversation, or `None` to start one titled after the message.
        conversation_id: Option<i64>,
        /// The message.
        text: String,
    },
    /// Replace the last reply of a conversation with a new one.
    Regenerate {
        /// The conversation.
        conversation_id: i64,
    },
}

/// A turn to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// Send or regenerate.
    pub kind: TurnKind,
    /// Settings.
    pub options: ChatOptions,
}

impl Turn {
    /// Send `text` to a conversation (or a new one).
    pub fn new(conversation_id: Option<i64>, text: String, options: ChatOptions) -> Self {
        Self { kind: TurnKind::Send { conversation_id, text }, options }
    }

    /// Regenerate the last reply of a conversation.
    pub fn regenerate(conversation_id: i64, options: ChatOptions) -> Self {
        Self { kind: TurnKind::Regenerate { conversation_id }, options }
    }
}

/// What a turn reports while it runs.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one Started per reply beside hundreds of Text events; boxing it buys nothing"
)]
pub enum ChatEvent {
    /// The reply is about to stream.
    Started {
        /// The conversation (new or existing).
        conversation: Conversation,
        /// The user's message as saved (a new one for Send, the existing one for Regenerate).
        user_message: Message,
        /// The reply being written.
        reply_id: i64,
        /// Earlier messages left out because they no longer fit the context window.
        omitted_messages: usize,
        /// Tokens in the prompt that was sent.
        prompt_tokens: usize,
    },
    /// More reply text.
    Text(String),
}

/// How a turn ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnOutcome {
    /// The conversation.
    pub conversation_id: i64,
    /// The reply as saved.
    pub reply: Message,
    /// Why it ended.
    pub reason: FinishReason,
    /// Earlier messages left out of the prompt.
    pub omitted_messages: usize,
}

/// Runs one turn; see the module documentation.
pub async fn run(
    store: &Store,
    engine: &Engine,
    turn: Turn,
    cancel: CancellationToken,
    mut on_event: impl FnMut(ChatEvent),
) -> Result<TurnOutcome, ChatError> {
    // Work out the history and the user's message first, so that nothing is saved when the
    // message cannot be sent at all (for example because it is too long).
    let (conversation, history, user_text, existing_user) = match &turn.kind {
        TurnKind::Send { conversation_id, text } => {
            if text.trim().is_empty() {
                return Err(ChatError::EmptyMessage);
            }
            let (conversation, history) = match conversation_id {
                Some(id) => (Some(store.conversation(*id).await?), store.messages(*id).await?),
                None => (None, Vec::new()),
            };
            (conversation, history, text.clone(), None)
        }
        TurnKind::Regenerate { conversation_id } => {
            let conversation = store.conversation(*conversation_id).await?;
            let mut history = store.messages(*conversation_id).await?;
            let last_is_reply = history.last().is_some_and(|m| m.role == Role::Assistant);
            if last_is_reply {
                history.pop();
            }
            match history.pop() {
                Some(user) if user.role == Role::User => {
                    (Some(conversation), history, user.content.clone(), Some(user))
                }
                _ => return Err(ChatError::NothingToRegenerate(*conversation_id)),
            }
        }
    };

    let fitted = fit_context(engine, &turn.options, &history, &user_text).await?;

    let conversation = match conversation {
        Some(c) => c,
        None => store.create_conversation(&title_from(&user_text)).await?,
    };
    let user_message = match existing_user {
        Some(user) => {
            // Regenerate: the old reply (if any) goes; the new one takes its place.
            if let Some(old) = store.messages(conversation.id).await?.last() {
                if old.role == Role::Assistant {
                    store.delete_message(old.id).await?;
                }
            }
            user
        }
        None => store.add_message(conversation.id, Role::User, &user_text, None).await?,
    };
    let reply = store.begin_reply(conversation.id, &engine.info().name).await?;
    on_event(ChatEvent::Started {
        conversation: conversation.clone(),
        user_message,
        reply_id: reply.id,
        omitted_messages: fitted.omitted,
        prompt_tokens: fitted.prompt_tokens,
    });

    let mut sampling = turn.options.sampling;
    sampling.max_tokens = fitted.max_reply_tokens;
    let mut events = engine.generate(fitted.messages, sampling, cancel);
    let mut content = String::new();
    // Saved on a clock, not as text arrives: text shown just before the model pauses is saved
    // within SAVE_INTERVAL too (a failed save is tried again at the next tick).
    let mut saves = tokio::time::interval(SAVE_INTERVAL);
    saves.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    saves.tick().await;
    let mut saved_len = 0;
    let result = loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Ok(GenerationEvent::Text(text))) => {
                    content.push_str(&text);
                    on_event(ChatEvent::Text(text));
                }
                Some(Ok(GenerationEvent::Finished { reason, stats })) => break Ok((reason, stats)),
                Some(Err(e)) => break Err(e),
                None => break Err(EngineError::EngineStopped),
            },
            _ = saves.tick() => {
                if content.len() != saved_len && save_streamed(store, reply.id, &content).await {
                    saved_len = content.len();
                }
            }
        }
    };
    match result {
        Ok((reason, mut stats)) => {
            if stats.prompt_tokens == 0 {
                stats.prompt_tokens = fitted.prompt_tokens;
            }
            let status = match reason {
                FinishReason::Cancelled => MessageStatus::Stopped,
                FinishReason::Stop | FinishReason::Length | FinishReason::Repeating => MessageStatus::Complete,
            };
            let reply = finish_reply(store, reply.id, &content, status, reply_stats(&stats), None).await?;
            Ok(TurnOutcome { conversation_id: conversation.id, reply, reason, omitted_messages: fitted.omitted })
        }
        Err(e) => {
            let message = e.to_string();
            // A remote server's connection that broke leaves a reply cut off, not a wrong one.
            let status = if matches!(e, EngineError::RemoteDropped { .. }) {
                MessageStatus::Interrupted
            } else {
                MessageStatus::Failed
            };
            finish_reply(store, reply.id, &content, status, ReplyStats::default(), Some(&message)).await?;
            Err(e.into())
        }
    }
}

/// An answer kept in a conversation as it is written — the way document follow-ups and code
/// answers are recorded: the question is saved before the model starts ([`Answering::begin`]),
/// the text the model streams is saved every [`SAVE_INTERVAL`] while it runs
/// ([`Answering::stream`]), and the reply is finished with its final text, or marked failed
/// with what was written ([`Answering::finish`]), so a killed process loses neither.
pub(crate) struct Answering {
    reply_id: i64,
    shown: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Answering {
    /// Saves `question` in `conversation` and opens the reply `model` is about to write.
    pub(crate) async fn begin(
        store: &Store,
        conversation: i64,
        question: &str,
        model: &str,
    ) -> Result<Self, StoreError> {
        store.add_message(conversation, Role::User, question, None).await?;
        let reply = store.begin_reply(conversation, model).await?;
        Ok(Self { reply_id: reply.id, shown: Default::default() })
    }

    /// The text callback to give the model: it keeps what is streamed and passes it on.
    pub(crate) fn sink(&self, mut on_text: impl FnMut(&str)) -> impl FnMut(&str) {
        let shown = std::sync::Arc::clone(&self.shown);
        move |text| {
            shown.lock().unwrap_or_else(|p| p.into_inner()).push_str(text);
            on_text(text);
        }
    }

    fn shown(&self) -> String {
        self.shown.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs `work` (the model writing through [`Answering::sink`]), saving what it has written
    /// every [`SAVE_INTERVAL`] (only when it grew; a failed save is tried again at the next);
    /// returns what `work` returned.
    pub(crate) async fn stream<T>(&self, store: &Store, work: impl std::future::Future<Output = T>) -> T {
        tokio::pin!(work);
        let mut saves = tokio::time::interval(SAVE_INTERVAL);
        saves.tick().await;
        let mut saved_len = 0;
        loop {
            tokio::select! {
                result = &mut work => return result,
                _ = saves.tick() => {
                    let text = self.shown();
                    if text.len() != saved_len && save_streamed(store, self.reply_id, &text).await {
                        saved_len = text.len();
                    }
                }
            }
        }
    }

    /// Finishes the reply: when `result` is an answer, with the text, ending and measurements
    /// `written` reads from it (stopped when it was cancelled); when it is an error, as failed,
    /// with what was streamed and the error's message. Returns the reply as saved.
    pub(crate) async fn finish<T, E: std::fmt::Display>(
        self,
        store: &Store,
        result: &Result<T, E>,
        written: impl FnOnce(&T) -> (String, FinishReason, GenerationStats),
    ) -> Result<Message, StoreError> {
        match result {
            Ok(answer) => {
                let (text, reason, stats) = written(answer);
                let status =
                    if reason == FinishReason::Cancelled { MessageStatus::Stopped } else { MessageStatus::Complete };
                finish_reply(store, self.reply_id, &text, status, reply_stats(&stats), None).await
            }
            Err(e) => {
                let message = e.to_string();
                let text = self.shown();
                finish_reply(store, self.reply_id, &text, MessageStatus::Failed, ReplyStats::default(), Some(&message))
                    .await
            }
        }
    }
}

/// Saves what a reply has streamed so far. A failed save does not stop the reply: the model
/// goes on, the user goes on reading, and the next save (or the final one) writes the whole
/// text again. Returns whether it was saved.
async fn save_streamed(store: &Store, reply_id: i64, text: &str) -> bool {
    match store.update_streaming(reply_id, text).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(reply_id, "could not save the reply while it streams (will try again): {e}");
            false
        }
    }
}

/// Closes a reply, trying again after a pause when the database refuses (a writer holding it,
/// a disk that is briefly full), so that a reply the user saw is not left `streaming`. When every
/// try fails the error is returned, and the next start marks the reply interrupted.
async fn finish_reply(
    store: &Store,
    reply_id: i64,
    text: &str,
    status: MessageStatus,
    stats: ReplyStats,
    error: Option<&str>,
) -> Result<Message, StoreError> {
    let mut pauses = [Duration::from_millis(200), Duration::from_secs(1)].into_iter();
    loop {
        match store.finish_message(reply_id, text, status, stats, error).await {
            Ok(message) => return Ok(message),
            Err(e @ StoreError::MessageNotFound(_)) => return Err(e),
            Err(e) => match pauses.next() {
                Some(pause) => {
                    tracing::warn!(reply_id, "could not save the finished reply (trying again): {e}");
                    tokio::time::sleep(pause).await;
                }
                None => return Err(e),
            },
        }
    }
}

/// How a reply made for someone else ended, for [`keep_exchange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeEnd {
    /// The reply was finished.
    Complete,
    /// The caller stopped it (or went away) before it finished.
    Stopped,
    /// The engine failed.
    Failed,
}

/// Keeps an exchange made outside the app (a request to `altiplano serve`) as a conversation
/// of its own — the messages as sent, then the reply with its measurements — so history and
/// search cover it. `source` opens the title ("API: …"), which otherwise follows the last user
/// message. Returns the conversation.
pub async fn keep_exchange(
    store: &Store,
    source: &str,
    messages: &[PromptMessage],
    reply: &str,
    model: &str,
    end: ExchangeEnd,
    stats: &GenerationStats,
) -> Result<Conversation, StoreError> {
    let asked = messages.iter().rev().find(|m| m.role == Role::User).map_or("", |m| m.content.as_str());
    let conversation = store.create_conversation(&format!("{source}: {}", title_from(asked))).await?;
    for m in messages {
        store.add_message(conversation.id, m.role, &m.content, None).await?;
    }
    let saved = store.begin_reply(conversation.id, model).await?;
    let (status, error) = match end {
        ExchangeEnd::Complete => (MessageStatus::Complete, None),
        ExchangeEnd::Stopped => (MessageStatus::Stopped, None),
        ExchangeEnd::Failed => (MessageStatus::Failed, Some("the model failed while answering")),
    };
    store.finish_message(saved.id, reply, status, reply_stats(stats), error).await?;
    store.conversation(conversation.id).await
}

/// A reply's measurements as the store keeps them.
pub(crate) fn reply_stats(stats: &GenerationStats) -> ReplyStats {
    ReplyStats {
        prompt_tokens: i64::try_from(stats.prompt_tokens).ok(),
        completion_tokens: i64::try_from(stats.completion_tokens).ok(),
        time_to_first_token_ms: stats.time_to_first_token.and_then(|d| i64::try_from(d.as_millis()).ok()),
        decode_tokens_per_second: stats.decode_tokens_per_second,
    }
}

/// A title for a new conversation: the first line of its first message, shortened.
pub fn title_from(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("New conversation");
    let mut title: String = line.chars().take(60).collect();
    if line.chars().count() > 60 {
        title = title.trim_end().to_string();
        title.push('…');
    }
    title
}

struct Fitted {
    messages: Vec<PromptMessage>,
    omitted: usize,
    prompt_tokens: usize,
    max_reply_tokens: usize,
}

/// Space kept for the reply: the requested maximum, but never more than a quarter of the
/// context, so long histories still get room.
fn reply_reserve(context_length: usize, max_tokens: usize) -> usize {
    max_tokens.min(context_length / 4).max(1)
}

/// Chooses how much history to send: all of it when it fits, otherwise the fewest oldest
/// messages left out (whole turns, so the prompt never starts with a reply).
async fn fit_context(
    engine: &Engine,
    options: &ChatOptions,
    history: &[Message],
    user_text: &str,
) -> Result<Fitted, EngineError> {
    let usable: Vec<&Message> = history
        .iter()
        .filter(|m| m.role != Role::System && m.status != MessageStatus::Failed && !m.content.is_empty())
        .collect();
    let context = engine.usable_context();
    let reserve = reply_reserve(context, options.sampling.max_tokens);
    let limit = context.saturating_sub(reserve);

    let build = |skip: usize| {
        let mut messages = Vec::with_capacity(usable.len() + 2);
        if let Some(system) = options.system_prompt.as_deref().filter(|s| !s.trim().is_empty()) {
            messages.push(PromptMessage::new(Role::System, system));
        }
        messages.extend(usable[skip..].iter().map(|m| PromptMessage::new(m.role, m.content.clone())));
        messages.push(PromptMessage::new(Role::User, user_text));
        messages
    };

    // Points where a turn starts: leaving out everything before one of them keeps whole turns.
    let mut cuts: Vec<usize> = (0..usable.len()).filter(|&i| i == 0 || usable[i].role == Role::User).collect();
    cuts.push(usable.len());

    let full = build(0);
    let tokens = engine.count_prompt_tokens(&full).await?;
    let (messages, omitted, prompt_tokens) = if tokens <= limit {
        (full, 0, tokens)
    } else {
        // Fewer messages never need more tokens, so the smallest cut that fits is found by
        // binary search over the cut points.
        let (mut lo, mut hi) = (1, cuts.len() - 1);
        let last = build(cuts[hi]);
        let last_tokens = engine.count_prompt_tokens(&last).await?;
        if last_tokens > limit {
            return Err(EngineError::PromptTooLong { tokens: last_tokens, limit });
        }
        let mut best = (last, cuts[hi], last_tokens);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let candidate = build(cuts[mid]);
            let n = engine.count_prompt_tokens(&candidate).await?;
            if n <= limit {
                best = (candidate, cuts[mid], n);
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        best
    };
    Ok(Fitted {
        messages,
        omitted,
        prompt_tokens,
        max_reply_tokens: options.sampling.max_tokens.min(context.saturating_sub(prompt_tokens)).max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_come_from_the_first_line() {
        assert_eq!(title_from("\n  Plan a trip to Lima  \nwith details"), "Plan a trip to Lima");
        let long = "a".repeat(100);
        assert_eq!(title_from(&long).chars().count(), 61);
        assert!(title_from(&long).ends_with('…'));
        assert_eq!(title_from("   "), "New conversation");
    }

    #[test]
    fn the_reply_keeps_room_without_eating_the_context() {
        assert_eq!(reply_reserve(8192, 2048), 2048);
        assert_eq!(reply_reserve(2048, 2048), 512);
        assert_eq!(reply_reserve(8192, 100), 100);
    }
}
