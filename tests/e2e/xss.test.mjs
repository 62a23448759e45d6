// End to end: untrusted text never runs in the real webview. XSS payloads — the OWASP filter-
// evasion set, mutation-XSS strings aimed at DOMPurify, Markdown link tricks and polyglots —
// are put everywhere text from outside reaches the window: model replies and user messages and
// conversation titles (in the database, as a reply is kept), search snippets, a document's text
// and its file name, a code file's text, its file name and its folder's name. Each payload, if it
// ran, would push its number onto `top.__x`; the test reads it, and also listens for CSP
// violations (a payload that got as far as a live element would be reported there), and finds
// none of either. Saves tests/artifacts/xss.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KEY_ENTER } from './webdriver.mjs';
import { application, root, starterModel, startDriver, stop, workspaceBinary } from './harness.mjs';

const artifacts = join(root, 'tests/artifacts');
const cli = process.env.ALTIPLANO_CLI_BINARY ?? workspaceBinary('altiplano');
const DRIVER_PORT = 4458;
const NATIVE_PORT = 4459;

// `M` stands for the marker each payload would run: push its number onto top.__x.
const TEMPLATES = [
  '<script>M</script>',
  '<SCRIPT>M</SCRIPT>',
  '<<SCRIPT>M//<</SCRIPT>',
  '"><script>M</script>',
  "'><script>M</script>",
  '<IMG SRC="javascript:M">',
  '<IMG SRC=javascript:M>',
  '<IMG SRC=JaVaScRiPt:M>',
  '<IMG """><SCRIPT>M</SCRIPT>">',
  '<img src=x onerror=M>',
  '<img src=x onerror="M">',
  '<IMG SRC=# onmouseover="M">',
  '<img src=1 href=1 onerror="javascript:M">',
  '<svg onload=M>',
  '<svg><script>M</script></svg>',
  '<svg><animate onbegin=M attributeName=x dur=1s>',
  '<body onload=M>',
  '<iframe src="javascript:M"></iframe>',
  '<iframe srcdoc="<script>M</script>"></iframe>',
  '<object data="javascript:M"></object>',
  '<embed src="javascript:M">',
  '<a href="javascript:M">click</a>',
  '<a href="jAvAsCrIpT&colon;M">click</a>',
  '<a href="&#1;javascript:M">click</a>',
  '<form><button formaction="javascript:M">go</button></form>',
  '<details open ontoggle=M>',
  '<input autofocus onfocus=M>',
  '<select autofocus onfocus=M>',
  '<textarea autofocus onfocus=M>',
  '<video><source onerror="M"></video>',
  '<audio src=x onerror=M>',
  '<marquee onstart=M>',
  '<div style="background:url(javascript:M)">x</div>',
  '<div style="width: expression(M);">x</div>',
  '<link rel="stylesheet" href="javascript:M">',
  '<base href="javascript:M//">',
  '<meta http-equiv="refresh" content="0;url=javascript:M">',
  '<table background="javascript:M">',
  '<isindex type=image src=1 onerror=M>',
  '<math><mtext><table><mglyph><style><img src=x onerror=M>',
  '<noscript><p title="</noscript><img src=x onerror=M>">',
  '<svg></p><style><a id="</style><img src=1 onerror=M>">',
  '<math><mi><mglyph><svg><mtext><textarea><path id="</textarea><img onerror=M src=1>">',
  '<form><math><mtext></form><form><mglyph><style></math><img src onerror=M>',
  '<svg><style><img src=x onerror=M></style></svg>',
  '<template><img src=x onerror=M></template>',
  '<xmp><img src=x onerror=M></xmp>',
  '<title><img src=x onerror=M></title>',
  '<style><img src=x onerror=M></style>',
  '<iframe><img src=x onerror=M></iframe>',
  '[click](javascript:M)',
  '[click](JaVaScRiPt:M)',
  '[click](  javascript:M)',
  '![img](javascript:M)',
  '![x](x" onerror="M)',
  '[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)',
  '<a href="data:text/html,<script>M</script>">x</a>',
  'javascript:/*--></title></style></textarea></script></xmp><svg/onload=\'+/"/+/onmouseover=1/+/[*/[]/+M//\'>',
  "';!--\"<XSS>=&{()}<img src=x onerror=M>",
  '<scr<script>ipt>M</scr</script>ipt>',
];
const PAYLOADS = TEMPLATES.map((t, i) => t.replaceAll('M', `(top.__x=top.__x||[]).push(${i + 1})`));
/** The ones a file or folder name can hold (no `/`), cut to fit a name. */
const NAMEABLE = PAYLOADS.filter((p) => !p.includes('/') && Buffer.byteLength(p) < 200);

