/**
 * The in-cell run status as data: the snapshot a cell output records (widgets.py `run_snapshot`), brought
 * up to date with the store's summary, and the line it reads as. Pure functions, unit tested.
 */
import { IRunSummary } from './api';
import { formatDuration, formatNumber, shortId } from './format';

export const RUN_MIME = 'application/vnd.pykernel-ext.run+json';
const MAX_METRICS = 4;
export const FINAL = new Set(['ok', 'failed', 'interrupted']);

/** What the kernel put in the output. */
export interface IRunSnapshot {
  version: number;
  run_id: string;
  name: string | null;
  kind: string | null;
  status: string;
  started_at: number;
  ended_at: number | null;
  duration_s: number | null;
  metrics: Record<string, number | null>;
  error_type: string | null;
  job?: { name: string; status: string; worker: string | null };
}

/** The snapshot brought up to date with the store's summary of the run. */
export function merged(snapshot: IRunSnapshot, summary: IRunSummary | undefined): IRunSnapshot {
  if (!summary) {
    return snapshot;
  }
  const final = FINAL.has(summary.status);
  return {
    ...snapshot,
    name: summary.name ?? snapshot.name,
    status: summary.status,
    ended_at: summary.ended_at ?? snapshot.ended_at,
    duration_s: summary.duration_s ?? snapshot.duration_s,
    metrics: { ...snapshot.metrics, ...summary.metrics },
    error_type: summary.error_type ?? snapshot.error_type,
    job: snapshot.job && final ? { ...snapshot.job, status: summary.status } : snapshot.job
  };
}

/** The status a person reads: a job's queue state until the store knows how it ended. */
export function shownStatus(snapshot: IRunSnapshot): string {
  if (snapshot.job && !FINAL.has(snapshot.status)) {
    return snapshot.job.status;
  }
  return snapshot.status;
}

export function statusLine(snapshot: IRunSnapshot, now: number = Date.now()): string {
  const status = shownStatus(snapshot);
  const seconds = snapshot.duration_s ?? (FINAL.has(status) ? null : Math.max(0, now / 1000 - snapshot.started_at));
  const parts = [
    snapshot.job ? `remote '${snapshot.job.name}': ${status}` : `run ${shortId(snapshot.run_id)} · ${status}`,
    seconds === null ? '' : formatDuration(seconds),
    ...Object.entries(snapshot.metrics)
      .slice(0, MAX_METRICS)
      .map(([k, v]) => `${k} ${typeof v === 'number' ? formatNumber(v) : '—'}`),
    snapshot.job ? `run ${shortId(snapshot.run_id)}` : ''
  ];
  return parts.filter(Boolean).join(' · ');
}

/** Whether the output's record is behind the run's end (a job that ended after its cell): only then is
 * the output written back, so opening a notebook whose outputs are final never marks it changed. */
export function outdated(recorded: IRunSnapshot, current: IRunSnapshot): boolean {
  return FINAL.has(shownStatus(current)) && shownStatus(recorded) !== shownStatus(current);
}
