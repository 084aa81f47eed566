/**
 * The Runs sidebar as an analysis tool, in a real JupyterLab over the store tests/test_browser.py made
 * (100,000 bulk runs; a 4-run sweep of sweep.ipynb by `pykernel-ext run`, each with a sweep-train cell run;
 * the tracked runs cmp-a, cmp-b, manage-me, delete-me; status.ipynb with a live %%track cell and a
 * --no-wait %%remote cell): sweeps and nesting, columns and server sorting, the search syntax and the
 * filters, the comparison's charts, run management, and the in-cell status.
 */
import { expect, Page, test } from '@playwright/test';

import {
  apiTotal,
  columnTexts,
  inside,
  isSorted,
  LAB_URL,
  numbers,
  openLab,
  openRunsPanel,
  runAllCells,
  search,
  SHOTS,
  TOKEN
} from './helpers';

test.describe.configure({ mode: 'serial' });

let page: Page;
const dialogs: string[] = [];

test.beforeAll(async ({ browser }) => {
  page = await browser.newPage();
  page.on('dialog', async dialog => {
    dialogs.push(dialog.message()); // no alert(), confirm() or prompt(): JupyterLab dialogs only
    await dialog.dismiss();
  });
  await openLab(page);
  await openRunsPanel(page);
  await expect(page.locator('.pk-row:not(.pk-row-loading)').first()).toBeVisible();
});

test.afterAll(async () => {
  expect(dialogs).toEqual([]);
  await page.close();
});

const groupRow = () => page.locator('.pk-row-group', { hasText: 'sweep' });

test('a sweep folds into one row, its runs and their cells expand under it', async () => {
  await search(page, '');
  await expect(groupRow()).toHaveCount(1);
  await expect(groupRow()).toContainText('×4');
  await expect(page.locator('.pk-row[data-depth="1"]')).toHaveCount(0);
  await groupRow().locator('.pk-expand').click();
  const members = page.locator('.pk-row[data-depth="1"]');
  await expect(members).toHaveCount(4);
  await expect(members.first().locator('.pk-kind')).toHaveText('nb');
  await members.first().locator('.pk-expand').click();
  const cell = page.locator('.pk-row[data-depth="2"]');
  await expect(cell).toHaveCount(1);
  await expect(cell).toContainText('sweep-train');
  await expect(cell.locator('.pk-kind')).toHaveText('cell');
  // At the sidebar's default width every visible kind badge is inside the panel, and the full name is on hover.
  const panel = page.locator('.pk-runs');
  const badges = page.locator('.pk-row:not(.pk-row-loading) .pk-kind');
  for (let i = 0; i < 8; i++) {
    expect(await inside(badges.nth(i), panel)).toBe(true);
  }
  await expect(page.locator('.pk-row', { hasText: 'cmp-a' })).toHaveAttribute('title', /^cmp-a\n/);
  await expect(page.locator('.pk-count')).toHaveText(/^1\d\d,\d{3} runs$/);
  await page.screenshot({ path: `${SHOTS}/sidebar-tree.png` });
  await groupRow().locator('.pk-expand').click();
  await expect(page.locator('.pk-row[data-depth="1"]')).toHaveCount(0);
});

test('columns chosen in the picker sort on the server, runs without a value last', async () => {
  await page.locator('.pk-columns-button').click();
  const picker = page.locator('.pk-column-picker');
  await expect(picker.locator('.pk-picker-item', { hasText: 'lr' }).first()).toBeVisible();
  for (const column of ['param:lr', 'metric:accuracy:max']) {
    const box = picker.locator(`[data-column="${column}"]`);
    const input = (await box.evaluate(el => el.tagName)) === 'INPUT' ? box : box.locator('input');
    if (!(await input.isChecked())) {
      await input.check();
    }
  }
  await picker.locator('button', { hasText: 'Done' }).click();
  const accuracyHead = page.locator('.pk-table-head [data-column="metric:accuracy:max"]');
  await expect(accuracyHead).toBeVisible();
  await accuracyHead.click();
  await expect(accuracyHead).toContainText('▾');
  await expect(page.locator('.pk-runs')).toHaveAttribute('data-loading', 'false');
  await expect.poll(async () => numbers(await columnTexts(page, 'metric:accuracy:max')).length).toBeGreaterThan(10);
  const accuracies = numbers(await columnTexts(page, 'metric:accuracy:max'));
  expect(isSorted(accuracies, true)).toBe(true);
  expect(accuracies[0]).toBeGreaterThan(0.99); // the best of 100,000 random accuracies, found by the server
  const lrHead = page.locator('.pk-table-head [data-column="param:lr"]');
  await lrHead.click();
  await lrHead.click(); // the second click sorts ascending
  await expect(lrHead).toContainText('▴');
  await expect.poll(async () => numbers(await columnTexts(page, 'param:lr'))[0]).toBe(0.001);
  expect(isSorted(numbers(await columnTexts(page, 'param:lr')), false)).toBe(true);
  await page.screenshot({ path: `${SHOTS}/sidebar-columns.png` });
  await page.locator('.pk-table-head .pk-col-started').click(); // back to newest first
  await expect(page.locator('.pk-table-head .pk-col-started')).toContainText('▾');
});

