import { describe, expect, it } from 'vitest';
import type { ModelStateDto, ProjectDto } from '../api';
import {
  askBlocker,
  formatElapsed,
  formatFileRate,
  formatIndexing,
  formatSkipped,
  projectChanges,
  projectTotals,
  removedNote,
} from './format';

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
    ...overrides,
  };
}

describe('indexing', () => {
  it('words progress with the rate once there is one', () => {
    check(formatIndexing, [
      [null, 'Looking for files…'],
      [{ filesDone: 0, filesTotal: 0, filesPerSecond: 0 }, 'Looking for files…'],
      [{ filesDone: 0, filesTotal: 1, filesPerSecond: 0 }, '0 of 1 file'],
      [{ filesDone: 120, filesTotal: 450, filesPerSecond: 85.4 }, '120 of 450 files · 85 files/s'],
      [{ filesDone: 3, filesTotal: 450, filesPerSecond: 2.54 }, '3 of 450 files · 2.5 files/s'],
    ]);
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
