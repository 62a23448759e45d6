//! Conversations and their messages, and search hits.

use altiplano_core::store::{Conversation, Message, MessageStatus, Role, SearchHit};
use serde::Serialize;

/// A conversation in the sidebar.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct ConversationDto {
    pub id: i64,
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Conversation> for ConversationDto {
    fn from(c: Conversation) -> Self {
        Self { id: c.id, title: c.title, created_at: c.created_at, updated_at: c.updated_at }
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub enum RoleDto {
    System,
    User,
    Assistant,
}

impl From<Role> for RoleDto {
    fn from(r: Role) -> Self {
        match r {
            Role::System => Self::System,
            Role::User => Self::User,
            Role::Assistant => Self::Assistant,
        }
    }
}

/// Where a message stands.
#[derive(Debug, Clone, Copy, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub enum MessageStatusDto {
    Streaming,
    Complete,
    Stopped,
    Interrupted,
    Failed,
}

impl From<MessageStatus> for MessageStatusDto {
    fn from(s: MessageStatus) -> Self {
        match s {
            MessageStatus::Streaming => Self::Streaming,
            MessageStatus::Complete => Self::Complete,
            MessageStatus::Stopped => Self::Stopped,
            MessageStatus::Interrupted => Self::Interrupted,
            MessageStatus::Failed => Self::Failed,
        }
    }
}

/// A message of a conversation.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct MessageDto {
    pub id: i64,
    pub conversation_id: i64,
    pub role: RoleDto,
    pub content: String,
    pub status: MessageStatusDto,
    pub model: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub time_to_first_token_ms: Option<i64>,
    pub decode_tokens_per_second: Option<f64>,
    pub error: Option<String>,
    pub created_at: i64,
}

impl From<Message> for MessageDto {
    fn from(m: Message) -> Self {
        Self {
            id: m.id,
            conversation_id: m.conversation_id,
            role: m.role.into(),
            content: m.content,
            status: m.status.into(),
            model: m.model,
            prompt_tokens: m.stats.prompt_tokens,
            completion_tokens: m.stats.completion_tokens,
            time_to_first_token_ms: m.stats.time_to_first_token_ms,
            decode_tokens_per_second: m.stats.decode_tokens_per_second,
            error: m.error,
            created_at: m.created_at,
        }
    }
}

/// A search result. Matched words in `snippet` sit between U+E000 and U+E001.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct SearchHitDto {
    pub conversation_id: i64,
    pub conversation_title: String,
    pub message_id: i64,
    pub role: RoleDto,
    pub snippet: String,
}

impl From<SearchHit> for SearchHitDto {
    fn from(h: SearchHit) -> Self {
        Self {
            conversation_id: h.conversation_id,
            conversation_title: h.conversation_title,
            message_id: h.message_id,
            role: h.role.into(),
            snippet: h.snippet,
        }
    }
}
