import { describe, expect, it } from 'vitest';
import type { ExcerptDto } from '../api';
import { linkCitations, renderAnswer } from './answer';
import type { LineRange } from './citations';

const excerpts: ExcerptDto[] = [
  { path: 'src/de.rs', startLine: 100, endLine: 180, symbol: 'parse_number' },
  { path: 'pkg/__init__.py', startLine: 1, endLine: 20, symbol: '' },
];

/** Renders an answer into a real DOM and links its citations; returns the root and what a click opens. */
function answer(markdown: string) {
  const root = document.createElement('div');
  root.innerHTML = renderAnswer(markdown);
  const opened: LineRange[] = [];
  const linked = linkCitations(root, excerpts, (range) => opened.push(range));
  const buttons = [...root.querySelectorAll<HTMLButtonElement>('button[data-testid="citation"]')];
  return { root, opened, linked, buttons };
}

function everyAttribute(root: HTMLElement): string[] {
  return [...root.querySelectorAll('*')].flatMap((el) => [...el.attributes].map((a) => `${a.name}=${a.value}`));
}

describe('answers about code', () => {
  it('renders Markdown and turns verified citations into buttons that open their range', () => {
    const { root, buttons, opened, linked } = answer('Numbers are parsed in **one place** (src/de.rs:120-150).\n\n- see `x`');
    expect(root.querySelector('strong')?.textContent).toBe('one place');
    expect(root.querySelector('li code')?.textContent).toBe('x');
    expect(linked).toBe(1);
    expect(buttons.map((b) => b.textContent)).toEqual(['src/de.rs:120-150']);
    expect(buttons[0]?.type).toBe('button');
    buttons[0]?.click();
    expect(opened).toEqual([{ path: 'src/de.rs', startLine: 120, endLine: 150 }]);
    expect(root.textContent).toContain('Numbers are parsed in one place (src/de.rs:120-150).');
  });

  it('keeps a citation whole where Markdown would read emphasis in it', () => {
    const { root, buttons } = answer('The package starts in (pkg/__init__.py:1-5) and *here*.');
    expect(buttons.map((b) => b.textContent)).toEqual(['pkg/__init__.py:1-5']);
    expect(root.querySelectorAll('strong')).toHaveLength(0);
    expect(root.querySelector('em')?.textContent).toBe('here');
  });

  it('leaves citations the model was not shown as plain text', () => {
    const { root, buttons } = answer('Maybe in src/nope.rs:1-5 or src/de.rs:170-200.');
    expect(buttons).toHaveLength(0);
    expect(root.querySelector('span, button')).toBeNull();
    expect(root.textContent).toContain('src/nope.rs:1-5 or src/de.rs:170-200');
  });

  it('links citations in lists, headings and inline code, but not inside a link or a code block', () => {
    const { buttons } = answer(
      '# In src/de.rs:100\n\n- item (src/de.rs:101)\n\nInline `src/de.rs:102`, [src/de.rs:103](https://example.org) and\n\n```\nsrc/de.rs:104\n```',
    );
    expect(buttons.map((b) => b.textContent)).toEqual(['src/de.rs:100', 'src/de.rs:101', 'src/de.rs:102']);
    expect(buttons[2]?.parentElement?.tagName).toBe('CODE');
  });

  it('links citations inside inline code, leaving the rest of it as it was', () => {
    const { root, buttons } = answer('See `src/de.rs:120-130 <b>` and `src/de.rs:1`.');
    expect(buttons.map((b) => b.textContent)).toEqual(['src/de.rs:120-130']);
    expect([...root.querySelectorAll('code')].map((c) => c.textContent)).toEqual(['src/de.rs:120-130 <b>', 'src/de.rs:1']);
    expect(root.querySelector('b')).toBeNull();
  });

  it('keeps hostile markup inert around and inside citations', () => {
    const { root, buttons } = answer(
      [
        '<img src=x onerror=alert(1)> (src/de.rs:120)',
        '<button data-testid="citation" onclick="alert(1)">src/de.rs:121</button>',
        '<span class="citation-ref">src/de.rs:122</span>',
        '[open](javascript:alert(1)) src/de.rs:123',
        '<a href="javascript:alert(1)">src/de.rs:124</a>',
      ].join('\n\n'),
    );
    expect(root.querySelector('img, script, a[href^="javascript"]')).toBeNull();
    expect(everyAttribute(root).some((a) => /^(on|style)/.test(a))).toBe(false);
    expect(root.textContent).toContain('<img src=x onerror=alert(1)>');
    expect(root.textContent).toContain('<button data-testid="citation" onclick="alert(1)">');
    // Every button was made by linkCitations from a verified citation: markup in the answer
    // shows as text, and the citations written inside it are still only text plus buttons.
    for (const b of buttons) {
      expect(b.className).toBe('citation');
      expect(b.getAttribute('onclick')).toBeNull();
      expect(b.textContent).toMatch(/^src\/de\.rs:\d+$/);
    }
    expect(buttons.map((b) => b.textContent)).toEqual(['src/de.rs:120', 'src/de.rs:121', 'src/de.rs:122', 'src/de.rs:123', 'src/de.rs:124']);
  });
});
