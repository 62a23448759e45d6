// The Documents tab in a test DOM over a fake backend (Tauri's mockIPC). Files arrive as events
// from the drop handler, which the end-to-end tests cannot drive, so this is where the flow is
// checked: reading, automatic summary with progress, stop and continue, citations that open the
// cited pages, saved summaries shown at once, failures, and follow-up questions.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { mount, tick, unmount } from 'svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import type { CodeStreamEvent, DocumentAnswerDto, DocumentDto, SummaryDto, SummaryProgressDto } from '../api';
import { app } from '../state/app.svelte';
import { documents } from '../state/documents.svelte';
import DocumentsView from './DocumentsView.svelte';

const doc: DocumentDto = { id: 4, title: 'report.pdf', path: '/home/me/report.pdf', pageCount: 12, warnings: ['pages 3–4 have no text layer'], conversationId: null };

const summary: SummaryDto = {
  documentId: 4,
  text: 'Harvests rose [p. 7]. <img src=x onerror=alert(1)> Prices fell [pp. 9–10]. Trucks were bought [no source].',
  citations: [
    { page: 7, text: 'Harvests rose' },
    { page: 9, text: 'Prices fell' },
    { page: 10, text: 'Prices fell' },
  ],
  removedCitations: 1,
  sentences: 3,
  unsourced: 1,
  parts: 3,
  levels: 2,
  model: 'SmolLM2',
  cached: false,
};

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

interface Listener<T> {
  onmessage: (message: T) => void;
}

async function settle() {
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 0));
    await tick();
  }
  await new Promise((r) => requestAnimationFrame(r));
  await tick();
}

