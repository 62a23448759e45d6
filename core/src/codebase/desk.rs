//! A question about a code folder as one function every face calls (the app through
//! `Session::ask_code`, the CLI's `code ask`), recorded in the folder's own conversation.
//!
//! As with chat replies and document follow-ups, the question is saved before the model starts
//! and the answer while it streams (every [`crate::chat::SAVE_INTERVAL`]); the finished answer
//! is saved with its checked citations and the excerpts the model was shown, so a killed
//! process loses neither the question nor what was written of the answer.

use tokio_util::sync::CancellationToken;

use super::answer::{self, AskError, CodeAnswer};
use super::CodeIndex;
use crate::chat::Answering;
use crate::engine::{Engine, Sampling};
use crate::store::{Store, StoreError};

/// A code question answered and recorded.
#[derive(Debug, Clone)]
pub struct Asked {
    /// The checked answer, what the model was shown, how it ended and its measurements.
    pub answer: CodeAnswer,
    /// The folder's conversation, which now ends with this question and answer.
    pub conversation_id: i64,
}

/// Why a code question could not be answered or kept.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    /// The index or the model failed.
    #[error(transparent)]
    Ask(#[from] AskError),
    /// The conversation could not be written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Answers `question` about the folder `index` with `engine`, streaming text to `on_text`; see
/// the module docs for what is saved when.
pub async fn ask(
    store: &Store,
    index: &CodeIndex,
    engine: &Engine,
    question: &str,
    sampling: Sampling,
    cancel: CancellationToken,
    on_text: impl FnMut(&str),
) -> Result<Asked, DeskError> {
    let conversation = conversation_of(store, index).await?;
    let answering = Answering::begin(store, conversation, question, &engine.info().name).await?;
    let writing = answer::ask(index, engine, question, sampling, cancel, answering.sink(on_text));
    let result = answering.stream(store, writing).await;
    answering.finish(store, &result, |answer| (transcript(answer), answer.reason, answer.stats)).await?;
    Ok(Asked { answer: result?, conversation_id: conversation })
}

/// The answer as the conversation keeps it: the checked text, then the excerpts shown.
fn transcript(answer: &CodeAnswer) -> String {
    let mut saved = answer.answer.text.clone();
    if !answer.context.excerpts.is_empty() {
        saved.push_str("\n\nSources shown to the model:\n");
        for e in &answer.context.excerpts {
            saved.push_str(&format!("- {}:{}-{}\n", e.path, e.start_line, e.end_line));
        }
    }
    saved
}

/// The folder's conversation, made (and remembered in the settings) on its first question.
pub async fn conversation_of(store: &Store, index: &CodeIndex) -> Result<i64, StoreError> {
    let key = format!("code.conversation.{}", index.root().display());
    if let Some(id) = store.setting(&key).await?.and_then(|v| v.parse::<i64>().ok()) {
        if store.conversation(id).await.is_ok() {
            return Ok(id);
        }
    }
    let name = index.root().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let conversation = store.create_conversation(&format!("Code: {name}")).await?;
    store.set_setting(&key, &conversation.id.to_string()).await?;
    Ok(conversation.id)
}
