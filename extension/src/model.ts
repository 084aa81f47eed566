/**
 * State of the views: the run list (paged, filtered, live), one run's details, a comparison and the GPU
 * history. Models talk to the server only through `IRunsAPI` and tell views about changes with signals;
 * views render what the models hold and call their methods.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { IComparison, IEventStream, IRunDetail, IRunsAPI, IRunsQuery, IRunSummary } from './api';

export interface IRunFilters {
  q: string;
  status: string;
  kind: string;
  tag: string;
  notebook: string;
  sort: string;
  order: 'asc' | 'desc';
}

export const DEFAULT_FILTERS: IRunFilters = {
  q: '',
  status: '',
  kind: '',
  tag: '',
  notebook: '',
  sort: 'started_at',
  order: 'desc'
};

/** How fresh the list is: pushed by the server, polled because the push channel failed, or neither. */
export type Liveness = 'push' | 'polling' | 'off';

export interface IRunsModelOptions {
  pageSize?: number;
  /** Refresh period while the push channel is down. */
  pollMs?: number;
  /** Quiet time after typing before a text filter applies. */
  debounceMs?: number;
  /** Pages kept around the visible ones; further pages are dropped and fetched again if needed. */
  keepPages?: number;
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The run history: a window over the server's (possibly 100,000-run) list, fetched page by page as the
 * table scrolls, kept current by the push channel (or polling when it fails).
 */
export class RunsModel {
  readonly pageSize: number;
  private readonly _pollMs: number;
  private readonly _debounceMs: number;
  private readonly _keepPages: number;
  private _filters: IRunFilters = { ...DEFAULT_FILTERS };
  private _pages = new Map<number, IRunSummary[]>();
  private _pending = new Map<number, number>(); // page -> request token
  private _generation = 0; // bumped when the query changes; answers to older queries are dropped
  private _requests = 0;
  private _total: number | null = null;
  private _visible = { first: 0, last: 0 };
  private _selection: string[] = [];
  private _error: string | null = null;
  private _live: Liveness = 'off';
  private _now = Date.now();
  private _stream: IEventStream | null = null;
  private _pollTimer: ReturnType<typeof setInterval> | null = null;
  private _clockTimer: ReturnType<typeof setInterval> | null = null;
  private _filterTimer: ReturnType<typeof setTimeout> | null = null;
  private _refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private _changed = new Signal<this, void>(this);
  private _runsChanged = new Signal<this, IRunSummary[]>(this);
  private _disposed = false;

  constructor(
    readonly api: IRunsAPI,
    options: IRunsModelOptions = {}
  ) {
    this.pageSize = options.pageSize ?? 100;
    this._pollMs = options.pollMs ?? 5000;
    this._debounceMs = options.debounceMs ?? 250;
    this._keepPages = options.keepPages ?? 10;
  }

  /** Anything the table shows changed. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Run summaries the server pushed (detail views refresh when theirs is among them). */
  get runsChanged(): ISignal<this, IRunSummary[]> {
    return this._runsChanged;
  }

  get filters(): IRunFilters {
    return this._filters;
  }

  /** Matching runs on the server; null until the first page arrives. */
  get total(): number | null {
    return this._total;
  }

  get generation(): number {
    return this._generation;
  }

  get error(): string | null {
    return this._error;
  }

  get live(): Liveness {
    return this._live;
  }

  /** The clock running runs' elapsed times are shown against (epoch ms). */
  get now(): number {
    return this._now;
  }

  /** Whether any filter or search narrows the list. */
  get filtered(): boolean {
    return this._filtered();
  }

