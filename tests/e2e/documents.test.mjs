// End to end: the Documents tab in the real app, driven through tauri-driver. The app starts with
// a PDF named on its command line (as "Open with Altiplano" does), and the starter model. The file
// is read in the isolated reader, summarized with progress, and a follow-up question is answered
// from the right page, whose text opens beside the answer. Saves tests/artifacts/documents.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KEY_ENTER } from './webdriver.mjs';
import { application, root, starterModel, startDriver, stop } from './harness.mjs';

const artifacts = join(root, 'tests/artifacts');
const DRIVER_PORT = 4450;
const NATIVE_PORT = 4451;

/** A minimal PDF, one line of Helvetica text per page, with a correct cross-reference table. */
function pdf(pages) {
  const objects = ['<< /Type /Catalog /Pages 2 0 R >>', null, '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>'];
  const kids = [];
  for (const text of pages) {
    const stream = `BT /F1 14 Tf 72 720 Td (${text.replace(/[()\\]/g, '\\$&')}) Tj ET`;
    objects.push(`<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`);
    const contents = objects.length;
    objects.push(`<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents ${contents} 0 R >>`);
    kids.push(`${objects.length} 0 R`);
  }
  objects[1] = `<< /Type /Pages /Kids [${kids.join(' ')}] /Count ${pages.length} >>`;
  let out = '%PDF-1.4\n';
  const offsets = [];
  objects.forEach((body, i) => {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = out.length;
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const offset of offsets) out += `${String(offset).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return out;
}

let driver;
let driverProcess;
let workDir;
let file;

before(async () => {
  assert.ok(application && existsSync(application), `ALTIPLANO_APP_BINARY must name the built app (got ${application})`);
  assert.ok(existsSync(starterModel), `the starter model is missing at ${starterModel}; run models/fetch-starter.sh`);
  mkdirSync(artifacts, { recursive: true });
  workDir = mkdtempSync(join(tmpdir(), 'altiplano-e2e-documents-'));
  file = join(workDir, 'cooperative.pdf');
  writeFileSync(
    file,
    pdf([
      'The Andean cooperative grew quinoa near Oruro in 1998.',
      'Llamas carried the harvest to the market in Potosi every Friday.',
    ]),
  );
  const env = { ...process.env };
  delete env.ALTIPLANO_MODEL;
  delete env.ALTIPLANO_PROJECT;
  ({ driver, child: driverProcess } = await startDriver({
    port: DRIVER_PORT,
    nativePort: NATIVE_PORT,
    env: { ...env, ALTIPLANO_DATA_DIR: join(workDir, 'data'), ALTIPLANO_STARTER_MODEL: starterModel },
  }));
});

after(async () => {
  await driver?.quit();
  await stop(driverProcess);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

test('a PDF named on the command line is summarized, and a follow-up opens the page it came from', async () => {
  await driver.start(application, [file]);
  // The window switches to the Documents tab by itself when the file starts opening.
  const card = await driver.until('the document card', async () => {
    const [text] = await driver.texts('[data-testid="document-card"]');
    return text && text.includes('2 pages') ? text : null;
  });
  assert.match(card, /^2 pages · /);
  // (WebKitWebDriver reads ellipsized text as empty, so the title is read from the DOM.)
  const name = await driver.execute('return document.querySelector(\'[data-testid="document-main"] h2\').textContent;');
  assert.equal(name, 'cooperative.pdf');

  const summary = await driver.until(
    'the summary',
    async () => (await driver.texts('[data-testid="summary-text"]'))[0],
    240_000,
  );
  assert.ok(summary.replace(/^Summary/, '').trim().length > 0, 'the summary has text');
  const notes = await driver.texts('[data-testid="summary-note"]');
  assert.match(notes[0], /^Written by SmolLM2-135M-Instruct\.Q4_1 in one pass/);
  // Every sentence was checked against the pages: the note counts those no page supports, and
  // each of them carries a visible "no source" label.
  const marks = await driver.execute(
    'return document.querySelectorAll(\'[data-testid="summary-text"] span.no-source\').length;',
  );
  const sourcing = notes.find((n) => /sentence/.test(n));
  assert.ok(sourcing, `a note on the sentences' sources: ${JSON.stringify(notes)}`);
  const counted = /^(\d+) of (\d+) sentences/.exec(sourcing);
  if (marks === 0) assert.match(sourcing, /^Every sentence \(\d+\) cites a page that supports it\.$/);
  else assert.equal(Number(counted?.[2]) - Number(counted?.[1]), marks, sourcing);

  const [question] = await driver.findAll('[data-testid="document-question"]');
  await driver.type(question, 'Where did the llamas carry the harvest?' + KEY_ENTER);
  const phase = await driver.until('the answer to finish', () =>
    driver.execute(
      'const a = document.querySelector(\'[data-testid="document-answer"]\'); return a && a.dataset.state !== "streaming" ? a.dataset.state : null;',
    ),
  );
  assert.equal(phase, 'done');
  // The answer's sentences were checked too: its note counts the ones marked "no source".
  const answerMarks = await driver.execute(
    'return document.querySelectorAll(\'[data-testid="document-answer"] span.no-source\').length;',
  );
  const [answerNote] = await driver.texts('[data-testid="answer-sourcing"]');
  if (answerMarks > 0) {
    assert.ok(answerNote, 'an answer with unsupported sentences says how many');
    const c = /^(\d+) of (\d+) sentences/.exec(answerNote);
    assert.equal(Number(c?.[2]) - Number(c?.[1]), answerMarks, answerNote);
  } else if (answerNote !== undefined) {
    assert.match(answerNote, /^Every sentence \(\d+\) cites a page that supports it\.$/);
  }

  // The page that answers is shown to the model first; it opens beside the answer.
  await driver.execute('document.querySelector("details.sources").open = true; return true;');
  const sources = await driver.texts('[data-testid="document-source"]');
  assert.equal(sources[0], 'p. 2');
  const [first] = await driver.findAll('[data-testid="document-source"]');
  await driver.click(first);
  const page = await driver.until('the page view', async () => (await driver.texts('[data-testid="page-text"]'))[0]);
  assert.match(page, /^Page 2/);
  assert.match(page, /Llamas carried the harvest/);
  writeFileSync(join(artifacts, 'documents.png'), await driver.screenshot());
});
