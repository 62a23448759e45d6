//! Conversations and messages in SQLite.
//!
//! One file in the data directory, opened in WAL mode, schema managed by the migrations in
//! `core/migrations` (embedded with `sqlx::migrate!`). Messages are indexed with FTS5 for
//! search. An assistant reply is written while it streams (see [`crate::chat`]); a reply left in
//! the `streaming` state by a process that died is marked `interrupted` the next time the store
//! opens, with everything that had been saved kept. Each process that opens the store holds a
//! lock file (`writers/` beside the database) for as long as it runs and signs its replies with
//! it, so a second process (the CLI while the app streams) leaves the replies of a live one
//! alone: the operating system releases the lock of a process that died, however it died.
//!
//! ```no_run
//! # async fn demo() -> Result<(), altiplano_core::store::StoreError> {
//! use altiplano_core::store::{Role, Store};
//! let store = Store::open("chat.sqlite3".as_ref()).await?;
//! let conversation = store.create_conversation("Trip planning").await?;
//! store.add_message(conversation.id, Role::User, "Where should we go?", None).await?;
//! let hits = store.search("where", 10).await?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

pub use crate::engine::Role;
use crate::engine::UnknownRole;

/// Marks the start of a matched term in [`SearchHit::snippet`] (a private-use character, so it
/// never collides with message text and never reads as markup).
pub const MATCH_START: char = '\u{E000}';
/// Marks the end of a matched term in [`SearchHit::snippet`].
pub const MATCH_END: char = '\u{E001}';

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("cannot open the conversation database {path}: {source}")]
    Open {
        /// The database file.
        path: String,
        /// Why.
        source: sqlx::Error,
    },
    /// The schema could not be brought up to date.
    #[error("cannot update the conversation database schema: {0}; the file may come from a newer Altiplano")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// No conversation has this id.
    #[error("conversation {0} does not exist")]
    ConversationNotFound(i64),
    /// No document has this id.
    #[error("document {0} does not exist; open the file again")]
    DocumentNotFound(i64),
    /// No message has this id.
    #[error("message {0} does not exist")]
    MessageNotFound(i64),
    /// A title that is empty after trimming.
    #[error("a conversation title cannot be empty")]
    EmptyTitle,
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Being written by the model right now.
    Streaming,
    /// Finished normally.
    Complete,
    /// Stopped by the user; the text is what had been generated.
    Stopped,
    /// The process ended while the reply streamed; the text is what had been saved.
    Interrupted,
    /// The engine failed; see [`Message::error`].
    Failed,
}

impl MessageStatus {
    fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Streaming => "streaming",
            MessageStatus::Complete => "complete",
            MessageStatus::Stopped => "stopped",
            MessageStatus::Interrupted => "interrupted",
            MessageStatus::Failed => "failed",
        }
    }
}

impl FromStr for MessageStatus {
    type Err = sqlx::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "streaming" => Ok(MessageStatus::Streaming),
            "complete" => Ok(MessageStatus::Complete),
            "stopped" => Ok(MessageStatus::Stopped),
            "interrupted" => Ok(MessageStatus::Interrupted),
            "failed" => Ok(MessageStatus::Failed),
            other => Err(sqlx::Error::Decode(format!("unknown message status {other:?}").into())),
        }
    }
}

/// A conversation: a titled list of messages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversation {
    /// Row id.
    pub id: i64,
    /// Title shown in the sidebar.
    pub title: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds of the last change (new message, rename).
    pub updated_at: i64,
}

/// Measurements of one generated reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplyStats {
    /// Tokens in the prompt (history through the chat template).
    pub prompt_tokens: Option<i64>,
    /// Tokens generated.
    pub completion_tokens: Option<i64>,
    /// From sending the request to the first generated text.
    pub time_to_first_token_ms: Option<i64>,
    /// Generated tokens per second after the first one.
    pub decode_tokens_per_second: Option<f64>,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// Row id.
    pub id: i64,
    /// The conversation it belongs to.
    pub conversation_id: i64,
    /// Who wrote it.
    pub role: Role,
    /// Its text (Markdown for assistant replies).
    pub content: String,
    /// Where it stands.
    pub status: MessageStatus,
    /// The model that wrote it (assistant messages).
    pub model: Option<String>,
    /// Measurements (assistant messages).
    pub stats: ReplyStats,
    /// What went wrong, for failed replies.
    pub error: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// A message that matched a search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    /// The conversation holding the message.
    pub conversation_id: i64,
    /// Its title.
    pub conversation_title: String,
    /// The message.
    pub message_id: i64,
    /// Who wrote it.
    pub role: Role,
    /// A short excerpt with matched terms between [`MATCH_START`] and [`MATCH_END`].
    pub snippet: String,
}