  get selection(): readonly string[] {
    return this._selection;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** The run at a position of the whole list, or undefined while its page loads (which this starts). */
  rowAt(index: number): IRunSummary | undefined {
    const page = Math.floor(index / this.pageSize);
    const rows = this._pages.get(page);
    if (!rows) {
      this._fetch(page);
      return undefined;
    }
    return rows[index - page * this.pageSize];
  }

  /** The table shows rows first..last: fetch their pages (and one beyond), drop pages far away. */
  setVisibleRange(first: number, last: number): void {
    this._visible = { first, last };
    const firstPage = Math.floor(first / this.pageSize);
    const lastPage = Math.floor(last / this.pageSize) + 1;
    for (let page = firstPage; page <= lastPage; page++) {
      if (this._total === null || page * this.pageSize < this._total) {
        if (!this._pages.has(page)) {
          this._fetch(page);
        }
      }
    }
    for (const page of [...this._pages.keys()]) {
      if (page < firstPage - this._keepPages || page > lastPage + this._keepPages) {
        this._pages.delete(page);
      }
    }
  }

  /** Change filters; text filters apply after a short pause in typing, the others at once. */
  setFilters(patch: Partial<IRunFilters>): void {
    this._filters = { ...this._filters, ...patch };
    const typed = ['q', 'tag', 'notebook'].some(key => key in patch);
    if (this._filterTimer !== null) {
      clearTimeout(this._filterTimer);
      this._filterTimer = null;
    }
    if (typed && this._debounceMs > 0) {
      this._changed.emit();
      this._filterTimer = setTimeout(() => {
        this._filterTimer = null;
        this.reload();
      }, this._debounceMs);
    } else {
      this.reload();
    }
  }

  /** Start over with the current filters (the table scrolls back to the top). */
  reload(): void {
    this._generation += 1;
    this._pages.clear();
    this._pending.clear();
    this._total = null;
    this._visible = { first: 0, last: this._visible.last - this._visible.first };
    this._fetch(0);
    this._changed.emit();
  }

  /** Fetch the visible pages again in place (runs may have been added or changed meanwhile). */
  refresh(): void {
    const firstPage = Math.floor(this._visible.first / this.pageSize);
    const lastPage = Math.max(firstPage, Math.floor(this._visible.last / this.pageSize));
    for (const page of [...this._pages.keys()]) {
      if (page < firstPage || page > lastPage) {
        this._pages.delete(page); // rows shift when runs are added: refetch these when shown again
      }
    }
    for (let page = firstPage; page <= lastPage; page++) {
      this._fetch(page, true);
    }
  }

  /** Apply pushed run summaries: rows on screen change in place; anything else refreshes the list. */
  applyChanges(runs: IRunSummary[], more = false): void {
    if (runs.length === 0 && !more) {
      return;
    }
    const byId = new Map(runs.map(r => [r.id, r]));
    let unknown = byId.size;
    for (const rows of this._pages.values()) {
      for (let i = 0; i < rows.length; i++) {
        const fresh = byId.get(rows[i].id);
        if (fresh) {
          rows[i] = fresh;
          unknown -= 1;
        }
      }
    }
    // A new run, or a changed run under a filter it may no longer match, moves rows: ask the server.
    if (more || unknown > 0 || this._filtered()) {
      this._scheduleRefresh();
    }
    this._runsChanged.emit(runs);
    this._changed.emit();
  }

  /** Listen to the push channel; poll while it is down. */
  connect(): void {
    if (this._stream || this._disposed) {
      return;
    }
    this._stream = this.api.subscribe(['runs'], {
      runs: event => this.applyChanges(event.runs, event.more),
      open: () => {
        this._setLive('push');
        this.refresh(); // changes made while disconnected were not pushed
      },
      error: () => this._setLive('polling')
    });
    this._clockTimer = setInterval(() => this._tick(), 1000);
  }

  toggleSelected(id: string): void {
    this._selection = this._selection.includes(id)
      ? this._selection.filter(x => x !== id)
      : [...this._selection, id];
    this._changed.emit();
  }

  isSelected(id: string): boolean {
    return this._selection.includes(id);
  }

  clearSelection(): void {
    this._selection = [];
    this._changed.emit();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._stream?.close();
    this._stream = null;
    for (const timer of [this._pollTimer, this._clockTimer]) {
      if (timer !== null) {
        clearInterval(timer);
      }
    }
    for (const timer of [this._filterTimer, this._refreshTimer]) {
      if (timer !== null) {
        clearTimeout(timer);
      }
    }
    Signal.clearData(this);
  }

  /** The server query for one page under the current filters. */
  query(page: number): IRunsQuery {
    const f = this._filters;
    return {
      limit: this.pageSize,
      offset: page * this.pageSize,
      q: f.q.trim() || undefined,
      status: f.status || undefined,
      kind: f.kind || undefined,
      tag: f.tag.trim() || undefined,
      notebook: f.notebook.trim() || undefined,
      sort: f.sort,
      order: f.order
    };
  }

  private _filtered(): boolean {
    const f = this._filters;
    return Boolean(f.q.trim() || f.status || f.kind || f.tag.trim() || f.notebook.trim());
  }

  private _fetch(page: number, force = false): void {
    if (this._disposed || (!force && this._pending.has(page))) {
      return;
    }
    const token = ++this._requests;
    const generation = this._generation;
    this._pending.set(page, token);
    this.api.listRuns(this.query(page)).then(
      result => {
        if (generation !== this._generation || this._pending.get(page) !== token || this._disposed) {
          return; // an answer to an older query or superseded request
        }
        this._pending.delete(page);
        this._pages.set(page, result.runs);
        this._total = result.total;
        this._error = null;
        this._changed.emit();
      },
      error => {
        if (generation !== this._generation || this._disposed) {
          return;
        }
        this._pending.delete(page);
        this._error = messageOf(error);
        this._changed.emit();
      }
    );
  }

  private _scheduleRefresh(): void {
    if (this._refreshTimer === null) {
      this._refreshTimer = setTimeout(() => {
        this._refreshTimer = null;
        this.refresh();
      }, 300);
    }
  }

  private _setLive(live: Liveness): void {
    if (this._pollTimer !== null) {
      clearInterval(this._pollTimer);
      this._pollTimer = null;
    }
    if (live === 'polling') {
      this._pollTimer = setInterval(() => this.refresh(), this._pollMs);
    }
    if (live !== this._live) {
      this._live = live;
      this._changed.emit();
    }
  }

  private _tick(): void {
    // Only running rows show a clock that moves; re-render once a second while one is loaded.
    for (const rows of this._pages.values()) {
      if (rows.some(r => r.status === 'running')) {
        this._now = Date.now();
        this._changed.emit();
        return;
      }
    }
  }
}

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

/** A comparison of two or more runs. */
export class CompareModel {
  private _comparison: IComparison | null = null;
  private _ids: string[] = [];
  private _error: string | null = null;
  private _token = 0;
  private _changed = new Signal<this, void>(this);

  constructor(readonly api: IRunsAPI) {}

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get comparison(): IComparison | null {
    return this._comparison;
  }

  get ids(): readonly string[] {
    return this._ids;
  }

  get error(): string | null {
    return this._error;
  }

  async load(ids: string[]): Promise<void> {
    const token = ++this._token;
    this._ids = [...ids];
    this._comparison = null;
    this._error = ids.length < 2 ? 'select two or more runs to compare' : null;
    this._changed.emit();
    if (ids.length < 2) {
      return;
    }
    try {
      const comparison = await this.api.compare(ids);
      if (token === this._token) {
        this._comparison = comparison;
      }
    } catch (error) {
      if (token === this._token) {
        this._error = messageOf(error);
      }
    }
    if (token === this._token) {
      this._changed.emit();
    }
  }

  dispose(): void {
    Signal.clearData(this);
  }
}
