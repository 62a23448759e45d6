import { describe, expect, it } from 'vitest';
import type { IndexProgressDto, ModelStateDto, ProjectDto } from '../api';
import {
  askBlocker,
  formatElapsed,
  formatFileRate,
  formatIndexing,
  formatSkipped,
  projectChanges,
  projectTotals,
  removedNote,
  sourcingNote,
} from './format';
import { retrievalLabel } from '../retrieval';

/** Progress of the file stage only: nothing to embed yet. */
function files(filesDone: number, filesTotal: number, filesPerSecond: number): IndexProgressDto {
  return { filesDone, filesTotal, filesPerSecond, chunksEmbedded: 0, chunksToEmbed: 0, chunksPerSecond: null, embedSecondsLeft: null };
}

/** Checks a formatter against [input, expected] pairs, so each case reads as one line. */
function check<T>(format: (input: T) => string | null, cases: [T, string | null][]) {
  expect(cases.map(([input]) => format(input))).toEqual(cases.map(([, expected]) => expected));
}

function project(overrides: Partial<ProjectDto>): ProjectDto {
  return {
    root: '/home/me/serde',
    name: 'serde',
    filesSeen: 412,
    filesIndexed: 412,
    filesUnchanged: 0,
    filesRemoved: 0,
    chunks: 3120,
    skipped: [],
    elapsedMs: 1234,
    retrieval: { kind: 'hybrid', model: 'all-MiniLM-L6-v2' },
    ...overrides,
  };
}

describe('indexing', () => {
  it('words progress with the rate once there is one', () => {
    check(formatIndexing, [
      [null, 'Looking for files…'],
      [files(0, 0, 0), 'Looking for files…'],
      [files(0, 1, 0), '0 of 1 file'],
      [files(120, 450, 85.4), '120 of 450 files · 85 files/s'],
      [files(3, 450, 2.54), '3 of 450 files · 2.5 files/s'],
    ]);
  });

  it('words embedding with its rate and the time left', () => {
    const done = files(450, 450, 85);
    check(formatIndexing, [
      [{ ...done, chunksToEmbed: 1200, chunksEmbedded: 0, chunksPerSecond: null, embedSecondsLeft: null }, 'embedding 0 of 1200 chunks'],
      [{ ...done, chunksToEmbed: 1200, chunksEmbedded: 96, chunksPerSecond: 6.54, embedSecondsLeft: 168.8 }, 'embedding 96 of 1200 chunks · 6.5 chunks/s · about 3 min left'],
      [{ ...done, chunksToEmbed: 1, chunksEmbedded: 0, chunksPerSecond: 12, embedSecondsLeft: 0.2 }, 'embedding 0 of 1 chunk · 12 chunks/s · about 1 s left'],
    ]);
  });

  it('says which retrieval finds the code', () => {
    expect(retrievalLabel({ kind: 'hybrid', model: 'all-MiniLM-L6-v2' })).toBe('Hybrid search: keywords and all-MiniLM-L6-v2 embeddings');
    expect(retrievalLabel({ kind: 'keywords', reason: { why: 'noModel' } })).toBe('Keywords only (no embedding model is installed)');
    expect(retrievalLabel({ kind: 'keywords', reason: { why: 'modelFailed', error: 'config.json is damaged' } })).toBe(
      'Keywords only (the embedding model failed: config.json is damaged)',
    );
  });

  it('leaves out a rate that is not a rate', () => {
    check(formatFileRate, [
      [0, ''],
      [Number.NaN, ''],
      [Number.POSITIVE_INFINITY, ''],
      [12.6, '13 files/s'],
    ]);
  });

  it('words durations', () => {
    check(formatElapsed, [
      [350, '350 ms'],
      [1234, '1.2 s'],
      [125_000, '2 min 5 s'],
    ]);
  });
});

describe('the project summary', () => {
  it('sums up the folder and what this indexing did', () => {
    expect(projectTotals(project({}))).toBe('412 files · 3120 chunks · 1.2 s');
    expect(projectTotals(project({ filesSeen: 1, chunks: 1, elapsedMs: 20 }))).toBe('1 file · 1 chunk · 20 ms');
    check(projectChanges, [
      [project({}), '412 indexed'],
      [project({ filesIndexed: 3, filesUnchanged: 405, filesRemoved: 4 }), '3 indexed, 405 unchanged, 4 removed'],
    ]);
  });

  it('words why files were skipped', () => {
    check(formatSkipped, [
      [[], 'none'],
      [[{ reason: 'binary', count: 0 }], 'none'],
      [
        [
          { reason: 'binary', count: 3 },
          { reason: 'too_large', count: 1 },
          { reason: 'not_utf8', count: 2 },
          { reason: 'walk_error', count: 5 },
        ],
        '3 binary · 1 over 2 MiB · 2 not UTF-8 text · 5 link loop or unreachable',
      ],
    ]);
  });
});

describe('answers', () => {
  it('notes removed citations, in the singular and the plural', () => {
    check(removedNote, [
      [0, null],
      [1, '1 citation named code the model was not shown and was removed'],
      [3, '3 citations named code the model was not shown and were removed'],
    ]);
  });

  it('says how many sentences the code shown backs', () => {
    expect(sourcingNote(0, 0)).toBeNull();
    expect(sourcingNote(4, 0)).toBe('Every sentence (4) is backed by the code shown.');
    expect(sourcingNote(4, 1)).toBe('3 of 4 sentences are backed by the code shown; the one marked “no source” is not.');
    expect(sourcingNote(5, 2)).toBe('3 of 5 sentences are backed by the code shown; the 2 marked “no source” are not.');
  });

  it('says why a question cannot be asked yet', () => {
    const ready = { state: 'ready', model: {} } as ModelStateDto;
    expect(askBlocker(false, ready)).toBe('Open a folder to ask about its code.');
    expect(askBlocker(true, ready)).toBeNull();
    expect(askBlocker(true, { state: 'loading', path: '/m.gguf', progress: { stage: 'layers', layersDone: 3, layersTotal: 30, quantizing: false } })).toBe('The model is loading; ask when it is ready.');
    expect(askBlocker(true, { state: 'none' })).toMatch(/^Load a model/);
    expect(askBlocker(true, { state: 'failed', path: '/m.gguf', message: 'bad' })).toMatch(/^Load a model/);
    expect(askBlocker(true, undefined)).toMatch(/^Load a model/);
  });
});
