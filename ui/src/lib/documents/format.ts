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

/** Notes under a summary: how it was made, and citations removed for naming other pages. */
export function summaryNotes(s: SummaryDto): string[] {
  const notes: string[] = [];
  const parts = s.parts === 1 ? 'in one pass' : `from ${s.parts} partial summaries over ${s.levels} levels`;
  notes.push(`Written by ${s.model} ${parts}${s.cached ? ' (saved earlier)' : ''}.`);
  if (s.sentences > 0) {
    const sourced = s.sentences - s.unsourced;
    notes.push(
      s.unsourced === 0
        ? `Every sentence (${s.sentences}) cites a page that supports it.`
        : `${sourced} of ${s.sentences} sentences cite a page that supports them; ${s.unsourced === 1 ? 'the one marked “no source” is' : `the ${s.unsourced} marked “no source” are`} not backed by any page.`,
    );
  }
  if (s.removedCitations > 0) {
    notes.push(
      `${s.removedCitations} citation${s.removedCitations === 1 ? '' : 's'} named a page outside the part being summarized and ${s.removedCitations === 1 ? 'was' : 'were'} removed.`,
    );
  }
  return notes;
}
