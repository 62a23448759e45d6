import { describe, expect, it } from 'vitest';
import { renderMarkdown, stableBoundary, StreamingMarkdown } from './render';

/** Renders into a real DOM and returns the container. */
function dom(markdown: string): HTMLElement {
  const div = document.createElement('div');
  div.innerHTML = renderMarkdown(markdown);
  return div;
}

function everyAttribute(root: HTMLElement): string[] {
  return [...root.querySelectorAll('*')].flatMap((el) => [...el.attributes].map((a) => `${a.name}=${a.value}`));
}

describe('renderMarkdown', () => {
  it('renders ordinary markdown', () => {
    const root = dom('# Title\n\nSome **bold** and `code`.\n\n- one\n- two');
    expect(root.querySelector('h1')?.textContent).toBe('Title');
    expect(root.querySelector('strong')?.textContent).toBe('bold');
    expect(root.querySelectorAll('li')).toHaveLength(2);
  });

  it('shows an <img onerror> from the model as text, never as an element', () => {
    const root = dom('Look: <img src=x onerror=alert(1)>');
    expect(root.querySelector('img')).toBeNull();
    expect(root.textContent).toContain('<img src=x onerror=alert(1)>');
    expect(everyAttribute(root).some((a) => a.startsWith('onerror'))).toBe(false);
  });

  it('never creates script elements', () => {
    for (const md of ['<script>alert(1)</script>', 'text\n\n<script>\nalert(1)\n</script>\n', '`x` <script src="//evil"></script>']) {
      const root = dom(md);
      expect(root.querySelector('script')).toBeNull();
      expect(root.textContent).toContain('<script');
    }
  });

  it('drops javascript: and data: links but keeps their text', () => {
    const root = dom('[click me](javascript:alert(1)) and [data](data:text/html;base64,PHNjcmlwdD4=) and [ok](https://example.org)');
    const links = [...root.querySelectorAll('a')];
    expect(links.map((a) => a.getAttribute('href'))).toEqual(['https://example.org']);
    expect(root.textContent).toContain('click me');
    expect(root.innerHTML).not.toMatch(/javascript:/i);
  });

  it('handles obfuscated javascript: schemes', () => {
    const root = dom('[a](JaVaScRiPt:alert(1)) [b](  javascript:alert(1)) [c](java&#09;script:alert(1))');
    expect(root.querySelectorAll('a')).toHaveLength(0);
  });

  it('shows images as links so nothing is fetched', () => {
    const root = dom('![tracker](https://example.org/pixel.png)');
    expect(root.querySelector('img')).toBeNull();
    expect(root.querySelector('a')?.getAttribute('href')).toBe('https://example.org/pixel.png');
  });

  it('strips event handlers and styles that come through autolinks or attributes', () => {
    const root = dom('<a href="https://x" onclick="alert(1)" style="color:red">x</a> <svg onload=alert(1)></svg>');
    expect(everyAttribute(root).some((a) => /^(on|style)/.test(a))).toBe(false);
    expect(root.querySelector('svg')).toBeNull();
  });

  it('highlights code with classes, never inline styles', () => {
    const root = dom('```rust\nfn main() { println!("hi"); }\n```');
    const code = root.querySelector('pre code');
    expect(code?.classList.contains('language-rust')).toBe(true);
    expect(code?.querySelector('.hljs-keyword')?.textContent).toBe('fn');
    expect(root.innerHTML).not.toContain('style=');
  });

  it('escapes HTML inside code blocks of unknown languages', () => {
    const root = dom('```nosuchlang\n<b>not bold</b>\n```');
    expect(root.querySelector('b')).toBeNull();
    expect(root.querySelector('code')?.textContent).toContain('<b>not bold</b>');
  });
});

describe('streaming', () => {
  it('finds the last blank line outside code fences', () => {
    expect(stableBoundary('a\n\nb')).toBe(3);
    expect(stableBoundary('no blank line yet')).toBe(0);
    expect(stableBoundary('a\n\n```\ncode\n\nmore')).toBe(3);
    expect(stableBoundary('```\nx\n```\n\ntail')).toBe(11);
  });

  it('renders the same as a full render for simple documents, token by token', () => {
    const text = 'Intro paragraph.\n\n```js\nconst a = 1;\n\nconst b = 2;\n```\n\nOutro with **bold**.';
    const streaming = new StreamingMarkdown();
    let html = '';
    for (let i = 1; i <= text.length; i++) html = streaming.render(text.slice(0, i));
    expect(html.replace(/\n/g, '')).toBe(renderMarkdown(text).replace(/\n/g, ''));
  });

  it('starts over when the text is replaced (regenerate)', () => {
    const streaming = new StreamingMarkdown();
    streaming.render('first answer\n\nmore');
    expect(streaming.render('second')).toBe(renderMarkdown('second'));
  });

  it('keeps hostile text inert while it streams', () => {
    const streaming = new StreamingMarkdown();
    const text = 'Hi <img src=x onerror=alert(1)> there\n\n<script>alert(2)</script>';
    for (let i = 1; i <= text.length; i++) {
      const div = document.createElement('div');
      div.innerHTML = streaming.render(text.slice(0, i));
      expect(div.querySelector('img, script')).toBeNull();
    }
  });
});
