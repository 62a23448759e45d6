// Shared set-up for the end-to-end tests: start tauri-driver on ports of the test's own (so a
// driver left over from another test file cannot answer) with the app's environment, and stop
// child processes for sure.
import { execFileSync, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join, resolve } from 'node:path';
import { WebDriver } from './webdriver.mjs';

/** The repository. */
export const root = resolve(import.meta.dirname, '../..');
/** The built app under test. */
export const application = process.env.ALTIPLANO_APP_BINARY;
/** The starter model, fetched by models/fetch-starter.sh. */
export const starterModel = join(root, 'models/starter/SmolLM2-135M-Instruct.Q4_1.gguf');

/** A binary of the workspace build: `$CARGO_TARGET_DIR/debug/NAME` (or `target/debug/NAME`). */
export function workspaceBinary(name) {
  return join(resolve(root, process.env.CARGO_TARGET_DIR ?? 'target'), 'debug', name);
}

/** Starts tauri-driver with `env` for the app and resolves with a ready WebDriver client. */
export async function startDriver({ port, nativePort, env }) {
  const child = spawn(
    'tauri-driver',
    ['--port', String(port), '--native-port', String(nativePort), '--native-driver', '/usr/bin/WebKitWebDriver'],
    {
      env: { ...env, WEBKIT_DISABLE_COMPOSITING_MODE: '1', WEBKIT_DISABLE_DMABUF_RENDERER: '1' },
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
  const driver = new WebDriver(`http://127.0.0.1:${port}`);
  await driver.ready();
  return { driver, child };
}

/** Stops a child process and waits until it is gone (killing it if it ignores `signal`). */
export async function stop(child, signal = 'SIGTERM') {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  const stubborn = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await gone;
  clearTimeout(stubborn);
}

/**
 * Starts the fake Hugging Face Hub (the altiplano-testhub binary) over `hubRoot`, with its
 * extra `args` (`--throttle BYTES_PER_SEC`), and resolves with the process and its URL, read
 * from its one line on stdout.
 */
export function startHub(hubRoot, args = []) {
  const binary = process.env.ALTIPLANO_TESTHUB_BINARY ?? workspaceBinary('altiplano-testhub');
  const child = spawn(binary, ['--root', hubRoot, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolveUrl, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const listening = /^listening on (http:\/\/\S+)$/.exec(line.trim());
      if (listening) resolveUrl({ child, url: listening[1] });
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`altiplano-testhub exited with ${code} before listening`)));
  });
}

/** The pid of the newest app process (the one the running test started). */
export function appPid() {
  return Number(execFileSync('pgrep', ['-n', '-x', 'altiplano-app']).toString().trim());
}