test('the search box takes the query syntax and the filters narrow the list', async () => {
  const lr = await search(page, 'lr=0.1');
  expect(lr).toBeGreaterThan(20_000);
  for (const text of await columnTexts(page, 'param:lr')) {
    expect(text).toBe('0.1');
  }
  expect(await search(page, 'lr>0.05 model=vit-b16')).toBe(await apiTotal(page, { q: 'lr>0.05 model=vit-b16' }));
  await search(page, 'status:failed');
  const statuses = page.locator('.pk-row:not(.pk-row-loading) .pk-col-status .pk-status');
  await expect(statuses.first()).toBeVisible();
  for (const cls of await statuses.evaluateAll(els => els.map(e => e.className))) {
    expect(cls).toContain('pk-status-failed');
  }
  expect(await search(page, 'tag:example=spirals')).toBe(4); // the sweep's cells (tags live on them)
  await expect(page.locator('.pk-row .pk-kind', { hasText: 'cell' })).toHaveCount(4);
  expect(await search(page, 'kind:notebook name:sweep')).toBe(4);
  expect(await search(page, 'sweep-train accuracy>=0.9')).toBeGreaterThan(0);
  await page.locator('.pk-search').fill('lr>high');
  await expect(page.locator('.pk-error')).toContainText('compares numbers');
  await search(page, '');
  // The filter row: status and kind selects.
  await page.locator('select[aria-label="kind"]').selectOption('script');
  await expect(page.locator('.pk-count')).toHaveText(
    `${(await apiTotal(page, { kind: 'script' })).toLocaleString('en-US')} runs`
  );
  await page.locator('select[aria-label="status"]').selectOption('ok');
  await expect(page.locator('.pk-row', { hasText: 'cmp-a' })).toBeVisible();
  for (const kind of await page.locator('.pk-row:not(.pk-row-loading) .pk-kind').allTextContents()) {
    expect(kind).toBe('script');
  }
  await page.locator('select[aria-label="kind"]').selectOption('');
  await page.locator('select[aria-label="status"]').selectOption('');
  await search(page, '');
});

test('a sweep compares through its cells: parallel coordinates, curves, bars, the best marked', async () => {
  // Selecting a sweep fetches its runs first, so its box turns checked once they are selected.
  await groupRow().locator('input[type=checkbox]').click();
  await expect(groupRow().locator('input[type=checkbox]')).toBeChecked();
  await expect(page.locator('.pk-compare-button')).toHaveText('Compare (4)');
  await page.locator('.pk-compare-button').click();
  const compare = page.locator('.pk-compare[data-runs="4"]');
  await expect(compare.locator('.pk-parallel canvas')).toBeVisible();
  await expect(compare.locator('.pk-parallel')).toHaveAttribute('data-axes', '3'); // hidden, lr, the metric
  await expect(compare.locator('.pk-curves[data-metric="loss"]')).toHaveAttribute('data-lines', '4');
  await expect(compare.locator('.pk-bars[data-metric="accuracy"] canvas')).toBeVisible(); // one value per run
  await expect(compare.locator('.pk-compare-metrics .pk-best')).toHaveCount(2);
  await expect(compare.locator('.pk-compare-data tr', { hasText: 'samples' })).toHaveCount(1); // the cells' data hashes
  await expect(compare.locator('.pk-compare-params tr', { hasText: 'epochs' })).toHaveCount(1);
  await compare.locator('.pk-diff-only').check();
  await expect(compare.locator('.pk-compare-params tr', { hasText: 'epochs' })).toHaveCount(0);
  await expect(compare.locator('.pk-compare-params tr', { hasText: 'lr' })).toHaveCount(1);
  await compare.locator('.pk-smoothing').fill('0.8');
  await expect(compare.locator('.pk-smoothing-value').first()).toHaveText('0.80');
  await compare.locator('.pk-log-y').first().check();
  await compare.locator('.pk-x-axis').first().selectOption('time');
  await page.screenshot({ path: `${SHOTS}/compare-sweep.png` });
  // The names column stays in view when the table scrolls sideways (a narrow box forces the scroll).
  const scroller = compare.locator('.pk-compare-params').locator('xpath=..');
  await scroller.evaluate(el => ((el as HTMLElement).style.maxWidth = '260px'));
  const name = compare.locator('.pk-compare-params tbody th').first();
  const before = (await name.boundingBox())!.x;
  await scroller.evaluate(el => (el.scrollLeft = el.scrollWidth));
  await expect.poll(async () => scroller.evaluate(el => el.scrollLeft)).toBeGreaterThan(100);
  expect(Math.abs((await name.boundingBox())!.x - before)).toBeLessThan(1);
  await expect(name).toHaveText('hidden');
  await page.locator('.pk-runs .pk-button', { hasText: 'Clear' }).click();
});

