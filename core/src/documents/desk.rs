//! What a user does with a saved document — summarize it, ask a follow-up question — as one
//! function each that every face calls (the app through `Session`, the CLI's `summarize` and
//! `documents ask`).
//!
//! A summary is recorded in the document's conversation once it is written (its parts are saved
//! as they finish, see [`super::summary`]). A follow-up exchange is kept in the document's own conversation as it happens, as chat replies are:
//! the question is saved before the model starts, the answer is saved while it streams (every
//! [`crate::chat::SAVE_INTERVAL`]) and finished with its checked text, so a killed process
//! loses neither.

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::followup::{self, DocumentAnswer, FollowUpError};
use super::saved::{self, SavedDocument};
use super::summary::{self, Summary, SummaryError, SummaryOptions, SummaryProgress};
use crate::chat::Answering;
use crate::engine::{Engine, FinishReason, Role};
use crate::store::{Store, StoreError};

/// A follow-up answered and recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Asked {
    /// The checked answer, what the model was shown, and its measurements.
    pub answer: DocumentAnswer,
    /// The document's conversation, which now ends with this question and answer.
    pub conversation_id: i64,
    /// How the answer ended (`Cancelled` when stopped: the answer is what was written so far).
    pub reason: FinishReason,
}

/// Answers `question` about the saved document `document_id` with `engine`, from its pages and
/// its finished summary (when there is one), streaming text to `on_text`; see the module docs
/// for what is saved when. `context_tokens` caps the context used (default: the engine's).
pub async fn ask(
    store: &Store,
    engine: &Engine,
    document_id: i64,
    question: &str,
    context_tokens: Option<usize>,
    cancel: CancellationToken,
    on_text: impl FnMut(&str),
) -> Result<Asked, FollowUpError> {
    let doc = saved::get(store, document_id).await?;
    let pages = saved::pages(store, document_id).await?;
    let nodes = saved::finished_tree(store, document_id).await?.unwrap_or_default();
    let conversation = conversation_of(store, &doc).await?;
    let answering = Answering::begin(store, conversation, question, &engine.info().name).await?;
    let sink = answering.sink(on_text);
    let writing = followup::ask(engine, &doc.title, &pages, &nodes, question, context_tokens, cancel, sink);
    let result = answering.stream(store, writing).await;
    answering.finish(store, &result, |(answer, reason)| (answer.text.clone(), *reason, answer.stats)).await?;
    let (answer, reason) = result?;
    Ok(Asked { answer, conversation_id: conversation, reason })
}

/// Summarizes the saved document `document_id` with `engine` (`fresh`: drop earlier summaries
/// first; otherwise a finished one is reused and an unfinished one continues), reporting
/// `progress`; `cancel` stops it, keeping finished parts. A newly written summary is recorded
/// in the document's conversation (as "Summarize TITLE" and the summary), where follow-up
/// questions go too.
pub async fn summarize(
    store: &Store,
    engine: &Engine,
    document_id: i64,
    fresh: bool,
    options: SummaryOptions,
    cancel: CancellationToken,
    progress: impl FnMut(SummaryProgress),
) -> Result<Summary, SummaryError> {
    let doc = saved::get(store, document_id).await?;
    if fresh {
        saved::clear_summaries(store, document_id).await?;
    }
    let pages = saved::pages(store, document_id).await?;
    let summary = summary::summarize(store, engine, &doc, &pages, options, cancel, progress).await?;
    if !summary.cached || doc.conversation_id.is_none() {
        let conversation = conversation_of(store, &doc).await?;
        store.add_message(conversation, Role::User, &format!("Summarize {}", doc.title), None).await?;
        let model = summary.nodes.iter().find(|n| n.is_root).map(|n| n.model.clone());
        store.add_message(conversation, Role::Assistant, &summary.text, model.as_deref()).await?;
    }
    Ok(summary)
}

/// The document's conversation, made (and linked) on its first question or summary.
pub async fn conversation_of(store: &Store, doc: &SavedDocument) -> Result<i64, StoreError> {
    if let Some(id) = doc.conversation_id {
        if store.conversation(id).await.is_ok() {
            return Ok(id);
        }
    }
    let conversation = store.create_conversation(&format!("Document: {}", doc.title)).await?;
    saved::set_conversation(store, doc.id, conversation.id).await?;
    Ok(conversation.id)
}
