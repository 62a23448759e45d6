// A folder dropped on the window reaches the Code tab's state as events: indexing progress, then
// the open folder (answers about another folder are left behind) or the reason it failed.
import { describe, expect, it } from 'vitest';
import type { ProjectDto } from '../api';
import { CodeState } from './code.svelte';

const project = (root: string): ProjectDto => ({
  root,
  name: root.split('/').pop() ?? root,
  filesSeen: 3,
  filesIndexed: 3,
  filesUnchanged: 0,
  filesRemoved: 0,
  chunks: 9,
  skipped: [],
  elapsedMs: 12,
  retrieval: { kind: 'keywords', reason: { why: 'noModel' } },
});

describe('dropped folders', () => {
  it('show progress, then open, clearing answers about another folder', () => {
    const code = new CodeState();
    code.project = project('/old');
    code.exchanges = [{ id: 1, question: 'q', streamed: 'a', answer: null, error: null, stopped: false }];

    code.handleProjectEvent({ kind: 'indexing', progress: { filesDone: 1, filesTotal: 3, filesPerSecond: 10, chunksEmbedded: 0, chunksToEmbed: 0, chunksPerSecond: null, embedSecondsLeft: null }, dropped: true });
    expect(code.indexing).toBe(true);
    expect(code.progress?.filesDone).toBe(1);

    code.handleProjectEvent({ kind: 'opened', project: project('/new'), dropped: true });
    expect(code.indexing).toBe(false);
    expect(code.project?.root).toBe('/new');
    expect(code.exchanges).toEqual([]);

    // Then its chunks are embedded in the background: shown, and gone once all are done.
    const files = { filesDone: 3, filesTotal: 3, filesPerSecond: 0 };
    code.handleProjectEvent({ kind: 'embedding', progress: { ...files, chunksEmbedded: 16, chunksToEmbed: 40, chunksPerSecond: 8, embedSecondsLeft: 3 } });
    expect(code.embedding?.chunksEmbedded).toBe(16);
    expect(code.indexing).toBe(false);
    code.handleProjectEvent({ kind: 'embedding', progress: { ...files, chunksEmbedded: 40, chunksToEmbed: 40, chunksPerSecond: 8, embedSecondsLeft: null } });
    expect(code.embedding).toBeNull();
  });

  it('keep the answers when the same folder is dropped again, and report failures', () => {
    const code = new CodeState();
    code.project = project('/same');
    code.exchanges = [{ id: 1, question: 'q', streamed: 'a', answer: null, error: null, stopped: false }];
    code.handleProjectEvent({ kind: 'opened', project: project('/same'), dropped: true });
    expect(code.exchanges).toHaveLength(1);

    code.handleProjectEvent({ kind: 'failed', error: { code: 'notFound', message: '/gone is not a folder' }, dropped: true });
    expect(code.indexing).toBe(false);
    expect(code.indexError?.message).toBe('/gone is not a folder');
  });
});
