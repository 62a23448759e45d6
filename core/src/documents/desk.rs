//! What a user does with a saved document — summarize it, ask a follow-up question — as one
//! function each that every face calls (the app through `Session`, the CLI's `summarize` and
//! `documents ask`).
//!
//! A summary is recorded in the document's conversation once it is written (its parts are saved
//! as they finish, see [`super::summary`]). A follow-up exchange is kept in the document's own conversation as it happens, as chat replies are:
//! the question is saved before the model starts, the answer is saved while it streams (every
//! [`crate::chat::SAVE_INTERVAL`]) and finished with its checked text, so a killed process
//! loses neither.

use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::followup::{self, Dense, DocumentAnswer, FollowUpError, PageIndex, PageIndexes};
use super::saved::{self, SavedDocument};
use super::summary::{self, Summary, SummaryError, SummaryOptions, SummaryProgress};
use super::vectors::{self, PageVectors, VectorError};
use super::Page;
use crate::chat::Answering;
use crate::codebase::{KeywordsOnly, Retrieval};
use crate::engine::embed::Embedder;
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

/// How follow-up questions find pages: the embedding model for hybrid search (`None`: keywords
/// only), who hears about pages being embedded (windows done, windows to do), and where the
/// documents' keyword indexes are kept between questions (`None`: built for this one).
pub struct Search<'a, P: FnMut(u64, u64)> {
    /// The embedding model.
    pub embedder: Option<Arc<Embedder>>,
    /// Progress of embedding pages that have no vectors yet.
    pub on_embed: P,
    /// The indexes kept from earlier questions.
    pub indexes: Option<&'a PageIndexes>,
}

impl Search<'static, fn(u64, u64)> {
    /// Keywords only, nothing kept.
    pub fn keywords() -> Self {
        Self { embedder: None, on_embed: |_, _| {}, indexes: None }
    }
}

/// Answers `question` about the saved document `document_id` with `engine`, from its pages and
/// its finished summary (when there is one), streaming text to `on_text`; see the module docs
/// for what is saved when. Pages without vectors are embedded first when `search` has a model.
/// `context_tokens` caps the context used (default: the engine's).
#[allow(clippy::too_many_arguments, reason = "one user action, each argument a part of it")]
pub async fn ask(
    store: &Store,
    engine: &Engine,
    document_id: i64,
    question: &str,
    search: Search<'_, impl FnMut(u64, u64)>,
    context_tokens: Option<usize>,
    cancel: CancellationToken,
    on_text: impl FnMut(&str),
) -> Result<Asked, FollowUpError> {
    let doc = saved::get(store, document_id).await?;
    let pages = saved::pages(store, document_id).await?;
    let nodes = saved::finished_tree(store, document_id).await?.unwrap_or_default();
    let index = match search.indexes {
        Some(kept) => kept.get(document_id, &pages, &nodes)?,
        None => Arc::new(PageIndex::build(&pages, &nodes)?),
    };
    let embedder = search.embedder.clone();
    let (dense, retrieval) = page_search(store, document_id, &pages, question, search, &cancel).await?;
    // The summary's nodes by the same model, when the pages have vectors.
    let node_vectors = match (&dense, embedder) {
        (Some(_), Some(model)) if nodes.iter().any(|n| !n.is_root) => {
            let index = Arc::clone(&index);
            tokio::task::spawn_blocking(move || index.node_vectors(&model))
                .await
                .map_err(|e| e.to_string())
                .and_then(|made| made.map_err(|e| e.to_string()))
                .inspect_err(|e| tracing::warn!("the summary's parts are searched by keywords only: {e}"))
                .ok()
        }
        _ => None,
    };
    let conversation = conversation_of(store, &doc).await?;
    let answering = Answering::begin(store, conversation, question, &engine.info().name).await?;
    let sink = answering.sink(on_text);
    let dense_ref = dense.as_ref().map(|(query, pages)| Dense { query, pages, nodes: node_vectors.as_deref() });
    let writing = followup::ask(
        engine,
        &doc.title,
        &index,
        &nodes,
        question,
        (dense_ref, retrieval),
        context_tokens,
        cancel,
        sink,
    );
    let result = answering.stream(store, writing).await;
    answering.finish(store, &result, |(answer, reason)| (answer.text.clone(), *reason, answer.stats)).await?;
    let (answer, reason) = result?;
    Ok(Asked { answer, conversation_id: conversation, reason })
}

