// The one door to the backend: nothing else in the UI imports @tauri-apps/api. Each function is
// typed with the declarations generated from the Rust DTOs (./bindings), so the command names
// and payload shapes live here and nowhere else.
import { Channel, invoke } from '@tauri-apps/api/core';
import type { ApiError } from './bindings/ApiError';
import type { ChatStreamEvent } from './bindings/ChatStreamEvent';
import type { ConversationDto } from './bindings/ConversationDto';
import type { MessageDto } from './bindings/MessageDto';
import type { ModelDto } from './bindings/ModelDto';
import type { EngineDto } from './bindings/EngineDto';
import type { SearchHitDto } from './bindings/SearchHitDto';
import type { StatusDto } from './bindings/StatusDto';
import type { TurnResultDto } from './bindings/TurnResultDto';
import type { ModelsPageDto } from './bindings/ModelsPageDto';
import type { PreferenceDto } from './bindings/PreferenceDto';
import type { DownloadsDto } from './bindings/DownloadsDto';
import type { DownloadJobDto } from './bindings/DownloadJobDto';
import type { FileProgressDto } from './bindings/FileProgressDto';
import type { LocalModelDto } from './bindings/LocalModelDto';
import type { ProjectDto } from './bindings/ProjectDto';
import type { ProjectEventDto } from './bindings/ProjectEventDto';
import type { IndexProgressDto } from './bindings/IndexProgressDto';
import type { CodeAnswerDto } from './bindings/CodeAnswerDto';
import type { CodeStreamEvent } from './bindings/CodeStreamEvent';
import type { DocumentDto } from './bindings/DocumentDto';
import type { DocumentEventDto } from './bindings/DocumentEventDto';
import type { DocumentAnswerDto } from './bindings/DocumentAnswerDto';
import type { OpenedDocumentDto } from './bindings/OpenedDocumentDto';
import type { SummaryDto } from './bindings/SummaryDto';
import type { SummaryProgressDto } from './bindings/SummaryProgressDto';
import type { UseStartedDto } from './bindings/UseStartedDto';

export type { ApiError, ChatStreamEvent, ConversationDto, EngineDto, MessageDto, ModelDto, SearchHitDto, StatusDto, TurnResultDto };
export type { ErrorCode } from './bindings/ErrorCode';
export type { ModelsPageDto, PreferenceDto };
export type { CandidateDto } from './bindings/CandidateDto';
export type { ModelStateDto } from './bindings/ModelStateDto';
export type { LoadProgressDto } from './bindings/LoadProgressDto';
export type { LoadStageDto } from './bindings/LoadStageDto';
export type { JobStateDto } from './bindings/JobStateDto';
export type { FileStateDto } from './bindings/FileStateDto';
export type { ModelFormatDto } from './bindings/ModelFormatDto';
export type { ModelSourceDto } from './bindings/ModelSourceDto';
export type { BackendDto } from './bindings/BackendDto';
export type { MeasurementDto } from './bindings/MeasurementDto';
export type { MeasuredDto } from './bindings/MeasuredDto';
export type { UseStartedDto };
export type { DownloadsDto, DownloadJobDto, FileProgressDto, LocalModelDto };
export type { ProjectDto, ProjectEventDto, IndexProgressDto, CodeAnswerDto, CodeStreamEvent };
export type { SkipCountDto } from './bindings/SkipCountDto';
export type { ExcerptDto } from './bindings/ExcerptDto';
export type { CitationDto } from './bindings/CitationDto';
export type { DocumentDto, DocumentEventDto, DocumentAnswerDto, OpenedDocumentDto, SummaryDto, SummaryProgressDto };
export type { PageCitationDto } from './bindings/PageCitationDto';
export type { PageSourceDto } from './bindings/PageSourceDto';

/** Narrows what a failed command rejected with to an ApiError. */
export function asApiError(e: unknown): ApiError {
  if (typeof e === 'object' && e !== null && 'code' in e && 'message' in e) {
    return e as ApiError;
  }
  return { code: 'internal', message: String(e) };
}

export const getStatus = (): Promise<StatusDto> => invoke('get_status');
/**
 * Calls `onUpdate` with the status now and at every change of the model's state (load progress
 * included). Like `watchDownloads`, keep one subscription for the app's life.
 */
