// The one door to the backend: nothing else in the UI imports @tauri-apps/api or the bindings.
// `./bindings.ts` is generated from the Rust commands and DTOs by tauri-specta (command names,
// argument order, payload and result types); these wrappers add what the UI wants on top:
// callbacks instead of channels, request ids for Stop.
import { Channel } from '@tauri-apps/api/core';
import { commands } from './bindings';
import type {
  ApiError,
  ChatStreamEvent,
  ConversationDto,
  MessageDto,
  ModelDto,
  EngineDto,
  SearchHitDto,
  StatusDto,
  TurnResultDto,
  ModelsPageDto,
  PreferenceDto,
  DownloadsDto,
  DownloadJobDto,
  FileProgressDto,
  LocalModelDto,
  ProjectDto,
  ProjectEventDto,
  IndexProgressDto,
  CodeAnswerDto,
  CodeStreamEvent,
  DocumentDto,
  DocumentEventDto,
  DocumentAnswerDto,
  OpenedDocumentDto,
  SummaryDto,
  SummaryProgressDto,
  UseStartedDto,
  PurposeDto,
  SearchModelDto,
  RemotesDto,
} from './bindings';

export type { ApiError, ChatStreamEvent, ConversationDto, EngineDto, MessageDto, ModelDto, SearchHitDto, StatusDto, TurnResultDto };
export type { ErrorCode } from './bindings';
export type { ModelsPageDto, PreferenceDto };
export type { CandidateDto } from './bindings';
export type { RemoteDto, RemotesDto } from './bindings';
export type { ModelStateDto } from './bindings';
export type { LoadProgressDto } from './bindings';
export type { LoadStageDto } from './bindings';
export type { JobStateDto } from './bindings';
export type { FileStateDto } from './bindings';
export type { ModelFormatDto } from './bindings';
export type { ModelSourceDto } from './bindings';
export type { BackendDto } from './bindings';
export type { MeasurementDto } from './bindings';
export type { MeasuredDto } from './bindings';
export type { UseStartedDto };
export type { PurposeDto, SearchModelDto };
export type { DownloadsDto, DownloadJobDto, FileProgressDto, LocalModelDto };
export type { ProjectDto, ProjectEventDto, IndexProgressDto, CodeAnswerDto, CodeStreamEvent };
export type { SkipCountDto, SkipReasonDto, TokenSourceDto } from './bindings';
export type { GpuVendorDto, PlacementDto } from './bindings';
export type { ExcerptDto, RetrievalDto } from './bindings';
export type { CitationDto } from './bindings';
export type { DocumentDto, DocumentEventDto, DocumentAnswerDto, OpenedDocumentDto, SummaryDto, SummaryProgressDto };
export type { PageCitationDto } from './bindings';
export type { PageSourceDto } from './bindings';

/** Narrows what a failed command rejected with to an ApiError. */
export function asApiError(e: unknown): ApiError {
  if (typeof e === 'object' && e !== null && 'code' in e && 'message' in e) {
    return e as ApiError;
  }
  return { code: 'internal', message: String(e) };
}

export const getStatus = (): Promise<StatusDto> => commands.getStatus();
/**
 * Calls `onUpdate` with the status now and at every change of the model's state (load progress
 * included). Like `watchDownloads`, keep one subscription for the app's life.
 */
export function watchStatus(onUpdate: (status: StatusDto) => void): Promise<null> {
  const channel = new Channel<StatusDto>();
  channel.onmessage = onUpdate;
  return commands.watchStatus(channel);
}
export const useStarterModel = (): Promise<ModelDto> => commands.useStarterModel();
export const chooseModelFile = (): Promise<ModelDto | null> => commands.chooseModelFile();
export const listSearchModels = (): Promise<SearchModelDto[]> => commands.listSearchModels();
export const useSearchModel = (purpose: PurposeDto, id: string): Promise<SearchModelDto[]> =>
  commands.useSearchModel(purpose, id);
export const listRemotes = (): Promise<RemotesDto> => commands.listRemotes();
export const addRemote = (
  name: string,
  url: string,
  apiKey: string | null,
  model: string | null,
  contextTokens: number | null,
): Promise<RemotesDto> => commands.addRemote(name, url, apiKey, model, contextTokens);
export const useRemote = (name: string): Promise<RemotesDto> => commands.useRemote(name);
export const removeRemote = (name: string): Promise<RemotesDto> => commands.removeRemote(name);
export const planModels = (contextTokens: number | null, prefer: PreferenceDto): Promise<ModelsPageDto> =>
  commands.planModels(contextTokens, prefer);

export const listConversations = (): Promise<ConversationDto[]> => commands.listConversations();
export const getMessages = (conversationId: number): Promise<MessageDto[]> =>
  commands.getMessages(conversationId);
export const searchMessages = (query: string): Promise<SearchHitDto[]> => commands.searchMessages(query);
export const renameConversation = (conversationId: number, title: string): Promise<ConversationDto> =>
  commands.renameConversation(conversationId, title);
export const deleteConversation = (conversationId: number): Promise<null> =>
  commands.deleteConversation(conversationId);

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
  const done = commands.sendMessage(requestId, conversationId, text, streamed(onEvent));
  return { requestId, done };
}

export function regenerateReply(conversationId: number, onEvent: (e: ChatStreamEvent) => void): ReplyHandle {
  const requestId = nextRequestId++;
  const done = commands.regenerateReply(requestId, conversationId, streamed(onEvent));
  return { requestId, done };
}

