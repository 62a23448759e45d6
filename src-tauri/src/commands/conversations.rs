//! The sidebar: conversations and search.

use super::SessionState;
use crate::dto::{ApiError, ConversationDto, MessageDto, SearchHitDto};

#[tauri::command]
#[specta::specta]
pub async fn list_conversations(session: SessionState<'_>) -> Result<Vec<ConversationDto>, ApiError> {
    Ok(session.store().list_conversations().await?.into_iter().map(Into::into).collect())
}

#[tauri::command]
#[specta::specta]
pub async fn get_messages(session: SessionState<'_>, conversation_id: i64) -> Result<Vec<MessageDto>, ApiError> {
    Ok(session.store().messages(conversation_id).await?.into_iter().map(Into::into).collect())
}

#[tauri::command]
#[specta::specta]
pub async fn search_messages(session: SessionState<'_>, query: String) -> Result<Vec<SearchHitDto>, ApiError> {
    Ok(session.store().search(&query, 50).await?.into_iter().map(Into::into).collect())
}

#[tauri::command]
#[specta::specta]
pub async fn rename_conversation(
    session: SessionState<'_>,
    conversation_id: i64,
    title: String,
) -> Result<ConversationDto, ApiError> {
    Ok(session.store().rename_conversation(conversation_id, &title).await?.into())
}

#[tauri::command]
#[specta::specta]
pub async fn delete_conversation(session: SessionState<'_>, conversation_id: i64) -> Result<(), ApiError> {
    Ok(session.store().delete_conversation(conversation_id).await?)
}