export function watchStatus(onUpdate: (status: StatusDto) => void): Promise<void> {
  const channel = new Channel<StatusDto>();
  channel.onmessage = onUpdate;
  return invoke<void>('watch_status', { onUpdate: channel });
}
export const useStarterModel = (): Promise<ModelDto> => invoke('use_starter_model');
export const chooseModelFile = (): Promise<ModelDto | null> => invoke('choose_model_file');
export const planModels = (contextTokens: number | null, prefer: PreferenceDto): Promise<ModelsPageDto> =>
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

/** Stops a chat reply or an answer about code; false when none runs under `requestId`. */
export const stopReply = (requestId: number): Promise<boolean> => invoke('stop_reply', { requestId });

// Questions about a code folder.

function progressChannel(onProgress: (p: IndexProgressDto) => void): Channel<IndexProgressDto> {
  const channel = new Channel<IndexProgressDto>();
  channel.onmessage = onProgress;
  return channel;
}

/**
 * Opens a native folder dialog, indexes the chosen folder (reporting progress a few times a
 * second) and makes it the open code folder, which the backend then keeps fresh as files
 * change; null when the dialog was cancelled.
 */
export const chooseProject = (onProgress: (p: IndexProgressDto) => void): Promise<ProjectDto | null> =>
  invoke('choose_project', { onProgress: progressChannel(onProgress) });

/** Brings the open folder's index up to date (only changed files are read). */
/** Hears about folders dropped on the window: indexing progress, then the open folder. */
export function watchProjects(onEvent: (e: ProjectEventDto) => void): Promise<void> {
  const channel = new Channel<ProjectEventDto>();
  channel.onmessage = onEvent;
  return invoke('watch_projects', { onEvent: channel });
}
export const currentProject = (): Promise<ProjectDto | null> => invoke('current_project');
export const reindexProject = (onProgress: (p: IndexProgressDto) => void): Promise<ProjectDto> =>
  invoke('reindex_project', { onProgress: progressChannel(onProgress) });

/** An answer about code being written: its id (for `stopReply`) and the promise of its end. */
export interface CodeAnswerHandle {
  requestId: number;
  done: Promise<CodeAnswerDto>;
}

/** Asks about the open folder; `onText` hears the answer as it streams (citations unchecked). */
export function askCode(question: string, onText: (text: string) => void): CodeAnswerHandle {
  const requestId = nextRequestId++;
  const channel = new Channel<CodeStreamEvent>();
  channel.onmessage = (event) => {
    if (event.kind === 'text') onText(event.text);
  };
  const done = invoke<CodeAnswerDto>('ask_code', { requestId, question, onEvent: channel });
  return { requestId, done };
}

/** The text of a file of the open folder; `path` is relative to it, as citations write it. */
export const readProjectFile = (path: string): Promise<string> => invoke('read_project_file', { path });

// Downloads, the models on disk and the Hugging Face access settings.

export const listDownloads = (): Promise<DownloadsDto> => invoke('list_downloads');

/** A live subscription to the downloads panel's state. */
export interface DownloadsWatch {
  /** Settles when the backend stops sending: never in normal use; rejects if a snapshot failed. */
  done: Promise<void>;
  /** Stops delivering updates: the channel's handler is replaced by one that drops them. */
  stop(): void;
}

/**
 * Calls `onUpdate` with the whole downloads state now and on every change (at most four times a
 * second). The backend's loop ends only when a send fails, which in Tauri 2 happens when the
 * webview goes away, not when the UI stops listening: keep one subscription for the app's life
 * rather than one per visit of a view, or each visit leaves a loop behind.
 */
export function watchDownloads(onUpdate: (downloads: DownloadsDto) => void): DownloadsWatch {
  const channel = new Channel<DownloadsDto>();
  let live = true;
  channel.onmessage = (downloads) => {
    if (live) onUpdate(downloads);
  };
  const done = invoke<void>('watch_downloads', { onUpdate: channel });
  return {
    done,
    stop() {
      live = false;
      channel.onmessage = () => {};
    },
  };
}

/**
 * Starts a download. `target` is a catalog variant id (`llama-3.1-8b-instruct:q4_k_m`) or a Hub
 * repo id (`org/name`); for a repo, `file` picks one file. `revision` defaults to `main`.
 */
export const startDownload = (target: string, file: string | null, revision: string | null): Promise<DownloadJobDto> =>
  invoke('start_download', { target, file, revision });
