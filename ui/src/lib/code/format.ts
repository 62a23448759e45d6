// How the Code tab words its numbers and states: pure functions of the DTOs, so the components
// stay declarative and the wording is tested in one place (format.test.ts).
import type { IndexProgressDto, ModelStateDto, ProjectDto, SkipCountDto, SkipReasonDto } from '../api';
import { formatEta } from '../documents/format';

const SKIP_REASONS: Record<SkipReasonDto, string> = {
  binary: 'binary',
  too_large: 'over 2 MiB',
  minified: 'minified',
  generated: 'generated',
  not_utf8: 'not UTF-8 text',
  non_utf8_name: 'name not UTF-8',
  unreadable: 'unreadable',
  walk_error: 'link loop or unreachable',
  outside_folder: 'link out of the folder',
};

/** Why files were left out, in words: `binary`, `over 2 MiB`. */
export function skipReasonLabel(reason: SkipReasonDto): string {
  return SKIP_REASONS[reason];
}

/** `3 binary · 1 over 2 MiB`, or `none`. */
export function formatSkipped(skipped: readonly SkipCountDto[]): string {
  const parts = skipped.filter((s) => s.count > 0).map((s) => `${s.count} ${skipReasonLabel(s.reason)}`);
  return parts.length === 0 ? 'none' : parts.join(' · ');
}

/** A count with its noun: `1 file`, `3 files`. */
export function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

/** Files per second: `85 files/s`, `2.5 files/s`; empty while nothing has been measured. */
export function formatFileRate(filesPerSecond: number | null): string {
  if (filesPerSecond === null || !Number.isFinite(filesPerSecond) || filesPerSecond <= 0) return '';
  return `${filesPerSecond < 10 ? filesPerSecond.toFixed(1) : Math.round(filesPerSecond)} files/s`;
}

/** `120 of 450 files · 85 files/s`; `Looking for files…` before the walk has counted them. */
export function formatIndexing(progress: IndexProgressDto | null): string {
  if (progress !== null && progress.chunksToEmbed > 0) {
    const rate = progress.chunksPerSecond;
    const parts = [`embedding ${progress.chunksEmbedded} of ${plural(progress.chunksToEmbed, 'chunk')}`];
    if (rate !== null && Number.isFinite(rate) && rate > 0) parts.push(`${rate < 10 ? rate.toFixed(1) : Math.round(rate)} chunks/s`);
    const left = formatEta(progress.embedSecondsLeft === null ? null : progress.embedSecondsLeft * 1000);
    if (left !== '') parts.push(left);
    return parts.join(' · ');
  }
  if (progress === null || progress.filesTotal === 0) return 'Looking for files…';
  const rate = formatFileRate(progress.filesPerSecond);
  const done = `${progress.filesDone} of ${plural(progress.filesTotal, 'file')}`;
  return rate === '' ? done : `${done} · ${rate}`;
}

/** A duration: `350 ms`, `1.2 s`, `2 min 5 s`. */
export function formatElapsed(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
}

/** The summary of an indexing: `412 files · 3120 chunks · 1.2 s`. */
export function projectTotals(project: ProjectDto): string {
  return `${plural(project.filesSeen, 'file')} · ${plural(project.chunks, 'chunk')} · ${formatElapsed(project.elapsedMs)}`;
}

/** What this indexing did: `38 indexed, 370 unchanged, 4 removed` (zero counts left out). */
export function projectChanges(project: ProjectDto): string {
  const parts = [`${project.filesIndexed} indexed`];
  if (project.filesUnchanged > 0) parts.push(`${project.filesUnchanged} unchanged`);
  if (project.filesRemoved > 0) parts.push(`${project.filesRemoved} removed`);
  return parts.join(', ');
}

/** The note under an answer whose checker removed citations; null when it removed none. */
export function removedNote(count: number): string | null {
  if (count <= 0) return null;
  return count === 1
    ? '1 citation named code the model was not shown and was removed'
    : `${count} citations named code the model was not shown and were removed`;
}

/** Why a question cannot be asked now, as a hint for the question box; null when it can. */
export function askBlocker(projectOpen: boolean, model: ModelStateDto | null | undefined): string | null {
  if (!projectOpen) return 'Open a folder to ask about its code.';
  switch (model?.state) {
    case 'ready':
      return null;
    case 'loading':
      return 'The model is loading; ask when it is ready.';
    default:
      return 'Load a model (in the status bar below) to ask about the code.';
  }
}

/**
 * How well the answer's sentences are backed by the code shown: `Every sentence (4) is backed by
 * the code shown.`, or how many are not; `null` for an answer without sentences.
 */
export function sourcingNote(sentences: number, unsourced: number): string | null {
  if (sentences === 0) return null;
  if (unsourced === 0) return `Every sentence (${sentences}) is backed by the code shown.`;
  const marked = unsourced === 1 ? 'the one marked “no source” is' : `the ${unsourced} marked “no source” are`;
  return `${sentences - unsourced} of ${sentences} sentences are backed by the code shown; ${marked} not.`;
}
