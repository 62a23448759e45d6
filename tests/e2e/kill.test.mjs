// End to end: the real app killed with SIGKILL at random moments, and started again each time:
// while a reply streams (the text the window showed is sampled every 50 ms; the reopened
// conversation shows at least everything shown 500 ms before the kill, marked interrupted),
// while it summarizes a document, while it indexes a large code folder and while it downloads
// a model from a slow fake Hub (each then finishes where it stopped; the download continues
// from its bytes and ends byte-identical). After every kill the database passes
// `PRAGMA integrity_check`.
// ALTIPLANO_APP_KILLS sets the number of reply kills (default 5; two each of the others).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { KEY_ENTER } from './webdriver.mjs';
import { application, appPid, root, starterModel, startDriver, startHub, stop } from './harness.mjs';

const DRIVER_PORT = 4460;
const NATIVE_PORT = 4461;
const KILLS = Number(process.env.ALTIPLANO_APP_KILLS ?? 5);

let driver;
let driverProcess;
let hubProcess;
let dataDir;
let documentFile;
let cacheDir;
/** A large real code base (mistralrs-core's sources, unpacked by cargo): about a second to index. */
const registry = join(process.env.CARGO_HOME ?? join(homedir(), '.cargo'), 'registry/src');
const bigFolder = readdirSync(registry)
  .map((index) => readdirSync(join(registry, index)).filter((d) => d.startsWith('mistralrs-core-')).map((d) => join(registry, index, d)))
  .flat()[0];

before(async () => {
  assert.ok(application && existsSync(application), `ALTIPLANO_APP_BINARY must name the built app (got ${application})`);
  assert.ok(bigFolder, `mistralrs-core's sources are not unpacked under ${registry}`);
  dataDir = mkdtempSync(join(tmpdir(), 'altiplano-e2e-kill-'));
  documentFile = join(dataDir, 'licence.txt');
  copyFileSync(join(root, 'core/tests/fixtures/gpl-3-excerpt.txt'), documentFile);
  // A fake Hub serving the starter model (98 MB) at 8 MiB/s: a download takes about 12 s.
  const hubRoot = join(dataDir, 'hub');
  mkdirSync(join(hubRoot, 'acme/tiny-GGUF'), { recursive: true });
  copyFileSync(starterModel, join(hubRoot, 'acme/tiny-GGUF/tiny.Q4_1.gguf'));
  cacheDir = join(dataDir, 'cache');
  const hub = await startHub(hubRoot, ['--throttle', String(8 << 20)]);
  hubProcess = hub.child;
  const hubUrl = hub.url;
  const env = { ...process.env };
  delete env.ALTIPLANO_MODEL;
  delete env.HF_TOKEN;
  const noProxy = ['127.0.0.1', 'localhost', env.NO_PROXY ?? env.no_proxy].filter(Boolean).join(',');
  ({ driver, child: driverProcess } = await startDriver({
    port: DRIVER_PORT,
    nativePort: NATIVE_PORT,
    env: {
      ...env,
      ALTIPLANO_DATA_DIR: dataDir,
      ALTIPLANO_STARTER_MODEL: starterModel,
      ALTIPLANO_PROJECT: bigFolder,
      HF_ENDPOINT: hubUrl,
      HF_HUB_CACHE: cacheDir,
      NO_PROXY: noProxy,
      no_proxy: noProxy,
    },
  }));
});

