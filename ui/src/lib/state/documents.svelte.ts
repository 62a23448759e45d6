// The Documents tab's shared state: the documents opened (dropped, chosen or named on the command
// line, plus those opened before), each one's summary as it is written (progress, stop, continue),
// the follow-up questions asked about it, and the page view a citation opens. The model does one
// job at a time: documents waiting for a summary queue up and start when it is free. The backend
// saves each summary and question in the document's own conversation.
import * as api from '../api';
import type { ApiError, DocumentAnswerDto, DocumentDto, DocumentEventDto, SummaryDto, SummaryProgressDto } from '../api';
import { app } from './app.svelte';

/** One follow-up question and its answer. */
export interface DocumentExchange {
  id: number;
  question: string;
  streamed: string;
  answer: DocumentAnswerDto | null;
  error: ApiError | null;
  stopped: boolean;
}

/** A document in the list, from the moment it starts opening. */
export interface DocumentEntry {
  /** Stable key: `open-<n>` while opening, then `doc-<id>`. */
  key: string;
  name: string;
  document: DocumentDto | null;
  opening: boolean;
  openError: ApiError | null;
  summary: SummaryDto | null;
  /** Waiting for the model to be free. */
  queued: boolean;
  summarizing: boolean;
  progress: SummaryProgressDto | null;
  /** Parts finished in the run now going (reused ones included). */
  partsDone: number;
  summaryError: ApiError | null;
  /** The user stopped the summary; finished parts are kept, and Continue carries on. */
  stopped: boolean;
  exchanges: DocumentExchange[];
}

/** The pages a citation opened. */
export interface PageView {
  documentId: number;
  title: string;
  pages: number[];
  /** Each page's text, null while it is read. */
  texts: (string | null)[];
  error: ApiError | null;
}

function entryFor(document: DocumentDto, summary: SummaryDto | null): DocumentEntry {
  return {
    key: `doc-${document.id}`,
    name: document.title,
    document,
    opening: false,
    openError: null,
    summary,
    queued: false,
    summarizing: false,
    progress: null,
    partsDone: 0,
    summaryError: null,
    stopped: false,
    exchanges: [],
  };
}

/** An entry for a file that is being read, or could not be. */
function pendingEntry(key: string, name: string, openError: ApiError | null = null): DocumentEntry {
  const placeholder: DocumentDto = { id: -1, title: name, path: '', pageCount: 0, warnings: [], conversationId: null };
  return { ...entryFor(placeholder, null), key, document: null, opening: openError === null, openError };
}

export class DocumentsState {
  entries = $state<DocumentEntry[]>([]);
  selectedKey = $state<string | null>(null);
  pageView = $state<PageView | null>(null);
  /** The question box's text; kept when asking fails before anything was written. */
  draft = $state('');
  /** The model job running (a summary or an answer), for Stop. */
  private job = $state<{ requestId: number; key: string; kind: 'summary' | 'question' } | null>(null);
  private nextExchange = 1;
  private pageSeq = 0;
  private recentLoaded = false;

  busy = $derived(this.job !== null);
  selected = $derived(this.entries.find((e) => e.key === this.selectedKey) ?? null);
  asking = $derived(this.job?.kind === 'question');

  /** Whether a model can take work now: the app's model is ready. */
  modelReady: () => boolean = () => app.status?.model.state === 'ready';

  /** A document being opened, opened, or failed (from the drop handler, dialog or command line). */
  handleEvent(event: DocumentEventDto): void {
    const openingKey = `open-${event.key}`;
    if (event.kind === 'opening') {
      this.entries.unshift(pendingEntry(openingKey, event.name));
      this.selectedKey = openingKey;
      return;
    }
    const index = this.entries.findIndex((e) => e.key === openingKey);
    if (event.kind === 'failed') {
      const failed = index >= 0 ? this.entries[index]! : null;
      if (failed) {
        failed.opening = false;
        failed.openError = event.error;
      } else {
        this.entries.unshift(pendingEntry(openingKey, event.name, event.error));
      }
      return;
    }
    const { document, summary } = event.opened;
    // The same file opened again (or opened before): one entry, moved to the top.
    const existing = this.entries.findIndex((e) => e.key === `doc-${document.id}`);
    let entry: DocumentEntry;
    if (existing >= 0) {
      entry = this.entries[existing]!;
      entry.document = document;
      if (summary && !entry.summarizing) entry.summary = summary;
      this.entries.splice(existing, 1);
      if (index >= 0) this.entries.splice(this.entries.findIndex((e) => e.key === openingKey), 1);
      this.entries.unshift(entry);
    } else if (index >= 0) {
      entry = this.entries[index]!;
      Object.assign(entry, entryFor(document, summary));
    } else {
      this.entries.unshift(entryFor(document, summary));
    }
    this.selectedKey = `doc-${document.id}`;
    const opened = this.entries.find((e) => e.key === `doc-${document.id}`)!;
    if (opened.summary === null && !opened.summarizing) {
      opened.queued = true;
      this.pump();
    }
  }

  /** Documents opened in earlier sessions (summaries are read when one is selected). */
  async loadRecent(): Promise<void> {
    if (this.recentLoaded) return;
    this.recentLoaded = true;
    try {
      const documents = await api.listDocuments();
      for (const document of documents) {
        if (!this.entries.some((e) => e.key === `doc-${document.id}`)) this.entries.push(entryFor(document, null));
      }
    } catch {
      this.recentLoaded = false;
    }
  }

