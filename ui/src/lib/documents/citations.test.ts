// Page citations: read as the backend writes them, and made buttons only through the DOM.
import { describe, expect, it } from 'vitest';
import { citedPages, formatPages, linkPageCitations, renderWithPageCitations } from './citations';

describe('page citations', () => {
  it('name their pages in every form the backend accepts', () => {
    expect(citedPages('[p. 3]')).toEqual([3]);
    expect(citedPages('[pp. 3–5, 9]')).toEqual([3, 4, 5, 9]);
    expect(citedPages('[Pages 4 and 7]')).toEqual([4, 7]);
    expect(citedPages('[p. 9-3]')).toEqual([]);
    expect(citedPages('page 3')).toEqual([]);
  });

  it('read naturally', () => {
    expect(formatPages([3])).toBe('p. 3');
    expect(formatPages([5, 3, 4, 9])).toBe('pp. 3–5, 9');
    expect(formatPages([])).toBe('');
  });

  it('become buttons for real pages; others and hostile markup stay text', () => {
    const root = document.createElement('div');
    root.innerHTML = renderWithPageCitations(
      '- Rent rose **8%** [p. 3].\n- Costs [pp. 2–4]\n- Nowhere [p. 99] <img src=x onerror=alert(1)> `[p. 1]`',
    );
    const opened: number[][] = [];
    const made = linkPageCitations(root, 10, (pages) => opened.push(pages));
    expect(made).toBe(2);
    expect(root.querySelector('img, script')).toBeNull();
    const buttons = [...root.querySelectorAll<HTMLButtonElement>('button.page-citation')];
    expect(buttons.map((b) => b.textContent)).toEqual(['[p. 3]', '[pp. 2–4]']);
    buttons[1]!.click();
    expect(opened).toEqual([[2, 3, 4]]);
    expect(root.textContent).toContain('Nowhere [p. 99]');
    expect(root.querySelector('code')?.textContent).toBe('[p. 1]');
    expect(root.querySelector('span.page-ref')).toBeNull();
  });

  it('marks a sentence no page supports, as an inert label that a model cannot forge into markup', () => {
    const root = document.createElement('div');
    root.innerHTML = renderWithPageCitations('- Rent rose [p. 3].\n- Trucks were bought [no source].\n- <span class="no-source">x</span>');
    const marks = [...root.querySelectorAll<HTMLElement>('span.no-source')];
    expect(marks.map((m) => m.textContent)).toEqual(['no source']);
    expect(marks[0]!.title).toMatch(/No source supports this sentence/);
    expect(root.textContent).toContain('<span class="no-source">x</span>');
  });
});