/** Stops a chat reply or an answer about code; false when none runs under `requestId`. */
export const stopReply = (requestId: number): Promise<boolean> => commands.stopReply(requestId);

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
  commands.chooseProject(progressChannel(onProgress));

/** Brings the open folder's index up to date (only changed files are read). */
/** Hears about folders dropped on the window: indexing progress, then the open folder. */
export function watchProjects(onEvent: (e: ProjectEventDto) => void): Promise<void> {
  const channel = new Channel<ProjectEventDto>();
  channel.onmessage = onEvent;
  return commands.watchProjects(channel);
}
export const reindexProject = (onProgress: (p: IndexProgressDto) => void): Promise<ProjectDto> =>
  commands.reindexProject(progressChannel(onProgress));

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
  const done = commands.askCode(requestId, question, channel);
  return { requestId, done };
}

/** The text of a file of the open folder; `path` is relative to it, as citations write it. */
export const readProjectFile = (path: string): Promise<string> => commands.readProjectFile(path);

// Downloads, the models on disk and the Hugging Face access settings.

export const listDownloads = (): Promise<DownloadsDto> => commands.listDownloads();

/** A live subscription to the downloads panel's state. */
export interface DownloadsWatch {
  /** Settles when the backend stops sending: never in normal use; rejects if a snapshot failed. */
  done: Promise<null>;
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
  const done = commands.watchDownloads(channel);
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
  commands.startDownload(target, file, revision);
export const pauseDownload = (id: number): Promise<null> => commands.pauseDownload(id);
/** Resumes a paused download, or retries a failed one from the bytes already fetched. */
export const resumeDownload = (id: number): Promise<null> => commands.resumeDownload(id);
/** Stops a download and deletes its partial bytes. */
export const cancelDownload = (id: number): Promise<null> => commands.cancelDownload(id);
/** Removes a completed, failed or cancelled download from the list. */
export const forgetDownload = (id: number): Promise<null> => commands.forgetDownload(id);

/** Stores the Hugging Face token in the OS keyring; it never comes back to the UI. */
export const setHfToken = (token: string): Promise<null> => commands.setHfToken(token);
export const clearHfToken = (): Promise<null> => commands.clearHfToken();
/** Chooses a Hugging Face mirror; an empty string goes back to the Hub. */
export const setDownloadEndpoint = (endpoint: string): Promise<null> => commands.setDownloadEndpoint(endpoint);
/** Offline mode on (no connection is opened; running downloads wait) or off (they continue). */
export const setOffline = (on: boolean): Promise<null> => commands.setOffline(on);

/** Opens a native dialog for a GGUF file (or, with `folder`, a safetensors folder); null when cancelled. */
export const importModel = (folder: boolean): Promise<LocalModelDto | null> => commands.importModel(folder);
/** Deletes a downloaded model's files, or forgets an imported one (its files stay). */
export const removeModel = (id: number): Promise<null> => commands.removeModel(id);
/**
 * "Use this model": a catalog variant id (downloaded first when not on disk, then loaded when
 * the download completes) or a library model id; loaded as planned, measured, made the chat model.
 */
export const useModel = (target: string, engine: EngineDto | null = null): Promise<UseStartedDto> =>
  commands.useModel(target, engine);
/**
 * Loads a model from the library as the chat model (measured and remembered); a safetensors
 * model is quantized in place with `isq` (`q4k`, `q5k`, `q6k`, `q8_0`, `fp8`) when given; it runs
 * on `engine` when given, else on the engine its format runs on (llama.cpp for GGUF).
 */
export const loadLocalModel = (
  id: number,
  isq: string | null = null,
  engine: EngineDto | null = null,
): Promise<ModelDto> => commands.loadLocalModel(id, isq, engine);

// Documents: opened by the file dialog, by dropping files on the window, or from the command
// line; all three report through `watchDocuments`.

/** Calls `onEvent` as documents open (keep one subscription for the app's life). */
export function watchDocuments(onEvent: (e: DocumentEventDto) => void): Promise<void> {
  const channel = new Channel<DocumentEventDto>();
  channel.onmessage = onEvent;
  return commands.watchDocuments(channel);
}

/** Opens the file dialog; chosen files are reported through `watchDocuments`. False when cancelled. */
export const chooseDocuments = (): Promise<boolean> => commands.chooseDocuments();
export const listDocuments = (): Promise<DocumentDto[]> => commands.listDocuments();
export const getDocument = (documentId: number): Promise<OpenedDocumentDto> => commands.getDocument(documentId);
export const forgetDocument = (documentId: number): Promise<null> => commands.forgetDocument(documentId);
export const documentPage = (documentId: number, page: number): Promise<string> =>
  commands.documentPage(documentId, page);

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
  return { requestId, done: commands.summarizeDocument(requestId, documentId, fresh, channel) };
}

/** Asks a follow-up question; `onText` hears the answer as it streams (citations unchecked). */
export function askDocument(documentId: number, question: string, onText: (text: string) => void): DocumentJob<DocumentAnswerDto> {
  const requestId = nextRequestId++;
  const channel = new Channel<CodeStreamEvent>();
  channel.onmessage = (event) => {
    if (event.kind === 'text') onText(event.text);
  };
  return { requestId, done: commands.askDocument(requestId, documentId, question, channel) };
}