  /** Opens the file dialog (files chosen there arrive as events). */
  async chooseFiles(): Promise<void> {
    try {
      await api.chooseDocuments();
    } catch (e) {
      this.entries.unshift(pendingEntry(`open-dialog-${Date.now()}`, 'Open documents', api.asApiError(e)));
    }
  }

  /** Shows a document; one from an earlier session gets its saved summary. */
  async select(key: string): Promise<void> {
    this.selectedKey = key;
    this.closePages();
    const entry = this.entries.find((e) => e.key === key);
    if (!entry?.document || entry.summary || entry.summarizing || entry.queued) return;
    try {
      const opened = await api.getDocument(entry.document.id);
      entry.document = opened.document;
      if (opened.summary && !entry.summarizing) entry.summary = opened.summary;
    } catch (e) {
      entry.summaryError = api.asApiError(e);
    }
  }

  /** Summarizes (or, after a stop, continues) the document; `fresh` starts over. */
  summarize(key: string, fresh = false): void {
    const entry = this.entries.find((e) => e.key === key);
    if (!entry?.document || entry.summarizing) return;
    if (fresh) entry.summary = null;
    entry.queued = true;
    entry.summaryError = null;
    this.pump(fresh ? key : null);
  }

  /** Starts the next queued summary when the model is free. */
  pump(fresh: string | null = null): void {
    if (this.job !== null || !this.modelReady()) return;
    const entry = this.entries.findLast((e) => e.queued && e.document !== null);
    if (!entry) return;
    void this.runSummary(entry, entry.key === fresh);
  }

  private async runSummary(entry: DocumentEntry, fresh: boolean): Promise<void> {
    const documentId = entry.document!.id;
    entry.queued = false;
    entry.summarizing = true;
    entry.stopped = false;
    entry.progress = null;
    entry.partsDone = 0;
    const handle = api.summarizeDocument(documentId, fresh, (p) => {
      if (p.kind === 'part') entry.partsDone++;
      entry.progress = p;
    });
    this.job = { requestId: handle.requestId, key: entry.key, kind: 'summary' };
    try {
      entry.summary = await handle.done;
      if (entry.document && entry.document.conversationId === null) {
        void api.getDocument(documentId).then((o) => (entry.document = o.document)).catch(() => {});
      }
      void app.refreshConversations().catch(() => {});
    } catch (e) {
      const error = api.asApiError(e);
      if (error.code === 'stopped') entry.stopped = true;
      else entry.summaryError = error;
    } finally {
      entry.summarizing = false;
      this.job = null;
      this.pump();
    }
  }

  /** Stops the summary or answer being written. */
  async stop(): Promise<void> {
    const job = this.job;
    if (job === null) return;
    const entry = this.entries.find((e) => e.key === job.key);
    if (job.kind === 'question') {
      const exchange = entry?.exchanges.at(-1);
      if (exchange) exchange.stopped = true;
    }
    // Queued summaries wait for the user again rather than starting as this one stops.
    for (const e of this.entries) e.queued = false;
    await api.stopReply(job.requestId);
  }

  /** Asks the question in the box about the selected document. */
  async ask(): Promise<void> {
    const entry = this.selected;
    const question = this.draft.trim();
    if (!entry?.document || question === '' || this.job !== null || !this.modelReady()) return;
    this.draft = '';
    entry.exchanges.push({ id: this.nextExchange++, question, streamed: '', answer: null, error: null, stopped: false });
    const exchange = entry.exchanges.at(-1)!;
    const handle = api.askDocument(entry.document.id, question, (text) => (exchange.streamed += text));
    this.job = { requestId: handle.requestId, key: entry.key, kind: 'question' };
    try {
      exchange.answer = await handle.done;
      void app.refreshConversations().catch(() => {});
    } catch (e) {
      exchange.error = api.asApiError(e);
      if (exchange.streamed === '' && this.draft === '') this.draft = question;
    } finally {
      this.job = null;
      this.pump();
    }
  }

  /** Shows the text of `pages` of the selected document beside it. */
  async openPages(pages: number[]): Promise<void> {
    const entry = this.selected;
    if (!entry?.document || pages.length === 0) return;
    const seq = ++this.pageSeq;
    const documentId = entry.document.id;
    this.pageView = { documentId, title: entry.document.title, pages, texts: pages.map(() => null), error: null };
    try {
      const texts = await Promise.all(pages.map((p) => api.documentPage(documentId, p)));
      if (seq === this.pageSeq && this.pageView) this.pageView = { ...this.pageView, texts };
    } catch (e) {
      if (seq === this.pageSeq && this.pageView) this.pageView = { ...this.pageView, error: api.asApiError(e) };
    }
  }

  closePages(): void {
    this.pageSeq++;
    this.pageView = null;
  }

  /** Forgets a document (its summaries go; its conversation stays in the sidebar). */
  async forget(key: string): Promise<void> {
    const entry = this.entries.find((e) => e.key === key);
    if (!entry || entry.summarizing || this.job?.key === key) return;
    if (entry.document) await api.forgetDocument(entry.document.id);
    this.entries = this.entries.filter((e) => e.key !== key);
    if (this.selectedKey === key) {
      this.selectedKey = this.entries[0]?.key ?? null;
      this.closePages();
    }
  }
}

export const documents = new DocumentsState();