/// The conversation database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    writer: Arc<Writer>,
    /// The folder the database file is in (the data folder).
    folder: Arc<PathBuf>,
}

/// This process's claim on the replies it streams: an exclusively locked file named after it,
/// released by the operating system when the process ends, and removed when the store is dropped.
#[derive(Debug)]
struct Writer {
    id: String,
    path: PathBuf,
    lock: Option<std::fs::File>,
}

impl Writer {
    /// Claims a new writer id in `dir`. Where no lock can be taken (a read-only or odd file
    /// system) the replies are still signed; others then treat them as a dead process's.
    fn claim(dir: &Path) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let id = format!("{}-{nanos}", std::process::id());
        let path = dir.join(format!("{id}.lock"));
        let lock = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::OpenOptions::new().write(true).create_new(true).open(&path))
            .ok()
            .filter(|file| file.try_lock().is_ok());
        if lock.is_none() {
            tracing::warn!(path = %path.display(), "cannot lock the writer file; another process may mark this one's replies interrupted");
        }
        Self { id, path, lock }
    }

    /// Whether the process that signed `id` is still running: its lock file exists and is held.
    fn alive(dir: &Path, id: &str) -> bool {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return false;
        }
        match std::fs::File::open(dir.join(format!("{id}.lock"))) {
            Ok(file) => matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
            Err(_) => false,
        }
    }

    /// Removes the lock files of processes that ended without removing theirs (killed), once
    /// they are a minute old (a younger one may belong to a process still taking its lock).
    fn sweep(dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(60));
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            if old && path.extension().is_some_and(|e| e == "lock") && !Self::alive(dir, name) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.lock.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Store {
    /// The connection pool, for the other modules that keep tables in this database
    /// ([`crate::library`], [`crate::download::queue`]).
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

const MESSAGE_COLUMNS: &str = "id, conversation_id, role, content, status, model, prompt_tokens, \
     completion_tokens, time_to_first_token_ms, decode_tokens_per_second, error, created_at, updated_at";

impl Store {
    /// The folder the database file is in: the data folder, where caches beside it go.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Opens (creating if needed) the database at `path`, brings its schema up to date and marks
    /// replies left streaming by a process that died as interrupted.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let parent = path.parent().unwrap_or(Path::new("."));
        // A missing parent folder gives SQLite's unhelpful "unable to open database file".
        let _ = std::fs::create_dir_all(parent);
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable across application crashes in WAL mode; only a power loss can
            // drop the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let writers = parent.join("writers");
        let store = Self { pool, writer: Arc::new(Writer::claim(&writers)), folder: Arc::new(parent.to_path_buf()) };
        store.recover_interrupted(&writers).await?;
        Writer::sweep(&writers);
        Ok(store)
    }

    /// Marks interrupted the streaming replies whose writer is no longer running.
    async fn recover_interrupted(&self, writers: &Path) -> Result<(), StoreError> {
        let signed: Vec<Option<String>> =
            sqlx::query_scalar("SELECT DISTINCT writer FROM messages WHERE status = 'streaming'")
                .fetch_all(&self.pool)
                .await?;
        for writer in signed {
            if writer.as_deref().is_some_and(|id| Writer::alive(writers, id)) {
                continue;
            }
            sqlx::query("UPDATE messages SET status = 'interrupted' WHERE status = 'streaming' AND writer IS ?")
                .bind(writer)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Starts a conversation.
    pub async fn create_conversation(&self, title: &str) -> Result<Conversation, StoreError> {
        let title = clean_title(title)?;
        let now = now_ms();
        let id = sqlx::query("INSERT INTO conversations (title, created_at, updated_at) VALUES (?, ?, ?)")
            .bind(&title)
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await?
            .last_insert_rowid();
        Ok(Conversation { id, title, created_at: now, updated_at: now })
    }

    /// All conversations, most recently changed first.
    pub async fn list_conversations(&self) -> Result<Vec<Conversation>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, title, created_at, updated_at FROM conversations ORDER BY updated_at DESC, id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(conversation_from_row).collect()
    }

    /// One conversation.
    pub async fn conversation(&self, id: i64) -> Result<Conversation, StoreError> {
        let row = sqlx::query("SELECT id, title, created_at, updated_at FROM conversations WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::ConversationNotFound(id))?;
        conversation_from_row(&row)
    }

    /// Renames a conversation.
    pub async fn rename_conversation(&self, id: i64, title: &str) -> Result<Conversation, StoreError> {
        let title = clean_title(title)?;
        let changed = sqlx::query("UPDATE conversations SET title = ?, updated_at = ? WHERE id = ?")
            .bind(&title)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if changed == 0 {
            return Err(StoreError::ConversationNotFound(id));
        }
        self.conversation(id).await
    }

    /// Deletes a conversation and all its messages.
    pub async fn delete_conversation(&self, id: i64) -> Result<(), StoreError> {
        let changed =
            sqlx::query("DELETE FROM conversations WHERE id = ?").bind(id).execute(&self.pool).await?.rows_affected();
        if changed == 0 {
            return Err(StoreError::ConversationNotFound(id));
        }
        Ok(())
    }

    /// The messages of a conversation, oldest first.
    pub async fn messages(&self, conversation_id: i64) -> Result<Vec<Message>, StoreError> {
        self.conversation(conversation_id).await?;
        let rows =
            sqlx::query(&format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY id"))
                .bind(conversation_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// One message.
    pub async fn message(&self, id: i64) -> Result<Message, StoreError> {
        let row = sqlx::query(&format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::MessageNotFound(id))?;
        message_from_row(&row)
    }

    /// Adds a finished message (a user's, or a complete assistant reply).
    pub async fn add_message(
        &self,
        conversation_id: i64,
        role: Role,
        content: &str,
        model: Option<&str>,
    ) -> Result<Message, StoreError> {
        self.insert_message(conversation_id, role, content, MessageStatus::Complete, model).await
    }

    /// Adds an empty assistant reply in the `streaming` state, to be filled with
    /// [`Store::update_streaming`] and closed with [`Store::finish_message`].
    pub async fn begin_reply(&self, conversation_id: i64, model: &str) -> Result<Message, StoreError> {
        self.insert_message(conversation_id, Role::Assistant, "", MessageStatus::Streaming, Some(model)).await
    }

    async fn insert_message(
        &self,
        conversation_id: i64,
        role: Role,
        content: &str,
        status: MessageStatus,
        model: Option<&str>,
    ) -> Result<Message, StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let touched = sqlx::query("UPDATE conversations SET updated_at = ? WHERE id = ?")
            .bind(now)
            .bind(conversation_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if touched == 0 {
            return Err(StoreError::ConversationNotFound(conversation_id));
        }
        let id = sqlx::query(
            "INSERT INTO messages (conversation_id, role, content, status, model, writer, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(conversation_id)
        .bind(role.as_str())
        .bind(content)
        .bind(status.as_str())
        .bind(model)
        .bind((status == MessageStatus::Streaming).then_some(self.writer.id.as_str()))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        tx.commit().await?;
        self.message(id).await
    }

    /// Saves the text streamed so far into a reply.
    pub async fn update_streaming(&self, message_id: i64, content: &str) -> Result<(), StoreError> {
        let changed = sqlx::query("UPDATE messages SET content = ?, updated_at = ? WHERE id = ?")
            .bind(content)
            .bind(now_ms())
            .bind(message_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if changed == 0 {
            return Err(StoreError::MessageNotFound(message_id));
        }
        Ok(())
    }

    /// Closes a reply: its final text, status, measurements and error.
    pub async fn finish_message(
        &self,
        message_id: i64,
        content: &str,
        status: MessageStatus,
        stats: ReplyStats,
        error: Option<&str>,
    ) -> Result<Message, StoreError> {
        let changed = sqlx::query(
            "UPDATE messages SET content = ?, status = ?, prompt_tokens = ?, completion_tokens = ?, \
             time_to_first_token_ms = ?, decode_tokens_per_second = ?, error = ?, updated_at = ? WHERE id = ?",
        )
        .bind(content)
        .bind(status.as_str())
        .bind(stats.prompt_tokens)
        .bind(stats.completion_tokens)
        .bind(stats.time_to_first_token_ms)
        .bind(stats.decode_tokens_per_second)
        .bind(error)
        .bind(now_ms())
        .bind(message_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::MessageNotFound(message_id));
        }
        self.message(message_id).await
    }

    /// Deletes one message (used by Regenerate to replace the last reply).
    pub async fn delete_message(&self, message_id: i64) -> Result<(), StoreError> {
        let changed = sqlx::query("DELETE FROM messages WHERE id = ?")
            .bind(message_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if changed == 0 {
            return Err(StoreError::MessageNotFound(message_id));
        }
        Ok(())
    }

    /// Full-text search over all messages, best matches first. Every word of `query` must
    /// appear (the last one may be a prefix, so results show while typing); FTS syntax in the
    /// query is treated as plain words.
    pub async fn search(&self, query: &str, limit: u32) -> Result<Vec<SearchHit>, StoreError> {
        let Some(fts_query) = fts_query(query) else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT m.id AS message_id, m.role AS role, c.id AS conversation_id, c.title AS title, \
                    snippet(messages_fts, 0, ?, ?, '…', 16) AS snippet \
             FROM messages_fts \
             JOIN messages m ON m.id = messages_fts.rowid \
             JOIN conversations c ON c.id = m.conversation_id \
             WHERE messages_fts MATCH ? \
             ORDER BY bm25(messages_fts), m.id DESC \
             LIMIT ?",
        )
        .bind(MATCH_START.to_string())
        .bind(MATCH_END.to_string())
        .bind(fts_query)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SearchHit {
                    conversation_id: row.try_get("conversation_id")?,
                    conversation_title: row.try_get("title")?,
                    message_id: row.try_get("message_id")?,
                    role: row
                        .try_get::<String, _>("role")?
                        .parse()
                        .map_err(|e: UnknownRole| sqlx::Error::Decode(e.into()))?,
                    snippet: row.try_get("snippet")?,
                })
            })
            .collect()
    }

    /// A setting's value, if set.
    pub async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = ?").bind(key).fetch_optional(&self.pool).await?)
    }

    /// Sets a setting.
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Closes the connections, flushing the write-ahead log.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn clean_title(title: &str) -> Result<String, StoreError> {
    let title: String = title.split_whitespace().collect::<Vec<_>>().join(" ");
    if title.is_empty() {
        return Err(StoreError::EmptyTitle);
    }
    Ok(title.chars().take(200).collect())
}

/// Turns what a person typed into an FTS5 query: each word quoted (so `AND`, `-`, `:` and
/// quotes are plain text), all required, the last one a prefix.
fn fts_query(query: &str) -> Option<String> {
    let words: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric() && c != '_' && c != '\'')
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    let (last, rest) = words.split_last()?;
    let mut out = rest.join(" ");
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(last);
    out.push('*');
    Some(out)
}

fn conversation_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Conversation, StoreError> {
    Ok(Conversation {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn message_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Message, StoreError> {
    Ok(Message {
        id: row.try_get("id")?,
        conversation_id: row.try_get("conversation_id")?,
        role: row.try_get::<String, _>("role")?.parse().map_err(|e: UnknownRole| sqlx::Error::Decode(e.into()))?,
        content: row.try_get("content")?,
        status: row.try_get::<String, _>("status")?.parse()?,
        model: row.try_get("model")?,
        stats: ReplyStats {
            prompt_tokens: row.try_get("prompt_tokens")?,
            completion_tokens: row.try_get("completion_tokens")?,
            time_to_first_token_ms: row.try_get("time_to_first_token_ms")?,
            decode_tokens_per_second: row.try_get("decode_tokens_per_second")?,
        },
        error: row.try_get("error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_becomes_a_safe_fts_query() {
        assert_eq!(fts_query("paris"), Some("\"paris\"*".into()));
        assert_eq!(fts_query("capital of Fra"), Some("\"capital\" \"of\" \"Fra\"*".into()));
        // FTS operators and quotes typed by a person are plain words, never syntax.
        assert_eq!(fts_query("a\" OR -b:"), Some("\"a\" \"OR\" \"b\"*".into()));
        assert_eq!(fts_query("  ?!  "), None);
    }

    #[test]
    fn titles_are_trimmed_and_never_empty() {
        assert_eq!(clean_title("  Trip \n plans ").ok(), Some("Trip plans".into()));
        assert!(matches!(clean_title(" \t"), Err(StoreError::EmptyTitle)));
    }
}
