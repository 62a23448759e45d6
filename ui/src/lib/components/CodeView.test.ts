// The Code tab in a test DOM, over a fake backend. The folder comes from a native dialog, which
// the end-to-end tests cannot drive, so this is where the tab's flow is checked: the backend is
// replaced at the IPC layer under lib/api (Tauri's own mockIPC), which also checks the command
// names and argument names the wrappers send.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { mount, tick, unmount } from 'svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import type { CodeAnswerDto, CodeStreamEvent, IndexProgressDto, ProjectDto } from '../api';
import { app } from '../state/app.svelte';
import { code } from '../state/code.svelte';
import CodeView from './CodeView.svelte';

const project: ProjectDto = {
  root: '/home/me/demo',
  name: 'demo',
  filesSeen: 10,
  filesIndexed: 10,
  filesUnchanged: 0,
  filesRemoved: 0,
  chunks: 42,
  skipped: [{ reason: 'binary', count: 2 }],
  elapsedMs: 300,
  retrieval: { kind: 'hybrid', model: 'all-MiniLM-L6-v2' },
};

const answer: CodeAnswerDto = {
  text: 'It is parsed in (src/a.rs:2-3) <img src=x onerror=alert(1)> and set up in pkg/__init__.py:1. It runs on Tuesdays [no source].',
  citations: [
    { path: 'src/a.rs', startLine: 2, endLine: 3 },
    { path: 'pkg/__init__.py', startLine: 1, endLine: 1 },
  ],
  removedCitations: ['src/zz.rs:1-9'],
  sentences: 2,
  unsourced: 1,
  retrieval: { kind: 'keywords', reason: { why: 'noModel' } },
  excerpts: [
    { path: 'src/a.rs', startLine: 1, endLine: 5, symbol: 'parse' },
    { path: 'pkg/__init__.py', startLine: 1, endLine: 3, symbol: '' },
  ],
  conversationId: 7,
};

/** A promise settled from outside, to hold a command open while the test looks at the page. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

/** The part of a Channel the fake backend uses: it sends by calling the handler. */
interface Listener<T> {
  onmessage: (message: T) => void;
}

interface Call {
  cmd: string;
  args: Record<string, unknown>;
}

/** Lets pending promises, Svelte's updates and a frame (a streaming answer renders once a frame) run. */
async function settle() {
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 0));
    await tick();
  }
  await new Promise((r) => requestAnimationFrame(r));
  await tick();
}