test('parallel coordinates draw 1,000 runs and an axis brush narrows them', async () => {
  await page.locator('.pk-compare-all').click();
  const compare = page.locator('.pk-compare[data-runs="1000"]');
  await expect(compare.locator('.pk-parallel[data-runs="1000"] canvas')).toBeVisible({ timeout: 30_000 });
  await expect(page.locator('.pk-main[data-chart-rendered]').last()).toBeVisible();
  const canvas = compare.locator('.pk-parallel canvas').first();
  const box = (await canvas.boundingBox())!;
  // The first axis stands at the chart's left padding (48 px); brush its upper part.
  const x = box.x + 48;
  await page.mouse.move(x, box.y + 60);
  await page.mouse.down();
  await page.mouse.move(x, box.y + 120, { steps: 5 });
  await page.mouse.move(x, box.y + 160, { steps: 5 });
  await page.mouse.up();
  const brushed = compare.locator('.pk-brushed-count');
  await expect(brushed).toContainText('of 1,000 runs');
  const kept = Number((await brushed.textContent())!.split(' ')[0]);
  expect(kept).toBeGreaterThan(0);
  expect(kept).toBeLessThan(1000);
  await page.screenshot({ path: `${SHOTS}/compare-1000.png` });
});

test('a run detail shows its cells, resources and executed notebook; rename, note, tags, star', async () => {
  await groupRow().locator('.pk-expand').click();
  await page.locator('.pk-row[data-depth="1"]').first().click();
  const detail = page.locator('.pk-detail');
  await expect(detail.locator('.pk-children')).toContainText('sweep-train');
  await expect(detail.locator('.pk-children')).toContainText('accuracy');
  await expect(detail.locator('.pk-hardware')).toContainText('CPU');
  await detail.locator('.pk-open-executed').click();
  await expect(page.locator('#jp-main-dock-panel .lm-TabBar-tab', { hasText: /^sweep-.*\.ipynb/ })).toBeVisible();
  await groupRow().locator('.pk-expand').click();

  await search(page, 'manage-me');
  await page.locator('.pk-row', { hasText: 'manage-me' }).click();
  await expect(detail).toContainText('manage-me');
  await detail.locator('.pk-rename-button').click();
  await detail.locator('.pk-rename-input').fill('managed <i>run</i>');
  await detail.locator('.pk-rename button[type=submit]').click();
  await expect(detail.locator('.pk-detail-title')).toContainText('managed <i>run</i>');
  await detail.locator('.pk-note-edit').click();
  await detail.locator('.pk-note-input').fill('lr too high?\nretry with 0.1');
  await detail.locator('.pk-note-save').click();
  await expect(detail.locator('.pk-note-text')).toHaveText('lr too high?\nretry with 0.1');
  await detail.locator('.pk-tag-input').fill('stage=final');
  await detail.locator('.pk-tag-add button').click();
  await expect(detail.locator('.pk-tag')).toContainText('stage=final');
  await detail.locator('.pk-star-button').click();
  await expect(detail.locator('.pk-star-button')).toHaveText('★ Starred');
  await search(page, 'managed');
  const row = page.locator('.pk-row', { hasText: 'managed <i>run</i>' });
  await expect(row.locator('.pk-star-mark')).toBeVisible(); // the sidebar shows the change live
  await expect(page.locator('.pk-runs i')).toHaveCount(0); // a name is text, never markup
  expect(await search(page, 'tag:stage=final is:starred')).toBe(1);
  await page.screenshot({ path: `${SHOTS}/run-manage.png` });
});

