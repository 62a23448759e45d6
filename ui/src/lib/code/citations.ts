// Citations in an answer about code: `path:start-end` or `path:line`, as the model writes them
// after its claims. Only a citation that lies inside an excerpt the model was shown becomes
// clickable; the rule mirrors the backend's checker (`check_citations` in
// core/src/codebase/answer.rs), so the UI never offers a link the backend would have removed.
// Also the lines the read-only file view shows and highlights. Pure functions, tested in
// citations.test.ts.
import type { ExcerptDto } from '../api';

/** Lines `startLine..=endLine` (1-based) of a file of the open folder. */
export interface LineRange {
  path: string;
  startLine: number;
  endLine: number;
}

/** A piece of an answer: text as written, or a verified citation (with the text it was written as). */
export type AnswerSegment = { kind: 'text'; text: string } | ({ kind: 'citation'; text: string } & LineRange);

// The backend's pattern. Rust's `\d` and `\s` are Unicode classes, hence `\p{Nd}` and
// `\p{White_Space}` with the `u` flag: both sides then cut the text at the same places.
const PATTERN =
  '(?<path>[A-Za-z0-9_.\\-/]*[A-Za-z0-9_\\-]\\.[A-Za-z0-9]+):(?<start>\\p{Nd}+)(?:\\p{White_Space}*[-–]\\p{White_Space}*(?<end>\\p{Nd}+))?';

/** A fresh global matcher (global regexes carry their position, so none is shared). */
export function citationPattern(): RegExp {
  return new RegExp(PATTERN, 'gu');
}

/** The pattern anchored at the start of the input, for a tokenizer. */
export const CITATION_AT_START = new RegExp(`^(?:${PATTERN})`, 'u');

/** usize on the 64-bit systems the app runs on. */
const USIZE_END = 2n ** 64n;

/** Parses digits as Rust's `str::parse::<usize>` does: null where that fails. */
function parseUsize(digits: string): number | null {
  // Rust parses ASCII digits only; other decimal digits match the pattern but fail to parse.
  if (!/^[0-9]+$/.test(digits)) return null;
  const value = BigInt(digits);
  // Past 2^53 the number is no longer exact, but it is still far past any excerpt's end.
  return value < USIZE_END ? Number(value) : null;
}

/**
 * The range a match names, as the backend reads it: a leading `./` is dropped, an unparsable
 * start is 0 (inside nothing) and an unparsable or absent end is the start.
 */
function rangeOf(match: RegExpExecArray): LineRange {
  const groups = match.groups ?? {};
  const path = (groups.path ?? '').replace(/^(?:\.\/)+/, '');
  const startLine = parseUsize(groups.start ?? '') ?? 0;
  const endLine = groups.end === undefined ? startLine : (parseUsize(groups.end) ?? startLine);
  return { path, startLine, endLine };
}

/** Whether `range` lies inside one of the excerpts (the backend's containment rule). */
export function isShown(range: LineRange, excerpts: readonly ExcerptDto[]): boolean {
  const { path, startLine, endLine } = range;
  return excerpts.some((e) => e.path === path && startLine >= e.startLine && endLine <= e.endLine && startLine <= endLine);
}

/**
 * Cuts `text` into plain text and the citations that lie inside an excerpt. Citations that do
 * not stay plain text: the backend already removed them from a finished answer, and whatever
 * slips through is never made a link. Adjacent text is merged, and joining every segment's
 * `text` gives back `text`.
 */
export function splitCitations(text: string, excerpts: readonly ExcerptDto[]): AnswerSegment[] {
  const segments: AnswerSegment[] = [];
  const pushText = (piece: string) => {
    if (piece === '') return;
    const last = segments.at(-1);
    if (last?.kind === 'text') last.text += piece;
    else segments.push({ kind: 'text', text: piece });
  };
  const pattern = citationPattern();
  let done = 0;
  for (let match = pattern.exec(text); match !== null; match = pattern.exec(text)) {
    const range = rangeOf(match);
    pushText(text.slice(done, match.index));
    if (isShown(range, excerpts)) segments.push({ kind: 'citation', text: match[0], ...range });
    else pushText(match[0]);
    done = match.index + match[0].length;
  }
  pushText(text.slice(done));
  return segments;
}

/** `src/main.rs:10-24`, or `src/main.rs:10` for a single line. */
export function formatRange(range: LineRange): string {
  return range.startLine === range.endLine
    ? `${range.path}:${range.startLine}`
    : `${range.path}:${range.startLine}-${range.endLine}`;
}

/** One line of the file view. */
export interface FileLine {
  /** 1-based. */
  number: number;
  text: string;
  highlighted: boolean;
}

/** The part of a file the view shows. */
export interface FileWindow {
  lines: FileLine[];
  /** Lines in the whole file. */
  total: number;
  /** The first highlighted line shown, to scroll to; null when nothing is highlighted. */
  focus: number | null;
}

/** Lines as the backend counts them (Rust's `str::lines`): `\n` or `\r\n`, no empty last line. */
export function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines.map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
}

/**
 * The lines to show for `text` with `highlight` marked (its path is not looked at). A file of
 * up to `maxLines` lines is shown whole; a longer one as `maxLines` lines around the
 * highlighted range (from its start when the range itself is longer), so a huge file never
 * turns into a huge page. A range past the end of the file (the file changed since it was
 * indexed) highlights what is left of it, or nothing.
 */
export function fileWindow(text: string, highlight: Omit<LineRange, 'path'> | null, maxLines = 2000): FileWindow {
  const all = splitLines(text);
  const total = all.length;
  const start = highlight ? Math.max(1, highlight.startLine) : 0;
  const end = highlight ? Math.min(total, highlight.endLine) : -1;
  const focus = start <= end ? start : null;

  let first = 1;
  if (total > maxLines && focus !== null) {
    const span = end - start + 1;
    const before = span >= maxLines ? 0 : Math.floor((maxLines - span) / 2);
    first = Math.max(1, Math.min(start - before, total - maxLines + 1));
  }
  const last = Math.min(total, first + maxLines - 1);
  const lines: FileLine[] = [];
  for (let number = first; number <= last; number++) {
    lines.push({ number, text: all[number - 1] ?? '', highlighted: focus !== null && number >= start && number <= end });
  }
  return { lines, total, focus };
}
