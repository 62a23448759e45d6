// Shared set-up for the end-to-end tests: start tauri-driver on ports of the test's own (so a
// driver left over from another test file cannot answer) with the app's environment, and stop
// child processes for sure.
import { spawn } from 'node:child_process';
import { WebDriver } from './webdriver.mjs';

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