test('archive hides a run from the default views and delete removes it after confirmation', async () => {
  const detail = page.locator('.pk-detail');
  await detail.locator('.pk-archive-button').click();
  await expect(detail.locator('.pk-archived-badge')).toBeVisible();
  expect(await search(page, 'managed')).toBe(0);
  expect(await search(page, 'is:archived managed')).toBe(1);
  await detail.locator('.pk-archive-button').click(); // unarchive
  expect(await search(page, 'managed')).toBe(1);

  await search(page, 'delete-me');
  await page.locator('.pk-row', { hasText: 'delete-me' }).click();
  await expect(detail.locator('.pk-detail-title')).toContainText('delete-me');
  const id = await detail.getAttribute('data-run-id');
  expect(id).toMatch(/^[0-9a-f]{32}$/);
  await detail.locator('.pk-delete-button').click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('Delete 1 run?');
  await dialog.locator('.jp-mod-reject').click(); // cancel: nothing happens
  await expect(detail).toBeVisible();
  await detail.locator('.pk-delete-button').click();
  await dialog.locator('.jp-mod-warn').click();
  await expect(page.locator('.pk-detail')).toHaveCount(0);
  expect(await search(page, 'delete-me')).toBe(0);
  const gone = await page.request.get(`${LAB_URL}pykernel-ext/api/v1/runs/${id}?token=${TOKEN}`);
  expect(gone.status()).toBe(404);
  await search(page, '');
});

test('the in-cell status shows the latest metrics and links to its run; a reopened notebook shows how runs ended', async () => {
  await page.locator('.lm-MenuBar-itemLabel', { hasText: /^File$/ }).click();
  await page.locator('.lm-Menu-itemLabel', { hasText: /^Open from Path…$/ }).click();
  await page.locator('.jp-Dialog input').fill('status.ipynb');
  await page.locator('.jp-Dialog .jp-mod-accept').click();
  await page.locator('.jp-NotebookPanel:visible').waitFor({ timeout: 60_000 });
  await runAllCells(page, '[1]'); // the tracked cell runs for 6 s: its live status is on screen meanwhile
  const live = page.locator('.pykernel-ext-live-status');
  await expect(live).toContainText(/loss 0\.\d+/, { timeout: 60_000 });
  const link = live.locator('[data-pykernel-ext-run]');
  const runId = await link.getAttribute('data-pykernel-ext-run');
  await link.click();
  await expect(page.locator(`.pk-detail[data-run-id="${runId}"]`)).toBeVisible();
  await page.locator('#jp-main-dock-panel .lm-TabBar-tab', { hasText: 'status.ipynb' }).click();
  const outputs = page.locator('.jp-NotebookPanel:visible .pk-run-output');
  await expect(outputs.nth(0)).toHaveAttribute('data-status', 'ok', { timeout: 90_000 });
  await expect(outputs.nth(0)).toContainText('loss 0.1');
  await expect(outputs.nth(1)).toHaveAttribute('data-status', 'ok', { timeout: 90_000 });
  await expect(outputs.nth(1)).toContainText("remote 'background-job': ok");
  await page.screenshot({ path: `${SHOTS}/cell-status.png` });
  await page.keyboard.press('Control+s');
  await expect(page.locator('#jp-main-dock-panel .lm-TabBar-tab.jp-mod-dirty', { hasText: 'status.ipynb' })).toHaveCount(0);
  // Shut the kernel down (no widget state survives), close the notebook, open it again.
  const sessions = await (await page.request.get(`${LAB_URL}api/sessions?token=${TOKEN}`)).json();
  for (const session of sessions.filter((s: { path: string }) => s.path.endsWith('status.ipynb'))) {
    expect((await page.request.delete(`${LAB_URL}api/sessions/${session.id}?token=${TOKEN}`)).ok()).toBe(true);
  }
  const tab = page.locator('#jp-main-dock-panel .lm-TabBar-tab', { hasText: 'status.ipynb' });
  await tab.locator('.lm-TabBar-tabCloseIcon').click();
  await expect(tab).toHaveCount(0);
  await page.locator('.lm-MenuBar-itemLabel', { hasText: /^File$/ }).click();
  await page.locator('.lm-Menu-itemLabel', { hasText: /^Open from Path…$/ }).click();
  await page.locator('.jp-Dialog input').fill('status.ipynb');
  await page.locator('.jp-Dialog .jp-mod-accept').click();
  const reopened = page.locator('.jp-NotebookPanel:visible .pk-run-output');
  await expect(reopened).toHaveCount(2);
  await expect(reopened.nth(0)).toHaveAttribute('data-status', 'ok');
  await expect(reopened.nth(1)).toContainText("remote 'background-job': ok");
  await expect(page.locator('.jp-NotebookPanel:visible .jp-OutputArea-output', { hasText: 'background done' })).toHaveCount(1);
  await expect(page.locator('.jp-NotebookPanel:visible', { hasText: 'Error displaying widget' })).toHaveCount(0);
});
