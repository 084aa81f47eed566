/**
 * Browser benchmarks of the Runs sidebar over 100,000 runs, in a real JupyterLab and Debian's Chromium:
 *
 * - scrollbar drag: drag the run table's scrollbar thumb end to end (a real mouse drag), then time until
 *   every row on screen shows a run (target: 200 ms); count the page requests the drag caused and how many
 *   were cancelled; time a filter chosen right after the drag against the same filter at rest.
 * - parallel coordinates: "Plot all" on 1,000 runs; time from the runs arriving on screen to the chart's
 *   `finished` event (target: 300 ms), and from the click.
 *
 * Figures go to BENCH_OUTPUT as JSON; bench/bench_browser.py prints them.
 */
import { expect, Page, test } from '@playwright/test';
import * as fs from 'fs';

const TOKEN = process.env.LAB_TOKEN ?? '';
const OUTPUT = process.env.BENCH_OUTPUT ?? 'bench-browser.json';
const results: Record<string, unknown> = {};

test.describe.configure({ mode: 'serial' });
let page: Page;
let runRequests = 0;
let cancelled = 0;

test.beforeAll(async ({ browser }) => {
  page = await browser.newPage();
  page.on('request', r => r.url().includes('/pykernel-ext/api/v1/runs?') && (runRequests += 1));
  page.on('requestfailed', r => r.url().includes('/pykernel-ext/api/v1/runs?') && (cancelled += 1));
  await page.goto(`lab?reset&token=${TOKEN}`);
  const tab = page.locator('li.lm-TabBar-tab[data-id="pykernel-ext-runs"]');
  await expect(tab).toBeVisible({ timeout: 90_000 });
  if (!(await page.locator('.pk-runs').isVisible())) {
    await tab.click();
  }
  await expect(page.locator('.pk-count')).toHaveText(/^1\d\d,\d{3} runs$/);
});

test.afterAll(async () => {
  fs.writeFileSync(OUTPUT, JSON.stringify(results, null, 2));
  await page.close();
});

/** Milliseconds from now until every row inside the table's viewport shows a run (checked every frame). */
function timeToFill(): Promise<number> {
  return page.evaluate(
    () =>
      new Promise<number>(resolve => {
        const start = performance.now();
        const body = document.querySelector('.pk-table-body') as HTMLElement;
        const check = () => {
          const view = body.getBoundingClientRect();
          const rows = [...body.querySelectorAll('.pk-row')].filter(row => {
            const r = row.getBoundingClientRect();
            return r.bottom > view.top + 24 && r.top < view.bottom; // below the sticky header
          });
          const filled = rows.length > 5 && rows.every(row => !row.classList.contains('pk-row-loading'));
          if (filled) {
            resolve(performance.now() - start);
          } else {
            requestAnimationFrame(check);
          }
        };
        check();
      })
  );
}

/** Drag the table's scrollbar thumb from one end of the track to `to` (0 top .. 1 bottom). */
async function dragScrollbar(to: number, steps: number): Promise<void> {
  const body = page.locator('.pk-table-body');
  const box = (await body.boundingBox())!;
  const geometry = await body.evaluate(el => ({
    scrollbar: el.offsetWidth - el.clientWidth,
    fraction: el.scrollTop / (el.scrollHeight - el.clientHeight)
  }));
  expect(geometry.scrollbar).toBeGreaterThan(0); // a real scrollbar to drag
  const x = box.x + box.width - geometry.scrollbar / 2;
  const track = { top: box.y + geometry.scrollbar + 4, bottom: box.y + box.height - geometry.scrollbar - 4 };
  const y = (f: number) => track.top + (track.bottom - track.top) * f;
  await page.mouse.move(x, y(geometry.fraction));
  await page.mouse.down();
  for (let i = 1; i <= steps; i++) {
    await page.mouse.move(x, y(geometry.fraction + ((to - geometry.fraction) * i) / steps));
  }
  await page.mouse.up();
}

