// The app's shared state: conversations, the open conversation, the reply being written, and
// the model. Components read these fields and call the methods; only this file and
// lib/api talk about commands (downloads.svelte.ts does the same for the downloads panel).
import * as api from '../api';
import type { ApiError, ConversationDto, MessageDto, SearchHitDto, StatusDto } from '../api';

/** A notice shown above the composer (errors, left-out history). */
export interface Notice {
  kind: 'error' | 'info';
  text: string;
  code?: string;
}

export class AppState {
  status = $state<StatusDto | null>(null);
  conversations = $state<ConversationDto[]>([]);
  currentId = $state<number | null>(null);
  messages = $state<MessageDto[]>([]);
  /** Text of the reply being written, shown as it streams. */
  streamingText = $state('');
  streaming = $state(false);
  searchQuery = $state('');
  searchHits = $state<SearchHitDto[]>([]);
  notice = $state<Notice | null>(null);
  /** The composer's text; kept when sending fails so nothing is lost. */
  draft = $state('');
  /**
   * The library model last loaded for chat, and the path the engine reports for it: the engine
   * resolves links (a downloaded model's path points into the Hub cache's blobs), so the two
   * paths differ and this pair is what tells the Models page which model is in use.
   */
  loadedFromLibrary = $state<{ id: number; path: string } | null>(null);

  private replyRequest: number | null = null;
  private searchSeq = 0;

  current = $derived(this.conversations.find((c) => c.id === this.currentId) ?? null);
  modelReady = $derived(this.status?.model.state === 'ready');

  async start(): Promise<void> {
    this.status = await api.getStatus();
    this.watchStatus();
    await this.refreshConversations();
  }

  /**
   * The status as the backend pushes it, for the app's life: a load's progress, a
   * download-then-load starting, a load ending or failing (whoever started it). Subscribes again
   * if the subscription fails.
   */
  private watchStatus(): void {
    api
      .watchStatus((status) => (this.status = status))
      .catch(() => new Promise((r) => setTimeout(r, 1000)).then(() => this.watchStatus()));
  }

  /**
   * "Use this model" on the Models page: a catalog variant is loaded as planned when it is on
   * disk, or downloaded first (the status follows the download, then the load). Returns the
   * failure for the page to show, or null.
   */
  async useModel(target: string): Promise<ApiError | null> {
    // A download's load starts as the download completes; the pushed status follows it.
    return this.loadModel(() => api.useModel(target));
  }

  async refreshConversations(): Promise<void> {
    this.conversations = await api.listConversations();
  }

  async open(conversationId: number | null): Promise<void> {
    if (this.streaming) return;
    this.currentId = conversationId;
    this.notice = null;
    this.messages = conversationId === null ? [] : await api.getMessages(conversationId);
  }

  newConversation(): Promise<void> {
    return this.open(null);
  }

  async send(): Promise<void> {
    const text = this.draft;
    if (this.streaming || text.trim() === '') return;
    this.draft = '';
    await this.runReply((onEvent) => api.sendMessage(this.currentId, text, onEvent), text);
  }

  async regenerate(): Promise<void> {
    if (this.streaming || this.currentId === null) return;
    const last = this.messages.at(-1);
    if (last?.role === 'assistant') this.messages = this.messages.slice(0, -1);
    const id = this.currentId;
    await this.runReply((onEvent) => api.regenerateReply(id, onEvent), null);
  }

  async stop(): Promise<void> {
    if (this.replyRequest !== null) await api.stopReply(this.replyRequest);
  }

  private async runReply(
    start: (onEvent: (e: api.ChatStreamEvent) => void) => api.ReplyHandle,
    sentText: string | null,
  ): Promise<void> {
    this.streaming = true;
    this.streamingText = '';
    this.notice = null;
    let started = false;
    const handle = start((event) => {
      if (event.kind === 'started') {
        started = true;
        if (this.currentId !== event.conversation.id) {
          this.currentId = event.conversation.id;
        }
        if (sentText !== null) this.messages = [...this.messages, event.userMessage];
        if (event.omittedMessages > 0) {
          this.notice = {
            kind: 'info',
            text: `The ${event.omittedMessages} oldest messages no longer fit the model's context and were left out of this reply.`,
          };
        }
        void this.refreshConversations();
      } else {
        this.streamingText += event.text;
      }
    });
    this.replyRequest = handle.requestId;
    try {
      const result = await handle.done;
      this.messages = [...this.messages, result.reply];
      if (result.finishReason === 'repeating') {
        this.notice = {
          kind: 'info',
          text: 'The reply was stopped because it kept repeating itself. Regenerate it, or ask again in other words.',
        };
      }
    } catch (e) {
      const error: ApiError = api.asApiError(e);
      this.notice = { kind: 'error', text: error.message, code: error.code };
      // Nothing typed is lost: a message that never started goes back into the composer.
      if (!started && sentText !== null && this.draft === '') this.draft = sentText;
      if (this.currentId !== null) this.messages = await api.getMessages(this.currentId);
    } finally {
      this.streaming = false;
      this.streamingText = '';
      this.replyRequest = null;
      await this.refreshConversations();
    }
  }

  async search(query: string): Promise<void> {
    this.searchQuery = query;
    const seq = ++this.searchSeq;
    const hits = query.trim() === '' ? [] : await api.searchMessages(query);
    // Only the answer to the latest query is shown.
    if (seq === this.searchSeq) this.searchHits = hits;
  }

  async rename(conversationId: number, title: string): Promise<void> {
    try {
      await api.renameConversation(conversationId, title);
    } catch (e) {
      this.notice = { kind: 'error', text: api.asApiError(e).message };
    }
    await this.refreshConversations();
  }

  async remove(conversationId: number): Promise<void> {
    await api.deleteConversation(conversationId);
    if (this.currentId === conversationId) await this.open(null);
    await this.refreshConversations();
  }

  async useStarterModel(): Promise<void> {
    this.showLoadError(await this.loadModel(() => api.useStarterModel()));
  }

  async chooseModelFile(): Promise<void> {
    this.showLoadError(await this.loadModel(() => api.chooseModelFile()));
  }

  /**
   * Makes a model from the library (Models page) the chat model. The failure is returned for
   * the Models page to show beside the model, rather than above the composer.
   */
  loadLocalModel(id: number, isq: string | null = null, engine: api.EngineDto | null = null): Promise<ApiError | null> {
    return this.loadModel(() =>
      api.loadLocalModel(id, isq, engine).then((model) => (this.loadedFromLibrary = { id, path: model.path })),
    );
  }

  /** Whether the chat model is the library model `id` at `path`. */
  isInUse(id: number, path: string): boolean {
    const model = this.status?.model;
    if (model?.state !== 'ready') return false;
    const loaded = this.loadedFromLibrary;
    return model.model.path === path || (loaded !== null && loaded.id === id && loaded.path === model.model.path);
  }

  private showLoadError(error: ApiError | null): void {
    if (error) this.notice = { kind: 'error', text: error.message, code: error.code };
  }

  /** Starts `load`, shows the model as loading, and refreshes the status when it ends. */
  /** Runs a load; its progress and outcome reach `status` through the pushed updates. */
  private async loadModel(load: () => Promise<unknown>): Promise<ApiError | null> {
    this.notice = null;
    try {
      await load();
      return null;
    } catch (e) {
      return api.asApiError(e);
    } finally {
      // The result is also in hand now, before the next push.
      this.status = await api.getStatus().catch(() => this.status);
    }
  }
}

export const app = new AppState();
