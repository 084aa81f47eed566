/**
 * Shared steps of the browser specs: open JupyterLab with the token, open the Runs panel, run a notebook,
 * read what a table shows. Every wait is on a condition, never a fixed sleep.
 */
import { expect, Locator, Page } from '@playwright/test';

export const TOKEN = process.env.LAB_TOKEN ?? '';
export const SHOTS = process.env.SCREENSHOT_DIR ?? 'test-results';
export const LAB_URL = process.env.LAB_URL ?? '';

/** A fresh page on JupyterLab (`reset`: no workspace from an earlier spec), kernel dialogs accepted. */
export async function openLab(page: Page, path = 'lab'): Promise<void> {
  await page.addLocatorHandler(page.locator('.jp-Dialog', { hasText: 'Select Kernel' }), async () => {
    await page.locator('.jp-Dialog .jp-mod-accept').click();
  });
  await page.goto(`${path}?reset&token=${TOKEN}`);
  await expect(page.locator('li.lm-TabBar-tab[data-id="pykernel-ext-runs"]')).toBeVisible({ timeout: 90_000 });
}

export async function openRunsPanel(page: Page): Promise<void> {
  const tab = page.locator('li.lm-TabBar-tab[data-id="pykernel-ext-runs"]');
  await expect(tab).toBeVisible();
  if (!(await page.locator('.pk-runs').isVisible())) {
    await tab.click();
  }
  await expect(page.locator('.pk-runs')).toBeVisible();
}

/** The count the panel shows, once it shows one (not "loading…"). */
export async function shownCount(page: Page): Promise<number> {
  const count = page.locator('.pk-count');
  await expect(count).toHaveText(/^[\d,]+ runs?$/);
  return Number((await count.textContent())!.replace(/[^0-9]/g, ''));
}

/** Search and wait until the list shows the server's answer for it. */
export async function search(page: Page, text: string): Promise<number> {
  await page.locator('.pk-search').fill(text);
  // The list applies typed text after a pause: wait until it shows this search, then for its answer.
  await expect(page.locator('.pk-runs')).toHaveAttribute('data-q', text.trim());
  const expected = await apiTotal(page, { q: text || undefined, top_level: text ? undefined : 'true', group_sweeps: text ? undefined : 'true' });
  await expect(page.locator('.pk-count')).toHaveText(`${expected.toLocaleString('en-US')} run${expected === 1 ? '' : 's'}`);
  return expected;
}

/** The server's total for a list query (the same API the panel calls). */
export async function apiTotal(page: Page, query: Record<string, string | undefined>): Promise<number> {
  const params = new URLSearchParams({ limit: '1', token: TOKEN });
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) {
      params.set(key, value);
    }
  }
  const response = await page.request.get(`${LAB_URL}pykernel-ext/api/v1/runs?${params}`);
  expect(response.ok()).toBe(true);
  return (await response.json()).total as number;
}

/** The texts of one column in the rows currently rendered (loaded rows only). */
export async function columnTexts(page: Page, column: string): Promise<string[]> {
  return page.locator(`.pk-row:not(.pk-row-loading) .pk-col-value[data-column="${column}"]`).allTextContents();
}

/**
 * Run All once the kernel is really there: the toolbar may read "idle" before the kernel connects, and
 * cells run then are silently dropped, so try again while no cell has even started.
 */
export async function runAllCells(page: Page, lastPrompt: string): Promise<void> {
  await expect(page.locator('.jp-StatusBar-TextItem', { hasText: /\| Idle/ }).first()).toBeVisible({ timeout: 90_000 });
  const first = page.locator('.jp-NotebookPanel:visible .jp-Cell').first().locator('.jp-InputPrompt');
  for (let attempt = 0; attempt < 4; attempt++) {
    await page.locator('.lm-MenuBar-itemLabel', { hasText: /^Run$/ }).click();
    await page.locator('.lm-Menu-itemLabel', { hasText: /^Run All Cells$/ }).click();
    try {
      await expect(first).toHaveText(/\[(\*|\d+)\]/, { timeout: 10_000 });
      break;
    } catch {
      // not started: the kernel was not ready yet
    }
  }
  await expect(page.locator('.jp-NotebookPanel:visible .jp-InputPrompt', { hasText: lastPrompt })).toBeVisible({
    timeout: 90_000
  });
}

/** Numbers in a list of cell texts, in order ('' for a run without a value is skipped). */
export function numbers(texts: string[]): number[] {
  return texts.filter(t => t.trim() !== '').map(Number);
}

export function isSorted(values: number[], descending: boolean): boolean {
  return values.every((v, i) => i === 0 || (descending ? values[i - 1] >= v : values[i - 1] <= v));
}

export async function inside(inner: Locator, outer: Locator): Promise<boolean> {
  const a = await inner.boundingBox();
  const b = await outer.boundingBox();
  return Boolean(a && b && a.x >= b.x - 0.5 && a.x + a.width <= b.x + b.width + 0.5);
}
