import { describe, expect, it } from 'vitest';
import type { SummaryDto } from '../api';
import { formatEta, formatSummaryProgress, summaryFraction, summaryNotes } from './format';

describe('summary progress', () => {
  it('says what is being written and how long is left', () => {
    const writing = { kind: 'writing' as const, level: 0, item: 2, items: 5, step: 2, steps: 7, firstPage: 10, lastPage: 20, etaMs: 125_000 };
    expect(formatSummaryProgress(writing)).toBe('Summarizing part 2 of 5 (pp. 10–20) · about 2 min left');
    expect(formatSummaryProgress({ ...writing, level: 1, item: 1, items: 2, etaMs: null })).toBe(
      'Combining summaries, 1 of 2 (pp. 10–20)',
    );
    expect(formatSummaryProgress({ ...writing, level: 2, item: 1, items: 1, firstPage: 1, lastPage: 300, etaMs: 9_000 })).toBe(
      'Writing the final summary (pp. 1–300) · about 9 s left',
    );
    expect(formatSummaryProgress({ kind: 'counting', done: 40, pages: 300 })).toBe('Measuring the text: page 40 of 300');
    expect(formatSummaryProgress({ kind: 'embedding', done: 96, total: 600 })).toBe('Reading the pages for search: 96 of 600 passages');
    expect(summaryFraction({ kind: 'embedding', done: 300, total: 600 })).toBeCloseTo(0.025);
    expect(summaryFraction(writing)).toBeCloseTo(0.05 + 0.95 / 7);
    expect(formatEta(null)).toBe('');
    expect(formatEta(2 * 3600_000)).toBe('about 2.0 h left');
  });

  it('notes how the summary was made and removed citations', () => {
    const s: SummaryDto = {
      documentId: 1, text: '', citations: [], removedCitations: 2, sentences: 0, unsourced: 0, parts: 7, levels: 3, model: 'M', cached: true,
    };
    expect(summaryNotes(s)).toEqual([
      'Written by M from 7 partial summaries over 3 levels (saved earlier).',
      '2 citations named a page outside the part being summarized and were removed.',
    ]);
  });

  it('says how many sentences a page supports and how many are marked', () => {
    const s: SummaryDto = {
      documentId: 1, text: '', citations: [], removedCitations: 0, sentences: 9, unsourced: 2, parts: 1, levels: 1, model: 'M', cached: false,
    };
    expect(summaryNotes(s)[1]).toBe('7 of 9 sentences cite a page that supports them; the 2 marked “no source” are not backed by any page.');
    expect(summaryNotes({ ...s, unsourced: 1 })[1]).toBe(
      '8 of 9 sentences cite a page that supports them; the one marked “no source” is not backed by any page.',
    );
    expect(summaryNotes({ ...s, unsourced: 0 })[1]).toBe('Every sentence (9) cites a page that supports it.');
  });
});
