/**
 * The Runs sidebar in a real JupyterLab: a %%track cell shows up live, HTML in a parameter stays text,
 * two runs compare, the GPU view answers, and a run opens its notebook at its cell.
 *
 * tests/test_browser.py starts the server with demo.ipynb (a %load_ext cell, a cell defining `name` and
 * `lr`, a %%track cell) and two pre-recorded runs named cmp-a and cmp-b.
 */
import { expect, Page, test } from '@playwright/test';

import { openLab, openRunsPanel as openPanel, runAllCells as runAll, search as searchFor, shownCount, SHOTS } from './helpers';

const MARKUP = '<img src=x onerror=alert(1)><b>bold</b>';

test.describe.configure({ mode: 'serial' });

let page: Page;
const dialogs: string[] = [];

test.beforeAll(async ({ browser }) => {
  page = await browser.newPage();
  page.on('dialog', async dialog => {
    dialogs.push(dialog.message()); // an alert() from injected markup would land here
    await dialog.dismiss();
  });
  await openLab(page, 'lab/tree/demo.ipynb');
  await page.locator('.jp-NotebookPanel').first().waitFor({ timeout: 90_000 });
  await expect(page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').first()).toBeVisible({
    timeout: 90_000
  });
});

test.afterAll(async () => {
  expect(dialogs).toEqual([]);
  await page.close();
});

async function openRunsPanel(): Promise<void> {
  await openPanel(page);
}

async function runAllCells(): Promise<void> {
  await runAll(page, '[3]');
}

async function search(text: string): Promise<void> {
  await searchFor(page, text);
}

test('a %%track cell appears in the Runs panel, live', async () => {
  await openRunsPanel();
  await expect(page.locator('.pk-live-push')).toBeVisible();
  await expect(page.locator('.pk-row', { hasText: 'cmp-a' })).toBeVisible();
  await expect(page.locator('.pk-row', { hasText: 'browser-run' })).toHaveCount(0);
  await runAllCells();
  const row = page.locator('.pk-row', { hasText: 'browser-run' });
  await expect(row).toBeVisible({ timeout: 60_000 }); // pushed by the server, no reload
  await expect(row.locator('.pk-status-ok')).toBeVisible({ timeout: 60_000 });
  await expect(row).toContainText('browser-run <s>struck</s>'); // the name's markup is text
  await expect(page.locator('.pk-runs s, .pk-runs img, .pk-runs b')).toHaveCount(0);
  await page.screenshot({ path: `${SHOTS}/runs-panel.png` });
});

test('a parameter holding HTML markup shows as literal text', async () => {
  await page.locator('.pk-row', { hasText: 'browser-run' }).click();
  const detail = page.locator('.pk-detail');
  await expect(detail).toBeVisible();
  const params = detail.locator('.pk-params');
  await expect(params).toContainText(MARKUP);
  expect(await params.textContent()).toContain(MARKUP);
  await expect(detail.locator('b, img, s')).toHaveCount(0);
  await expect(detail.locator('.pk-log-stdout')).toContainText(MARKUP);
  await expect(detail.locator('.pk-code')).toContainText('score = len(name) * lr');
  await expect(detail.locator('.pk-section', { hasText: 'Environment' })).toContainText('python');
  await page.screenshot({ path: `${SHOTS}/run-detail.png` });
});

test('a run opens its notebook at its cell', async () => {
  await page.locator('#jp-main-dock-panel .lm-TabBar-tab', { hasText: 'demo.ipynb' }).click();
  await page.locator('.jp-NotebookPanel .jp-Cell').first().click(); // move away from the tracked cell
  await expect(page.locator('.jp-NotebookPanel .jp-Cell.jp-mod-active')).toContainText('%load_ext');
  await page.locator('.pk-row', { hasText: 'browser-run' }).click();
  await page.locator('.pk-open-notebook').click();
  const active = page.locator('.jp-NotebookPanel .jp-Cell.jp-mod-active');
  await expect(active).toContainText('%%track', { timeout: 30_000 });
});

test('two runs compare side by side', async () => {
  await search('cmp-');
  await expect(page.locator('.pk-row')).toHaveCount(2);
  for (const name of ['cmp-a', 'cmp-b']) {
    await page.locator('.pk-row', { hasText: name }).locator('input[type=checkbox]').check();
  }
  await page.locator('.pk-compare-button').click();
  const compare = page.locator('.pk-compare');
  await expect(compare.locator('.pk-compare-params tr.pk-diff')).toContainText('lr');
  await expect(compare.locator('.pk-compare-params tr', { hasText: 'batch' })).not.toHaveClass(/pk-diff/);
  await expect(compare.locator('.pk-curves[data-metric="loss"]')).toHaveAttribute('data-lines', '2');
  await expect(compare.locator('.pk-curves[data-metric="loss"] canvas')).toBeVisible();
  await expect(compare.locator('.pk-diff-add').first()).toBeVisible();
  await page.screenshot({ path: `${SHOTS}/compare.png` });
  await search('');
});

test('the GPU view shows every host, and says so when there is no GPU', async () => {
  await page.locator('.pk-runs-header button', { hasText: 'GPUs' }).click();
  const gpus = page.locator('.pk-gpus');
  await expect(gpus.locator('.pk-host').first()).toContainText('This machine');
  const hasGpu = await gpus.locator('.pk-gpu').count();
  if (!hasGpu) {
    await expect(gpus.locator('.pk-no-gpu')).toBeVisible();
  }
  await page.screenshot({ path: `${SHOTS}/gpus.png` });
});

test('the run table stays virtualized over many runs', async () => {
  await search('');
  const body = page.locator('.pk-table-body');
  // The count is read once the reload for the cleared search has answered (`search` waits for the
  // server's total): a read during the debounced reload saw "loading…" or the old count.
  const total = await shownCount(page);
  expect(total).toBeGreaterThan(100_000);
  await body.evaluate(el => (el.scrollTop = el.scrollHeight / 2));
  await expect(page.locator('.pk-row:not(.pk-row-loading)').first()).toBeVisible();
  expect(await page.locator('.pk-row').count()).toBeLessThan(120); // only the rows in view exist
});
