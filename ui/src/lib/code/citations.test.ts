import { describe, expect, it } from 'vitest';
import type { ExcerptDto } from '../api';
import { fileWindow, formatRange, isShown, splitCitations, splitLines, type AnswerSegment } from './citations';

function ex(path: string, startLine: number, endLine: number): ExcerptDto {
  return { path, startLine, endLine, symbol: '' };
}

/** Writes segments compactly: text as is, citations as `[path:start-end]`. */
function show(segments: AnswerSegment[]): string {
  return segments.map((s) => (s.kind === 'text' ? s.text : `[${s.path}:${s.startLine}-${s.endLine}]`)).join('');
}

/** Checks that `text` splits as `expected` against `excerpts`, and that nothing is lost. */
function check(text: string, excerpts: ExcerptDto[], expected: string) {
  const segments = splitCitations(text, excerpts);
  expect(show(segments)).toBe(expected);
  expect(segments.map((s) => s.text).join('')).toBe(text);
}

describe('splitCitations', () => {
  const excerpts = [ex('src/de.rs', 100, 180), ex('src/read.rs', 10, 40)];

  it('links citations inside an excerpt, as the backend checker accepts them', () => {
    // The backend's own test case (core/src/codebase/answer.rs), before removal.
    check(
      'Numbers are parsed in (src/de.rs:120-150), escapes in ./src/read.rs:12 and magic in (src/nope.rs:1-5) and (src/de.rs:170-200). Again src/de.rs:120-150.',
      excerpts,
      'Numbers are parsed in ([src/de.rs:120-150]), escapes in [src/read.rs:12-12] and magic in (src/nope.rs:1-5) and (src/de.rs:170-200). Again [src/de.rs:120-150].',
    );
  });

  it('keeps the citation text as written, and the leading ./ out of the path', () => {
    const [, citation] = splitCitations('see ./src/read.rs:12', excerpts);
    expect(citation).toEqual({ kind: 'citation', text: './src/read.rs:12', path: 'src/read.rs', startLine: 12, endLine: 12 });
  });

  it('accepts the edges of an excerpt and refuses one line past them', () => {
    check('src/de.rs:100-180 src/de.rs:99-120 src/de.rs:180-181 src/de.rs:100', excerpts, '[src/de.rs:100-180] src/de.rs:99-120 src/de.rs:180-181 [src/de.rs:100-100]');
  });

  it('reads an en dash and spaces around it, as the backend does', () => {
    check('(src/de.rs:120 – 130) (src/de.rs:120 -130)', excerpts, '([src/de.rs:120-130]) ([src/de.rs:120-130])');
  });

  it('refuses a range that runs backwards or starts at line 0', () => {
    check('src/de.rs:150-120 src/de.rs:0 src/read.rs:0-12', excerpts, 'src/de.rs:150-120 src/de.rs:0 src/read.rs:0-12');
  });

  it('needs the exact path: no suffix, prefix or other case matches', () => {
    check('de.rs:120 src/De.rs:120 lib/src/de.rs:120 src/de.rsx:120', excerpts, 'de.rs:120 src/De.rs:120 lib/src/de.rs:120 src/de.rsx:120');
  });

  it('ignores what is not a citation: times, URLs without a line, a path without an extension', () => {
    check('at 10:30, see https://example.org/x, Makefile:12, src/de.rs line 120', excerpts, 'at 10:30, see https://example.org/x, Makefile:12, src/de.rs line 120');
  });

  it('cuts the text at the same places as the backend pattern (greedy path, longest range)', () => {
    // The path runs back over every path character, so `x_src/de.rs` is not `src/de.rs`.
    check('x_src/de.rs:120 (src/de.rs:120-130-140)', excerpts, 'x_src/de.rs:120 ([src/de.rs:120-130]-140)');
  });

  it('reads line numbers as Rust does: other digits and overflows fall back', () => {
    // Non-ASCII digits match the pattern but do not parse: the start is 0, inside nothing; an
    // end that does not parse (or overflows usize) is the start.
    check('src/de.rs:١٢٠', excerpts, 'src/de.rs:١٢٠');
    check('src/de.rs:120-١٣٠', excerpts, '[src/de.rs:120-120]');
    check('src/de.rs:120-99999999999999999999', excerpts, '[src/de.rs:120-120]');
    check('src/de.rs:120-9999999999999999999', excerpts, 'src/de.rs:120-9999999999999999999');
  });

  it('returns plain text when there are no excerpts', () => {
    check('Parsed in (src/de.rs:120-150).', [], 'Parsed in (src/de.rs:120-150).');
    expect(splitCitations('', excerpts)).toEqual([]);
  });

  it('leaves hostile text as text: markup, event handlers and javascript: are never citations', () => {
    const hostile = [
      '<img src=x onerror=alert(1)> src/de.rs:120',
      '<a href="javascript:alert(1)">src/de.rs:120</a>',
      'javascript:alert(1)//src/de.rs:120',
      '"><script>alert(1)</script>src/read.rs:12',
      'src/de.rs:120"onmouseover="alert(1)',
    ];
    for (const text of hostile) {
      const segments = splitCitations(text, excerpts);
      expect(segments.map((s) => s.text).join('')).toBe(text);
      for (const s of segments.filter((s) => s.kind === 'citation')) {
        // A citation segment is only ever a path and numbers.
        expect(s.text).toMatch(/^[A-Za-z0-9_./-]+:\d+(-\d+)?$/);
        expect(isShown(s as AnswerSegment & { kind: 'citation' }, excerpts)).toBe(true);
      }
    }
    // The slashes belong to the path (`//src/de.rs`), which names no excerpt.
    check('javascript:alert(1)//src/de.rs:120', excerpts, 'javascript:alert(1)//src/de.rs:120');
    check('javascript:alert(1) (src/de.rs:120)', excerpts, 'javascript:alert(1) ([src/de.rs:120-120])');
  });
});

