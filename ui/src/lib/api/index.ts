// The one door to the backend: nothing else in the UI imports @tauri-apps/api. Each function is
// typed with the declarations generated from the Rust DTOs (./bindings), so the command names
// and payload shapes live here and nowhere else.
import { Channel, invoke } from '@tauri-apps/api/core';
import type { ApiError } from './bindings/ApiError';
import type { ChatStreamEvent } from './bindings/ChatStreamEvent';
import type { ConversationDto } from './bindings/ConversationDto';
import type { MessageDto } from './bindings/MessageDto';
import type { ModelDto } from './bindings/ModelDto';
import type { SearchHitDto } from './bindings/SearchHitDto';
import type { StatusDto } from './bindings/StatusDto';
import type { TurnResultDto } from './bindings/TurnResultDto';
import type { ModelsPageDto } from './bindings/ModelsPageDto';
import type { PreferenceDto } from './bindings/PreferenceDto';

export type { ApiError, ChatStreamEvent, ConversationDto, MessageDto, ModelDto, SearchHitDto, StatusDto, TurnResultDto };
export type { ErrorCode } from './bindings/ErrorCode';
export type { ModelsPageDto, PreferenceDto };
export type { CandidateDto } from './bindings/CandidateDto';
export type { ModelStateDto } from './bindings/ModelStateDto';

/** Narrows what a failed command rejected with to an ApiError. */
export function asApiError(e: unknown): ApiError {
  if (typeof e === 'object' && e !== null && 'code' in e && 'message' in e) {
    return e as ApiError;
  }
  return { code: 'internal', message: String(e) };
}

export const getStatus = (): Promise<StatusDto> => invoke('get_status');
export const waitForModel = (): Promise<StatusDto> => invoke('wait_for_model');
export const useStarterModel = (): Promise<ModelDto> => invoke('use_starter_model');
export const chooseModelFile = (): Promise<ModelDto | null> => invoke('choose_model_file');
export const planModels = (contextTokens: number, prefer: PreferenceDto): Promise<ModelsPageDto> =>
  invoke('plan_models', { contextTokens, prefer });

export const listConversations = (): Promise<ConversationDto[]> => invoke('list_conversations');
export const getMessages = (conversationId: number): Promise<MessageDto[]> =>
  invoke('get_messages', { conversationId });
export const searchMessages = (query: string): Promise<SearchHitDto[]> => invoke('search_messages', { query });
export const renameConversation = (conversationId: number, title: string): Promise<ConversationDto> =>
  invoke('rename_conversation', { conversationId, title });
export const deleteConversation = (conversationId: number): Promise<void> =>
  invoke('delete_conversation', { conversationId });

let nextRequestId = 1;

/** A reply being written: its id (for stop) and the promise of its end. */
export interface ReplyHandle {
  requestId: number;
  done: Promise<TurnResultDto>;
}

function streamed(onEvent: (e: ChatStreamEvent) => void): Channel<ChatStreamEvent> {
  const channel = new Channel<ChatStreamEvent>();
  channel.onmessage = onEvent;
  return channel;
}

export function sendMessage(
  conversationId: number | null,
  text: string,
  onEvent: (e: ChatStreamEvent) => void,
): ReplyHandle {
  const requestId = nextRequestId++;
  const done = invoke<TurnResultDto>('send_message', {
    requestId,
    conversationId,
    text,
    onEvent: streamed(onEvent),
  });
  return { requestId, done };
}

export function regenerateReply(conversationId: number, onEvent: (e: ChatStreamEvent) => void): ReplyHandle {
  const requestId = nextRequestId++;
  const done = invoke<TurnResultDto>('regenerate_reply', { requestId, conversationId, onEvent: streamed(onEvent) });
  return { requestId, done };
}

export const stopReply = (requestId: number): Promise<boolean> => invoke('stop_reply', { requestId });