describe('the Documents tab', () => {
  let target: HTMLElement;
  let view: ReturnType<typeof mount>;
  let calls: { cmd: string; args: Record<string, unknown> }[];
  let summarizing: ReturnType<typeof deferred<SummaryDto>>;
  let answering: ReturnType<typeof deferred<DocumentAnswerDto>>;
  let progress: Listener<SummaryProgressDto>;
  let stream: Listener<CodeStreamEvent>;

  const $ = <E extends Element = HTMLElement>(testid: string) => target.querySelector<E>(`[data-testid="${testid}"]`);
  const $$ = (testid: string) => [...target.querySelectorAll<HTMLElement>(`[data-testid="${testid}"]`)];
  const key = (element: EventTarget, key: string) =>
    element.dispatchEvent(new KeyboardEvent('keydown', { key, bubbles: true, cancelable: true }));

  async function drop(cached: SummaryDto | null = null) {
    documents.handleEvent({ kind: 'opening', key: 1, name: 'report.pdf' });
    await settle();
    documents.handleEvent({ kind: 'opened', key: 1, opened: { document: doc, summary: cached } });
    await settle();
  }

  beforeEach(() => {
    calls = [];
    summarizing = deferred();
    answering = deferred();
    mockIPC((cmd, args) => {
      calls.push({ cmd, args: (args ?? {}) as Record<string, unknown> });
      const a = (args ?? {}) as { onProgress?: Listener<SummaryProgressDto>; onEvent?: Listener<CodeStreamEvent>; page?: number };
      switch (cmd) {
        case 'list_documents':
          return [];
        case 'summarize_document':
          progress = a.onProgress!;
          return summarizing.promise;
        case 'ask_document':
          stream = a.onEvent!;
          return answering.promise;
        case 'document_page':
          return `The text of page ${a.page}.`;
        case 'get_document':
          return { document: { ...doc, conversationId: 9 }, summary: null };
        case 'stop_reply':
          return true;
        case 'list_conversations':
          return [];
        default:
          throw new Error(`unexpected command ${cmd}`);
      }
    });
    Element.prototype.scrollIntoView = vi.fn();
    Element.prototype.scrollTo = vi.fn();
    app.status = { model: { state: 'ready', model: {} as never }, starterModelAvailable: false, dataDir: '/data' };
    Object.assign(documents, { entries: [], selectedKey: null, pageView: null, draft: '', job: null });
    target = document.body.appendChild(document.createElement('div'));
    view = mount(DocumentsView, { target });
  });

  afterEach(() => {
    unmount(view);
    target.remove();
    clearMocks();
  });

  it('reads a dropped file, summarizes it with live progress, and opens cited pages', async () => {
    documents.handleEvent({ kind: 'opening', key: 1, name: 'report.pdf' });
    await settle();
    expect($('document-card')?.dataset.state).toBe('Reading…');
    expect($('document-reading')?.textContent).toContain('Reading report.pdf');

    documents.handleEvent({ kind: 'opened', key: 1, opened: { document: doc, summary: null } });
    await settle();
    expect($$('document-card')).toHaveLength(1);
    expect($('document-warnings')?.textContent).toContain('pages 3–4 have no text layer');
    const started = calls.find((c) => c.cmd === 'summarize_document')!;
    expect(started.args).toMatchObject({ documentId: 4, fresh: false });

    progress.onmessage({ kind: 'writing', level: 0, item: 2, items: 3, step: 2, steps: 4, firstPage: 5, lastPage: 8, etaMs: 70_000 });
    await settle();
    expect($('summary-progress-text')?.textContent).toBe('Summarizing part 2 of 3 (pp. 5–8) · about 1 min left');
    expect($<HTMLProgressElement>('summary-progress progress')).toBeNull();
    expect(target.querySelector<HTMLProgressElement>('[data-testid="summary-progress"] progress')?.value).toBeCloseTo(0.05 + 0.95 / 4);

    summarizing.resolve(summary);
    await settle();
    const shown = $('summary-text')!;
    expect(shown.querySelector('img, script')).toBeNull();
    expect($$('page-citation').map((b) => b.textContent)).toEqual(['[p. 7]', '[pp. 9–10]']);
    expect($$('summary-note').map((n) => n.textContent)).toEqual([
      'Written by SmolLM2 from 3 partial summaries over 2 levels.',
      '2 of 3 sentences cite a page that supports them; the one marked “no source” is not backed by any page.',
      '1 citation named a page outside the part being summarized and was removed.',
    ]);
    expect([...shown.querySelectorAll('span.no-source')].map((m) => m.textContent)).toEqual(['no source']);

    $$('page-citation')[1]!.click();
    await settle();
    expect(calls.filter((c) => c.cmd === 'document_page').map((c) => c.args)).toEqual([
      { documentId: 4, page: 9 },
      { documentId: 4, page: 10 },
    ]);
    expect($$('page-text').map((p) => p.textContent?.replace(/\s+/g, ' ').trim())).toEqual([
      'Page 9 The text of page 9.',
      'Page 10 The text of page 10.',
    ]);
    key(window, 'Escape');
    await settle();
    expect($('page-view')).toBeNull();
  });

  it('stops a summary, keeps the parts, and continues on request', async () => {
    await drop();
    progress.onmessage({ kind: 'part', level: 0, firstPage: 1, lastPage: 4, reused: false });
    await settle();
    $('summary-stop')!.click();
    await settle();
    expect(calls.some((c) => c.cmd === 'stop_reply')).toBe(true);
    summarizing.reject({ code: 'stopped', message: 'summarizing was stopped' });
    await settle();
    expect($('summary-stopped')?.textContent).toBe('Stopped after 1 part; what was finished is kept.');
    expect($('summary-start')?.textContent).toBe('Continue');

    summarizing = deferred();
    $('summary-start')!.click();
    await settle();
    expect(calls.filter((c) => c.cmd === 'summarize_document')).toHaveLength(2);
    summarizing.resolve({ ...summary, cached: false });
    await settle();
    expect($('summary-text')).not.toBeNull();
  });

  it('shows a saved summary at once and reports a file that cannot be read', async () => {
    await drop({ ...summary, cached: true });
    expect(calls.some((c) => c.cmd === 'summarize_document')).toBe(false);
    expect($$('summary-note')[0]?.textContent).toContain('(saved earlier)');

    documents.handleEvent({ kind: 'opening', key: 2, name: 'broken.pdf' });
    documents.handleEvent({ kind: 'failed', key: 2, name: 'broken.pdf', error: { code: 'badDocument', message: 'broken.pdf is damaged or not a valid PDF: bad xref' } });
    await settle();
    expect($('document-error')?.textContent).toBe('broken.pdf is damaged or not a valid PDF: bad xref');
    expect($$('document-card').map((c) => c.dataset.state)).toEqual(['Could not be read', 'Summarized']);
  });

  it('waits for the model before summarizing', async () => {
    app.status = { model: { state: 'loading', path: '/m.gguf', progress: { stage: 'layers', layersDone: 3, layersTotal: 30, quantizing: false } }, starterModelAvailable: false, dataDir: '/data' };
    await settle();
    await drop();
    expect(calls.some((c) => c.cmd === 'summarize_document')).toBe(false);
    expect($('summary-queued')).not.toBeNull();
    expect($('documents-hint')?.textContent).toMatch(/loading/);
    app.status = { model: { state: 'ready', model: {} as never }, starterModelAvailable: false, dataDir: '/data' };
    await settle();
    expect(calls.some((c) => c.cmd === 'summarize_document')).toBe(true);
  });

  it('answers a follow-up question with page citations', async () => {
    await drop({ ...summary, cached: true });
    const box = $<HTMLTextAreaElement>('document-question')!;
    box.value = 'What happened in season 7?';
    box.dispatchEvent(new Event('input', { bubbles: true }));
    await tick();
    key(box, 'Enter');
    await settle();
    expect(calls.find((c) => c.cmd === 'ask_document')?.args).toMatchObject({ documentId: 4, question: 'What happened in season 7?' });
    stream.onmessage({ kind: 'text', text: 'Barley [p. 7]' });
    await settle();
    expect($('document-answer')?.dataset.state).toBe('streaming');
    answering.resolve({
      text: 'Barley was harvested [p. 7]. Wheat failed [no source].',
      citations: [{ page: 7, text: 'Barley was harvested' }],
      removedCitations: 0,
      sentences: 2,
      unsourced: 1,
      sources: [{ firstPage: 7, lastPage: 7, summary: false }],
      retrieval: { kind: 'hybrid', model: 'all-MiniLM-L6-v2' },
      conversationId: 9,
    });
    await settle();
    expect($('document-answer')?.dataset.state).toBe('done');
    const answer = $('document-answer')!;
    expect([...answer.querySelectorAll('[data-testid="page-citation"]')].map((b) => b.textContent)).toEqual(['[p. 7]']);
    expect($$('document-source').map((b) => b.textContent)).toEqual(['p. 7']);
    expect($('document-retrieval')?.textContent).toBe('Hybrid search: keywords and all-MiniLM-L6-v2 embeddings');
    expect($('answer-sourcing')?.textContent).toBe(
      '1 of 2 sentences cite a page that supports them; the one marked “no source” is not backed by any page.',
    );
    expect([...answer.querySelectorAll('span.no-source')].map((m) => m.textContent)).toEqual(['no source']);
  });
});
