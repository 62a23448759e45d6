//! A chat turn's stream and result.

use altiplano_core::chat::TurnOutcome;
use altiplano_core::engine::FinishReason;
use serde::Serialize;

use super::*;

/// What streams to the UI while a reply is written.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
#[allow(
    clippy::large_enum_variant,
    reason = "one Started per reply beside hundreds of Text events; boxing it buys nothing"
)]
pub enum ChatStreamEvent {
    /// The reply is about to stream.
    Started {
        conversation: ConversationDto,
        user_message: MessageDto,
        reply_id: i64,
        omitted_messages: usize,
        prompt_tokens: usize,
    },
    /// More text (batched: several tokens at a time).
    Text { text: String },
}

/// Why a reply ended.
#[derive(Debug, Clone, Copy, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub enum FinishReasonDto {
    Stop,
    Length,
    Cancelled,
    /// The reply kept repeating itself and was stopped.
    Repeating,
}

/// How a turn ended.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct TurnResultDto {
    pub conversation_id: i64,
    pub reply: MessageDto,
    pub finish_reason: FinishReasonDto,
    pub omitted_messages: usize,
}

impl From<TurnOutcome> for TurnResultDto {
    fn from(o: TurnOutcome) -> Self {
        Self {
            conversation_id: o.conversation_id,
            reply: o.reply.into(),
            finish_reason: match o.reason {
                FinishReason::Stop => FinishReasonDto::Stop,
                FinishReason::Length => FinishReasonDto::Length,
                FinishReason::Cancelled => FinishReasonDto::Cancelled,
                FinishReason::Repeating => FinishReasonDto::Repeating,
            },
            omitted_messages: o.omitted_messages,
        }
    }
}
