//! Sentence vectors of a document's pages, for hybrid follow-up search.
//!
//! The embedding model reads a few hundred tokens at most, so each page is cut into windows of
//! [`WINDOW_WORDS`] words overlapping by a fifth; each window is embedded once per model and
//! kept in `page_vectors`, so a document opened again needs no embedding. A page's similarity
//! to a question is that of its best window.

use std::collections::BTreeMap;
use std::sync::Arc;

use sqlx::Row;
use tokio_util::sync::CancellationToken;

use super::Page;
use crate::engine::embed::{similarity, vector_bytes, vector_from_bytes, EmbedError, Embedder};
use crate::store::{Store, StoreError};

/// Words per window: about 200 tokens, inside the starter model's 256.
pub const WINDOW_WORDS: usize = 150;
/// Words from one window's start to the next one's.
const STRIDE_WORDS: usize = 120;
/// Windows embedded (and saved) at a time, between looks at the cancel token.
const BATCH: usize = 32;

/// Why pages could not be embedded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VectorError {
    /// The embedding model failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stopped; the windows embedded so far are kept.
    #[error("embedding the pages was stopped")]
    Cancelled,
}

impl From<sqlx::Error> for VectorError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(e))
    }
}

/// The windows of a page's text that the model embeds.
pub fn windows(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + WINDOW_WORDS).min(words.len());
        out.push(words[start..end].join(" "));
        if end == words.len() {
            break;
        }
        start += STRIDE_WORDS;
    }
    out
}

/// A document's page vectors under one model.
#[derive(Debug, Clone, Default)]
pub struct PageVectors {
    by_page: BTreeMap<u32, Vec<Vec<f32>>>,
}

impl PageVectors {
    /// Vectors given page by page (each page's windows, normalized).
    pub fn from_pages(by_page: BTreeMap<u32, Vec<Vec<f32>>>) -> Self {
        Self { by_page }
    }

    /// Pages with vectors.
    pub fn pages(&self) -> usize {
        self.by_page.len()
    }

    /// Every page with vectors, most similar to `query` (a normalized vector) first, with its
    /// best window's similarity.
    pub fn ranked(&self, query: &[f32]) -> Vec<(u32, f32)> {
        let mut out: Vec<(u32, f32)> = self
            .by_page
            .iter()
            .map(|(&page, windows)| {
                (page, windows.iter().map(|w| similarity(query, w)).fold(f32::NEG_INFINITY, f32::max))
            })
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }
}

/// The vectors of `document_id`'s `pages` under `embedder`, embedding (and saving) the pages
/// that have none yet; `progress` hears (windows done, windows to do) after each batch.
pub async fn ensure(
    store: &Store,
    document_id: i64,
    pages: &[Page],
    embedder: Arc<Embedder>,
    cancel: &CancellationToken,
    mut progress: impl FnMut(u64, u64),
) -> Result<PageVectors, VectorError> {
    let mut vectors = load(store, document_id, embedder.id()).await?;
    let missing: Vec<(u32, u32, String)> = pages
        .iter()
        .filter(|p| !vectors.by_page.contains_key(&p.number))
        .flat_map(|p| windows(&p.text).into_iter().enumerate().map(|(i, w)| (p.number, i as u32, w)))
        .collect();
    let total = missing.len() as u64;
    let mut done = 0;
    for batch in missing.chunks(BATCH) {
        if cancel.is_cancelled() {
            return Err(VectorError::Cancelled);
        }
        let texts: Vec<String> = batch.iter().map(|(_, _, w)| w.clone()).collect();
        let model = embedder.clone();
        let embedded = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            model.embed(&refs)
        })
        .await
        .map_err(|e| EmbedError::Run(e.to_string()))??;
        let mut tx = store.pool().begin().await?;
        for ((page, part, _), vector) in batch.iter().zip(&embedded) {
            sqlx::query(
                "INSERT OR REPLACE INTO page_vectors (document_id, model, page, part, vector) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(document_id)
            .bind(embedder.id())
            .bind(i64::from(*page))
            .bind(i64::from(*part))
            .bind(vector_bytes(vector))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        for ((page, _, _), vector) in batch.iter().zip(embedded) {
            vectors.by_page.entry(*page).or_default().push(vector);
        }
        done += batch.len() as u64;
        progress(done, total);
    }
    Ok(vectors)
}

/// The saved vectors of a document under the model `model_id`.
pub async fn load(store: &Store, document_id: i64, model_id: &str) -> Result<PageVectors, VectorError> {
    let rows =
        sqlx::query("SELECT page, vector FROM page_vectors WHERE document_id = ? AND model = ? ORDER BY page, part")
            .bind(document_id)
            .bind(model_id)
            .fetch_all(store.pool())
            .await?;
    let mut vectors = PageVectors::default();
    for row in rows {
        let page: i64 = row.try_get("page")?;
        let bytes: Vec<u8> = row.try_get("vector")?;
        vectors.by_page.entry(u32::try_from(page).unwrap_or(0)).or_default().push(vector_from_bytes(&bytes));
    }
    Ok(vectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_every_word_and_overlap() {
        let text: String = (0..400).map(|i| format!("w{i} ")).collect();
        let parts = windows(&text);
        assert_eq!(parts.len(), 4, "0–149, 120–269, 240–389, 360–399");
        assert!(parts[0].starts_with("w0 ") && parts[0].ends_with("w149"));
        assert!(parts[1].starts_with("w120 "));
        assert!(parts.last().is_some_and(|p| p.ends_with("w399")));
        assert!(windows("  \n ").is_empty());
        assert_eq!(windows("one page of few words"), vec!["one page of few words"]);
    }
}
