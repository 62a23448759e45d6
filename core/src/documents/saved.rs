//! Documents kept in the database: their pages and the nodes of their summary trees, keyed by
//! the SHA-256 of the file, so a file opened again needs no reading and no model.

use serde::Serialize;
use sqlx::Row;

use super::{Document, Page};
use crate::store::{now_ms, Store, StoreError};

/// A document in the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SavedDocument {
    /// Row id.
    pub id: i64,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    /// The file name.
    pub title: String,
    /// Where it was last opened from.
    pub path: String,
    /// Pages.
    pub page_count: u32,
    /// What the reader should know (pages without text, ...).
    pub warnings: Vec<String>,
    /// The conversation with its summary and follow-up questions, once there is one.
    pub conversation_id: Option<i64>,
}

/// One node of a summary tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SummaryNode {
    /// 0 for a chunk of the text; n + 1 for a merge of level-n nodes.
    pub level: u32,
    /// Order within the level.
    pub position: u32,
    /// First page covered.
    pub first_page: u32,
    /// Last page covered.
    pub last_page: u32,
    /// The summary, with `[p. N]` citations.
    pub text: String,
    /// Citations removed because they named a page outside this node.
    pub removed_citations: u32,
    /// The final summary.
    pub is_root: bool,
    /// The model that wrote it.
    pub model: String,
}

fn document_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<SavedDocument, StoreError> {
    let warnings: String = row.try_get("warnings")?;
    Ok(SavedDocument {
        id: row.try_get("id")?,
        sha256: row.try_get("sha256")?,
        title: row.try_get("title")?,
        path: row.try_get("path")?,
        page_count: row.try_get::<i64, _>("page_count")?.try_into().unwrap_or(0),
        warnings: serde_json::from_str(&warnings).unwrap_or_default(),
        conversation_id: row.try_get("conversation_id")?,
    })
}

fn node_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<SummaryNode, StoreError> {
    let int = |name: &str| -> Result<u32, StoreError> { Ok(row.try_get::<i64, _>(name)?.try_into().unwrap_or(0)) };
    Ok(SummaryNode {
        level: int("level")?,
        position: int("position")?,
        first_page: int("first_page")?,
        last_page: int("last_page")?,
        text: row.try_get("text")?,
        removed_citations: int("removed_citations")?,
        is_root: row.try_get::<i64, _>("is_root")? != 0,
        model: row.try_get("model")?,
    })
}

/// The document with these bytes, if it was read before; its `path` and open time are updated.
pub async fn find(store: &Store, sha256: &str, path: &str) -> Result<Option<SavedDocument>, StoreError> {
    sqlx::query("UPDATE documents SET path = ?, opened_at = ? WHERE sha256 = ?")
        .bind(path)
        .bind(now_ms())
        .bind(sha256)
        .execute(store.pool())
        .await?;
    let row = sqlx::query("SELECT * FROM documents WHERE sha256 = ?").bind(sha256).fetch_optional(store.pool()).await?;
    row.as_ref().map(document_from_row).transpose()
}

/// Saves a freshly read document and its pages.
pub async fn insert(store: &Store, sha256: &str, title: &str, doc: &Document) -> Result<SavedDocument, StoreError> {
    let mut tx = store.pool().begin().await?;
    let now = now_ms();
    let warnings = serde_json::to_string(&doc.warnings).unwrap_or_else(|_| "[]".into());
    let id = sqlx::query(
        "INSERT INTO documents (sha256, title, path, page_count, warnings, created_at, opened_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(sha256)
    .bind(title)
    .bind(&doc.file)
    .bind(doc.pages.len() as i64)
    .bind(&warnings)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .last_insert_rowid();
    for page in &doc.pages {
        sqlx::query("INSERT INTO document_pages (document_id, number, text) VALUES (?, ?, ?)")
            .bind(id)
            .bind(i64::from(page.number))
            .bind(&page.text)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    get(store, id).await
}

/// One document.
pub async fn get(store: &Store, id: i64) -> Result<SavedDocument, StoreError> {
    let row = sqlx::query("SELECT * FROM documents WHERE id = ?")
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::DocumentNotFound(id))?;
    document_from_row(&row)
}

/// Documents, most recently opened first.
pub async fn list(store: &Store) -> Result<Vec<SavedDocument>, StoreError> {
    let rows = sqlx::query("SELECT * FROM documents ORDER BY opened_at DESC, id DESC").fetch_all(store.pool()).await?;
    rows.iter().map(document_from_row).collect()
}

/// Forgets a document, its pages and its summaries (its conversation stays).
pub async fn delete(store: &Store, id: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM documents WHERE id = ?").bind(id).execute(store.pool()).await?;
    Ok(())
}

/// All pages, in order.
pub async fn pages(store: &Store, id: i64) -> Result<Vec<Page>, StoreError> {
    let rows = sqlx::query("SELECT number, text FROM document_pages WHERE document_id = ? ORDER BY number")
        .bind(id)
        .fetch_all(store.pool())
        .await?;
    rows.iter()
        .map(|r| Ok(Page { number: r.try_get::<i64, _>("number")?.try_into().unwrap_or(0), text: r.try_get("text")? }))
        .collect()
}

/// Links the document to its conversation.
pub async fn set_conversation(store: &Store, id: i64, conversation_id: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE documents SET conversation_id = ? WHERE id = ?")
        .bind(conversation_id)
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// The nodes of one plan's tree, by level and position.
pub async fn nodes(store: &Store, id: i64, plan: &str) -> Result<Vec<SummaryNode>, StoreError> {
    let rows = sqlx::query("SELECT * FROM summary_nodes WHERE document_id = ? AND plan = ? ORDER BY level, position")
        .bind(id)
        .bind(plan)
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(node_from_row).collect()
}

/// The newest finished summary tree of the document, whatever plan made it.
pub async fn finished_tree(store: &Store, id: i64) -> Result<Option<Vec<SummaryNode>>, StoreError> {
    let plan: Option<String> = sqlx::query_scalar(
        "SELECT plan FROM summary_nodes WHERE document_id = ? AND is_root = 1 ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(id)
    .fetch_optional(store.pool())
    .await?;
    match plan {
        Some(plan) => Ok(Some(nodes(store, id, &plan).await?)),
        None => Ok(None),
    }
}

/// Saves a finished node (replacing one at the same place, which a changed plan could leave).
pub async fn save_node(store: &Store, id: i64, plan: &str, node: &SummaryNode) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT OR REPLACE INTO summary_nodes
         (document_id, plan, level, position, first_page, last_page, text, removed_citations, is_root, model, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(plan)
    .bind(i64::from(node.level))
    .bind(i64::from(node.position))
    .bind(i64::from(node.first_page))
    .bind(i64::from(node.last_page))
    .bind(&node.text)
    .bind(i64::from(node.removed_citations))
    .bind(i64::from(node.is_root))
    .bind(&node.model)
    .bind(now_ms())
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Drops every summary of the document (to summarize again from scratch).
pub async fn clear_summaries(store: &Store, id: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM summary_nodes WHERE document_id = ?").bind(id).execute(store.pool()).await?;
    Ok(())
}