let driver;
let driverProcess;
let workDir;
let documentFile;
let project;

before(async () => {
  assert.ok(application && existsSync(application), `ALTIPLANO_APP_BINARY must name the built app (got ${application})`);
  assert.ok(existsSync(cli), `the CLI is not built at ${cli}; build the workspace or set ALTIPLANO_CLI_BINARY`);
  mkdirSync(artifacts, { recursive: true });
  workDir = mkdtempSync(join(tmpdir(), 'altiplano-e2e-xss-'));
  const data = join(workDir, 'data');

  // The database as the app keeps it: the CLI creates it, then conversations are written the
  // way finished replies are stored — one titled by each payload, one holding them all.
  execFileSync(cli, ['conversations', 'list'], { env: { ...process.env, ALTIPLANO_DATA_DIR: data } });
  const reply = [
    'Here is what you asked for:',
    ...PAYLOADS,
    '```html',
    ...PAYLOADS,
    '```',
    ...PAYLOADS.map((p) => `Inline \`${p}\` and **${p}**`),
  ].join('\n\n');
  const seed = `
import json, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
payloads = json.loads(sys.argv[2]); reply = sys.argv[3]
now = int(time.time() * 1000)
for i, p in enumerate(payloads):
    cur = db.execute("INSERT INTO conversations (title, created_at, updated_at) VALUES (?, ?, ?)", (p, now - i, now - i))
    db.execute("INSERT INTO messages (conversation_id, role, content, status, created_at, updated_at) VALUES (?, 'user', ?, 'complete', ?, ?)", (cur.lastrowid, p, now, now))
cur = db.execute("INSERT INTO conversations (title, created_at, updated_at) VALUES ('xss reply', ?, ?)", (now + 1, now + 1))
db.execute("INSERT INTO messages (conversation_id, role, content, status, created_at, updated_at) VALUES (?, 'user', ?, 'complete', ?, ?)", (cur.lastrowid, reply, now, now))
db.execute("INSERT INTO messages (conversation_id, role, content, status, model, created_at, updated_at) VALUES (?, 'assistant', ?, 'complete', 'payloads', ?, ?)", (cur.lastrowid, reply, now, now))
db.commit()
`;
  execFileSync('python3', ['-c', seed, join(data, 'altiplano.sqlite3'), JSON.stringify(PAYLOADS), reply]);

  // A document whose name and text are payloads.
  documentFile = join(workDir, `${NAMEABLE[9]}.md`);
  writeFileSync(documentFile, ['# Payloads', ...PAYLOADS].join('\n\n'));
  // A code folder named by a payload, with files named by payloads and a file full of them.
  project = join(workDir, NAMEABLE[13]);
  mkdirSync(join(project, 'src'), { recursive: true });
  writeFileSync(
    join(project, 'src/payloads.rs'),
    PAYLOADS.map((p, i) => `/// Value added tax, case ${i}: ${p}\npub fn vat_${i}(net: u64) -> u64 {\n    net * 21 / 100 // ${p}\n}\n`).join('\n'),
  );
  NAMEABLE.slice(0, 20).forEach((name, i) => writeFileSync(join(project, 'src', `${name}.txt`), `value added tax note ${i}\n${name}\n`));

  const env = { ...process.env };
  delete env.ALTIPLANO_MODEL;
  ({ driver, child: driverProcess } = await startDriver({
    port: DRIVER_PORT,
    nativePort: NATIVE_PORT,
    env: { ...env, ALTIPLANO_DATA_DIR: data, ALTIPLANO_STARTER_MODEL: starterModel, ALTIPLANO_PROJECT: project },
  }));
});

