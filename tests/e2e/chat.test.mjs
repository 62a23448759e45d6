// End to end: the real app in its real webview (WebKitGTK), driven through tauri-driver.
// Sends a message to the real starter model, watches the reply stream in, restarts the app
// and checks that the conversation is still listed and shows its replies as they were shown.
// Saves a screenshot to tests/artifacts/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KEY_ENTER, KEY_ESCAPE } from './webdriver.mjs';
import { application, root, starterModel, startDriver, stop } from './harness.mjs';

const artifacts = join(root, 'tests/artifacts');
const question = 'What is the capital of France? Answer in one word.';

let driver;
let driverProcess;
let dataDir;

before(async () => {
  assert.ok(application && existsSync(application), `ALTIPLANO_APP_BINARY must name the built app (got ${application})`);
  mkdirSync(artifacts, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), 'altiplano-e2e-'));
  ({ driver, child: driverProcess } = await startDriver({
    port: 4444,
    nativePort: 4445,
    env: { ...process.env, ALTIPLANO_DATA_DIR: dataDir, ALTIPLANO_STARTER_MODEL: starterModel },
  }));
});

after(async () => {
  await driver?.quit();
  await stop(driverProcess);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function modelReady() {
  const [status] = await driver.texts('[data-testid="model-status"]');
  return status && status.includes('context') ? status : null;
}

test('send a message, watch the reply stream, and find it again after a restart', async () => {
  await driver.start(application);
  const status = await driver.until('the starter model to load', modelReady);
  assert.match(status, /SmolLM2|smollm/i);

  const [input] = await driver.findAll('#composer-input');
  await driver.type(input, question + KEY_ENTER);

  // The user's message shows at once, then the reply streams in.
  await driver.until('the user message', async () => (await driver.texts('[data-testid="user-message"]')).length === 1);
  // The app samples (temperature 0.6, as Meta recommends), and the 135M starter names Paris for
  // only about half of the seeds (4 of 8 on one AMD EPYC; which half depends on the CPU's
  // kernels), so this checks the reply that streamed and finished, not what it says; the
  // answer itself is checked under greedy decoding in core/tests/chat.rs.
  await driver.until('a finished reply', async () => {
    const stats = await driver.texts('[data-testid="reply-stats"]');
    const replies = await driver.texts('[data-testid="assistant-message"]');
    return stats.length === 1 && replies.length === 1 && replies[0].trim().length > 0 ? replies[0] : null;
  });
  const [stats] = await driver.texts('[data-testid="reply-stats"]');
  assert.match(stats, /tok\/s/);
  assert.match(stats, /to first token/);

  // Markup the model might produce is never live in the page.
  const scripts = await driver.execute('return document.querySelectorAll(".markdown script, .markdown img").length');
  assert.equal(scripts, 0);

  writeFileSync(join(artifacts, 'chat.png'), await driver.screenshot());

  // Esc stops a long reply mid-stream; the partial reply stays, marked stopped.
  await driver.type(input, 'Write a long story about a dragon who learns to bake bread.' + KEY_ENTER);
  await driver.until('the second reply to start streaming', async () => {
    const replies = await driver.texts('[data-testid="assistant-message"]');
    return replies.length === 2 && replies[1].split(/\s+/).length > 6;
  });
  await driver.type(input, KEY_ESCAPE);
  const stopped = await driver.until('the reply to be marked stopped', async () => {
    const stats = await driver.texts('[data-testid="reply-stats"]');
    return stats.length === 2 && stats[1].includes('stopped') ? stats[1] : null;
  });
  assert.match(stopped, /stopped/);
  const [, partial] = await driver.texts('[data-testid="assistant-message"]');
  assert.ok(partial.split(/\s+/).length > 6, `the partial reply is kept: ${partial}`);
  assert.equal((await driver.findAll('[data-testid="send"]')).length, 1, 'Send is back after Stop');

  const shown = await driver.texts('[data-testid="assistant-message"] .markdown');
  const listed = await driver.textContents('[data-testid="conversation-list"] .title');
  assert.deepEqual(listed, [question], 'one conversation, titled after its first message');
  await driver.quit();

  // A fresh start of the app with the same data folder lists the conversation.
  await driver.start(application);
  const after = await driver.until('the conversation list', async () => {
    const titles = await driver.textContents('[data-testid="conversation-list"] .title');
    return titles.length > 0 ? titles : null;
  });
  assert.deepEqual(after, [question]);
  // Opened again, it shows both replies as they were shown before the restart.
  const [title] = await driver.findAll('[data-testid="conversation-list"] .title');
  await driver.click(title);
  const kept = await driver.until('the saved replies', async () => {
    const replies = await driver.texts('[data-testid="assistant-message"] .markdown');
    return replies.length === 2 ? replies : null;
  });
  assert.equal(shown.length, 2);
  assert.equal(kept[0], shown[0], 'the first reply is kept as it was shown');
  assert.equal(kept[1], shown[1], 'the stopped reply is kept as it was shown');
  // No screenshot here: the starter model loads in a fraction of a second on llama.cpp, and
  // WebKitWebDriver's screenshot hangs past its 300 s limit right after a load (seen before in
  // the downloads test), while every other command keeps working.

  // The Models page: this computer, a recommendation with its reason, every variant planned.
  const [modelsTab] = await driver.findAll('[data-testid="tab-models"]');
  await driver.click(modelsTab);
  const recommendation = await driver.until('a recommendation', async () => {
    const [text] = await driver.texts('[data-testid="recommendation"]');
    return text && text.includes('Llama 3.1') ? text : null;
  });
  assert.match(recommendation, /tokens\/s/);
  // The page opens at the context the recommendation holds (up to 32K), and says it is for that.
  const opened = await driver.execute('return document.querySelector(\'[data-testid="context"]\').value;');
  const openedAt = Number(opened);
  assert.ok([2048, 4096, 8192, 16384, 32768].includes(openedAt), `opens at ${opened}`);
  assert.ok(recommendation.includes(`at ${openedAt} tokens`), `${recommendation} is for ${openedAt} tokens`);
  const rows = await driver.findAll('[data-testid="variants"] tbody tr');
  assert.equal(rows.length, 18, '3 models × 6 variants');
  // GGUF variants run on llama.cpp, which the table says.
  const engines = await driver.textContents('[data-testid="variants"] tbody td');
  assert.ok(engines.some((c) => c.includes('llama.cpp')), 'GGUF variants name their engine');
  // A 128k context re-plans at once: no 8192 cap on llama.cpp any more; the recommendation (or
  // the reason there is none) is for 131072 tokens.
  await driver.execute(
    'const s = document.querySelector(\'[data-testid="context"]\'); s.value = "131072"; s.dispatchEvent(new Event("change"));',
  );
  await driver.until('the plan for 131072 tokens', async () => {
    const [text] = await driver.textContents('[data-testid="recommendation"]');
    return text && text.includes('131072') ? text : null;
  });
  const cells = await driver.textContents('[data-testid="variants"] tbody td');
  assert.ok(!cells.some((c) => c.includes('(capped)')), 'nothing is capped on one machine');
  writeFileSync(join(artifacts, 'models.png'), await driver.screenshot());
});
