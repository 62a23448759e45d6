// A minimal W3C WebDriver client over fetch, enough to drive the app through tauri-driver.
const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';

export class WebDriver {
  constructor(base = 'http://127.0.0.1:4444') {
    this.base = base;
    this.sessionId = null;
  }

  async request(method, path, body) {
    const response = await fetch(`${this.base}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json.value ?? json)}`);
      error.webdriver = json.value;
      throw error;
    }
    return json.value;
  }

  /** Waits until the driver answers /status. */
  async ready(timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const r = await fetch(`${this.base}/status`);
        if (r.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error('tauri-driver did not start');
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Starts the app; `args` are its command-line arguments (files to open, for example). */
  async start(application, args = []) {
    const value = await this.request('POST', '/session', {
      capabilities: { alwaysMatch: { 'tauri:options': { application, args } } },
    });
    this.sessionId = value.sessionId;
  }

  async quit() {
    if (this.sessionId) {
      await this.request('DELETE', `/session/${this.sessionId}`).catch(() => {});
      this.sessionId = null;
    }
  }

  s(path) {
    return `/session/${this.sessionId}${path}`;
  }

  async findAll(css) {
    const found = await this.request('POST', this.s('/elements'), { using: 'css selector', value: css });
    return found.map((e) => e[ELEMENT]);
  }

  async text(element) {
    return this.request('GET', this.s(`/element/${element}/text`));
  }

  async type(element, text) {
    await this.request('POST', this.s(`/element/${element}/value`), { text });
  }

  async click(element) {
    await this.request('POST', this.s(`/element/${element}/click`), {});
  }

  async screenshot() {
    return Buffer.from(await this.request('GET', this.s('/screenshot')), 'base64');
  }

  async execute(script, args = []) {
    return this.request('POST', this.s('/execute/sync'), { script, args });
  }

  /** Polls `probe` until it returns a truthy value (the event we wait for) or time runs out. */
  async until(what, probe, timeoutMs = 120_000) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
      try {
        last = await probe();
        if (last) return last;
      } catch (e) {
        last = e;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${last}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** textContent of all elements matching `css` (unlike `texts`, includes text clipped by CSS). */
  async textContents(css) {
    return this.execute('return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent);', [css]);
  }

  /** Texts of all elements matching `css`. */
  async texts(css) {
    const elements = await this.findAll(css);
    return Promise.all(elements.map((e) => this.text(e)));
  }
}

export const KEY_ENTER = '\uE007';
export const KEY_ESCAPE = '\uE00C';
