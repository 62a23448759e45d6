// End to end: a remote engine in the real app. Another program's OpenAI-compatible server — here
// `altiplano serve` with the starter model and a key, in a process and data folder of its own —
// is added on the Models page (a wrong key first: its error is shown, nothing is kept), becomes
// the chat model, and a chat reply streams from it (the server logs serving it). After a restart
// the app connects to it again. Saves a screenshot to tests/artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdirSync, mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KEY_ENTER } from './webdriver.mjs';
import { application, root, starterModel, startDriver, stop, workspaceBinary } from './harness.mjs';

const artifacts = join(root, 'tests/artifacts');

let driver;
let driverProcess;
let server;
let serverLog = '';
let url;
const folders = [];

function folder() {
  const dir = mkdtempSync(join(tmpdir(), 'altiplano-e2e-'));
  folders.push(dir);
  return dir;
}

before(async () => {
  assert.ok(application && existsSync(application), `ALTIPLANO_APP_BINARY must name the built app (got ${application})`);
  mkdirSync(artifacts, { recursive: true });
  server = spawn(workspaceBinary('altiplano'), ['serve', '--port', '0', '--api-key', 'lab-key'], {
    env: { ...process.env, ALTIPLANO_DATA_DIR: folder(), ALTIPLANO_MODEL: starterModel, ALTIPLANO_EMBEDDING_MODEL: '', ALTIPLANO_LOG: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stderr.on('data', (chunk) => (serverLog += chunk));
  url = await new Promise((resolveUrl, reject) => {
    createInterface({ input: server.stdout }).on('line', (line) => {
      const found = /(http:\/\/127\.0\.0\.1:\d+\/v1)/.exec(line);
      if (found) resolveUrl(found[1]);
    });
    server.once('exit', (code) => reject(new Error(`altiplano serve exited with ${code}: ${serverLog}`)));
  });
  ({ driver, child: driverProcess } = await startDriver({
    port: 4494,
    nativePort: 4495,
    env: { ...process.env, ALTIPLANO_DATA_DIR: folder(), ALTIPLANO_STARTER_MODEL: starterModel },
  }));
});

after(async () => {
  await driver?.quit();
  await stop(driverProcess);
  await stop(server);
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
});

const status = async () => (await driver.texts('[data-testid="model-status"]'))[0] ?? '';

async function fill(testid, text) {
  const css = `[data-testid="${testid}"]`;
  await driver.execute(
    'const el = document.querySelector(arguments[0]); el.value = ""; el.dispatchEvent(new Event("input", { bubbles: true })); return true;',
    [css],
  );
  const [input] = await driver.findAll(css);
  await driver.type(input, text);
}

test('a remote server added on the Models page becomes the chat model and answers', async () => {
  await driver.start(application);
  await driver.until('the starter model to load', async () => (await status()).includes('llama.cpp'));
  const [modelsTab] = await driver.findAll('[data-testid="tab-models"]');
  await driver.click(modelsTab);
  await driver.until('the remote servers section', async () => (await driver.findAll('[data-testid="remote-form"]')).length === 1);

  // A wrong key: the server's refusal is shown, naming the key; nothing is kept.
  await fill('remote-name', 'lab');
  await fill('remote-url', url);
  await fill('remote-key', 'not-the-key');
  await driver.click((await driver.findAll('[data-testid="remote-add"]'))[0]);
  const refused = await driver.until('the refusal', async () => (await driver.texts('[data-testid="remote-error"]'))[0]);
  assert.match(refused, /refused the API key/);
  assert.equal((await driver.findAll('[data-testid="remote"]')).length, 0, 'nothing kept');
  assert.match(await status(), /llama\.cpp/, 'the local model still serves');

  // The right key: connected, kept, the chat model.
  await fill('remote-key', 'lab-key');
  await driver.click((await driver.findAll('[data-testid="remote-add"]'))[0]);
  await driver.until('the remote in use', async () => (await driver.texts('[data-testid="remote-in-use"]')).length === 1);
  const remoteStatus = await driver.until('the status bar to name the remote', async () => {
    const s = await status();
    return s.includes('a remote server') ? s : null;
  });
  assert.match(remoteStatus, /SmolLM2.*a remote server.*tokens context/);
  writeFileSync(join(artifacts, 'remote.png'), await driver.screenshot());

  // A chat reply streams from the server.
  const [chatTab] = await driver.findAll('[data-testid="tab-chat"]');
  await driver.click(chatTab);
  const [input] = await driver.findAll('#composer-input');
  await driver.type(input, 'Name three colours.' + KEY_ENTER);
  await driver.until('a finished reply', async () => {
    const stats = await driver.texts('[data-testid="reply-stats"]');
    const replies = await driver.texts('[data-testid="assistant-message"]');
    return stats.length === 1 && replies.length === 1 && replies[0].trim().length > 0;
  });
  await driver.until('the server to log the reply', async () => serverLog.includes('served a reply'), 30_000);
  await driver.quit();

  // Started again, the app connects to the server again.
  await driver.start(application);
  const again = await driver.until('the remote after a restart', async () => {
    const s = await status();
    return s.includes('a remote server') ? s : null;
  });
  assert.match(again, /SmolLM2/);
});