export const pauseDownload = (id: number): Promise<void> => invoke('pause_download', { id });
/** Resumes a paused download, or retries a failed one from the bytes already fetched. */
export const resumeDownload = (id: number): Promise<void> => invoke('resume_download', { id });
/** Stops a download and deletes its partial bytes. */
export const cancelDownload = (id: number): Promise<void> => invoke('cancel_download', { id });
/** Removes a completed, failed or cancelled download from the list. */
export const forgetDownload = (id: number): Promise<void> => invoke('forget_download', { id });

/** Stores the Hugging Face token in the OS keyring; it never comes back to the UI. */
export const setHfToken = (token: string): Promise<void> => invoke('set_hf_token', { token });
export const clearHfToken = (): Promise<void> => invoke('clear_hf_token');
/** Chooses a Hugging Face mirror; an empty string goes back to the Hub. */
export const setDownloadEndpoint = (endpoint: string): Promise<void> => invoke('set_download_endpoint', { endpoint });

/** Opens a native dialog for a GGUF file (or, with `folder`, a safetensors folder); null when cancelled. */
export const importModel = (folder: boolean): Promise<LocalModelDto | null> => invoke('import_model', { folder });
/** Deletes a downloaded model's files, or forgets an imported one (its files stay). */
export const removeModel = (id: number): Promise<void> => invoke('remove_model', { id });
/**
 * "Use this model": a catalog variant id (downloaded first when not on disk, then loaded when
 * the download completes) or a library model id; loaded as planned, measured, made the chat model.
 */
export const useModel = (target: string, engine: EngineDto | null = null): Promise<UseStartedDto> =>
  invoke('use_model', { target, engine });
/**
 * Loads a model from the library as the chat model (measured and remembered); a safetensors
 * model is quantized in place with `isq` (`q4k`, `q5k`, `q6k`, `q8_0`, `fp8`) when given; it runs
 * on `engine` when given, else on the engine its format runs on (llama.cpp for GGUF).
 */
export const loadLocalModel = (
  id: number,
  isq: string | null = null,
  engine: EngineDto | null = null,
): Promise<ModelDto> => invoke('load_local_model', { id, isq, engine });

// Documents: opened by the file dialog, by dropping files on the window, or from the command
// line; all three report through `watchDocuments`.

/** Calls `onEvent` as documents open (keep one subscription for the app's life). */
export function watchDocuments(onEvent: (e: DocumentEventDto) => void): Promise<void> {
  const channel = new Channel<DocumentEventDto>();
  channel.onmessage = onEvent;
  return invoke('watch_documents', { onEvent: channel });
}

/** Opens the file dialog; chosen files are reported through `watchDocuments`. False when cancelled. */
export const chooseDocuments = (): Promise<boolean> => invoke('choose_documents');
export const listDocuments = (): Promise<DocumentDto[]> => invoke('list_documents');
export const getDocument = (documentId: number): Promise<OpenedDocumentDto> => invoke('get_document', { documentId });
export const forgetDocument = (documentId: number): Promise<void> => invoke('forget_document', { documentId });
export const documentPage = (documentId: number, page: number): Promise<string> =>
  invoke('document_page', { documentId, page });

/** A summary or answer being written: its id (for `stopReply`) and the promise of its end. */
export interface DocumentJob<T> {
  requestId: number;
  done: Promise<T>;
}

/** Summarizes a document (`fresh`: start over instead of continuing or reusing a saved one). */
export function summarizeDocument(
  documentId: number,
  fresh: boolean,
  onProgress: (p: SummaryProgressDto) => void,
): DocumentJob<SummaryDto> {
  const requestId = nextRequestId++;
  const channel = new Channel<SummaryProgressDto>();
  channel.onmessage = onProgress;
  return { requestId, done: invoke('summarize_document', { requestId, documentId, fresh, onProgress: channel }) };
}

/** Asks a follow-up question; `onText` hears the answer as it streams (citations unchecked). */
export function askDocument(documentId: number, question: string, onText: (text: string) => void): DocumentJob<DocumentAnswerDto> {
  const requestId = nextRequestId++;
  const channel = new Channel<CodeStreamEvent>();
  channel.onmessage = (event) => {
    if (event.kind === 'text') onText(event.text);
  };
  return { requestId, done: invoke('ask_document', { requestId, documentId, question, onEvent: channel }) };
}
