//! Chat turns, streamed over a `tauri::ipc::Channel`.

use altiplano_core::chat::{ChatEvent, ChatOptions, Turn};
use tauri::ipc::Channel;

use super::{SessionState, TextBatch};
use crate::dto::{ApiError, ChatStreamEvent, TurnResultDto};

#[tauri::command]
#[specta::specta]
pub async fn send_message(
    session: SessionState<'_>,
    request_id: u32,
    conversation_id: Option<i64>,
    text: String,
    on_event: Channel<ChatStreamEvent>,
) -> Result<TurnResultDto, ApiError> {
    let turn = Turn::new(conversation_id, text, ChatOptions::default());
    run(&session, request_id, turn, on_event).await
}

#[tauri::command]
#[specta::specta]
pub async fn regenerate_reply(
    session: SessionState<'_>,
    request_id: u32,
    conversation_id: i64,
    on_event: Channel<ChatStreamEvent>,
) -> Result<TurnResultDto, ApiError> {
    run(&session, request_id, Turn::regenerate(conversation_id, ChatOptions::default()), on_event).await
}

#[tauri::command]
#[specta::specta]
pub fn stop_reply(session: SessionState<'_>, request_id: u32) -> bool {
    session.stop(request_id)
}

async fn run(
    session: &SessionState<'_>,
    request_id: u32,
    turn: Turn,
    channel: Channel<ChatStreamEvent>,
) -> Result<TurnResultDto, ApiError> {
    let mut batch = TextBatch::new(channel.clone(), |text| ChatStreamEvent::Text { text });
    let result = session
        .chat(request_id, turn, |event| match event {
            ChatEvent::Started { conversation, user_message, reply_id, omitted_messages, prompt_tokens } => {
                let _ = channel.send(ChatStreamEvent::Started {
                    conversation: conversation.into(),
                    user_message: user_message.into(),
                    reply_id,
                    omitted_messages,
                    prompt_tokens,
                });
            }
            ChatEvent::Text(text) => batch.push(&text),
        })
        .await;
    batch.flush();
    Ok(result?.into())
}
