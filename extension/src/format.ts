/**
 * Pure helpers for the views: text formatting and chart geometry. No DOM, no server.
 */

export function shortId(id: string): string {
  return id.slice(0, 8);
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '';
  }
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 120) {
    return `${seconds.toFixed(1)} s`;
  }
  if (seconds < 7200) {
    return `${(seconds / 60).toFixed(1)} min`;
  }
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !isFinite(bytes)) {
    return '';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/**
 * Compact age of an epoch-seconds time relative to `now` (epoch ms), at most 4 characters so it fits a
 * narrow column: "40s", "3m", "5h", "2d", "3w", "4mo", "2y" (the full date is on hover).
 */
export function formatAge(epochSeconds: number, now: number = Date.now()): string {
  const seconds = Math.max(0, now / 1000 - epochSeconds);
  for (const [below, unit, suffix] of AGE_UNITS) {
    if (seconds < below) {
      return `${Math.floor(seconds / unit)}${suffix}`;
    }
  }
  return `${Math.floor(seconds / YEAR)}y`;
}

const DAY = 86400;
const YEAR = 365 * DAY;
/** [below this many seconds, count in units of, suffix] */
const AGE_UNITS: [number, number, string][] = [
  [60, 1, 's'],
  [3600, 60, 'm'],
  [DAY, 3600, 'h'],
  [7 * DAY, DAY, 'd'],
  [30 * DAY, 7 * DAY, 'w'],
  [YEAR, 30 * DAY, 'mo']
];

/** A duration in at most 5 characters for a table cell: "340ms", "34s", "5.2m", "2.1h", "3.0d". */
export function formatShortDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '';
  }
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)}ms`;
  }
  if (seconds < 60) {
    return `${Math.round(seconds)}s`;
  }
  if (seconds < 3600) {
    return `${(seconds / 60).toFixed(seconds < 600 ? 1 : 0)}m`;
  }
  if (seconds < 86400) {
    return `${(seconds / 3600).toFixed(1)}h`;
  }
  return `${(seconds / 86400).toFixed(1)}d`;
}

/** "1 run", "2 runs", "100,000 runs". */
export function plural(count: number, noun: string): string {
  return `${count.toLocaleString()} ${noun}${count === 1 ? '' : 's'}`;
}

/** A number for a narrow cell: 4 significant digits, exponent for the very large or small. */
export function formatNumber(value: number): string {
  if (!isFinite(value)) {
    return String(value);
  }
  if (value !== 0 && (Math.abs(value) >= 1e5 || Math.abs(value) < 1e-3)) {
    return value.toExponential(2);
  }
  return Number(value.toPrecision(4)).toString();
}

/** Metric names where a lower value is better (losses, errors, times); the rest are higher-is-better. */
const LOWER_IS_BETTER = /(loss|err|error|mse|mae|rmse|perplexity|ppl|nll|wer|cer|time|latency|duration|cost|memory|bpd)/i;

export function lowerIsBetter(metric: string): boolean {
  return LOWER_IS_BETTER.test(metric);
}

/** The index of the best finite number (lowest or highest), or -1 when there is none. */
export function bestIndex(values: unknown[], lower: boolean): number {
  let best = -1;
  values.forEach((v, i) => {
    if (typeof v === 'number' && isFinite(v)) {
      const current = values[best] as number;
      if (best < 0 || (lower ? v < current : v > current)) {
        best = i;
      }
    }
  });
  return best;
}

/**
 * Exponential moving average as TensorBoard smooths curves: `weight` 0 keeps the data, 0.99 flattens it;
 * debiased so the curve starts at the first value; missing values stay missing and do not reset it.
 */
export function ema(values: (number | null)[], weight: number): (number | null)[] {
  if (weight <= 0) {
    return values.slice();
  }
  let last = 0;
  let count = 0;
  return values.map(v => {
    if (typeof v !== 'number' || !isFinite(v)) {
      return null;
    }
    last = last * weight + (1 - weight) * v;
    count += 1;
    return last / (1 - Math.pow(weight, count));
  });
}

export function formatTime(epochSeconds: number | null | undefined): string {
  if (!epochSeconds) {
    return '';
  }
  return new Date(epochSeconds * 1000).toLocaleString();
}

/** Any recorded value as text: strings as they are, numbers compactly, the rest as JSON. */
export function formatValue(value: unknown): string {
  if (value === undefined) {
    return '—';
  }
  if (typeof value === 'string') {
    return value;
  }
  if (typeof value === 'number') {
    return Number.isInteger(value) ? String(value) : Number(value.toPrecision(6)).toString();
  }
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

/** The elapsed time of a run: its duration when done, the time since it started when running. */
export function elapsed(run: { status: string; started_at: number; duration_s: number | null }, now: number): number | null {
  if (run.status === 'running') {
    return Math.max(0, now / 1000 - run.started_at);
  }
  return run.duration_s;
}

export type DiffLineKind = 'add' | 'del' | 'hunk' | 'meta' | 'context';

export function diffLineKind(line: string): DiffLineKind {
  if (line.startsWith('+++') || line.startsWith('---')) {
    return 'meta';
  }
  if (line.startsWith('@@')) {
    return 'hunk';
  }
  if (line.startsWith('+')) {
    return 'add';
  }
  if (line.startsWith('-')) {
    return 'del';
  }
  return 'context';
}

export interface IExtent {
  min: number;
  max: number;
}

/** Min and max of the finite numbers, widened when flat so a line still has height. */
export function extent(values: (number | null | undefined)[]): IExtent | null {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (typeof v === 'number' && isFinite(v)) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
  }
  if (min === Infinity) {
    return null;
  }
  if (min === max) {
    const pad = Math.abs(min) * 0.05 || 1;
    return { min: min - pad, max: max + pad };
  }
  return { min, max };
}

export interface IBox {
  width: number;
  height: number;
  x: IExtent;
  y: IExtent;
}

/**
 * An SVG path through the points (x, y) scaled into the box; a missing value (null, NaN) breaks the
 * line rather than drawing a false segment to zero.
 */
export function linePath(xs: (number | null)[], ys: (number | null)[], box: IBox): string {
  const sx = (x: number) => ((x - box.x.min) / (box.x.max - box.x.min)) * box.width;
  const sy = (y: number) => box.height - ((y - box.y.min) / (box.y.max - box.y.min)) * box.height;
  let path = '';
  let pen = false;
  for (let i = 0; i < ys.length; i++) {
    const x = xs[i];
    const y = ys[i];
    if (typeof x !== 'number' || typeof y !== 'number' || !isFinite(x) || !isFinite(y)) {
      pen = false;
      continue;
    }
    path += `${pen ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
    pen = true;
  }
  return path;
}

/** The x values of a metric series: its steps, or positions where steps were not recorded. */
export function seriesXs(steps: (number | null)[]): number[] {
  return steps.map((s, i) => (typeof s === 'number' ? s : i));
}

export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

export function colorAt(index: number): string {
  return PALETTE[index % PALETTE.length];
}