describe('formatRange', () => {
  it('writes one line without a dash', () => {
    expect(formatRange({ path: 'a.rs', startLine: 3, endLine: 3 })).toBe('a.rs:3');
    expect(formatRange({ path: 'a.rs', startLine: 3, endLine: 9 })).toBe('a.rs:3-9');
  });
});

describe('splitLines', () => {
  it('counts lines as Rust str::lines does', () => {
    expect(splitLines('')).toEqual([]);
    expect(splitLines('a')).toEqual(['a']);
    expect(splitLines('a\n')).toEqual(['a']);
    expect(splitLines('a\r\nb\r\n')).toEqual(['a', 'b']);
    expect(splitLines('a\n\nb')).toEqual(['a', '', 'b']);
  });
});

describe('fileWindow', () => {
  const file = (n: number) => Array.from({ length: n }, (_, i) => `line ${i + 1}`).join('\n') + '\n';
  /** `first-last total [highlighted first-last] focus`. */
  function summary(w: ReturnType<typeof fileWindow>): string {
    const lit = w.lines.filter((l) => l.highlighted).map((l) => l.number);
    const range = lit.length ? `${lit[0]}-${lit.at(-1)}` : 'none';
    return `${w.lines[0]?.number ?? '-'}-${w.lines.at(-1)?.number ?? '-'} of ${w.total}, lit ${range}, focus ${w.focus}`;
  }

  it('shows a short file whole with the range highlighted', () => {
    const w = fileWindow(file(30), { startLine: 10, endLine: 12 });
    expect(summary(w)).toBe('1-30 of 30, lit 10-12, focus 10');
    expect(w.lines[9]).toEqual({ number: 10, text: 'line 10', highlighted: true });
  });

  it('shows a long file as a window centred on the range', () => {
    check(fileWindow(file(10_000), { startLine: 5000, endLine: 5009 }, 100), '4955-5054 of 10000, lit 5000-5009, focus 5000');
    check(fileWindow(file(10_000), { startLine: 3, endLine: 4 }, 100), '1-100 of 10000, lit 3-4, focus 3');
    check(fileWindow(file(10_000), { startLine: 9990, endLine: 10_000 }, 100), '9901-10000 of 10000, lit 9990-10000, focus 9990');
    // A range longer than the window starts at the range.
    check(fileWindow(file(10_000), { startLine: 200, endLine: 900 }, 100), '200-299 of 10000, lit 200-299, focus 200');
    function check(w: ReturnType<typeof fileWindow>, expected: string) {
      expect(summary(w)).toBe(expected);
    }
  });

  it('highlights what is left of a range past the end of a file that shrank', () => {
    expect(summary(fileWindow(file(20), { startLine: 18, endLine: 40 }))).toBe('1-20 of 20, lit 18-20, focus 18');
    expect(summary(fileWindow(file(20), { startLine: 30, endLine: 40 }))).toBe('1-20 of 20, lit none, focus null');
  });

  it('shows a file without a range from its top, and an empty file as nothing', () => {
    expect(summary(fileWindow(file(5000), null, 100))).toBe('1-100 of 5000, lit none, focus null');
    expect(summary(fileWindow('', { startLine: 1, endLine: 2 }))).toBe('--- of 0, lit none, focus null');
  });

  it('keeps markup in a file as text', () => {
    const w = fileWindow('<img src=x onerror=alert(1)>\n<script>alert(1)</script>\n', { startLine: 1, endLine: 1 });
    expect(w.lines.map((l) => l.text)).toEqual(['<img src=x onerror=alert(1)>', '<script>alert(1)</script>']);
  });
});
