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

/** Compact age of an epoch-seconds time relative to `now` (epoch ms): "40 s", "3 min", "5 h", a date. */
export function formatAge(epochSeconds: number, now: number = Date.now()): string {
  const seconds = Math.max(0, now / 1000 - epochSeconds);
  if (seconds < 60) {
    return `${Math.floor(seconds)} s`;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min`;
  }
  if (seconds < 86400) {
    return `${Math.floor(seconds / 3600)} h`;
  }
  return new Date(epochSeconds * 1000).toISOString().slice(0, 10);
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
