/**
 * State of the views: the run list (paged, filtered, live), one run's details, a comparison and the GPU
 * history. Models talk to the server only through `IRunsAPI` and tell views about changes with signals;
 * views render what the models hold and call their methods.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { IComparison, IRunDetail, IRunsAPI, IRunsQuery, IRunSummary } from './api';
import { messageOf, RunsModel } from './runsModel';

export { DEFAULT_FILTERS, messageOf, RunsModel } from './runsModel';
export type { DisplayRow, IRunFilters, IRunsModelOptions, Liveness } from './runsModel';

/** One run in full, reloaded when the push channel says it changed. */
export class RunDetailModel {
  private _run: IRunDetail | null = null;
  private _runId: string | null = null;
  private _error: string | null = null;
  private _loading = false;
  private _token = 0;
  private _changed = new Signal<this, void>(this);

  constructor(
    readonly api: IRunsAPI,
    runs?: RunsModel
  ) {
    runs?.runsChanged.connect((_, changed) => {
      const mine = changed.find(r => r.id === this._runId);
      if (mine && this._run && mine.updated_at !== this._run.updated_at) {
        void this.load(mine.id, true);
      }
    }, this);
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get run(): IRunDetail | null {
    return this._run;
  }

  get runId(): string | null {
    return this._runId;
  }

  get error(): string | null {
    return this._error;
  }

  get loading(): boolean {
    return this._loading;
  }

  /** Load a run; `quiet` keeps the current one on screen while the new version loads. */
  async load(id: string, quiet = false): Promise<void> {
    const token = ++this._token;
    this._runId = id;
    this._loading = true;
    if (!quiet) {
      this._run = null;
      this._error = null;
    }
    this._changed.emit();
    try {
      const run = await this.api.getRun(id);
      if (token === this._token) {
        this._run = run;
        this._error = null;
      }
    } catch (error) {
      if (token === this._token) {
        this._error = messageOf(error);
      }
    } finally {
      if (token === this._token) {
        this._loading = false;
        this._changed.emit();
      }
    }
  }

  dispose(): void {
    Signal.clearData(this);
  }
}

/** Which runs a comparison shows: chosen ones, or the runs a list query matches (up to 1,000). */
export type CompareSource = { ids: string[] } | { query: IRunsQuery; label: string };

/** Runs compared in full (tables, curves, code diff) at most; more get the charts and a table. */
export const MAX_DETAILED = 20;
export const MAX_PLOTTED = 1000;

/** A comparison: every compared run's summary (params, metric stats) and, for up to 20, the full diff. */
export class CompareModel {
  private _summaries: IRunSummary[] = [];
  private _comparison: IComparison | null = null;
  private _label = '';
  private _error: string | null = null;
  private _loading = false;
  private _token = 0;
  private _changed = new Signal<this, void>(this);

  constructor(readonly api: IRunsAPI) {}

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The compared runs (params, metric last/min/max), in the order chosen. */
  get summaries(): readonly IRunSummary[] {
    return this._summaries;
  }

  /** The full comparison (curves, code, data, environment) when 2 to 20 runs are compared. */
  get comparison(): IComparison | null {
    return this._comparison;
  }

  get ids(): string[] {
    return this._summaries.map(r => r.id);
  }

  get label(): string {
    return this._label;
  }

  get error(): string | null {
    return this._error;
  }

  get loading(): boolean {
    return this._loading;
  }

  async load(source: CompareSource | string[]): Promise<void> {
    const from: CompareSource = Array.isArray(source) ? { ids: source } : source;
    const token = ++this._token;
    this._summaries = [];
    this._comparison = null;
    this._error = null;
    this._loading = true;
    this._label = 'query' in from ? from.label : `${from.ids.length} runs`;
    this._changed.emit();
    try {
      const summaries = await this._summariesOf(from);
      if (token !== this._token) {
        return;
      }
      this._summaries = summaries;
      if (summaries.length < 2) {
        this._error = 'select two or more runs to compare';
      } else if (summaries.length <= MAX_DETAILED) {
        const comparison = await this.api.compare(summaries.map(r => r.id));
        if (token === this._token) {
          this._comparison = comparison;
        }
      }
    } catch (error) {
      if (token === this._token) {
        this._error = messageOf(error);
      }
    }
    if (token === this._token) {
      this._loading = false;
      this._changed.emit();
    }
  }

  private async _summariesOf(from: CompareSource): Promise<IRunSummary[]> {
    if ('query' in from) {
      const page = await this.api.listRuns({ ...from.query, limit: MAX_PLOTTED, stats: true, offset: 0 });
      return page.runs;
    }
    if (from.ids.length < 2) {
      return [];
    }
    const ids = from.ids.slice(0, MAX_PLOTTED);
    const page = await this.api.listRuns({ ids: ids.join(','), limit: MAX_PLOTTED, stats: true });
    const byId = new Map(page.runs.map(r => [r.id, r]));
    return ids.map(id => byId.get(id)).filter((r): r is IRunSummary => r !== undefined);
  }

  dispose(): void {
    Signal.clearData(this);
  }
}

/** Compare a query's runs: label and query for `CompareModel.load`. */
export function compareQuery(runs: RunsModel, label: string): CompareSource {
  const f = runs.filters;
  return { query: { ...runs.filterQuery(), group_sweeps: undefined, sort: f.sort, order: f.order }, label };
}
