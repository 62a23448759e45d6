// Markdown for model output, which is untrusted text.
//
// Three layers keep it inert: raw HTML in the Markdown is escaped and shown as text (never
// parsed), links are limited to http(s) and mailto (and never navigate the app: see
// `guardLinks` in components/markdown-dom.ts), images are shown as links (nothing is fetched),
// and the final HTML goes through DOMPurify with a short allow-list. The app's CSP is a fourth
// layer.
import DOMPurify from 'dompurify';
import { Marked, type MarkedExtension, type Tokens } from 'marked';
import hljs from 'highlight.js/lib/common';

function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const SAFE_URL = /^(https?:|mailto:)/i;

function safeHref(href: string): string | null {
  const trimmed = href.trim();
  return SAFE_URL.test(trimmed) ? trimmed : null;
}

const SAFE_OPTIONS: MarkedExtension = {
  gfm: true,
  breaks: false,
  renderer: {
    html(token: Tokens.HTML | Tokens.Tag): string {
      return escapeHtml(token.text);
    },
    link(this: { parser: { parseInline(tokens: Tokens.Generic[]): string } }, token: Tokens.Link): string {
      const text = this.parser.parseInline(token.tokens);
      const href = safeHref(token.href);
      if (!href) return text;
      return `<a href="${escapeHtml(href)}" title="${escapeHtml(href)}">${text}</a>`;
    },
    image(token: Tokens.Image): string {
      const href = safeHref(token.href);
      const label = escapeHtml(token.text || 'image');
      return href ? `<a href="${escapeHtml(href)}" title="${escapeHtml(href)}">[${label}]</a>` : `[${label}]`;
    },
    code(token: Tokens.Code): string {
      const lang = (token.lang ?? '').trim().split(/\s+/)[0]?.toLowerCase() ?? '';
      const known = lang !== '' && hljs.getLanguage(lang) !== undefined;
      const body = known ? hljs.highlight(token.text, { language: lang, ignoreIllegals: true }).value : escapeHtml(token.text);
      const langClass = known ? ` class="hljs language-${escapeHtml(lang)}"` : ' class="hljs"';
      const label = lang ? `<span class="code-lang">${escapeHtml(lang)}</span>` : '';
      return `<pre>${label}<code${langClass}>${body}</code></pre>\n`;
    },
  },
};

const ALLOWED_TAGS = [
  'a', 'b', 'blockquote', 'br', 'code', 'del', 'em', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'i',
  'input', 'li', 'ol', 'p', 'pre', 'span', 'strong', 'sub', 'sup', 'table', 'tbody', 'td', 'th',
  'thead', 'tr', 'ul',
];
const ALLOWED_ATTR = ['href', 'title', 'class', 'type', 'checked', 'disabled', 'align', 'start'];

/**
 * A renderer with the safe settings above plus `extensions` (inline syntax of a feature's own,
 * such as the citations of lib/code/answer.ts), sanitized the same way: an extension adds
 * tokens, and its HTML still goes through the allow-list.
 */
export function markdownRenderer(...extensions: MarkedExtension[]): (source: string) => string {
  const marked = new Marked(SAFE_OPTIONS, ...extensions);
  return (source) =>
    DOMPurify.sanitize(marked.parse(source, { async: false }), {
      ALLOWED_TAGS,
      ALLOWED_ATTR,
      ALLOWED_URI_REGEXP: SAFE_URL,
      ALLOW_DATA_ATTR: false,
    });
}

/**
 * The backend's mark after a sentence no source supports (`UNSUPPORTED` in
 * core/src/sourcing.rs), rendered as an inert `span.no-source` so it stands out from the text.
 */
export const NO_SOURCE = '[no source]';

/** Inline syntax for {@link NO_SOURCE}; pass it to {@link markdownRenderer}. */
export const noSourceSyntax: MarkedExtension = {
  extensions: [
    {
      name: 'noSource',
      level: 'inline',
      start: (src: string) => {
        const at = src.indexOf(NO_SOURCE);
        return at < 0 ? undefined : at;
      },
      tokenizer(src: string): Tokens.Generic | undefined {
        return src.startsWith(NO_SOURCE) ? { type: 'noSource', raw: NO_SOURCE, text: NO_SOURCE } : undefined;
      },
      renderer: () =>
        '<span class="no-source" title="No source supports this sentence: check it before you rely on it">no source</span>',
    },
  ],
};

/** Renders Markdown from an untrusted source to sanitized HTML. */
export const renderMarkdown: (source: string) => string = markdownRenderer();

/**
 * Index just after the last blank line that is outside a fenced code block: text before it is
 * made of finished blocks that no later token can change.
 */
export function stableBoundary(text: string): number {
  let inFence: string | null = null;
  let boundary = 0;
  let pos = 0;
  for (const line of text.split('\n')) {
    const end = pos + line.length + 1;
    const fence = /^\s{0,3}(`{3,}|~{3,})/.exec(line);
    if (fence) {
      const marker = fence[1]!;
      if (inFence === null) inFence = marker[0]!.repeat(marker.length);
      else if (marker[0] === inFence[0] && marker.length >= inFence.length) inFence = null;
    } else if (inFence === null && line.trim() === '' && end <= text.length) {
      boundary = end;
    }
    pos = end;
  }
  return Math.min(boundary, text.length);
}

/**
 * Renders a message that grows while it streams. Finished blocks are rendered once and kept;
 * each update re-renders only the unfinished tail, so a long reply costs linear, not quadratic,
 * time.
 */
export class StreamingMarkdown {
  private stableSource = '';
  private stableHtml = '';

  render(text: string): string {
    if (!text.startsWith(this.stableSource)) {
      this.stableSource = '';
      this.stableHtml = '';
    }
    const boundary = stableBoundary(text);
    if (boundary > this.stableSource.length) {
      this.stableHtml += renderMarkdown(text.slice(this.stableSource.length, boundary));
      this.stableSource = text.slice(0, boundary);
    }
    return this.stableHtml + renderMarkdown(text.slice(this.stableSource.length));
  }
}