after(async () => {
  await driver?.quit();
  await stop(driverProcess);
  await stop(hubProcess, 'SIGINT');
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const words = (text) => text.split(/\s+/).filter(Boolean);

function integrity() {
  return execFileSync('python3', [
    '-c',
    'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])',
    join(dataDir, 'altiplano.sqlite3'),
  ])
    .toString()
    .trim();
}

async function startApp(args = []) {
  await driver.start(application, args);
  await driver.until('the starter model to load', async () => {
    const [status] = await driver.texts('[data-testid="model-status"]');
    return status && status.includes('context') ? status : null;
  });
}

let seed = Number(process.env.ALTIPLANO_KILL_SEED ?? Date.now()) >>> 0 || 1;
console.log(`app kills: ALTIPLANO_KILL_SEED=${seed}`);
/** The next random number in [0, 1), reproducible from the printed seed. */
function next() {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed / 2 ** 32;
}

/** Kills the app, waits until it is gone and checks the database. */
async function kill(what) {
  const pid = appPid();
  process.kill(pid, 'SIGKILL');
  const killed = Date.now();
  await driver.quit();
  while (existsSync(`/proc/${pid}`)) await sleep(20);
  assert.equal(integrity(), 'ok', `the database after killing it ${what}`);
  return killed;
}

test('killed while a reply streams, the app keeps what it showed', async () => {
  let wordsChecked = 0;
  for (let round = 1; round <= KILLS; round++) {
    await startApp();
    const prompt = `Story ${round}: write a long story about a dragon who learns to bake bread.`;
    await driver.execute('document.querySelector(".new-chat").click(); return true;');
    const [input] = await driver.findAll('#composer-input');
    await driver.type(input, prompt + KEY_ENTER);
    await driver.until('the reply to start', async () => {
      const replies = await driver.textContents('[data-testid="assistant-message"] .markdown');
      return replies.length === 1 && replies[0].trim().length > 0;
    });
    // Sample what the window shows until the kill, 0.3 to 2.3 s after the reply started.
    const killAt = Date.now() + 300 + next() * 2000;
    const seen = [];
    while (Date.now() < killAt) {
      const [text] = await driver.textContents('[data-testid="assistant-message"] .markdown');
      seen.push({ at: Date.now(), text: text ?? '' });
      await sleep(50);
    }
    const killed = await kill(`while reply ${round} streams`);

    // What the window showed 500 ms before the kill (the last sample taken by then).
    const shown = seen.filter((s) => s.at + 500 <= killed).at(-1)?.text ?? '';
    await startApp();
    await driver.execute(
      `const t = [...document.querySelectorAll('[data-testid="conversation-list"] .title')].find((e) => e.textContent.startsWith('Story ${round}:'));
       t.click(); return true;`,
    );
    const kept = await driver.until('the reopened reply', async () => {
      const replies = await driver.textContents('[data-testid="assistant-message"] .markdown');
      const stats = await driver.textContents('[data-testid="reply-stats"]');
      return replies.length === 1 && stats.length === 1 ? { text: replies[0], stats: stats[0] } : null;
    });
    assert.match(kept.stats, /interrupted/, `round ${round}: the reply is marked interrupted`);
    // Word by word; the last word shown may have been cut mid-way.
    const want = words(shown).slice(0, -1);
    const have = words(kept.text);
    assert.deepEqual(have.slice(0, want.length), want, `round ${round}: the reply lost what was shown 500 ms before the kill`);
    wordsChecked += want.length;
    await driver.quit();
  }
  console.log(`app kills: ${KILLS} survived, ${wordsChecked} words shown before them all kept`);
});

test('killed while it summarizes or indexes, the app finishes where it stopped', async () => {
  let kills = 0;
  // The summary: killed 0.3 to 2.5 s after its progress shows, twice; then it finishes.
  for (let round = 1; round <= 2; round++) {
    await startApp([documentFile]);
    await driver.until('the summary to be written', async () => (await driver.findAll('[data-testid="summary-progress"]')).length > 0);
    await sleep(300 + next() * 2200);
    await kill(`while it summarizes (${round})`);
    kills++;
  }
  await startApp([documentFile]);
  const summary = await driver.until('the summary, continued', async () => (await driver.texts('[data-testid="summary-text"]'))[0], 240_000);
  assert.ok(summary.replace(/^Summary/, '').trim().length > 0);
  await driver.quit();

  // The index: killed 0 to 0.5 s after its progress shows, twice (from nothing each time); then it completes.
  for (let round = 1; round <= 2; round++) {
    rmSync(join(dataDir, 'code'), { recursive: true, force: true });
    await startApp();
    const [codeTab] = await driver.findAll('[data-testid="tab-code"]');
    await driver.click(codeTab);
    const indexing = await driver.until('the index to be built', async () => {
      if ((await driver.findAll('[data-testid="code-progress"]')).length > 0) return 'indexing';
      return (await driver.findAll('[data-testid="code-summary"]')).length > 0 ? 'done' : null;
    });
    if (indexing === 'done') {
      console.log('the index was built before its kill; not counted');
      await driver.quit();
      continue;
    }
    await sleep(next() * 500);
    await kill(`while it indexes (${round})`);
    kills++;
  }
  await startApp();
  const [codeTab] = await driver.findAll('[data-testid="tab-code"]');
  await driver.click(codeTab);
  const report = await driver.until('the index, complete', async () => (await driver.texts('[data-testid="code-summary"]'))[0]);
  const files = Number(/([\d,]+) files/.exec(report)?.[1].replace(/,/g, '') ?? 0);
  assert.ok(files > 100, `the folder is indexed after the kills: ${report}`);
  await driver.quit();
  console.log(`app kills while summarizing or indexing: ${kills} survived`);
});

/**
 * Bytes kept in partial files of the download (`*.incomplete` under the cache), as the disk
 * holds them: parts are written at their own offsets, so the file is sparse and its length
 * says nothing; its allocated blocks are what was fetched (to the 4 KiB block).
 */
function partialBytes(dir = cacheDir) {
  if (!existsSync(dir)) return 0;
  return readdirSync(dir, { withFileTypes: true }).reduce((sum, e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sum + partialBytes(path);
    return sum + (e.name.endsWith('.incomplete') ? statSync(path).blocks * 512 : 0);
  }, 0);
}

/** The download row's state and its progress bar's value. */
function downloadRow() {
  return driver.execute(`
    const row = document.querySelector('[data-testid="download-job"]');
    const bar = row && row.querySelector('progress');
    return row && { state: row.dataset.state, done: bar ? Number(bar.value) : 0 };
  `);
}

test('killed while it downloads, the app continues from the bytes on disk', async () => {
  await startApp();
  const [modelsTab] = await driver.findAll('[data-testid="tab-models"]');
  await driver.click(modelsTab);
  const [target] = await driver.until('the download form', async () => {
    const found = await driver.findAll('[data-testid="download-target"]');
    return found.length ? found : null;
  });
  await driver.type(target, 'acme/tiny-GGUF');
  const [file] = await driver.findAll('[data-testid="download-file"]');
  await driver.type(file, 'tiny.Q4_1.gguf' + KEY_ENTER);
  for (let round = 1; round <= 2; round++) {
    if (round > 1) {
      await startApp();
      const [tab] = await driver.findAll('[data-testid="tab-models"]');
      await driver.click(tab);
    }
    await driver.until('the download to run', async () => {
      const row = await downloadRow();
      return row && row.state === 'running' && row.done > 0;
    });
    await sleep(500 + next() * 3000);
    await kill(`while it downloads (${round})`);
    const kept = partialBytes();
    assert.ok(kept > 0, 'the bytes fetched are kept on disk');
    console.log(`download killed with ${kept} bytes on disk`);
  }
  // Started again, it continues by itself from those bytes and finishes byte-identical.
  const kept = partialBytes();
  await startApp();
  const [tab] = await driver.findAll('[data-testid="tab-models"]');
  await driver.click(tab);
  const first = await driver.until('the download to continue', async () => {
    const row = await downloadRow();
    return row && row.done > 0 ? row : null;
  });
  assert.ok(first.done >= kept * 0.9, `it continued from ${first.done} bytes; ${kept} were on disk`);
  console.log(`the download continued from ${first.done} bytes (${kept} on disk)`);
  await driver.until('the download to complete', async () => (await downloadRow())?.state === 'completed', 120_000);
  await driver.quit();
  const sha = (path) => createHash('sha256').update(readFileSync(path)).digest('hex');
  const snapshots = join(cacheDir, 'models--acme--tiny-GGUF/snapshots');
  const [commit] = readdirSync(snapshots);
  assert.equal(sha(join(snapshots, commit, 'tiny.Q4_1.gguf')), sha(starterModel), 'byte-identical');
  assert.equal(integrity(), 'ok');
});
