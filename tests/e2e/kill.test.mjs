// End to end: the real app killed with SIGKILL while a reply streams, at random moments, and
// started again each time. The text the window showed is sampled every 50 ms; after each kill
// the database passes `PRAGMA integrity_check`, and the reopened conversation shows at least
// everything the window had shown 500 ms before the kill, marked interrupted.
// ALTIPLANO_APP_KILLS sets the number of kills (default 5).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KEY_ENTER } from './webdriver.mjs';
import { application, starterModel, startDriver, stop } from './harness.mjs';

const DRIVER_PORT = 4460;
const NATIVE_PORT = 4461;
const KILLS = Number(process.env.ALTIPLANO_APP_KILLS ?? 5);

let driver;
let driverProcess;
let dataDir;

before(async () => {
  assert.ok(application && existsSync(application), `ALTIPLANO_APP_BINARY must name the built app (got ${application})`);
  dataDir = mkdtempSync(join(tmpdir(), 'altiplano-e2e-kill-'));
  const env = { ...process.env };
  delete env.ALTIPLANO_MODEL;
  ({ driver, child: driverProcess } = await startDriver({
    port: DRIVER_PORT,
    nativePort: NATIVE_PORT,
    env: { ...env, ALTIPLANO_DATA_DIR: dataDir, ALTIPLANO_STARTER_MODEL: starterModel },
  }));
});

after(async () => {
  await driver?.quit();
  await stop(driverProcess);
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

/** The pid of the app this test started (the newest process of that name). */
function appPid() {
  return Number(execFileSync('pgrep', ['-n', '-x', 'altiplano-app']).toString().trim());
}

async function startApp() {
  await driver.start(application);
  await driver.until('the starter model to load', async () => {
    const [status] = await driver.texts('[data-testid="model-status"]');
    return status && status.includes('context') ? status : null;
  });
}

test('killed while a reply streams, the app keeps what it showed', async () => {
  let seed = Number(process.env.ALTIPLANO_KILL_SEED ?? Date.now()) >>> 0 || 1;
  const next = () => {
    seed ^= seed << 13;
    seed >>>= 0;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    seed >>>= 0;
    return seed / 2 ** 32;
  };
  console.log(`app kills: ${KILLS}, ALTIPLANO_KILL_SEED=${seed}`);
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
    const pid = appPid();
    process.kill(pid, 'SIGKILL');
    const killed = Date.now();
    await driver.quit();
    while (existsSync(`/proc/${pid}`)) await sleep(20);
    assert.equal(integrity(), 'ok', `the database after kill ${round}`);

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
