// How the Documents tab words progress and notes: pure functions of the DTOs (format.test.ts).
import type { SummaryDto, SummaryProgressDto } from '../api';

/** `about 2 min left`, `about 40 s left`; empty when unknown. */
export function formatEta(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms) || ms < 0) return '';
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `about ${Math.max(seconds, 1)} s left`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) return `about ${minutes} min left`;
  return `about ${(minutes / 60).toFixed(1)} h left`;
}

/** A line for the progress bar: what is being done now and how long is left. */
export function formatSummaryProgress(p: SummaryProgressDto | null): string {
  if (p === null) return 'Starting…';
  if (p.kind === 'counting') return `Measuring the text: page ${p.done} of ${p.pages}`;
  if (p.kind === 'embedding') return `Reading the pages for search: ${p.done} of ${p.total} passages`;
  if (p.kind === 'part') return `Finished pp. ${p.firstPage}–${p.lastPage}`;
  const span = p.firstPage === p.lastPage ? `p. ${p.firstPage}` : `pp. ${p.firstPage}–${p.lastPage}`;
  const what =
    p.items === 1
      ? `Writing the final summary (${span})`
      : p.level === 0
        ? `Summarizing part ${p.item} of ${p.items} (${span})`
        : `Combining summaries, ${p.item} of ${p.items} (${span})`;
  const eta = formatEta(p.etaMs);
  return eta ? `${what} · ${eta}` : what;
}

/** Fraction done for a progress bar, or null when it cannot be known yet. */
export function summaryFraction(p: SummaryProgressDto | null): number | null {
  if (p === null) return null;
  if (p.kind === 'counting') return p.pages > 0 ? (0.05 * p.done) / p.pages : null;
  if (p.kind === 'embedding') return p.total > 0 ? (0.05 * p.done) / p.total : null;
  if (p.kind === 'writing') return 0.05 + (0.95 * (p.step - 1)) / Math.max(p.steps, 1);
  return null;
}

/**
 * How many of a summary's or an answer's sentences cite a page that supports them, and how
 * many are marked unsupported; `null` for a text without sentences.
 */
export function pageSourcingNote(sentences: number, unsourced: number): string | null {
  if (sentences === 0) return null;
  if (unsourced === 0) return `Every sentence (${sentences}) cites a page that supports it.`;
  const marked = unsourced === 1 ? 'the one marked “no source” is' : `the ${unsourced} marked “no source” are`;
  return `${sentences - unsourced} of ${sentences} sentences cite a page that supports them; ${marked} not backed by any page.`;
}

/** Notes under a summary: how it was made, and citations removed for naming other pages. */
export function summaryNotes(s: SummaryDto): string[] {
  const notes: string[] = [];
  const parts = s.parts === 1 ? 'in one pass' : `from ${s.parts} partial summaries over ${s.levels} levels`;
  notes.push(`Written by ${s.model} ${parts}${s.cached ? ' (saved earlier)' : ''}.`);
  const sourcing = pageSourcingNote(s.sentences, s.unsourced);
  if (sourcing !== null) notes.push(sourcing);
  if (s.removedCitations > 0) {
    notes.push(
      `${s.removedCitations} citation${s.removedCitations === 1 ? '' : 's'} named a page outside the part being summarized and ${s.removedCitations === 1 ? 'was' : 'were'} removed.`,
    );
  }
  return notes;
}
