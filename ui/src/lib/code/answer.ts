// An answer about code, as the Code tab shows it: Markdown through the app's sanitizing renderer
// (lib/markdown/render.ts), where each `path:start-end` is one inline token of its own — so
// Markdown cannot turn `pkg/__init__.py:1-5` into bold — rendered as an inert
// `<span class="citation-ref">`. Once the HTML is in the page, `linkCitations` replaces each
// such span (and each citation in inline code) whose range lies inside an excerpt the model was
// shown with a button made through the DOM, never from markup: the answer's own text can never
// create a control.
import type { MarkedExtension, Tokens } from 'marked';
import type { ExcerptDto } from '../api';
import { markdownRenderer, noSourceSyntax } from '../markdown/render';
import { CITATION_AT_START, citationPattern, formatRange, splitCitations, type LineRange } from './citations';

const CITATION_REF = 'citation-ref';

const citationSyntax: MarkedExtension = {
  extensions: [
    {
      name: 'citation',
      level: 'inline',
      // Where the next citation begins, so that plain text stops just before it.
      start: (src: string) => citationPattern().exec(src)?.index,
      tokenizer(src: string): Tokens.Generic | undefined {
        const found = CITATION_AT_START.exec(src);
        return found ? { type: 'citation', raw: found[0], text: found[0] } : undefined;
      },
      renderer: (token: Tokens.Generic) => `<span class="${CITATION_REF}">${escapeText(String(token.text))}</span>`,
    },
  ],
};

function escapeText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * Renders an answer's Markdown to sanitized HTML, each citation in a `span.citation-ref` and
 * each `[no source]` mark in a `span.no-source`.
 */
export const renderAnswer: (source: string) => string = markdownRenderer(citationSyntax, noSourceSyntax);

/**
 * Turns the citations under `root` that name code the model was shown into buttons that call
 * `open` with their range: those in the citation spans, and those in inline code (models often
 * write `src/main.rs:10-24` in backticks, which Markdown keeps from the citation syntax). Other
 * citation spans become plain text. Citations inside a link stay text (a button inside a link
 * would be two controls in one), as do those in code blocks. Returns how many buttons it made.
 */
export function linkCitations(root: HTMLElement, excerpts: readonly ExcerptDto[], open: (range: LineRange) => void): number {
  let linked = 0;
  const linkedText = (text: string): DocumentFragment | null => {
    const segments = splitCitations(text, excerpts);
    if (!segments.some((s) => s.kind === 'citation')) return null;
    const fragment = document.createDocumentFragment();
    for (const segment of segments) {
      if (segment.kind === 'text') {
        fragment.append(segment.text);
      } else {
        fragment.append(citationButton({ path: segment.path, startLine: segment.startLine, endLine: segment.endLine }, segment.text, open));
        linked++;
      }
    }
    return fragment;
  };

  for (const span of root.querySelectorAll(`span.${CITATION_REF}`)) {
    const text = span.textContent ?? '';
    span.replaceWith((span.closest('a') ? null : linkedText(text)) ?? text);
  }
  for (const code of root.querySelectorAll('code')) {
    if (code.closest('pre, a')) continue;
    const fragment = linkedText(code.textContent ?? '');
    if (fragment) code.replaceChildren(fragment);
  }
  return linked;
}

/** A citation's button, made through the DOM: its text is set as text, never parsed. */
function citationButton(range: LineRange, text: string, open: (range: LineRange) => void): HTMLButtonElement {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'citation';
  button.dataset.testid = 'citation';
  button.textContent = text;
  button.title = `Open ${formatRange(range)}`;
  button.addEventListener('click', () => open(range));
  return button;
}
