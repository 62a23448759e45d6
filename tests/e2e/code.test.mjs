// End to end: the Code tab in the real app, driven through tauri-driver. The app starts with
// ALTIPLANO_PROJECT naming a small folder (the same way a user's last folder is reopened), and the
// starter model. The test asks a question, waits for the checked answer, opens one of the
// sources shown to the model and sees the cited lines highlighted in the file view. Saves
// tests/artifacts/code.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KEY_ENTER } from './webdriver.mjs';
import { application, root, starterModel, startDriver, stop } from './harness.mjs';

const artifacts = join(root, 'tests/artifacts');
const DRIVER_PORT = 4448;
const NATIVE_PORT = 4449;

let driver;
let driverProcess;
let workDir;

before(async () => {
  assert.ok(application && existsSync(application), `ALTIPLANO_APP_BINARY must name the built app (got ${application})`);
  assert.ok(existsSync(starterModel), `the starter model is missing at ${starterModel}; run models/fetch-starter.sh`);
  mkdirSync(artifacts, { recursive: true });
  workDir = mkdtempSync(join(tmpdir(), 'altiplano-e2e-code-'));
  const project = join(workDir, 'shop');
  mkdirSync(join(project, 'src'), { recursive: true });
  writeFileSync(
    join(project, 'src/tax.rs'),
    '/// Value added tax for a price in cents.\npub fn vat_cents(price_cents: u64) -> u64 {\n    price_cents * 21 / 100\n}\n',
  );
  writeFileSync(join(project, 'src/main.rs'), 'mod tax;\n\nfn main() {\n    println!("{}", tax::vat_cents(1000));\n}\n');
  const env = { ...process.env };
  delete env.ALTIPLANO_MODEL;
  ({ driver, child: driverProcess } = await startDriver({
    port: DRIVER_PORT,
    nativePort: NATIVE_PORT,
    env: {
      ...env,
      ALTIPLANO_DATA_DIR: join(workDir, 'data'),
      ALTIPLANO_STARTER_MODEL: starterModel,
      ALTIPLANO_PROJECT: project,
    },
  }));
});

after(async () => {
  await driver?.quit();
  await stop(driverProcess);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

test('ask about a code folder and open the cited lines', async () => {
  await driver.start(application);
  await driver.until('the starter model to load', async () => {
    const [text] = await driver.texts('[data-testid="model-status"]');
    return text && text.includes('context') ? text : null;
  });
  const [codeTab] = await driver.findAll('[data-testid="tab-code"]');
  await driver.click(codeTab);

  const summary = await driver.until('the folder opened at start-up', async () => (await driver.texts('[data-testid="code-summary"]'))[0]);
  assert.match(summary, /2 files/);

  const [question] = await driver.findAll('[data-testid="code-question"]');
  await driver.type(question, 'How is the value added tax computed?' + KEY_ENTER);
  const phase = await driver.until('the answer to finish', () =>
    driver.execute(
      'const a = document.querySelector(\'[data-testid="code-answer"]\'); return a && a.dataset.state !== "streaming" ? a.dataset.state : null;',
    ),
  );
  assert.equal(phase, 'done');

  // The best chunk shown to the model is the function, with its doc comment.
  await driver.execute('document.querySelector("details.sources").open = true; return true;');
  const sources = await driver.texts('[data-testid="source"]');
  assert.match(sources[0], /^src\/tax\.rs:1-4/);
  const [first] = await driver.findAll('[data-testid="source"]');
  await driver.click(first);
  const highlighted = await driver.until('the file view with the cited lines', async () => {
    const lines = await driver.texts('[data-testid="file-view-line-highlighted"]');
    return lines.length > 0 ? lines : null;
  });
  assert.equal(highlighted.length, 4);
  assert.match(highlighted.join('\n'), /vat_cents/);
  writeFileSync(join(artifacts, 'code.png'), await driver.screenshot());
});
