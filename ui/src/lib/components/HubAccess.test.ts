// The "Hugging Face access" card says where the token goes: to the endpoint over HTTPS (or to a
// mirror on this computer), and not at all to a plain-HTTP endpoint elsewhere.
import { afterEach, describe, expect, it } from 'vitest';
import { mount, unmount } from 'svelte';
import type { DownloadsDto } from '../api';
import HubAccess from './HubAccess.svelte';

const snapshot = (s: Partial<DownloadsDto>): DownloadsDto => ({
  jobs: [],
  models: [],
  hasToken: true,
  tokenSource: 'keyring',
  endpoint: 'https://huggingface.co',
  endpointCarriesToken: true,
  endpointFromEnvironment: false,
  cacheDir: '/home/me/.cache/huggingface/hub',
  ...s,
});

let view: ReturnType<typeof mount> | null = null;
afterEach(() => {
  if (view) unmount(view);
  view = null;
  document.body.innerHTML = '';
});

function destination(s: DownloadsDto): string | null {
  view = mount(HubAccess, { target: document.body, props: { snapshot: s } });
  return document.querySelector('[data-testid="hf-token-destination"]')?.textContent?.trim() ?? null;
}

describe('where the token goes', () => {
  it('names the endpoint it is sent to', () => {
    expect(destination(snapshot({}))).toBe('It is sent only to https://huggingface.co.');
  });

  it('says it is held back from plain HTTP to another computer, and what to do', () => {
    const text = destination(snapshot({ endpoint: 'http://mirror.example', endpointCarriesToken: false }));
    expect(text).toContain('It is not sent to http://mirror.example');
    expect(text).toContain('https://');
  });

  it('says nothing about a token there is not', () => {
    expect(destination(snapshot({ hasToken: false, tokenSource: null }))).toBeNull();
  });
});
