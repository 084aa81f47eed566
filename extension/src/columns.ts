/**
 * The run table's parameter and metric columns: which the user chose (kept in the browser's local storage),
 * how each sorts on the server, and what a run shows in it.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { IRunKeys, IRunSummary } from './api';

export type MetricStat = 'last' | 'min' | 'max';

export interface IColumn {
  source: 'param' | 'metric';
  key: string;
  /** Metrics: which summary the column shows and sorts by. */
  stat?: MetricStat;
}

export const STORAGE_KEY = 'pykernel-ext:run-columns';
const MAX_COLUMNS = 12;

export function columnId(column: IColumn): string {
  return column.source === 'param' ? `param:${column.key}` : `metric:${column.key}:${column.stat ?? 'last'}`;
}

export function columnLabel(column: IColumn): string {
  const stat = column.source === 'metric' && column.stat && column.stat !== 'last' ? ` (${column.stat})` : '';
  return `${column.key}${stat}`;
}

/** The server's `sort=` for a column. */
export function columnSort(column: IColumn): string {
  if (column.source === 'param') {
    return `param:${column.key}`;
  }
  return column.stat && column.stat !== 'last' ? `metric:${column.key}:${column.stat}` : `metric:${column.key}`;
}

/** A run's value in a column (undefined when the run has none). */
export function cellValue(run: IRunSummary, column: IColumn): unknown {
  if (column.source === 'param') {
    return run.params?.[column.key];
  }
  const stat = column.stat ?? 'last';
  if (stat === 'last') {
    return run.metrics?.[column.key];
  }
  return run.metric_stats?.[column.key]?.[stat];
}

interface IStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** The chosen columns; `changed` fires when they change. */
export class ColumnsModel {
  private _columns: IColumn[] = [];
  private _chosen = false;
  private _changed = new Signal<this, void>(this);

  constructor(private readonly storage: IStorage | null = typeof localStorage === 'undefined' ? null : localStorage) {
    const saved = this._read();
    if (saved) {
      this._columns = saved;
      this._chosen = true;
    }
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get columns(): readonly IColumn[] {
    return this._columns;
  }

  /** Some column shows a metric's min or max (list pages must then carry metric stats). */
  get needsStats(): boolean {
    return this._columns.some(c => c.source === 'metric' && (c.stat ?? 'last') !== 'last');
  }

  has(column: IColumn): boolean {
    return this._columns.some(c => columnId(c) === columnId(column));
  }

  toggle(column: IColumn): void {
    this.set(
      this.has(column)
        ? this._columns.filter(c => columnId(c) !== columnId(column))
        : [...this._columns, column].slice(-MAX_COLUMNS)
    );
  }

  set(columns: IColumn[]): void {
    this._columns = columns;
    this._chosen = true;
    this.storage?.setItem(STORAGE_KEY, JSON.stringify(columns));
    this._changed.emit();
  }

  /** Until the user picks, show the two commonest parameters and the commonest metric. */
  suggest(keys: IRunKeys): void {
    if (this._chosen) {
      return;
    }
    this._columns = [
      ...keys.params.slice(0, 2).map(k => ({ source: 'param' as const, key: k.key })),
      ...keys.metrics.slice(0, 1).map(k => ({ source: 'metric' as const, key: k.key, stat: 'last' as const }))
    ];
    this._changed.emit();
  }

  private _read(): IColumn[] | null {
    try {
      const raw = this.storage?.getItem(STORAGE_KEY);
      const parsed = raw ? (JSON.parse(raw) as unknown) : null;
      if (!Array.isArray(parsed)) {
        return null;
      }
      return parsed.filter(
        (c): c is IColumn =>
          typeof c === 'object' && c !== null && (c.source === 'param' || c.source === 'metric') && typeof c.key === 'string'
      );
    } catch {
      return null; // a damaged entry: start from the suggestion
    }
  }
}