test('scrollbar drag end to end: rows on screen fill within 200 ms', async () => {
  const drags: Record<string, number>[] = [];
  // Each drag starts with the thumb at the top, where it is found reliably whatever the scrollbar's theme.
  for (const [to, steps, label] of [
    [1, 60, 'top to bottom, 60 mouse moves'],
    [0.5, 60, 'top to middle, 60 mouse moves'],
    [1, 15, 'top to bottom, 15 mouse moves (a flick)']
  ] as [number, number, string][]) {
    await page.locator('.pk-table-body').evaluate(el => (el.scrollTop = 0));
    await expect(page.locator('.pk-row', { hasText: 'train-99999' })).toBeVisible();
    await expect(page.locator('.pk-row-loading')).toHaveCount(0);
    const before = { requests: runRequests, cancelled };
    await dragScrollbar(to, steps);
    const fill = await timeToFill();
    const position = await page.locator('.pk-table-body').evaluate(el => el.scrollTop / (el.scrollHeight - el.clientHeight));
    expect(Math.abs(position - to)).toBeLessThan(0.05); // the drag did move the list there
    drags.push({ fill_ms: fill, page_requests: runRequests - before.requests, cancelled: cancelled - before.cancelled });
    console.log(`drag ${label}: rows filled ${fill.toFixed(0)} ms after release; ` +
                `${runRequests - before.requests} page requests, ${cancelled - before.cancelled} cancelled`);
  }
  results.scrollbar_drags = drags;
  results.scrollbar_fill_ms_max = Math.max(...drags.map(d => d.fill_ms));
});

/** Time from choosing a status filter to its answer on screen. */
async function filterTime(status: string): Promise<number> {
  const count = page.locator('.pk-count');
  const start = await page.evaluate(() => performance.now());
  await page.locator('select[aria-label="status"]').selectOption(status);
  await expect(page.locator('.pk-runs')).toHaveAttribute('data-loading', 'false');
  await expect(count).toHaveText(/runs?$/);
  await timeToFill();
  return (await page.evaluate(() => performance.now())) - start;
}

test('a filter right after a drag answers as fast as at rest', async () => {
  const atRest = await filterTime('failed');
  await filterTime('');
  await page.locator('.pk-table-body').evaluate(el => (el.scrollTop = 0));
  await expect(page.locator('.pk-row-loading')).toHaveCount(0);
  await dragScrollbar(1, 40);
  const afterDrag = await filterTime('failed'); // chosen while the dragged-to pages are still loading
  await filterTime('');
  results.filter_at_rest_ms = atRest;
  results.filter_after_drag_ms = afterDrag;
  console.log(`status filter: ${atRest.toFixed(0)} ms at rest, ${afterDrag.toFixed(0)} ms right after a drag`);
});

test('parallel coordinates of 1,000 runs render within 300 ms', async () => {
  const renders: { render_ms: number; click_ms: number }[] = [];
  for (let i = 0; i < 6; i++) {
    const previous = await page.evaluate(
      () => document.querySelector('.pk-main[data-chart-rendered]')?.getAttribute('data-chart-rendered') ?? null
    );
    const clicked = await page.evaluate(() => performance.now());
    await page.locator('.pk-compare-all').click();
    const compare = page.locator('.pk-compare[data-runs="1000"]');
    await expect(compare.locator('.pk-parallel[data-runs="1000"]')).toBeVisible();
    const host = page.locator('.pk-main', { has: compare });
    await expect.poll(async () => host.getAttribute('data-chart-rendered')).not.toBe(previous);
    const rendered = Number(await host.getAttribute('data-chart-rendered'));
    const arrived = Number(await compare.getAttribute('data-summaries-at'));
    renders.push({ render_ms: rendered - arrived, click_ms: rendered - clicked });
  }
  const warm = renders.slice(1).map(r => r.render_ms).sort((a, b) => a - b);
  results.parallel_renders = renders;
  results.parallel_first_render_ms = renders[0].render_ms; // includes loading ECharts' chunk
  results.parallel_render_ms_median = warm[Math.floor(warm.length / 2)];
  results.parallel_render_ms_max = warm[warm.length - 1];
  results.parallel_click_to_chart_ms_median = renders.slice(1).map(r => r.click_ms).sort((a, b) => a - b)[2];
  console.log(`parallel coordinates, 1,000 runs: render ${JSON.stringify(renders)}`);
});
