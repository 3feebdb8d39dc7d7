/**
 * The operations page in a real browser (Chromium, driven by playwright-core: see tests/chromium.ts)
 * against the real service and the directory simulator over HTTP. Screenshots of every
 * final screen land in test-artifacts/. UPDATE_README_SCREENSHOT=1 also refreshes
 * docs/page.png, the README's picture (a normal run never touches tracked files).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, FileChooser, Page } from 'playwright-core';
import { launchChromium } from './chromium.js';
import { requestsTo, startStack, type Stack } from './helpers.js';
import { waitUntil } from './service-process.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const SAMPLE = join(root, 'sample_hospitals.csv');
const ARTIFACTS = join(root, 'test-artifacts');
const DESKTOP = { width: 1200, height: 900 };
const PHONE = { width: 390, height: 844 };
const API_KEY = 'browser-test-key-0123456789';

/** Per test: well above what a run takes, below where a hung browser would stall the suite. */
const TIMEOUT_MS = 30_000;

let browser: Browser;

beforeAll(async () => {
  if (!existsSync(join(root, 'dist', 'web', 'index.html'))) {
    throw new Error('dist/web/index.html is missing: run `npm run build` before the browser tests (npm test does).');
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  mkdirSync(join(root, 'docs'), { recursive: true });
  // Never skipped: Debian's Chromium when installed, else the one @sparticuz/chromium ships
  // (tests/chromium.ts). launch() gives the browser a fresh temporary user-data dir of its
  // own and deletes it on close: no profile is shared or reused.
  const launched = await launchChromium();
  browser = launched.browser;
  process.stderr.write(`browser tests: ${launched.source}, version ${browser.version()}\n`);
}, TIMEOUT_MS);

afterAll(async () => {
  await browser?.close();
});

interface Harness {
  stack: Stack;
  url: string;
  context: BrowserContext;
  page: Page;
  /** Console errors and uncaught exceptions the page produced. */
  problems: string[];
  /** Alerts, confirms… the page opened (none expected). */
  dialogs: string[];
}

let cleanup: (() => Promise<void>) | null = null;

afterEach(async () => {
  const close = cleanup;
  cleanup = null;
  await close?.();
});

/** A fresh service + simulator + browser context (its own storage) for one test. */
async function open(env: Record<string, string> = {}, contextOptions: { viewport?: { width: number; height: number }; isMobile?: boolean; hasTouch?: boolean } = {}): Promise<Harness> {
  const stack = await startStack({ sim: { createDelayMs: 30 }, env });
  const server = createServer(stack.app);
  const close = stack.close.bind(stack);
  stack.close = async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await close();
  };
  // Cleaned up by afterEach even if the rest of the set-up fails.
  cleanup = () => stack.close();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const context = await browser.newContext({ viewport: DESKTOP, acceptDownloads: true, ...contextOptions });
  cleanup = async () => {
    await context.close();
    await stack.close();
  };
  context.setDefaultTimeout(10_000);
  // Every value the progress bar takes, to check it moved row by row.
  await context.addInitScript(`
    window.__progress = [];
    new MutationObserver((records) => {
      for (const record of records) window.__progress.push(Number(record.target.getAttribute('aria-valuenow')));
    }).observe(document, { subtree: true, attributes: true, attributeFilter: ['aria-valuenow'] });
  `);
  const page = await context.newPage();
  const harness: Harness = { stack, url, context, page, problems: [], dialogs: [] };
  page.on('console', (message) => {
    if (message.type() === 'error') harness.problems.push(message.text());
  });
  page.on('pageerror', (error) => harness.problems.push(String(error)));
  page.on('dialog', (dialog) => {
    harness.dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  return harness;
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

/** The page never scrolls sideways (wide tables scroll inside their own box). */
async function expectNoSidewaysScroll(page: Page) {
  expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).toBe(true);
}

/** No table needs its own sideways scroll either: on a phone the rows are stacked. */
async function expectTablesFit(page: Page) {
  const overflowing = await page.locator('.table-wrap').evaluateAll((wraps) =>
    wraps.filter((wrap) => (wrap as { scrollWidth: number; clientWidth: number }).scrollWidth > (wrap as { clientWidth: number }).clientWidth + 1).length,
  );
  expect(overflowing).toBe(0);
}

/** Whether `locator`'s box lies within the viewport's width, so it is read without scrolling sideways. */
async function withinWidth(page: Page, selector: string): Promise<boolean> {
  const box = await page.locator(selector).first().boundingBox();
  const width = page.viewportSize()!.width;
  return box !== null && box.x >= 0 && box.x + box.width <= width;
}

const rowStatuses = (page: Page, table: string) =>
  page.locator(`${table} tbody tr`).evaluateAll((rows) => rows.map((row) => (row as { getAttribute(name: string): string | null }).getAttribute('data-status')));

/** Uploads straight to the API (no page), for tests that start on a batch's page. */
async function uploadViaApi(url: string, csv: string, filename: string) {
  const form = new FormData();
  form.append('file', new Blob([csv], { type: 'text/csv' }), filename);
  const res = await fetch(`${url}/hospitals/bulk`, { method: 'POST', body: form });
  return (await res.json()) as { batch_id: string; status: string; failed_hospitals: number };
}

const THREE_ROWS = 'name,address,phone\nGeneral Hospital,1 Main St,555-0100\nClinic,2 Oak Ave,\nMercy,3 Elm Rd,555-0199\n';

describe('the operations page', () => {
  test('the sample file: preview, create, live progress to 100 %, every row activated, in History, and the results download has its rows', async () => {
    const { page, url, stack, problems, dialogs } = await open();
    await page.goto(`${url}/`);

    await page.locator('#csv-file').setInputFiles(SAMPLE);

    const preview = page.locator('table.preview-table tbody tr');
    await preview.nth(4).waitFor();
    expect(await preview.count()).toBe(5);
    expect(await page.locator('table.preview-table tbody td').allTextContents()).toEqual(
      expect.arrayContaining(["St. Mary's Medical Center", '8 Elm Court, Building "B"', 'Lakeside Community Clinic']),
    );
    expect(await page.locator('.cell-invalid').count()).toBe(0);
    expect(stack.sim.requests.filter((r) => r.method !== 'GET')).toEqual([]);
    await shot(page, 'upload-preview');

    await page.getByRole('button', { name: 'Create 5 hospitals' }).click();

    await page.locator('[role=progressbar][aria-valuenow="100"]').waitFor();
    const summary = page.getByTestId('summary');
    await summary.waitFor();
    expect(await summary.locator('.summary-title').textContent()).toBe('Batch completed: 5 hospitals created and activated.');
    expect(await summary.locator('[data-stat=created] dd').textContent()).toBe('5 of 5');
    expect(await summary.locator('[data-stat=failed] dd').textContent()).toBe('0');
    expect(await summary.locator('[data-stat=activated] dd').textContent()).toBe('Yes');
    expect(await summary.locator('[data-stat=time] dd').textContent()).toMatch(/^\d+(\.\d)? s$/);
    expect(await rowStatuses(page, 'table.rows-table')).toEqual(Array(5).fill('created_and_activated'));
    // The bar filled in row by row from the event stream, never going back.
    const seen = (await page.evaluate('window.__progress')) as number[];
    expect(seen.filter((v) => v > 0 && v < 100).length).toBeGreaterThanOrEqual(3);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(seen.at(-1)).toBe(100);
    await shot(page, 'upload-done');
    if (process.env.UPDATE_README_SCREENSHOT === '1') {
      await page.screenshot({ path: join(root, 'docs', 'page.png'), fullPage: true });
    }

    // The results download: the link's own href, fetched by the page.
    const href = await summary.getByRole('link', { name: 'Download results (CSV)' }).getAttribute('href');
    const csv = (await page.evaluate(`fetch(${JSON.stringify(href)}).then((res) => res.text())`)) as string;
    const lines = csv.trim().split('\r\n');
    expect(lines[0]).toBe('row,name,address,phone,hospital_id,status,error_message');
    expect(lines).toHaveLength(6);
    expect(lines.slice(1).every((line) => line.includes(',created_and_activated,'))).toBe(true);
    expect(csv).toContain('Mercy Regional Hospital');

    await page.getByRole('navigation').getByRole('link', { name: 'History' }).click();
    const history = page.locator('table.history-table tbody tr');
    await history.first().waitFor();
    expect(await history.count()).toBe(1);
    expect(await history.locator('th a').textContent()).toBe('sample_hospitals.csv');
    expect(await history.locator('.badge').getAttribute('data-status')).toBe('completed');
    expect(await history.locator('td').nth(1).textContent()).toBe('5 of 5');
    await shot(page, 'history');

    await history.getByRole('link', { name: 'sample_hospitals.csv' }).click();
    await page.getByRole('heading', { level: 1, name: 'sample_hospitals.csv' }).waitFor();
    await page.locator('table.rows-table tbody tr').nth(4).waitFor();
    expect(await rowStatuses(page, 'table.rows-table')).toEqual(Array(5).fill('created_and_activated'));
    expect(await page.getByRole('button', { name: 'Resume' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Roll back' }).count()).toBe(1);
    await shot(page, 'batch-completed');

    // Readable on a phone: nothing but the tables' own boxes scrolls sideways.
    await page.setViewportSize(PHONE);
    await expectNoSidewaysScroll(page);
    await shot(page, 'batch-completed-phone');
    await page.getByRole('navigation').getByRole('link', { name: 'History' }).click();
    await history.first().waitFor();
    await expectNoSidewaysScroll(page);
    await shot(page, 'history-phone');
    await page.getByRole('navigation').getByRole('link', { name: 'Upload' }).click();
    await summary.waitFor();
    await expectNoSidewaysScroll(page);
    await shot(page, 'upload-done-phone');

    expect(problems).toEqual([]);
    expect(dialogs).toEqual([]);
  }, TIMEOUT_MS);

  test('an invalid file: the problems are marked on their cells, nothing is created or recorded, and names are shown as text', async () => {
    const { page, url, stack, problems, dialogs } = await open();
    await page.goto(`${url}/`);

    await page.locator('#csv-file').setInputFiles({
      name: 'bad hospitals.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from('name,address,phone\n ,1 Main St,555\n<script>alert(1)</script>,,\nClinic,3 Road,555,extra\nGood,4 Road,\n'),
    });

    await page.locator('table.preview-table tbody tr').nth(3).waitFor();
    const nameCell = page.locator('tr[data-row="1"] td.cell-invalid[data-column=name]');
    // One numbering: data rows, as the warnings count them; the file line is a detail.
    expect(await nameCell.getAttribute('data-error')).toBe('Row 1: name is required');
    expect(await nameCell.textContent()).toContain('Row 1: name is required (line 2 of the file)');
    const addressCell = page.locator('tr[data-row="2"] td.cell-invalid[data-column=address]');
    expect(await addressCell.getAttribute('data-error')).toBe('Row 2: address is required');
    expect(await addressCell.textContent()).toContain('Row 2: address is required (line 3 of the file)');
    // A row-level problem marks the whole row, in the column named for errors.
    const wideRow = page.locator('tr[data-row="3"]');
    expect(await wideRow.getAttribute('class')).toContain('row-invalid');
    expect(await wideRow.getAttribute('data-error')).toBe('Row 3 has 4 fields; the header has 3');
    expect(await wideRow.locator('.note-error').textContent()).toBe('Row 3 has 4 fields; the header has 3 (line 4 of the file)');
    expect(await page.locator('table.preview-table thead th').allTextContents()).toEqual(['Row', 'Name', 'Address', 'Phone', 'Errors']);
    expect(await page.locator('main').textContent()).not.toMatch(/Line \d|Problems/);
    expect(await page.locator('tr[data-row="4"] .cell-invalid').count()).toBe(0);
    // The name is text, never markup.
    expect(await page.locator('tr[data-row="2"] td').first().textContent()).toBe('<script>alert(1)</script>');
    expect(await page.locator('main script').count()).toBe(0);
    expect(await page.getByRole('alert').textContent()).toContain('3 errors: nothing can be created until the file is fixed.');
    expect(await page.getByRole('button', { name: /^Create/ }).count()).toBe(0);
    await shot(page, 'upload-invalid');

    // A file-level problem is listed above the table.
    await page.locator('#csv-file').setInputFiles({ name: 'no-address.csv', mimeType: 'text/csv', buffer: Buffer.from('name\nGeneral Hospital\n') });
    await page.getByRole('heading', { name: 'Check no-address.csv' }).waitFor();
    expect(await page.getByRole('alert').textContent()).toContain('Required column "address" is missing from the header');
    expect(await page.getByRole('button', { name: /^Create/ }).count()).toBe(0);
    await shot(page, 'upload-invalid-header');
    await page.setViewportSize(PHONE);
    await expectNoSidewaysScroll(page);
    await shot(page, 'upload-invalid-header-phone');

    // Warnings are listed and marked, but do not stop the upload.
    await page.setViewportSize(DESKTOP);
    await page.locator('#csv-file').setInputFiles({ name: 'repeats.csv', mimeType: 'text/csv', buffer: Buffer.from('name,address\nClinic,1 Road\nOther,2 Road\nclinic , 1  road\n') });
    await page.getByRole('heading', { name: 'Check repeats.csv' }).waitFor();
    expect(await page.locator('.box-warning').textContent()).toContain('Row 3 repeats row 1 (same name and address).');
    expect(await page.locator('tr[data-row="3"] .note-warning').textContent()).toBe('Row 3 repeats row 1 (same name and address).');
    // Warnings sit under their own name, never under "Errors".
    expect(await page.locator('table.preview-table thead th').allTextContents()).toEqual(['Row', 'Name', 'Address', 'Phone', 'Warnings']);
    expect(await page.getByRole('alert').count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Create 3 hospitals' }).count()).toBe(1);
    await shot(page, 'upload-warnings');

    expect(stack.sim.requests.filter((r) => r.method !== 'GET')).toEqual([]);
    expect(stack.sim.hospitals()).toEqual([]);
    expect(((await (await fetch(`${url}/batches`)).json()) as { batches: unknown[] }).batches).toEqual([]);
    expect(problems).toEqual([]);
    expect(dialogs).toEqual([]);
  }, TIMEOUT_MS);

  test('a failed batch: its page offers Resume and Roll back, and Resume finishes it', async () => {
    const { page, url, stack, problems } = await open({ UPSTREAM_MAX_ATTEMPTS: '1', CIRCUIT_FAILURE_THRESHOLD: '50' });
    stack.sim.inject('create', { kind: 'pass' });
    stack.sim.inject('create', { kind: 'status', status: 503 });
    const report = await uploadViaApi(url, THREE_ROWS, 'morning intake.csv');
    expect(report).toMatchObject({ status: 'failed', failed_hospitals: 1 });

    await page.goto(`${url}/#/batches/${report.batch_id}`);
    await page.getByRole('heading', { level: 1, name: 'morning intake.csv' }).waitFor();
    expect(await page.locator('.batch-status .badge').getAttribute('data-status')).toBe('failed');
    // The failure box names the directory's reason for the row, not the counts again.
    const reasons = page.getByRole('alert');
    expect(await reasons.locator('.box-title').textContent()).toBe('Why the batch failed');
    expect(await reasons.locator('.reason-list li').allTextContents()).toEqual([expect.stringMatching(/^Row 2 \(Clinic\): Not created after 1 attempt\(s\): .*503/)]);
    expect(await reasons.textContent()).not.toContain('rows were not created');
    expect(await rowStatuses(page, 'table.rows-table')).toEqual(['created', 'failed', 'created']);
    expect(await page.getByRole('button', { name: 'Roll back' }).count()).toBe(1);
    await shot(page, 'batch-failed');

    // On a phone the rows stack: the reason is on screen, beside its row, without scrolling sideways.
    await page.setViewportSize(PHONE);
    await expectNoSidewaysScroll(page);
    await expectTablesFit(page);
    expect(await page.locator('tr[data-row="2"] .col-message').isVisible()).toBe(true);
    expect(await withinWidth(page, 'tr[data-row="2"] .col-message')).toBe(true);
    expect(await withinWidth(page, '.reason-list li')).toBe(true);
    await shot(page, 'batch-failed-phone');
    await page.setViewportSize(DESKTOP);

    await page.getByRole('button', { name: 'Resume' }).click();

    await page.locator('.batch-status .badge[data-status=completed]').waitFor();
    expect(await rowStatuses(page, 'table.rows-table')).toEqual(Array(3).fill('created_and_activated'));
    expect(await page.locator('.feedback').textContent()).toBe('Resumed: every row is created and the batch is activated.');
    expect(await page.getByTestId('batch-sentence').textContent()).toBe('Batch completed: 3 hospitals created and activated.');
    expect(await page.getByRole('button', { name: 'Resume' }).count()).toBe(0);
    expect(stack.sim.hospitals().filter((h) => h.creation_batch_id === report.batch_id && h.active)).toHaveLength(3);
    await shot(page, 'batch-resumed');
    expect(problems).toEqual([]);
  }, TIMEOUT_MS);

  test('another failed batch: Roll back asks first, then removes it from the directory', async () => {
    const { page, url, stack, problems } = await open({ UPSTREAM_MAX_ATTEMPTS: '1' });
    stack.sim.inject('create', { kind: 'pass' });
    stack.sim.inject('create', { kind: 'status', status: 400, body: { detail: 'Address not recognised' } });
    const report = await uploadViaApi(url, THREE_ROWS, 'evening intake.csv');
    expect(report.status).toBe('failed');
    expect(stack.sim.hospitals().filter((h) => h.creation_batch_id === report.batch_id)).toHaveLength(2);

    await page.goto(`${url}/#/batches/${report.batch_id}`);
    await page.getByRole('heading', { level: 1, name: 'evening intake.csv' }).waitFor();
    expect(await page.locator('tr[data-row="2"] .col-message').textContent()).toBe('Rejected by the directory (HTTP 400): Address not recognised');

    // Escape cancels: nothing happens.
    await page.getByRole('button', { name: 'Roll back' }).click();
    const dialog = page.getByRole('dialog', { name: 'Roll back this batch?' });
    await dialog.waitFor();
    expect(await dialog.textContent()).toContain('2 hospitals of this batch will be deleted from the directory');
    await shot(page, 'batch-rollback-confirm');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    expect(await page.locator('.batch-status .badge').getAttribute('data-status')).toBe('failed');
    expect(stack.sim.requests.filter((r) => r.route === 'deleteBatch')).toEqual([]);

    await page.getByRole('button', { name: 'Roll back' }).click();
    await dialog.getByRole('button', { name: 'Roll back' }).click();

    await page.locator('.batch-status .badge[data-status=rolled_back]').waitFor();
    expect(await rowStatuses(page, 'table.rows-table')).toEqual(Array(3).fill('deleted'));
    // The row the directory refused was never created, and says so; the counters add up.
    expect(await page.locator('table.rows-table tbody .badge').allTextContents()).toEqual(['Deleted', 'Not created', 'Deleted']);
    expect(await page.locator('[data-stat=deleted] dd').textContent()).toBe('2');
    expect(await page.locator('[data-stat=never-created] dd').textContent()).toBe('1');
    expect(await page.locator('[data-stat=created]').count()).toBe(0);
    expect(await page.getByTestId('batch-sentence').textContent()).toBe('Batch rolled back: 2 hospitals deleted from the directory; 1 row was never created.');
    expect(await page.getByTestId('failure-reasons').textContent()).toContain('Row 2 (Clinic): Rejected by the directory (HTTP 400): Address not recognised');
    expect(await page.getByRole('button', { name: 'Resume' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Roll back' }).count()).toBe(0);
    expect(stack.sim.hospitals().filter((h) => h.creation_batch_id === report.batch_id)).toEqual([]);
    await shot(page, 'batch-rolled-back');
    await page.setViewportSize(PHONE);
    await expectNoSidewaysScroll(page);
    await expectTablesFit(page);
    await shot(page, 'batch-rolled-back-phone');
    expect(problems).toEqual([]);
  }, TIMEOUT_MS);

  test('a batch still running: its page shows the progress live and ends with the final report, without a reload', async () => {
    const { page, url, stack, problems } = await open();
    // The first create is slow enough that the page is surely read while it is in flight
    // (a slower machine once saw a 250 ms batch finish before the buttons were counted).
    stack.sim.setCreateDelay(3000);
    const form = new FormData();
    form.append('file', new Blob([THREE_ROWS], { type: 'text/csv' }), 'slow intake.csv');
    const accepted = (await (await fetch(`${url}/hospitals/bulk`, { method: 'POST', body: form, headers: { Prefer: 'respond-async' } })).json()) as {
      batch_id: string;
    };

    await page.goto(`${url}/#/batches/${accepted.batch_id}`);
    await page.getByRole('heading', { level: 1, name: 'slow intake.csv' }).waitFor();
    expect(await page.locator('.batch-status .badge').getAttribute('data-status')).toMatch(/^(pending|processing)$/);
    await page.locator('[role=progressbar]').waitFor();
    // One reading of the page: while it says processing, it offers neither Resume nor Roll back.
    const reading = (await page.evaluate(`({
      status: document.querySelector('.batch-status .badge').getAttribute('data-status'),
      buttons: [...document.querySelectorAll('button')].map((b) => b.textContent.trim()).filter((t) => t === 'Resume' || t === 'Roll back'),
    })`)) as { status: string; buttons: string[] };
    expect(reading).toEqual({ status: expect.stringMatching(/^(pending|processing)$/), buttons: [] });
    stack.sim.setCreateDelay(250);

    await page.locator('.batch-status .badge[data-status=completed]').waitFor();
    expect(await rowStatuses(page, 'table.rows-table')).toEqual(Array(3).fill('created_and_activated'));
    const seen = (await page.evaluate('window.__progress')) as number[];
    expect(seen.some((v) => v > 0 && v < 100)).toBe(true);
    expect(await page.getByRole('button', { name: 'Roll back' }).count()).toBe(1);
    expect(problems).toEqual([]);
  }, TIMEOUT_MS);

  test('Cancel on a running batch, with the keyboard: the page says it is cancelling, then shows it cancelled with Resume offered; fewer creates than rows, nothing activated', async () => {
    // Each create takes 4 s, well within the upstream timeout: the row in flight lands, but
    // not before the page has shown "Cancelling" and been read (1.5 s was too short for a
    // machine busy with other test files: the row landed first).
    const { page, url, stack, problems } = await open({ UPSTREAM_TIMEOUT_MS: '10000' });
    stack.sim.setCreateDelay(4000);
    const form = new FormData();
    form.append('file', new Blob([THREE_ROWS], { type: 'text/csv' }), 'mistaken intake.csv');
    const accepted = (await (await fetch(`${url}/hospitals/bulk`, { method: 'POST', body: form, headers: { Prefer: 'respond-async' } })).json()) as {
      batch_id: string;
    };

    await page.goto(`${url}/#/batches/${accepted.batch_id}`);
    await page.getByRole('heading', { level: 1, name: 'mistaken intake.csv' }).waitFor();
    const cancel = page.getByRole('button', { name: 'Cancel', exact: true });
    await cancel.waitFor();

    // On a phone the Cancel button is on screen without scrolling sideways.
    await page.setViewportSize(PHONE);
    await expectNoSidewaysScroll(page);
    expect(await cancel.isVisible()).toBe(true);
    expect(await withinWidth(page, '.batch-actions button.button-danger-outline')).toBe(true);
    await page.setViewportSize(DESKTOP);

    // A row is in flight: the cancel stops the batch after it.
    await waitUntil('the first create is in flight', () => requestsTo(stack.sim, 'create').length === 1);
    await cancel.focus();
    await page.keyboard.press('Enter');

    await page.locator('.feedback .box-title').filter({ hasText: 'Cancelling' }).waitFor();
    expect(await page.locator('.feedback').textContent()).toBe('Cancelling: the batch stops after the row being sent.');
    expect(await page.getByRole('button', { name: 'Cancelling…' }).isDisabled()).toBe(true);

    await page.locator('.batch-status .badge[data-status=cancelled]').waitFor();
    expect(await page.locator('.feedback').textContent()).toBe('Cancelled: nothing more will be sent, and nothing was activated.');
    expect(await page.getByTestId('batch-sentence').textContent()).toBe('Batch cancelled: 1 of 3 created, nothing activated; resume it to finish, or roll it back.');
    expect(await rowStatuses(page, 'table.rows-table')).toEqual(['created', 'pending', 'pending']);
    expect(await page.getByRole('button', { name: 'Resume' }).count()).toBe(1);
    expect(await page.getByRole('button', { name: 'Cancel', exact: true }).count()).toBe(0);
    await shot(page, 'batch-cancelled');

    expect(requestsTo(stack.sim, 'create').length).toBeLessThan(3);
    expect(requestsTo(stack.sim, 'activate')).toEqual([]);
    expect(problems).toEqual([]);
  }, TIMEOUT_MS);

  test('History pages: 20 batches at a time, newest first, and "Load more" brings the rest', async () => {
    const { page, url, problems } = await open({ UPLOAD_RATE_PER_MIN: '100' });
    for (let i = 1; i <= 21; i += 1) {
      const report = await uploadViaApi(url, `name,address\nClinic ${i},${i} Road\n`, `day ${i}.csv`);
      expect(report.status).toBe('completed');
    }

    await page.goto(`${url}/#/batches`);
    const lines = page.locator('table.history-table tbody tr');
    await lines.nth(19).waitFor();
    expect(await lines.count()).toBe(20);
    expect(await lines.first().locator('th a').textContent()).toBe('day 21.csv');
    const more = page.getByRole('button', { name: 'Load more' });
    expect(await more.isVisible()).toBe(true);

    await more.click();

    await lines.nth(20).waitFor();
    expect(await lines.count()).toBe(21);
    expect(await lines.last().locator('th a').textContent()).toBe('day 1.csv');
    expect(await more.isVisible()).toBe(false);
    expect(problems).toEqual([]);
  }, TIMEOUT_MS);

  test('keyboard: Tab reaches the labelled file input with a visible focus, and a file can be chosen and sent without a mouse', async () => {
    const { page, url, problems } = await open();
    // Listening from the start: Playwright switches file-chooser interception on
    // asynchronously, so a waitForEvent begun at the keypress (even in Promise.all) can lose
    // the race under load and the chooser then opens unseen.
    const chooser = new Promise<FileChooser>((resolve) => page.once('filechooser', resolve));
    await page.goto(`${url}/`);
    for (const role of ['banner', 'navigation', 'main', 'contentinfo'] as const) expect(await page.getByRole(role).count()).toBe(1);

    let presses = 0;
    while ((await page.evaluate('document.activeElement && document.activeElement.id')) !== 'csv-file') {
      presses += 1;
      expect(presses).toBeLessThanOrEqual(8);
      await page.keyboard.press('Tab');
    }
    const input = page.getByLabel('Choose a CSV or Excel file or drop it here');
    expect(await input.getAttribute('id')).toBe('csv-file');
    expect(await input.getAttribute('type')).toBe('file');
    expect(await input.ariaSnapshot()).toContain('Choose a CSV or Excel file or drop it here');
    expect(await page.evaluate("getComputedStyle(document.querySelector('.dropzone-label')).outlineStyle")).toBe('solid');
    await shot(page, 'upload-keyboard-focus');

    await page.keyboard.press('Space');
    await (await chooser).setFiles(SAMPLE);
    await page.getByRole('heading', { name: 'Check sample_hospitals.csv' }).waitFor();
    presses = 0;
    while ((await page.evaluate('document.activeElement && document.activeElement.textContent')) !== 'Create 5 hospitals') {
      presses += 1;
      expect(presses).toBeLessThanOrEqual(6);
      await page.keyboard.press('Tab');
    }
    await page.keyboard.press('Enter');
    await page.getByTestId('summary').waitFor();
    expect(await page.locator('table.rows-table thead th[scope=col]').count()).toBe(8);
    expect(problems).toEqual([]);
  }, TIMEOUT_MS);

  test('when the service needs an API key: the page asks for it, keeps it in sessionStorage only, and sends it on every request, the live progress and the download included', async () => {
    const { page, url, problems } = await open({ API_KEY });
    await page.goto(`${url}/`);

    await page.locator('#csv-file').setInputFiles(SAMPLE);
    const keyField = page.getByLabel('API key', { exact: true });
    await keyField.waitFor();
    expect(await page.locator('#api-key-reason').textContent()).toBe('This service asks for an API key. Enter the key you were given by whoever runs the service.');
    await shot(page, 'api-key');

    await keyField.fill('not-the-key');
    await page.getByRole('button', { name: 'Use this key' }).click();
    await page.locator('#api-key-reason', { hasText: 'That API key was not accepted' }).waitFor();
    await keyField.fill(API_KEY);
    await page.getByRole('button', { name: 'Use this key' }).click();

    await page.getByRole('button', { name: 'Create 5 hospitals' }).click();
    await page.getByTestId('summary').waitFor();
    expect(await rowStatuses(page, 'table.rows-table')).toEqual(Array(5).fill('created_and_activated'));
    const seen = (await page.evaluate('window.__progress')) as number[];
    expect(seen.filter((v) => v > 0 && v < 100).length).toBeGreaterThanOrEqual(3);
    expect(await page.evaluate("sessionStorage.getItem('hospital-bulk.api-key')")).toBe(API_KEY);
    expect(await page.evaluate('localStorage.length')).toBe(0);

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download results (CSV)' }).click()]);
    expect(download.suggestedFilename()).toBe('sample_hospitals-results.csv');
    const csv = readFileSync((await download.path())!, 'utf8');
    expect(csv.trim().split('\r\n')).toHaveLength(6);

    await page.getByRole('navigation').getByRole('link', { name: 'History' }).click();
    await page.locator('table.history-table tbody tr').first().waitFor();
    expect(await page.locator('#key-status').textContent()).toContain('An API key is in use in this tab.');
    // Only the two refused dry runs were refused.
    expect(problems.filter((text) => !/status of 401/.test(text))).toEqual([]);
  }, TIMEOUT_MS);
});

const WIDE = { width: 1280, height: 900 };

/** Tabs until the focused element's text is `text`, at most `limit` presses. */
async function tabTo(page: Page, text: string, limit = 12) {
  for (let presses = 0; (await page.evaluate('document.activeElement && document.activeElement.textContent')) !== text; presses += 1) {
    expect(presses).toBeLessThan(limit);
    await page.keyboard.press('Tab');
  }
}

describe('the page tells the whole truth, at 1280 and 390 px', () => {
  test('a file over the row limit: every row is shown, the rows past the limit say so, and nothing can be sent', async () => {
    const { page, url, stack, problems } = await open({}, { viewport: WIDE });
    const csv = `name,address\n${Array.from({ length: 22 }, (_, i) => `Clinic ${i + 1},${i + 1} Road`).join('\n')}\n`;
    await page.goto(`${url}/`);

    await page.locator('#csv-file').setInputFiles({ name: 'too many.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });

    const rows = page.locator('table.preview-table tbody tr');
    await rows.nth(21).waitFor();
    expect(await rows.count()).toBe(22);
    expect(await page.locator('table.preview-table caption').textContent()).toBe('22 rows in too many.csv, 2 over the limit');
    expect(await page.locator('tr.row-over-limit').evaluateAll((trs) => trs.map((tr) => (tr as { dataset: { row?: string } }).dataset.row))).toEqual(['21', '22']);
    expect(await page.locator('tr[data-row="22"] td').first().textContent()).toBe('Clinic 22');
    expect(await page.locator('tr[data-row="21"] .note-error').textContent()).toBe('Over the limit: at most 20 rows can be sent in one upload.');
    expect(await page.locator('tr[data-row="20"] .note-error').count()).toBe(0);
    const alert = page.getByRole('alert');
    expect(await alert.textContent()).toContain('The file has more than 20 data rows; at most 20 are allowed per upload');
    expect(await alert.textContent()).toContain('Rows 21, 22 are over the limit');
    expect(await page.getByRole('button', { name: /^Create/ }).count()).toBe(0);
    await shot(page, 'upload-over-limit');

    await page.setViewportSize(PHONE);
    await expectNoSidewaysScroll(page);
    await expectTablesFit(page);
    expect(await withinWidth(page, 'tr[data-row="22"] .note-error')).toBe(true);
    await shot(page, 'upload-over-limit-phone');
    expect(stack.sim.requests.filter((r) => r.method !== 'GET')).toEqual([]);
    expect(problems).toEqual([]);
  }, TIMEOUT_MS);

  test('cells a spreadsheet would run as formulas: warned (not errors), stored as written, and neutralised in the results download', async () => {
    const { page, url, stack, problems } = await open({}, { viewport: WIDE });
    const csv = 'name,address,phone\n"=HYPERLINK(""http://x"",""click"")",1 Main St,+44 20 7946 0958\nClinic,@home,\nPlain,2 Road,-1\n';
    await page.goto(`${url}/`);

    await page.locator('#csv-file').setInputFiles({ name: 'formulas.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });

    await page.getByRole('heading', { name: 'Check formulas.csv' }).waitFor();
    const warnings = page.locator('.box-warning li[data-kind=looks_like_formula]');
    expect(await warnings.allTextContents()).toEqual([
      expect.stringMatching(/^Row 1: name starts with "=", so a spreadsheet would run it as a formula\./),
      expect.stringMatching(/^Row 2: address starts with "@"/),
      expect.stringMatching(/^Row 3: phone starts with "-"/),
    ]);
    // A phone number with its country code is not warned about.
    expect(await page.locator('.box-warning').textContent()).not.toContain('Row 1: phone');
    expect(await page.getByRole('alert').count()).toBe(0);
    expect(await page.locator('table.preview-table thead th').allTextContents()).toEqual(['Row', 'Name', 'Address', 'Phone', 'Warnings']);
    expect(await page.locator('tr[data-row="2"] .note-warning').textContent()).toMatch(/^Row 2: address starts with "@"/);
    await shot(page, 'upload-formulas');
    await page.setViewportSize(PHONE);
    await expectNoSidewaysScroll(page);
    await expectTablesFit(page);
    expect(await withinWidth(page, 'tr[data-row="2"] .note-warning')).toBe(true);
    await shot(page, 'upload-formulas-phone');

    await tabTo(page, 'Create 3 hospitals');
    await page.keyboard.press('Enter');

    const summary = page.getByTestId('summary');
    await summary.waitFor();
    expect(await summary.locator('.summary-title').textContent()).toBe('Batch completed: 3 hospitals created and activated.');
    const stored = stack.sim.hospitals().map((hospital) => [hospital.name, hospital.address, hospital.phone]);
    expect(stored).toEqual(
      expect.arrayContaining([
        ['=HYPERLINK("http://x","click")', '1 Main St', '+44 20 7946 0958'],
        ['Clinic', '@home', null],
        ['Plain', '2 Road', '-1'],
      ]),
    );
    const href = await summary.getByRole('link', { name: 'Download results (CSV)' }).getAttribute('href');
    const results = ((await page.evaluate(`fetch(${JSON.stringify(href)}).then((res) => res.text())`)) as string).split('\r\n');
    expect(results[1]).toMatch(/^1,"'=HYPERLINK\(""http:\/\/x"",""click""\)",1 Main St,'\+44 20 7946 0958,\d+,created_and_activated,$/);
    expect(results[2]).toMatch(/^2,Clinic,'@home,,\d+,created_and_activated,$/);
    expect(results[3]).toMatch(/^3,Plain,2 Road,'-1,\d+,created_and_activated,$/);
    expect(problems).toEqual([]);
  }, TIMEOUT_MS);

  test('the batch page and History give the same time, under the same name, and History tells two uploads of one file apart', async () => {
    const { page, url, problems } = await open({}, { viewport: WIDE });
    const first = await uploadViaApi(url, THREE_ROWS, 'intake.csv');
    const second = await uploadViaApi(url, THREE_ROWS.replace('Clinic', 'Clinic B'), 'intake.csv');

    await page.goto(`${url}/#/batches/${first.batch_id}`);
    await page.getByRole('heading', { level: 1, name: 'intake.csv' }).waitFor();
    expect(await page.locator('[data-stat=time] dt').textContent()).toBe('Upload to finish');
    const onPage = await page.locator('[data-stat=time] dd').textContent();
    expect(onPage).toMatch(/^\d+(\.\d)? s$/);
    expect(await page.locator('[data-meta=last-run]').textContent()).toMatch(/^Last run took\d+(\.\d)? s$/);

    await page.getByRole('link', { name: '← History' }).click();
    const entries = page.locator('table.history-table tbody tr');
    await entries.nth(1).waitFor();
    expect(await page.locator('table.history-table thead th').allTextContents()).toContain('Upload to finish');
    const firstEntry = page.locator(`tr[data-batch-id="${first.batch_id}"]`);
    expect(await firstEntry.locator('td[data-col=time]').textContent()).toBe(onPage);
    const ids = await entries.locator('td code').allTextContents();
    expect(ids).toEqual([second.batch_id.slice(0, 8), first.batch_id.slice(0, 8)]);
    await shot(page, 'history-two-uploads');

    // On a phone each entry is a block whose lines say what they are.
    await page.setViewportSize(PHONE);
    await expectNoSidewaysScroll(page);
    await expectTablesFit(page);
    for (const label of ['Created', 'Uploaded', 'Upload to finish', 'Batch']) {
      const cell = firstEntry.locator(`td[data-label="${label}"]`);
      expect(await cell.isVisible()).toBe(true);
      expect(await withinWidth(page, `tr[data-batch-id="${first.batch_id}"] td[data-label="${label}"]`)).toBe(true);
    }
    expect(await firstEntry.locator('td[data-label=Uploaded] time').textContent()).toMatch(/\d:\d\d:\d\d/);
    expect(await page.evaluate(`getComputedStyle(document.querySelector('tr[data-batch-id="${first.batch_id}"]')).display`)).toBe('block');
    await shot(page, 'history-two-uploads-phone');
    expect(problems).toEqual([]);
  }, TIMEOUT_MS);

  test('when the directory answers 503, the live progress says so, with the attempt and a countdown, until the row lands', async () => {
    // A retry slow enough to be seen: a create answered 503 is sent again only once the
    // directory had 4 s to store it (it may have), and the batch showed it absent.
    const { page, url, stack, problems } = await open({ UPSTREAM_SETTLE_MS: '4000' });
    stack.sim.inject('create', { kind: 'pass' });
    stack.sim.inject('create', { kind: 'status', status: 503, body: { detail: 'Service Unavailable' } });
    await page.goto(`${url}/`);
    await page.locator('#csv-file').setInputFiles({ name: 'slow directory.csv', mimeType: 'text/csv', buffer: Buffer.from(THREE_ROWS) });
    await page.getByRole('button', { name: 'Create 3 hospitals' }).click();

    const wait = page.getByTestId('directory-wait');
    await wait.waitFor({ state: 'visible' });
    const first = await wait.textContent();
    expect(first).toMatch(/^The directory answered 503; trying again \(attempt 2\) in [1-6] s\.$/);
    await shot(page, 'directory-wait');
    // The countdown moves on its own, with no new event.
    type Doc = { document: { querySelector(selector: string): { textContent: string | null } | null } };
    await page.waitForFunction((before) => (globalThis as unknown as Doc).document.querySelector('[data-testid=directory-wait]')?.textContent !== before, first);
    expect(await wait.textContent()).toMatch(/^The directory answered 503; trying again \(attempt 2\) (in [0-5] s|now)\.$/);

    await page.getByTestId('summary').waitFor();
    expect(await page.locator('.summary-title').textContent()).toBe('Batch completed: 3 hospitals created and activated.');
    expect(await wait.isVisible()).toBe(false);
    expect(problems).toEqual([]);
  }, TIMEOUT_MS);

  test('fix and finish: a rejected row is edited on the batch page, with the keyboard, and Resume completes the batch without a duplicate', async () => {
    const { page, url, stack, problems } = await open({ UPSTREAM_MAX_ATTEMPTS: '1' });
    stack.sim.inject('create', { kind: 'pass' });
    stack.sim.inject('create', { kind: 'status', status: 422, body: { detail: [{ loc: ['body', 'address'], msg: 'Address not recognised' }] } });
    const report = await uploadViaApi(url, THREE_ROWS, 'clinic intake.csv');
    expect(report).toMatchObject({ status: 'failed', failed_hospitals: 1 });
    await page.goto(`${url}/#/batches/${report.batch_id}`);
    await page.getByRole('heading', { level: 1, name: 'clinic intake.csv' }).waitFor();

    // Only the rejected row can be edited; the keyboard opens its form, with focus in it.
    expect(await page.getByRole('button', { name: /^Edit row/ }).count()).toBe(1);
    const edit = page.getByRole('button', { name: 'Edit row 2 (Clinic)' });
    await edit.focus();
    await page.keyboard.press('Enter');
    const form = page.getByRole('form', { name: 'Edit row 2' });
    await form.waitFor();
    expect(await page.evaluate('document.activeElement.id')).toBe('edit-2-name');
    // Escape closes it and gives focus back to the button.
    await page.keyboard.press('Escape');
    await form.waitFor({ state: 'detached' });
    expect(await page.evaluate('document.activeElement.getAttribute("aria-label")')).toBe('Edit row 2 (Clinic)');
    await page.keyboard.press('Enter');
    await form.waitFor();

    // A blank name is refused by the service, with the upload's words, and nothing changes.
    await page.keyboard.press('Control+A');
    await page.keyboard.press('Delete');
    await page.keyboard.press('Enter');
    await form.getByRole('alert').waitFor();
    expect(await form.getByRole('alert').textContent()).toContain('Row 2: name is required');
    expect(await page.evaluate('document.activeElement.id')).toBe('edit-2-name');
    expect(stack.sim.requests.filter((r) => r.route === 'create')).toHaveLength(3);

    await page.keyboard.type('Clinic of Leith');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Control+A');
    await page.keyboard.type('12 Harbour Road');
    await page.setViewportSize(PHONE);
    await expectNoSidewaysScroll(page);
    await shot(page, 'row-editor-phone');
    await page.setViewportSize(DESKTOP);
    await page.keyboard.press('Enter');

    await page.locator('.feedback .box-success').waitFor();
    expect(await page.locator('.feedback .box-title').textContent()).toBe('Row 2 saved.');
    expect(await rowStatuses(page, 'table.rows-table')).toEqual(['created', 'pending', 'created']);
    expect(await page.locator('tr[data-row="2"] td').allTextContents()).toEqual(expect.arrayContaining(['Clinic of Leith', '12 Harbour Road']));
    expect(await page.getByRole('button', { name: /^Edit row/ }).count()).toBe(0);

    await page.getByRole('button', { name: 'Resume' }).click();

    await page.locator('.batch-status .badge[data-status=completed]').waitFor();
    expect(await rowStatuses(page, 'table.rows-table')).toEqual(Array(3).fill('created_and_activated'));
    const upstream = stack.sim.hospitals().filter((h) => h.creation_batch_id === report.batch_id);
    expect(upstream.map((h) => h.name).sort()).toEqual(['Clinic of Leith', 'General Hospital', 'Mercy']);
    expect(upstream.every((h) => h.active)).toBe(true);
    await shot(page, 'row-edited-resumed');
    expect(problems.filter((text) => !/status of 400/.test(text))).toEqual([]);
  }, TIMEOUT_MS);

  test('on a touch screen: no "drop it here", and the file can still be chosen and sent with the keyboard', async () => {
    const { page, url, problems } = await open({}, { viewport: PHONE, isMobile: true, hasTouch: true });
    await page.goto(`${url}/`);

    expect(await page.locator('.dropzone-title').isVisible()).toBe(true);
    expect(await page.locator('.dropzone-sub').isVisible()).toBe(false);
    expect(await page.locator('main').innerText()).not.toContain('drop it here');
    expect(await page.locator('#csv-file').ariaSnapshot()).toMatch(/"Choose a CSV or Excel file"/);
    await shot(page, 'upload-touch');

    for (let presses = 0; (await page.evaluate('document.activeElement && document.activeElement.id')) !== 'csv-file'; presses += 1) {
      expect(presses).toBeLessThan(8);
      await page.keyboard.press('Tab');
    }
    expect(await page.evaluate("getComputedStyle(document.querySelector('.dropzone-label')).outlineStyle")).toBe('solid');
    await page.locator('#csv-file').setInputFiles(SAMPLE);
    await page.getByRole('heading', { name: 'Check sample_hospitals.csv' }).waitFor();
    await expectTablesFit(page);
    await tabTo(page, 'Create 5 hospitals');
    await page.keyboard.press('Enter');
    await page.getByTestId('summary').waitFor();
    await expectNoSidewaysScroll(page);
    await expectTablesFit(page);
    await shot(page, 'upload-done-touch');
    expect(problems).toEqual([]);
  }, TIMEOUT_MS);

  test('on a wide screen with a mouse, the drop zone still offers dropping', async () => {
    const { page, url, problems } = await open({}, { viewport: WIDE });
    await page.goto(`${url}/`);
    expect(await page.locator('.dropzone-sub').isVisible()).toBe(true);
    expect(await page.getByLabel('Choose a CSV or Excel file or drop it here').getAttribute('id')).toBe('csv-file');
    expect(problems).toEqual([]);
  }, TIMEOUT_MS);
});

describe('a file bigger than one directory batch (MAX_ROWS above 20)', () => {
  test('45 rows through the page: three directory batches (rows 1–20, 21–40, 41–45) filled in live, all activated at the end, on the upload screen and the batch page', async () => {
    // A short rate window: the service's own pacing lets 30 creates through per window.
    const { page, url, stack, problems, dialogs } = await open({ MAX_ROWS: '45', UPSTREAM_RATE_WINDOW_MS: '500' });
    const csv = `name,address\n${Array.from({ length: 45 }, (_, i) => `Clinic ${i + 1},${i + 1} Road`).join('\n')}\n`;
    // Every "created" count a directory batch's row shows, to check they were filled in as rows landed.
    await page.addInitScript(`
      window.__created = [];
      new MutationObserver((records) => {
        for (const record of records) {
          const cell = record.target.closest && record.target.closest('[data-count=created]');
          if (cell) window.__created.push(cell.closest('tr').rowIndex + ':' + cell.textContent);
        }
      }).observe(document, { subtree: true, childList: true });
    `);
    await page.goto(`${url}/`);

    await page.locator('#csv-file').setInputFiles({ name: 'forty-five.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
    await page.getByRole('button', { name: 'Create 45 hospitals' }).click();

    const table = page.getByRole('table', { name: 'Directory batches of forty-five.csv' });
    await table.waitFor();
    await page.getByTestId('summary').waitFor();
    expect(await page.locator('.summary-title').textContent()).toBe('Batch completed: 45 hospitals created and activated.');
    const cells = (selector: string) => table.locator(`tbody ${selector}`).allTextContents();
    expect(await table.locator('thead th').allTextContents()).toEqual(['Directory batch', 'Rows', 'Created', 'Failed', 'Waiting', 'Activated', 'ID']);
    expect(await cells('th')).toEqual(['1 of 3', '2 of 3', '3 of 3']);
    expect(await cells('[data-col=rows]')).toEqual(['rows 1–20', 'rows 21–40', 'rows 41–45']);
    expect(await cells('[data-count=created]')).toEqual(['20', '20', '5']);
    expect(await cells('[data-count=failed]')).toEqual(['0', '0', '0']);
    expect(await cells('[data-count=waiting]')).toEqual(['0', '0', '0']);
    expect(await cells('[data-col=activated]')).toEqual(['Yes', 'Yes', 'Yes']);
    // The second directory batch's count went up row by row from the event stream, not at once.
    const created = (await page.evaluate('window.__created')) as string[];
    const second = created.filter((entry) => entry.startsWith('2:')).map((entry) => Number(entry.slice(2)));
    expect(second.some((n) => n > 0 && n < 20)).toBe(true);
    expect(second).toEqual([...second].sort((a, b) => a - b));

    // The ids are the report's, in file order; the first is the upload's batch_id; the directory agrees.
    const ids = await table.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => (tr as { dataset: { directoryBatch?: string } }).dataset.directoryBatch));
    const batchId = (await page.getByRole('link', { name: 'Open the batch page' }).getAttribute('href'))!.replace('#/batches/', '');
    const report = (await (await fetch(`${url}/batches/${batchId}`)).json()) as { directory_batches: { id: string }[] };
    expect(ids).toEqual(report.directory_batches.map((batch) => batch.id));
    expect(ids[0]).toBe(batchId);
    const inDirectory = stack.sim.hospitals();
    expect(ids.map((id) => inDirectory.filter((h) => h.creation_batch_id === id && h.active).length)).toEqual([20, 20, 5]);
    await shot(page, 'upload-split-done');

    await page.getByRole('link', { name: 'Open the batch page' }).click();
    await page.getByRole('heading', { level: 1, name: 'forty-five.csv' }).waitFor();
    await table.waitFor();
    expect(await cells('[data-col=activated]')).toEqual(['Yes', 'Yes', 'Yes']);
    expect(await cells('[data-count=created]')).toEqual(['20', '20', '5']);
    await shot(page, 'batch-split');

    await page.setViewportSize(PHONE);
    await expectNoSidewaysScroll(page);
    await expectTablesFit(page);
    await shot(page, 'batch-split-phone');
    expect(problems).toEqual([]);
    expect(dialogs).toEqual([]);
  }, TIMEOUT_MS);
});