after(async () => {
  await driver?.quit();
  await stop(driverProcess);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

/** What ran (payload numbers), what the CSP reported, and what live markup got into the page. */
function verdict() {
  return driver.execute(`
    // Elements no view of the app makes; form controls and disclosure widgets, which the app
    // makes but never inside the text it shows; and any handler or script URL.
    const never = ['SCRIPT', 'IFRAME', 'OBJECT', 'EMBED', 'BASE', 'META', 'LINK', 'VIDEO', 'AUDIO', 'TEMPLATE', 'IMG', 'STYLE', 'math', 'svg', 'MARQUEE'];
    const notInText = ['FORM', 'INPUT', 'SELECT', 'TEXTAREA', 'DETAILS'];
    const text = '.markdown, [data-testid="page-text"], [data-testid="file-view"], .snippet, .title';
    const urls = /^(href|src|srcdoc|action|formaction|data|xlink:href|background|poster|style)$/i;
    const live = [...document.getElementById('app').querySelectorAll('*')].filter((e) =>
      never.includes(e.tagName) ||
      (notInText.includes(e.tagName) && e.parentElement.closest(text)) ||
      [...e.attributes].some((a) => /^on/i.test(a.name) || (urls.test(a.name) && /(javascript|data):|expression\\(/i.test(a.value))));
    return {
      ran: window.top.__x ?? [],
      csp: window.__csp ?? [],
      live: live.map((e) => e.outerHTML.slice(0, 120)),
    };
  `);
}

test('no payload runs in replies, titles, search, documents, file names or code', async () => {
  await driver.start(application, [documentFile]);
  // CSP violations from here on are recorded (the list and the document render after this).
  await driver.execute(`
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
    return true;
  `);

  // Conversation titles, and the reply holding every payload.
  const titles = await driver.until('the conversation list', async () => {
    const listed = await driver.textContents('[data-testid="conversation-list"] .title');
    return listed.length >= PAYLOADS.length ? listed : null;
  });
  assert.ok(titles.includes(PAYLOADS[0]), 'a title is shown as the text it is');
  const [chatTab] = await driver.findAll('[data-testid="tab-chat"]');
  await driver.click(chatTab);
  await driver.execute(`
    const item = [...document.querySelectorAll('[data-testid="conversation-list"] .title')].find((e) => e.textContent === 'xss reply');
    item.click();
    return true;
  `);
  const shown = await driver.until('the reply', async () => {
    const replies = await driver.textContents('[data-testid="assistant-message"]');
    return replies.length === 1 ? replies[0] : null;
  });
  assert.ok(shown.includes(PAYLOADS[0]), 'raw HTML in a reply is shown as text');
  // Hovering and focusing is what some payloads wait for.
  await driver.execute(`
    for (const e of document.querySelectorAll('main *')) {
      e.dispatchEvent(new MouseEvent('mouseover', { bubbles: true }));
      e.dispatchEvent(new FocusEvent('focus'));
    }
    for (const a of document.querySelectorAll('main a')) a.click();
    return true;
  `);
  writeFileSync(join(artifacts, 'xss.png'), await driver.screenshot());

  // Search snippets.
  const [search] = await driver.findAll('#search-input');
  await driver.type(search, 'onerror' + KEY_ENTER);
  const hits = await driver.until('search results', async () => {
    const found = await driver.textContents('.item.hit .snippet');
    return found.length > 0 ? found : null;
  });
  assert.match(hits.join('\n'), /onerror/, 'snippets show the payloads as text');

  // The document: its name and pages, and (once the model has written it) the summary.
  const [documentsTab] = await driver.findAll('[data-testid="tab-documents"]');
  await driver.click(documentsTab);
  const name = await driver.until('the document', () =>
    driver.execute('const h = document.querySelector(\'[data-testid="document-main"] h2\'); return h && h.textContent;'),
  );
  assert.equal(name, `${NAMEABLE[9]}.md`);
  await driver.until(
    'the summary',
    async () => (await driver.texts('[data-testid="summary-text"]'))[0],
    240_000,
  );

  // The code folder: its name, file names, excerpts and the file view.
  const [codeTab] = await driver.findAll('[data-testid="tab-code"]');
  await driver.click(codeTab);
  await driver.until('the folder', async () => (await driver.texts('[data-testid="code-summary"]'))[0]);
  const [question] = await driver.findAll('[data-testid="code-question"]');
  await driver.type(question, 'How is the value added tax computed?' + KEY_ENTER);
  await driver.until('the answer to finish', () =>
    driver.execute(
      'const a = document.querySelector(\'[data-testid="code-answer"]\'); return a && a.dataset.state !== "streaming" ? a.dataset.state : null;',
    ),
  );
  await driver.execute('document.querySelector("details.sources").open = true; return true;');
  const sources = await driver.textContents('[data-testid="source"]');
  assert.ok(sources.length > 0, 'excerpts are listed');
  // Each excerpt opens in the file view (clicked from the page: the open view covers the list).
  for (let i = 0; i < Math.min(sources.length, 4); i++) {
    await driver.execute(`document.querySelectorAll('[data-testid="source"]')[${i}].click(); return true;`);
    await driver.until('the file view', async () => (await driver.findAll('[data-testid="file-view-line-highlighted"]')).length > 0);
  }

  const { ran, csp, live } = await verdict();
  assert.deepEqual(ran, [], `payloads ran: ${ran.map((n) => TEMPLATES[n - 1]).join(' | ')}`);
  assert.deepEqual(csp, [], 'the CSP reported nothing');
  assert.deepEqual(live, [], 'no live markup from the payloads is in the page');
  console.log(`${PAYLOADS.length} payloads, ${NAMEABLE.length} of them also as file names: none ran`);
});
