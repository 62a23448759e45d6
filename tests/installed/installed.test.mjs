// The installed app: what scripts/package.sh packs, and the app as `dpkg -i` installed it,
// started from /usr/bin with nothing from the source tree (no ALTIPLANO_STARTER_MODEL, another
// working folder): its window comes up, the starter model it carries loads, and it answers.
// test.sh packages the debug build, installs the .deb, runs this and removes the package.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KEY_ENTER } from '../e2e/webdriver.mjs';
import { root, startDriver, stop } from '../e2e/harness.mjs';

const deb = process.env.ALTIPLANO_DEB;
const rpm = process.env.ALTIPLANO_RPM;
const installedApp = '/usr/bin/altiplano-app';
const starter = '/usr/share/altiplano/models/SmolLM2-135M-Instruct.Q4_1.gguf';
const embedder = '/usr/share/altiplano/models/all-MiniLM-L6-v2';
const artifacts = join(root, 'tests/artifacts');

const run = (program, args) => execFileSync(program, args, { encoding: 'utf8' });

/** What both packages must carry for the app to run on a machine that never built it. */
function assertCarries(listing, what) {
  for (const path of ['/usr/bin/altiplano-app', '/usr/bin/altiplano', '/usr/lib/altiplano/libllama.so.0',
    '/usr/lib/altiplano/libggml.so.0', '/usr/lib/altiplano/libggml-base.so.0', starter,
    `${embedder}/model.safetensors`, `${embedder}/tokenizer.json`, `${embedder}/config.json`,
    '/usr/share/applications/Altiplano.desktop']) {
    assert.ok(listing.includes(path), `the ${what} carries ${path}`);
  }
  const kernels = listing.split('\n').filter((l) => /\/usr\/lib\/altiplano\/libggml-cpu-[a-z0-9]+\.so/.test(l));
  assert.ok(kernels.length >= 2, `the ${what} carries llama.cpp's CPU variants (x64 at least, one per family): ${kernels.length}`);
  assert.ok(listing.includes('libggml-cpu-x64.so'), `the ${what} runs on any x86-64 CPU`);
}

test('the .deb holds the app, the command line, llama.cpp and the starter models, and names its dependencies', () => {
  assert.ok(deb && existsSync(deb), `ALTIPLANO_DEB must name the package (got ${deb})`);
  assertCarries(run('dpkg-deb', ['-c', deb]).replace(/ (\.\/)?usr\//g, ' /usr/'), '.deb');
  const depends = run('dpkg-deb', ['-f', deb, 'Depends']);
  for (const dep of ['libwebkit2gtk-4.1-0', 'libgtk-3-0', 'libgomp1']) assert.match(depends, new RegExp(dep));
});

test('the .rpm holds the same files and dependencies', { skip: !rpm && 'no .rpm given' }, () => {
  assert.ok(existsSync(rpm), `ALTIPLANO_RPM names a file (got ${rpm})`);
  assertCarries(run('rpm', ['-qpl', rpm]), '.rpm');
  const requires = run('rpm', ['-qpR', rpm]);
  for (const dep of ['libwebkit2gtk-4.1', 'libgomp']) assert.match(requires, new RegExp(dep));
});

let driver;
let driverProcess;
let workDir;

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  workDir = mkdtempSync(join(tmpdir(), 'altiplano-installed-'));
});

after(async () => {
  await driver?.quit();
  await stop(driverProcess);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

test('the installed app starts with the starter model it carries and answers', async () => {
  assert.ok(existsSync(installedApp), `${installedApp} is installed (test.sh installs the .deb first)`);
  assert.ok(existsSync(starter), `${starter} is installed`);
  // Only what a user's session has: no starter model named, a home of its own. (The package's
  // starter comes before the source tree's; core's config tests check that order.)
  const env = { ...process.env, ALTIPLANO_DATA_DIR: join(workDir, 'data'), HOME: workDir };
  delete env.ALTIPLANO_STARTER_MODEL;
  delete env.ALTIPLANO_MODEL;
  delete env.CARGO_TARGET_DIR;
  ({ driver, child: driverProcess } = await startDriver({ port: 4464, nativePort: 4465, env }));
  await driver.start(installedApp);
  const status = await driver.until('the starter model to load', async () => {
    const [text] = await driver.texts('[data-testid="model-status"]');
    return text && text.includes('context') ? text : null;
  });
  assert.match(status, /SmolLM2/i);

  const [input] = await driver.findAll('#composer-input');
  await driver.type(input, 'What is the capital of France? Answer in one word.' + KEY_ENTER);
  // A sampled reply from the 135M starter need not name Paris (see tests/e2e/chat.test.mjs):
  // what is checked is that the installed app answers, streams to the end and measures it.
  const [, stats] = await driver.until('a finished reply', async () => {
    const stats = await driver.texts('[data-testid="reply-stats"]');
    const replies = await driver.texts('[data-testid="assistant-message"] .markdown');
    return stats.length === 1 && replies.length === 1 && replies[0].trim() ? [replies[0], stats[0]] : null;
  });
  assert.match(stats, /tok\/s/);
  writeFileSync(join(artifacts, 'installed.png'), await driver.screenshot());
});

test('the installed command line finds the embedding model it carries: code search is hybrid', () => {
  const folder = join(workDir, 'project');
  mkdirSync(join(folder, 'src'), { recursive: true });
  writeFileSync(join(folder, 'src/weather.rs'), '/// Chance of rain tomorrow from pressure readings.\npub fn forecast() -> f64 { 0.3 }\n');
  const env = { ...process.env, ALTIPLANO_DATA_DIR: join(workDir, 'cli-data'), HOME: workDir };
  delete env.ALTIPLANO_EMBEDDING_MODEL;
  delete env.CARGO_TARGET_DIR;
  const result = spawnSync('/usr/bin/altiplano', ['code', 'search', folder, 'should I take an umbrella'], { env, encoding: 'utf8', cwd: workDir });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stderr, /retrieval: hybrid: keywords and all-MiniLM-L6-v2 embeddings/);
  assert.match(result.stdout, /src\/weather\.rs:1-2/);
});
