// End to end: the real app with offline mode set by ALTIPLANO_OFFLINE=1, every process of it
// (the app, WebKit's processes, the document reader) under strace, which logs each connect,
// sendto and sendmsg to an IP address, DNS included: a firewall log nothing in the app can
// bypass. The status bar says Offline, the switch says why and cannot turn it off, a download
// says downloads are off, chat works on the model on disk; and across the whole session the
// log holds no attempt to reach anything but this computer. Saves tests/artifacts/offline.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KEY_ENTER } from './webdriver.mjs';
import { application, appPid, root, starterModel, startDriver, stop } from './harness.mjs';

const artifacts = join(root, 'tests/artifacts');
const DRIVER_PORT = 4456;
const NATIVE_PORT = 4457;

let driver;
let driverProcess;
let workDir;
let log;
let traced;
/** The app's pid: ending the session stops strace, which lets the app it traced go on. */
let tracedPid;

function stopApp() {
  if (tracedPid && existsSync(`/proc/${tracedPid}`)) process.kill(tracedPid, 'SIGKILL');
}

before(async () => {
  assert.ok(application && existsSync(application), `ALTIPLANO_APP_BINARY must name the built app (got ${application})`);
  mkdirSync(artifacts, { recursive: true });
  workDir = mkdtempSync(join(tmpdir(), 'altiplano-e2e-offline-'));
  log = join(workDir, 'connections.log');
  // The app as WebKitWebDriver starts it, under strace (scripts/deps.sh installs it).
  traced = join(workDir, 'altiplano-app-traced');
  writeFileSync(
    traced,
    `#!/bin/sh\nexec strace -f -qq -e trace=connect,sendto,sendmsg -o '${log}' '${application}' "$@"\n`,
  );
  chmodSync(traced, 0o755);
  const env = { ...process.env };
  delete env.HF_TOKEN;
  delete env.ALTIPLANO_MODEL;
  ({ driver, child: driverProcess } = await startDriver({
    port: DRIVER_PORT,
    nativePort: NATIVE_PORT,
    env: {
      ...env,
      ALTIPLANO_DATA_DIR: join(workDir, 'data'),
      ALTIPLANO_STARTER_MODEL: starterModel,
      ALTIPLANO_OFFLINE: '1',
      // The real Hub: reaching it would take a DNS lookup and a connection, both logged.
      HF_ENDPOINT: 'https://huggingface.co',
      HF_HUB_CACHE: join(workDir, 'cache'),
    },
  }));
});

after(async () => {
  await driver?.quit();
  stopApp();
  await stop(driverProcess);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

/** What the log holds that reaches for an IP address other than this computer's. */
function outbound() {
  return readFileSync(log, 'utf8')
    .split('\n')
    .filter((line) => line.includes('sa_family=AF_INET'))
    .filter((line) => !/inet_addr\("127\.|inet_pton\(AF_INET6, "::1"/.test(line));
}

test('offline, the app opens no connection, says so, and chats on the model on disk', async () => {
  await driver.start(traced);
  tracedPid = appPid();
  await driver.until('the starter model to load', async () => {
    const [status] = await driver.texts('[data-testid="model-status"]');
    return status && status.includes('context') ? status : null;
  });
  const [pill] = await driver.until('the Offline mark in the status bar', async () => {
    const marks = await driver.texts('[data-testid="offline-status"]');
    return marks.length === 1 ? marks : null;
  });
  assert.equal(pill, 'Offline');

  // Chat works: the model is on disk.
  const [input] = await driver.findAll('#composer-input');
  await driver.type(input, 'Say hello.' + KEY_ENTER);
  await driver.until('a finished reply', async () => {
    const stats = await driver.texts('[data-testid="reply-stats"]');
    return stats.length === 1 && stats[0].includes('tok/s');
  });

  // The switch says why it is on and cannot turn it off; a download says downloads are off.
  const [modelsTab] = await driver.findAll('[data-testid="tab-models"]');
  await driver.click(modelsTab);
  const toggle = await driver.until('the offline switch', () =>
    driver.execute(
      'const e = document.querySelector(\'[data-testid="offline-switch"]\'); return e && { checked: e.checked, disabled: e.disabled };',
    ),
  );
  assert.deepEqual(toggle, { checked: true, disabled: true });
  const [note] = await driver.texts('[data-testid="offline-note"]');
  assert.match(note, /ALTIPLANO_OFFLINE/);
  const [formNote] = await driver.texts('[data-testid="download-offline-note"]');
  assert.match(formNote, /downloads are off/);

  const [target] = await driver.findAll('[data-testid="download-target"]');
  await driver.type(target, 'bartowski/SmolLM2-135M-Instruct-GGUF');
  const [file] = await driver.findAll('[data-testid="download-file"]');
  await driver.type(file, 'SmolLM2-135M-Instruct-Q4_K_M.gguf' + KEY_ENTER);
  const failed = await driver.until('the download to be refused', async () => {
    const rows = await driver.execute(
      'return [...document.querySelectorAll(\'[data-testid="download-job"]\')].map((e) => ({ state: e.dataset.state, text: e.textContent }));',
    );
    return rows.length === 1 && rows[0].state === 'failed' ? rows[0] : null;
  });
  assert.match(failed.text, /offline/);
  assert.match(failed.text, /downloads are off/);
  assert.match(failed.text, /Turn offline mode off/);
  writeFileSync(join(artifacts, 'offline.png'), await driver.screenshot());
  await driver.quit();
  stopApp();

  const attempts = outbound();
  assert.deepEqual(attempts, [], 'nothing but this computer was contacted');
  // The log is live: the app's connections to local sockets (the X server, D-Bus) are in it.
  assert.match(readFileSync(log, 'utf8'), /connect\(\d+, \{sa_family=AF_UNIX/);
});
