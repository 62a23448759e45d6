// Page citations in a summary or an answer about a document: `[p. 12]`, `[pp. 3–5, 9]`, as the
// backend writes them once checked (`check_citations` in core/src/documents/summary.rs). Markdown
// renders each as an inert `<span class="page-ref">`; `linkPageCitations` then replaces the spans
// that name real pages of the document with buttons made through the DOM, never from markup, so
// text from the model or the document can never create a control. Pure functions, tested in
// citations.test.ts.
import type { MarkedExtension, Tokens } from 'marked';
import { markdownRenderer, noSourceSyntax } from '../markdown/render';

const PAGE_REF = 'page-ref';
// The backend's pattern: `[p. 3]`, `[pp. 3-5]`, `[page 3, 7]`, `[pages 3 and 4]`, any case.
const PATTERN = '\\[\\s*(?:pp?|pages?)\\.?\\s*(\\d+(?:\\s*(?:[-–—,]|and)\\s*\\d+)*)\\s*\\]';
const AT_START = new RegExp(`^(?:${PATTERN})`, 'i');

/** A fresh global matcher (global regexes carry their position, so none is shared). */
export function pageCitationPattern(): RegExp {
  return new RegExp(PATTERN, 'gi');
}

/** The pages a citation names, in order, without repeats: `[pp. 3–5, 9]` → 3, 4, 5, 9. */
export function citedPages(citation: string): number[] {
  const match = AT_START.exec(citation.trim());
  if (!match) return [];
  const pages: number[] = [];
  for (const part of match[1]!.split(/,|and/)) {
    const ends = (part.match(/\d+/g) ?? []).map(Number);
    const [a, b = a] = ends;
    if (a === undefined || b === undefined || b < a || b - a >= 1000) continue;
    for (let p = a; p <= b; p++) if (!pages.includes(p)) pages.push(p);
  }
  return pages;
}

/** `p. 3`, `pp. 3–5`, `pp. 3, 9`: how a set of pages reads. */
export function formatPages(pages: readonly number[]): string {
  if (pages.length === 0) return '';
  const sorted = [...pages].sort((a, b) => a - b);
  const runs: string[] = [];
  let start = sorted[0]!;
  let end = start;
  for (const p of sorted.slice(1)) {
    if (p === end + 1) end = p;
    else {
      runs.push(start === end ? `${start}` : `${start}–${end}`);
      start = end = p;
    }
  }
  runs.push(start === end ? `${start}` : `${start}–${end}`);
  return `${sorted.length === 1 ? 'p.' : 'pp.'} ${runs.join(', ')}`;
}

function escapeText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const citationSyntax: MarkedExtension = {
  extensions: [
    {
      name: 'pageCitation',
      level: 'inline',
      start: (src: string) => pageCitationPattern().exec(src)?.index,
      tokenizer(src: string): Tokens.Generic | undefined {
        const found = AT_START.exec(src);
        return found ? { type: 'pageCitation', raw: found[0], text: found[0] } : undefined;
      },
      renderer: (token: Tokens.Generic) => `<span class="${PAGE_REF}">${escapeText(String(token.text))}</span>`,
    },
  ],
};

/**
 * Renders a summary's or answer's Markdown to sanitized HTML, each citation in a `span.page-ref`
 * and each `[no source]` mark in a `span.no-source`.
 */
export const renderWithPageCitations: (source: string) => string = markdownRenderer(citationSyntax, noSourceSyntax);

/**
 * Turns each citation span under `root` whose pages all exist (1..=pageCount) into a button
 * that calls `open` with those pages; other spans become plain text. Returns the buttons made.
 */
export function linkPageCitations(root: HTMLElement, pageCount: number, open: (pages: number[]) => void): number {
  let linked = 0;
  for (const span of Array.from(root.querySelectorAll<HTMLElement>(`span.${PAGE_REF}`))) {
    const text = span.textContent ?? '';
    const pages = citedPages(text);
    if (pages.length === 0 || pages.some((p) => p < 1 || p > pageCount)) {
      span.replaceWith(document.createTextNode(text));
      continue;
    }
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'link citation page-citation';
    button.textContent = text;
    button.title = `Show ${formatPages(pages)}`;
    button.dataset.testid = 'page-citation';
    button.addEventListener('click', () => open(pages));
    span.replaceWith(button);
    linked++;
  }
  return linked;
}
