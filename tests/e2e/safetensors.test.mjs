// End to end: a safetensors folder in the library (the starter model converted by
// `altiplano models convert-gguf` and registered by `altiplano models import`, as the "Import
// safetensors folder…" button does through its dialog) is used for chat from the Models page,
// quantized in place with the chosen ISQ (Q8_0 by default), measured, and loaded the same way
// again when the app restarts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { application, starterModel, startDriver, stop, workspaceBinary } from './harness.mjs';

const cli = process.env.ALTIPLANO_CLI_BINARY ?? workspaceBinary('altiplano');
// Ports of their own, so a tauri-driver left over from another test file cannot answer.
const DRIVER_PORT = 4452;
const NATIVE_PORT = 4453;

let driver;
let driverProcess;
let workDir;

before(async () => {
  assert.ok(application && existsSync(application), `ALTIPLANO_APP_BINARY must name the built app (got ${application})`);
  assert.ok(existsSync(cli), `the altiplano CLI is not built at ${cli}; build the workspace or set ALTIPLANO_CLI_BINARY`);
  assert.ok(existsSync(starterModel), `the starter model is missing at ${starterModel}; run models/fetch-starter.sh`);

  workDir = mkdtempSync(join(tmpdir(), 'altiplano-e2e-safetensors-'));
  const folder = join(workDir, 'smollm2-hf');
  const dataDir = join(workDir, 'data');
  const env = { ...process.env, ALTIPLANO_DATA_DIR: dataDir };
  delete env.ALTIPLANO_MODEL;
  execFileSync(cli, ['models', 'convert-gguf', starterModel, folder, '--dtype', 'bf16'], { env, stdio: 'inherit' });
  execFileSync(cli, ['models', 'import', folder], { env, stdio: 'inherit' });

  ({ driver, child: driverProcess } = await startDriver({
    port: DRIVER_PORT,
    nativePort: NATIVE_PORT,
    // No starter model, so nothing loads at the first start.
    env: { ...env, ALTIPLANO_STARTER_MODEL: join(workDir, 'no-starter-model.gguf') },
  }));
});

after(async () => {
  await driver?.quit();
  await stop(driverProcess);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

/** The status bar's text once it names `name` as the loaded model. */
function loaded(name) {
  return driver.until(`${name} to load`, async () => {
    const [text] = await driver.textContents('[data-testid="model-status"]');
    return text && text.startsWith(name) && /context/.test(text) ? text : null;
  });
}

test('an imported safetensors folder is quantized as chosen, measured, and loaded so again after a restart', async () => {
  await driver.start(application);
  const [modelsTab] = await driver.until('the Models tab', async () => {
    const tabs = await driver.findAll('[data-testid="tab-models"]');
    return tabs.length > 0 ? tabs : null;
  });
  await driver.click(modelsTab);

  const choice = await driver.until('the quantization choice of the imported folder', () =>
    driver.execute(`
      const row = document.querySelector('[data-testid="local-model"][data-format="safetensors"]');
      const select = row && row.querySelector('[data-testid="isq"]');
      return select && { value: select.value, options: [...select.options].map((o) => o.value) };
    `),
  );
  assert.equal(choice.value, 'q8_0', 'Q8_0 is the default');
  assert.deepEqual(choice.options, ['q8_0', 'q6k', 'q5k', 'q4k', 'fp8', '']);

  // Q4K instead, as a user would pick it.
  await driver.execute(`
    const select = document.querySelector('[data-testid="local-model"][data-format="safetensors"] [data-testid="isq"]');
    select.value = 'q4k';
    select.dispatchEvent(new Event('change', { bubbles: true }));
    document.querySelector('[data-testid="local-model"][data-format="safetensors"] [data-testid="use-for-chat"]').click();
  `);
  const status = await loaded('smollm2-hf (ISQ Q4K)');
  assert.doesNotMatch(status, /failed/i);
  await driver.until('the folder marked in use', async () => (await driver.findAll('[data-testid="in-use"]')).length === 1);
  const measured = await driver.until('the measurement on the Models page', async () => {
    const rows = await driver.textContents('[data-testid="measurement"]');
    return rows.length > 0 ? rows : null;
  });
  assert.equal(measured.length, 1);
  assert.match(measured[0], /smollm2-hf \(ISQ Q4K\)/);
  assert.match(measured[0], /Q4K/);
  assert.match(measured[0], /tok\/s/);

  // The next start loads the same folder with the same quantization (from the cache written now).
  await driver.quit();
  await driver.start(application);
  await loaded('smollm2-hf (ISQ Q4K)');
});
