// What rendered Markdown gets once it is in the page: a copy button on each code block, and
// links that never navigate the app window (a click copies the address instead). Shared by
// chat replies (MessageBody.svelte) and answers about code (CodeAnswerBody.svelte).
import { copyText } from './clipboard';

/** Adds a Copy button to each code block of `root` that has none yet. */
export function addCopyButtons(root: HTMLElement): void {
  for (const pre of root.querySelectorAll('pre')) {
    if (pre.querySelector('button.copy-code')) continue;
    const button = document.createElement('button');
    button.className = 'copy-code';
    button.type = 'button';
    button.textContent = 'Copy';
    button.addEventListener('click', async () => {
      const code = pre.querySelector('code')?.textContent ?? '';
      if (await copyText(code)) {
        button.textContent = 'Copied';
        setTimeout(() => (button.textContent = 'Copy'), 1200);
      }
    });
    pre.appendChild(button);
  }
}

/** A click handler for a container of rendered Markdown: a link copies its address. */
export function guardLinks(event: MouseEvent): void {
  const link = (event.target as HTMLElement).closest('a');
  if (link) {
    event.preventDefault();
    void copyText(link.getAttribute('href') ?? '');
    link.setAttribute('title', 'Link copied to the clipboard');
  }
}
