// The "Hugging Face access" card says where the token goes: to the endpoint over HTTPS (or to a
// mirror on this computer), and not at all to a plain-HTTP endpoint elsewhere.
import { afterEach, describe, expect, it } from 'vitest';
import { tick } from 'svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { mount, unmount } from 'svelte';
import type { DownloadsDto } from '../api';
import HubAccess from './HubAccess.svelte';
import { downloads } from '../state/downloads.svelte';

const snapshot = (s: Partial<DownloadsDto>): DownloadsDto => ({
  jobs: [],
  models: [],
  hasToken: true,
  tokenSource: 'keyring',
  endpoint: 'https://huggingface.co',
  endpointCarriesToken: true,
  endpointFromEnvironment: false,
  cacheDir: '/home/me/.cache/huggingface/hub',
  offline: null,
  ...s,
});

let view: ReturnType<typeof mount> | null = null;
afterEach(() => {
  clearMocks();
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

describe('offline mode', () => {
  const $ = (id: string) => document.querySelector<HTMLElement>(`[data-testid="${id}"]`);

  it('turns on through the backend, and then endpoint changes are off', async () => {
    const calls: [string, unknown][] = [];
    let offline: 'setting' | null = null;
    mockIPC((cmd, args) => {
      calls.push([cmd, args]);
      if (cmd === 'set_offline') offline = (args as { on: boolean }).on ? 'setting' : null;
      if (cmd === 'list_downloads') return snapshot({ offline });
      return null;
    });
    view = mount(HubAccess, { target: document.body, props: { snapshot: snapshot({}) } });
    const toggle = $('offline-switch') as HTMLInputElement;
    expect(toggle.checked).toBe(false);
    toggle.click();
    await new Promise((r) => setTimeout(r, 0));
    await tick();
    expect(calls[0]).toEqual(['set_offline', { on: true }]);
    expect(downloads.snapshot?.offline).toBe('setting');
    unmount(view);
    view = mount(HubAccess, { target: document.body, props: { snapshot: downloads.snapshot! } });
    expect(($('offline-switch') as HTMLInputElement).checked).toBe(true);
    expect($('offline-note')?.textContent).toContain('no network connection');
    expect(($('hf-endpoint') as HTMLInputElement).readOnly).toBe(true);
    expect(document.body.textContent).toContain('Endpoint changes are off while offline.');
  });

  it('set by the environment, the switch cannot turn it off and says why', () => {
    view = mount(HubAccess, { target: document.body, props: { snapshot: snapshot({ offline: 'environment' }) } });
    const toggle = $('offline-switch') as HTMLInputElement;
    expect(toggle.checked).toBe(true);
    expect(toggle.disabled).toBe(true);
    expect($('offline-note')?.textContent).toContain('ALTIPLANO_OFFLINE');
  });
});