describe('the Code tab', () => {
  let target: HTMLElement;
  let view: ReturnType<typeof mount>;
  let calls: Call[];
  let indexing: ReturnType<typeof deferred<ProjectDto | null>>;
  let answering: ReturnType<typeof deferred<CodeAnswerDto>>;
  let progress: Listener<IndexProgressDto>;
  let stream: Listener<CodeStreamEvent>;

  const $ = <E extends Element = HTMLElement>(testid: string) => target.querySelector<E>(`[data-testid="${testid}"]`);
  const $$ = (testid: string) => [...target.querySelectorAll<HTMLElement>(`[data-testid="${testid}"]`)];
  const question = () => $<HTMLTextAreaElement>('code-question')!;

  async function type(text: string) {
    question().value = text;
    question().dispatchEvent(new Event('input', { bubbles: true }));
    await tick();
  }

  function key(element: EventTarget, key: string) {
    element.dispatchEvent(new KeyboardEvent('keydown', { key, bubbles: true, cancelable: true }));
  }

  async function openFolder() {
    $('code-open')!.click();
    await settle();
    indexing.resolve(project);
    await settle();
  }

  beforeEach(() => {
    calls = [];
    indexing = deferred();
    answering = deferred();
    mockIPC((cmd, args) => {
      // The tab asks once for a folder opened at start-up; these tests start with none.
      calls.push({ cmd, args: (args ?? {}) as Record<string, unknown> });
      const a = (args ?? {}) as { onProgress?: Listener<IndexProgressDto>; onEvent?: Listener<CodeStreamEvent> };
      switch (cmd) {
        case 'choose_project':
          progress = a.onProgress!;
          return indexing.promise;
        case 'ask_code':
          stream = a.onEvent!;
          return answering.promise;
        case 'read_project_file':
          return 'fn one() {}\nfn two() {}\nfn three() {}\nfn four() {}\n';
        case 'stop_reply':
          return true;
        case 'list_conversations':
          return [];
        default:
          throw new Error(`unexpected command ${cmd}`);
      }
    });
    // jsdom lays nothing out, so it has no scrolling to do.
    Element.prototype.scrollIntoView = vi.fn();
    Element.prototype.scrollTo = vi.fn();
    app.status = { model: { state: 'ready', model: {} as never }, starterModelAvailable: false, dataDir: '/data' };
    Object.assign(code, { project: null, exchanges: [], file: null, draft: '', indexError: null });
    target = document.body.appendChild(document.createElement('div'));
    view = mount(CodeView, { target });
  });

  afterEach(() => {
    unmount(view);
    target.remove();
    clearMocks();
  });

  it('asks for a folder first, and shows indexing progress and then the summary', async () => {
    expect(question().disabled).toBe(true);
    expect($('code-hint')?.textContent).toBe('Open a folder to ask about its code.');

    $('code-open')!.click();
    await settle();
    expect(calls.map((c) => c.cmd)).toEqual(['choose_project']);
    const stage = { chunksEmbedded: 0, chunksToEmbed: 0, chunksPerSecond: null, embedSecondsLeft: null };
    progress.onmessage({ filesDone: 120, filesTotal: 450, filesPerSecond: 85.4, ...stage });
    await settle();
    expect($('code-progress')?.textContent).toContain('120 of 450 files · 85 files/s');
    progress.onmessage({ filesDone: 450, filesTotal: 450, filesPerSecond: 85.4, ...stage, chunksToEmbed: 900, chunksEmbedded: 300, chunksPerSecond: 6, embedSecondsLeft: 100 });
    await settle();
    expect($('code-progress')?.textContent).toContain('embedding 300 of 900 chunks · 6.0 chunks/s · about 2 min left');
    expect($('code-progress')?.querySelector('progress')?.max).toBe(900);
    expect($<HTMLButtonElement>('code-open')!.disabled).toBe(true);

    indexing.resolve(project);
    await settle();
    expect($('code-progress')).toBeNull();
    expect($('code-summary')?.textContent).toContain('10 files · 42 chunks');
    expect($('code-summary')?.textContent).toContain('skipped: 2 binary');
    expect($('code-retrieval')?.textContent).toBe('Hybrid search: keywords and all-MiniLM-L6-v2 embeddings');
    expect(question().disabled).toBe(false);
    expect($('code-hint')).toBeNull();
  });

  it('says a model is needed when none is loaded', async () => {
    app.status = { model: { state: 'none' }, starterModelAvailable: false, dataDir: '/data' };
    await openFolder();
    expect(question().disabled).toBe(true);
    expect($('code-hint')?.textContent).toMatch(/^Load a model/);
  });

  it('streams an answer, then shows it with its verified citations as buttons', async () => {
    await openFolder();
    await type('Where are numbers parsed?');
    key(question(), 'Enter');
    await settle();

    const ask = calls.find((c) => c.cmd === 'ask_code')!;
    expect(ask.args.question).toBe('Where are numbers parsed?');
    expect(typeof ask.args.requestId).toBe('number');
    expect(question().value).toBe('');
    expect($('code-stop')).not.toBeNull();

    stream.onmessage({ kind: 'text', text: 'It is parsed in (src/a.rs:2-3) <img src=x onerror=alert(1)>' });
    await settle();
    expect($('code-answer')?.dataset.state).toBe('streaming');
    expect($('code-answer')?.textContent).toContain('<img src=x onerror=alert(1)>');
    expect($$('citation')).toHaveLength(0);

    answering.resolve(answer);
    await settle();
    const shown = $('code-answer')!;
    expect(shown.dataset.state).toBe('done');
    expect(shown.querySelector('img, script')).toBeNull();
    expect($$('citation').map((b) => b.textContent)).toEqual(['src/a.rs:2-3', 'pkg/__init__.py:1']);
    expect($('removed-citations')?.textContent).toBe('1 citation named code the model was not shown and was removed.');
    expect($('answer-retrieval')?.textContent).toBe('Keywords only (no embedding model is installed)');
    expect($('sourcing-note')?.textContent).toBe('1 of 2 sentences are backed by the code shown; the one marked “no source” is not.');
    expect([...shown.querySelectorAll('span.no-source')].map((m) => m.textContent)).toEqual(['no source']);
    expect($$('source').map((b) => b.textContent)).toEqual(['src/a.rs:1-5', 'pkg/__init__.py:1-3']);
    expect($('code-ask')).not.toBeNull();
    // The answer was saved in the folder's conversation, so the sidebar is refreshed.
    expect(calls.some((c) => c.cmd === 'list_conversations')).toBe(true);
  });

  it('opens a citation in the file view, highlighted and scrolled to, and Esc closes it', async () => {
    await openFolder();
    await type('Where?');
    key(question(), 'Enter');
    answering.resolve(answer);
    await settle();

    $$('citation')[0]!.click();
    await settle();
    expect(calls.find((c) => c.cmd === 'read_project_file')?.args).toEqual({ path: 'src/a.rs' });
    const file = $('file-view')!;
    expect(file.textContent).toContain('src/a.rs:2-3');
    expect($$('file-view-line-highlighted').map((l) => l.textContent)).toEqual(['2fn two() {}', '3fn three() {}']);
    expect(Element.prototype.scrollIntoView).toHaveBeenCalledWith({ block: 'center' });

    key(window, 'Escape');
    await settle();
    expect($('file-view')).toBeNull();

    $$('source')[1]!.click();
    await settle();
    expect(calls.filter((c) => c.cmd === 'read_project_file').at(-1)?.args).toEqual({ path: 'pkg/__init__.py' });
    expect($$('file-view-line-highlighted')).toHaveLength(3);
  });

  it('stops the answer with Esc, under the request id it was asked with', async () => {
    await openFolder();
    await type('Explain everything');
    key(question(), 'Enter');
    await settle();
    key(question(), 'Escape');
    await settle();
    const requestId = calls.find((c) => c.cmd === 'ask_code')!.args.requestId;
    expect(calls.find((c) => c.cmd === 'stop_reply')?.args).toEqual({ requestId });

    answering.resolve({ ...answer, removedCitations: [] });
    await settle();
    expect($('code-answer')?.textContent).toContain('stopped');
    expect($('removed-citations')).toBeNull();
  });

  it('shows a failure where the question was asked and gives the question back', async () => {
    await openFolder();
    await type('Why?');
    key(question(), 'Enter');
    answering.reject({ code: 'noModel', message: 'no model is loaded; choose a model first' });
    await settle();
    expect($('code-answer')?.dataset.state).toBe('failed');
    expect($('code-answer')?.textContent).toContain('no model is loaded; choose a model first');
    expect(question().value).toBe('Why?');
  });
});
