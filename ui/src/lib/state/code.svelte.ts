// The Code tab's shared state: the open folder and its indexing, the questions asked about it
// in this session with their answers (streamed, then checked), and the read-only file view a
// citation opens. Components read the fields and call the methods; the backend keeps the folder
// indexed as files change, and saves each question and answer in the folder's own conversation.
import * as api from '../api';
import type { ApiError, CodeAnswerDto, IndexProgressDto, ProjectDto, ProjectEventDto } from '../api';
import type { LineRange } from '../code/citations';
import { app } from './app.svelte';

/** One question and its answer. */
export interface CodeExchange {
  id: number;
  question: string;
  /** The answer as it streams, before its citations are checked. */
  streamed: string;
  /** The finished answer; null while it streams or when it failed. */
  answer: CodeAnswerDto | null;
  error: ApiError | null;
  /** The user stopped it; what was written so far is the answer. */
  stopped: boolean;
}

/** The file a citation or source opened. */
export interface OpenFile {
  path: string;
  /** The lines to highlight; null shows the file without. */
  range: LineRange | null;
  /** The file's text; null while it is read. */
  text: string | null;
  error: ApiError | null;
}

export class CodeState {
  project = $state<ProjectDto | null>(null);
  /** A folder is being chosen (the dialog is open) or indexed. */
  indexing = $state(false);
  /** The latest indexing progress; null before the first report. */
  progress = $state<IndexProgressDto | null>(null);
  /** How far the open folder's background embedding is; null when nothing is being embedded. */
  embedding = $state<IndexProgressDto | null>(null);
  indexError = $state<ApiError | null>(null);
  exchanges = $state<CodeExchange[]>([]);
  /** The question box's text; kept when asking fails before anything was written. */
  draft = $state('');
  file = $state<OpenFile | null>(null);

  /** The id of the answer being written, for Stop. */
  private requestId = $state<number | null>(null);
  private nextExchange = 1;
  private fileSeq = 0;

  asking = $derived(this.requestId !== null);

  /** Opens the folder dialog and indexes the chosen folder; nothing changes when it is cancelled. */
  chooseFolder(): Promise<void> {
    return this.index(async (onProgress) => {
      const chosen = await api.chooseProject(onProgress);
      if (chosen === null) return;
      // Answers about another folder cite its files, which the file view could no longer read:
      // they are left behind (the folder's conversation in the sidebar keeps them).
      if (this.project?.root !== chosen.root) {
        this.exchanges = [];
        this.file = null;
      }
      this.project = chosen;
    });
  }

  /**
   * A folder opened in the background (dropped on the window, or the start-up folder, which
   * the backend pushes once it opens) is being indexed, has opened, or failed to.
   */
  handleProjectEvent(event: ProjectEventDto): void {
    if (event.kind === 'indexing') {
      this.indexing = true;
      this.indexError = null;
      this.progress = event.progress;
    } else if (event.kind === 'embedding') {
      const p = event.progress;
      this.embedding = p.chunksToEmbed > 0 && p.chunksEmbedded < p.chunksToEmbed ? p : null;
    } else if (event.kind === 'opened') {
      this.indexing = false;
      if (this.project?.root !== event.project.root) {
        this.exchanges = [];
        this.file = null;
      }
      this.project = event.project;
    } else {
      this.indexing = false;
      this.indexError = event.error;
    }
  }

  /** Brings the open folder's index up to date. */
  reindex(): Promise<void> {
    return this.index(async (onProgress) => {
      this.project = await api.reindexProject(onProgress);
    });
  }

  private async index(run: (onProgress: (p: IndexProgressDto) => void) => Promise<void>): Promise<void> {
    if (this.indexing) return;
    this.indexing = true;
    this.progress = null;
    this.indexError = null;
    try {
      await run((progress) => (this.progress = progress));
    } catch (e) {
      this.indexError = api.asApiError(e);
    } finally {
      this.indexing = false;
      this.progress = null;
    }
  }

  /** Asks the question in the box about the open folder. */
  async ask(): Promise<void> {
    const question = this.draft.trim();
    if (question === '' || this.asking || this.indexing || this.project === null) return;
    this.draft = '';
    this.exchanges.push({ id: this.nextExchange++, question, streamed: '', answer: null, error: null, stopped: false });
    // The proxy in the list, so that what is written to it shows.
    const exchange = this.exchanges.at(-1)!;
    const handle = api.askCode(question, (text) => (exchange.streamed += text));
    this.requestId = handle.requestId;
    try {
      exchange.answer = await handle.done;
      // The backend saved the question and answer in the folder's conversation.
      void app.refreshConversations().catch(() => {});
    } catch (e) {
      exchange.error = api.asApiError(e);
      // Nothing typed is lost: a question that got no answer at all goes back into the box.
      if (exchange.streamed === '' && this.draft === '') this.draft = question;
    } finally {
      this.requestId = null;
    }
  }

  /** Stops the answer being written; it ends with what was written so far. */
  async stop(): Promise<void> {
    const requestId = this.requestId;
    if (requestId === null) return;
    const exchange = this.exchanges.at(-1);
    if (exchange) exchange.stopped = true;
    await api.stopReply(requestId);
  }

  /** Shows a file of the folder with `range` highlighted (a citation or a source). */
  async openFile(range: LineRange): Promise<void> {
    const seq = ++this.fileSeq;
    this.file = { path: range.path, range, text: null, error: null };
    let text: string | null = null;
    let error: ApiError | null = null;
    try {
      text = await api.readProjectFile(range.path);
    } catch (e) {
      error = api.asApiError(e);
    }
    // Only the file opened last is shown.
    if (seq === this.fileSeq && this.file !== null) this.file = { ...this.file, text, error };
  }

  closeFile(): void {
    this.fileSeq++;
    this.file = null;
  }
}

export const code = new CodeState();