/// The question's vector and the pages' (embedding the pages that have none), or why the
/// search is by keywords only. A model that fails leaves keywords; a stop is a stop.
async fn page_search(
    store: &Store,
    document_id: i64,
    pages: &[Page],
    question: &str,
    search: Search<'_, impl FnMut(u64, u64)>,
    cancel: &CancellationToken,
) -> Result<(Option<(Vec<f32>, PageVectors)>, Retrieval), FollowUpError> {
    let Some(embedder) = search.embedder else {
        return Ok((None, Retrieval::Keywords { reason: KeywordsOnly::NoModel }));
    };
    let keywords = |e: &dyn std::fmt::Display| {
        tracing::warn!("searching the document by keywords only: {e}");
        Ok((None, Retrieval::Keywords { reason: KeywordsOnly::failed(e) }))
    };
    let vectors = match vectors::ensure(store, document_id, pages, embedder.clone(), cancel, search.on_embed).await {
        Ok(v) => v,
        Err(VectorError::Cancelled) => return Err(FollowUpError::Stopped),
        Err(VectorError::Store(e)) => return Err(e.into()),
        Err(e) => return keywords(&e),
    };
    let model = embedder.clone();
    let text = question.to_owned();
    let query = match tokio::task::spawn_blocking(move || model.embed_query(&text)).await {
        Ok(Ok(v)) if !v.is_empty() => v,
        Ok(Ok(_)) => return keywords(&"the embedding model returned no vector"),
        Ok(Err(e)) => return keywords(&e),
        Err(e) => return keywords(&e),
    };
    Ok((Some((query, vectors)), Retrieval::Hybrid { model: embedder.name().to_owned() }))
}

/// Summarizes the saved document `document_id` with `engine` (`fresh`: drop earlier summaries
/// first; otherwise a finished one is reused and an unfinished one continues), reporting
/// `progress`; `cancel` stops it, keeping finished parts. A newly written summary is recorded
/// in the document's conversation (as "Summarize TITLE" and the summary), where follow-up
/// questions go too.
#[allow(clippy::too_many_arguments, reason = "one user action, each argument a part of it")]
pub async fn summarize(
    store: &Store,
    engine: &Engine,
    document_id: i64,
    fresh: bool,
    options: SummaryOptions,
    embedder: Option<Arc<Embedder>>,
    cancel: CancellationToken,
    mut progress: impl FnMut(SummaryProgress),
) -> Result<Summary, SummaryError> {
    let doc = saved::get(store, document_id).await?;
    if fresh {
        saved::clear_summaries(store, document_id).await?;
    }
    let pages = saved::pages(store, document_id).await?;
    // The pages get their vectors before a first summary, so follow-ups are hybrid at once (a
    // model that fails only leaves them to keywords).
    if let Some(embedder) = embedder {
        if saved::finished_tree(store, document_id).await?.is_none() {
            let embedding = |done: u64, total: u64| progress(SummaryProgress::Embedding { done, total });
            match vectors::ensure(store, document_id, &pages, embedder, &cancel, embedding).await {
                Ok(_) => {}
                Err(VectorError::Cancelled) => return Err(SummaryError::Cancelled { done: 0, steps: 0 }),
                Err(VectorError::Store(e)) => return Err(e.into()),
                Err(e) => tracing::warn!("the pages were not embedded; follow-ups use keywords: {e}"),
            }
        }
    }
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
