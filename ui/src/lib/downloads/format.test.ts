import { describe, expect, it } from 'vitest';
import type { ApiError, DownloadJobDto, ErrorCode, FileProgressDto, JobStateDto } from '../api';
import {
  errorAction,
  formatBytes,
  formatEta,
  formatProgress,
  formatRate,
  isDownloadable,
  jobButtons,
  jobTitle,
  licenceUrl,
  percent,
  variantId,
} from './format';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

/** Checks a formatter against [input, expected] pairs, so each case reads as one line. */
function check<T>(format: (input: T) => string, cases: [T, string][]) {
  expect(cases.map(([input]) => format(input))).toEqual(cases.map(([, expected]) => expected));
}

function job(overrides: Partial<DownloadJobDto>): DownloadJobDto {
  return {
    id: 1,
    repo: 'acme/tiny-GGUF',
    revision: 'main',
    variant: null,
    state: 'running',
    bytesDone: 0,
    bytesTotal: 0,
    bytesPerSecond: 0,
    etaSeconds: null,
    files: [],
    error: null,
    modelId: null,
    ...overrides,
  };
}

const file = (path: string): FileProgressDto => ({
  path,
  bytesDone: 0,
  bytesTotal: 0,
  bytesPerSecond: 0,
  etaSeconds: null,
  state: 'waiting',
});
const error = (code: ErrorCode, message = 'it failed'): ApiError => ({ code, message });

describe('sizes, rates and time left', () => {
  it('writes sizes in binary units with one decimal', () => {
    check(formatBytes, [
      [0, '0 B'],
      [512, '512 B'],
      [1536, '1.5 KiB'],
      [98_362_432, '93.8 MiB'],
      [1.5 * GiB, '1.5 GiB'],
      [4.2 * 1024 * GiB, '4.2 TiB'],
      [-1, '—'],
    ]);
  });

  it('writes rates in the same units, and a dash when nothing moves', () => {
    check(formatRate, [
      [12.3 * MiB, '12.3 MiB/s'],
      [800, '800 B/s'],
      [0, '—'],
      [Number.NaN, '—'],
    ]);
  });

  it('writes time left in seconds, minutes and hours, rounded up', () => {
    check(formatEta, [
      [null, '—'],
      [0, '0 s'],
      [0.2, '1 s'],
      [45, '45 s'],
      [200, '3 min 20 s'],
      [180, '3 min'],
      [3600, '1 h'],
      [7500, '2 h 5 min'],
      [Number.POSITIVE_INFINITY, '—'],
    ]);
  });

  it('gives whole percents rounded down, and none while the total is unknown', () => {
    expect(percent(0, 100)).toBe(0);
    expect(percent(999, 1000)).toBe(99);
    expect(percent(1000, 1000)).toBe(100);
    expect(percent(1200, 1000)).toBe(100);
    expect(percent(5, 0)).toBeNull();
  });

  it('writes progress as done of total', () => {
    expect(formatProgress(1.2 * GiB, 4.6 * GiB)).toBe('1.2 GiB of 4.6 GiB (26%)');
    expect(formatProgress(3 * MiB, 0)).toBe('3.0 MiB');
  });
});

describe('errorAction', () => {
  it('maps each error code to the action that fixes it', () => {
    const cases: [ErrorCode, string, string][] = [
      ['gated', 'Add a token', 'addToken'],
      ['diskFull', 'Free space, then retry', 'retry'],
      ['network', 'Retry', 'retry'],
      ['checksum', 'Retry', 'retry'],
      ['notFound', 'Check the name', 'checkName'],
      ['invalid', 'Check the name', 'checkName'],
      ['offline', 'Turn offline mode off', 'goOnline'],
      ['internal', 'Retry', 'retry'],
    ];
    expect(cases.map(([code]) => errorAction(error(code)))).toEqual(cases.map(([, label, kind]) => ({ label, kind })));
  });

  it('branches on the code, never on the text', () => {
    expect(errorAction(error('network', 'gated repo, disk full, not found'))).toEqual({ label: 'Retry', kind: 'retry' });
  });

  it('finds the licence page in a gated message, without the punctuation after it', () => {
    const gated = error(
      'gated',
      'meta-llama/Llama-3.1-8B-Instruct is gated: accept its licence at https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct with your Hugging Face account, then add an access token',
    );
    expect(licenceUrl(gated)).toBe('https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct');
    expect(licenceUrl(error('gated', 'accept it at https://hf.example/org/m.'))).toBe('https://hf.example/org/m');
    expect(licenceUrl(error('gated', 'no address here'))).toBeNull();
    expect(licenceUrl(error('network', 'download of https://hf.example/x failed'))).toBeNull();
  });
});

describe('names and buttons', () => {
  it('makes variant ids the way the catalog does', () => {
    expect(variantId('llama-3.1-8b-instruct', 'Q4_K_M')).toBe('llama-3.1-8b-instruct:q4_k_m');
  });

  it('has nothing to download for the starter model', () => {
    expect(isDownloadable('smollm2-135m-instruct')).toBe(false);
    expect(isDownloadable('llama-3.1-8b-instruct')).toBe(true);
  });

  it('names a job by its variant, or by its repo and files', () => {
    expect(jobTitle(job({ variant: 'llama-3.1-8b-instruct:q4_k_m', files: [file('a.gguf')] }))).toBe(
      'llama-3.1-8b-instruct:q4_k_m',
    );
    expect(jobTitle(job({ files: [file('tiny.Q4_1.gguf')] }))).toBe('acme/tiny-GGUF · tiny.Q4_1.gguf');
    expect(jobTitle(job({ files: [file('a'), file('b'), file('c')] }))).toBe('acme/tiny-GGUF · 3 files');
    expect(jobTitle(job({ revision: 'v2' }))).toBe('acme/tiny-GGUF @ v2');
  });

  it('offers the buttons that make sense in each state', () => {
    const offered = (state: JobStateDto) =>
      Object.entries(jobButtons(state))
        .filter(([, shown]) => shown)
        .map(([name]) => name)
        .join(' ');
    const states: JobStateDto[] = ['queued', 'running', 'paused', 'failed', 'completed', 'cancelled'];
    expect(Object.fromEntries(states.map((s) => [s, offered(s)]))).toEqual({
      queued: 'pause cancel',
      running: 'pause cancel',
      paused: 'resume cancel',
      failed: 'resume cancel forget',
      completed: 'forget',
      cancelled: 'forget',
    });
  });
});
