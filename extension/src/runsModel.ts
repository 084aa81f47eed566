/**
 * The run history: a window over the server's (possibly 100,000-run) list, fetched page by page as the
 * table scrolls, kept current by the push channel (or polling when it fails), with rows expanded into
 * their cells or a sweep's runs.
 *
 * Paging: a page after a loaded one continues from its cursor (keyset, cost independent of depth); a jump
 * asks by offset. At most `maxInFlight` pages load at once; a page that leaves the view is cancelled
 * (its request aborted, and the server skips work it had not started), so after any scroll or drag the
 * rows on screen are the next ones served.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { IEventStream, IRunsAPI, IRunsFilter, IRunsPage, IRunsQuery, IRunSummary } from './api';
import { PageRequests } from './pageRequests';
import { allExpansions, displayCount, IExpansion, locate, toggleIn, topIndexAt } from './tree';

export interface IRunFilters {
  q: string;
  status: string;
  kind: string;
  tag: string;
  notebook: string;
  sort: string;
  order: 'asc' | 'desc';
  /** Top-level runs with their cells under them and sweeps folded, while nothing filters. */
  nested: boolean;
}

export const DEFAULT_FILTERS: IRunFilters = {
  q: '',
  status: '',
  kind: '',
  tag: '',
  notebook: '',
  sort: 'started_at',
  order: 'desc',
  nested: true
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
  /** Page requests in flight at once; the others wait, and are dropped if they leave the view first. */
  maxInFlight?: number;
}

/** What the table shows at one position. */
export type DisplayRow =
  | {
      type: 'run';
      run: IRunSummary;
      depth: number;
      /** The row stands for a sweep (its first run leads it). */
      group: boolean;
      expandable: boolean;
      expanded: boolean;
    }
  | { type: 'loading'; depth: number; error?: string | null };

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const MAX_EXPANDED_ROWS = 1000;

export class RunsModel {
  readonly pageSize: number;
  private readonly _pollMs: number;
  private readonly _debounceMs: number;
  private readonly _keepPages: number;
  private _filters: IRunFilters = { ...DEFAULT_FILTERS };
  private _applied: IRunFilters = { ...DEFAULT_FILTERS };
  private _pages = new Map<number, IRunSummary[]>();
  private _cursors = new Map<number, string | null>(); // page -> cursor of the page after it
  private _requests: PageRequests;
  private _generation = 0; // bumped when the query changes; answers to older queries are dropped
  private _total: number | null = null;
  private _visible = { first: 0, last: 0 }; // top-level indices on screen
  private _expansions: IExpansion[] = [];
  private _selection: string[] = [];
  private _sweepIds = new Map<string, string[]>();
  private _withStats = false;
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
    this._requests = new PageRequests(
      api,
      {
        query: (page, refresh) => this.query(page, refresh),
        has: page => this._pages.has(page),
        received: (page, result) => this._received(page, result),
        failed: (_, error) => {
          this._error = messageOf(error);
          this._changed.emit();
        }
      },
      options.maxInFlight ?? 3
    );
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

  /** The filters the list shows now (typed ones apply after a pause: `filters` may be ahead). */
  get applied(): IRunFilters {
    return this._applied;
  }

  /** Matching top-level runs on the server; null until the first page arrives. */
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
    const f = this._filters;
    return Boolean(f.q.trim() || f.status || f.kind || f.tag.trim() || f.notebook.trim());
  }

  /** Top-level runs only (cells under their notebook run): the nested view while nothing filters. A search
   * lists every matching run, cells included, since what it matches often lives in the cells. */
  get nested(): boolean {
    return this._filters.nested && !this.filtered;
  }

  /** Sweeps fold into one row only in the nested view sorted by a run column. */
  get grouped(): boolean {
    const sort = this._filters.sort;
    return this.nested && !sort.startsWith('param:') && !sort.startsWith('metric:');
  }

  get selection(): readonly string[] {
    return this._selection;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Page requests on their way (for tests and the benchmark's bookkeeping). */
  get inFlight(): number {
    return this._requests.inFlight;
  }

  /** Rows the table has (top-level runs plus expanded rows). */
  get displayCount(): number {
    return displayCount(this._total ?? 0, this._expansions);
  }

  /** The top-level run at an index, or undefined while its page loads. */
  rowAt(index: number): IRunSummary | undefined {
    const page = Math.floor(index / this.pageSize);
    return this._pages.get(page)?.[index - page * this.pageSize];
  }

  /** What the table shows at a display position (undefined while its page loads). */
  displayRow(display: number): DisplayRow | undefined {
    const at = locate(display, this._total ?? 0, this._expansions);
    if (!at) {
      return undefined;
    }
    if (at.kind === 'loading') {
      return { type: 'loading', depth: at.depth, error: at.owner.error };
    }
    const run = at.owner ? at.owner.rows?.[at.index] : this.rowAt(at.index);
    if (!run) {
      return undefined;
    }
    const group = !at.owner && this.grouped && run.sweep_id === run.id && Boolean(run.sweep);
    const expandable = group || (run.children_count ?? 0) > 0;
    const siblings = at.owner ? at.owner.nested : this._expansions;
    return { type: 'run', run, depth: at.depth, group, expandable, expanded: siblings.some(e => e.id === run.id) };
  }

  /** The table shows display rows first..last: fetch their pages (and one on each side), cancel the rest. */
  setVisibleRange(first: number, last: number): void {
    const length = this._total ?? 0;
    this._visible = {
      first: topIndexAt(first, length, this._expansions),
      last: topIndexAt(last, length, this._expansions)
    };
    this._schedule();
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

  /** Ask for each row's metric min and max too (a min or max column is shown). */
  setWithStats(withStats: boolean): void {
    if (withStats !== this._withStats) {
      this._withStats = withStats;
      this.reload();
    }
  }

  /** Start over with the current filters (the table scrolls back to the top). */
  reload(): void {
    this._generation += 1;
    this._applied = { ...this._filters };
    this._requests.cancelAll();
    this._pages.clear();
    this._cursors.clear();
    this._expansions = [];
    this._total = null;
    this._visible = { first: 0, last: this._visible.last - this._visible.first };
    this._schedule();
    this._changed.emit();
  }

  /** Fetch the visible pages again in place (runs may have been added or changed meanwhile). */
  refresh(): void {
    const { from, to } = this._visiblePages();
    for (const page of [...this._pages.keys()]) {
      if (page < from || page > to) {
        this._pages.delete(page); // rows shift when runs are added: refetch these when shown again
        this._cursors.delete(page);
      }
    }
    for (let page = from; page <= to; page++) {
      this._requests.refresh(page);
    }
    for (const expansion of allExpansions(this._expansions)) {
      void this._loadExpansion(expansion);
    }
  }

  /** Apply pushed run summaries: rows on screen change in place; anything else refreshes the list. */
  applyChanges(runs: IRunSummary[], more = false): void {
    if (runs.length === 0 && !more) {
      return;
    }
    const byId = new Map(runs.map(r => [r.id, r]));
    let unknown = byId.size;
    const lists = [...this._pages.values(), ...allExpansions(this._expansions).map(e => e.rows ?? [])];
    for (const rows of lists) {
      for (let i = 0; i < rows.length; i++) {
        const fresh = byId.get(rows[i].id);
        if (fresh) {
          // keep what only list pages carry (child counts, sweep sizes)
          rows[i] = { ...rows[i], ...fresh };
          unknown -= 1;
        }
      }
    }
    // A new run, or a changed run under a filter it may no longer match, moves rows: ask the server.
    if (more || unknown > 0 || this.filtered) {
      this._scheduleRefresh();
    }
    this._runsChanged.emit(runs);
    this._changed.emit();
  }

  /** Expand or collapse a row (a sweep's runs, or a run's cells). */
  toggleExpanded(run: IRunSummary, display: number): void {
    const at = locate(display, this._total ?? 0, this._expansions);
    if (!at || at.kind !== 'row') {
      return;
    }
    const mode = !at.owner && this.grouped && run.sweep_id === run.id ? 'sweep' : 'children';
    const expansion: IExpansion = { id: run.id, index: at.index, mode, rows: null, error: null, nested: [] };
    if (at.owner) {
      at.owner.nested = toggleIn(at.owner.nested, expansion);
    } else {
      this._expansions = toggleIn(this._expansions, expansion);
    }
    const added = (at.owner ? at.owner.nested : this._expansions).includes(expansion);
    if (added) {
      void this._loadExpansion(expansion);
    }
    this._changed.emit();
  }

  /** The runs of a sweep (for "select all" and "compare all"). */
  async sweepMembers(sweepId: string): Promise<IRunSummary[]> {
    const page = await this.api.listRuns({ sweep: sweepId, sort: 'started_at', order: 'asc', limit: MAX_EXPANDED_ROWS });
    this._sweepIds.set(sweepId, page.runs.map(r => r.id));
    return page.runs;
  }

  /** Every run of the sweep is selected (known once its runs were fetched). */
  isSweepSelected(sweepId: string): boolean {
    const ids = this._sweepIds.get(sweepId);
    return Boolean(ids?.length) && ids!.every(id => this._selection.includes(id));
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

  /** Select (or, when all are selected, unselect) several runs at once. */
  toggleAll(ids: string[]): void {
    const all = ids.every(id => this._selection.includes(id));
    this._selection = all
      ? this._selection.filter(id => !ids.includes(id))
      : [...this._selection, ...ids.filter(id => !this._selection.includes(id))];
    this._changed.emit();
  }

  isSelected(id: string): boolean {
    return this._selection.includes(id);
  }

  clearSelection(): void {
    this._selection = [];
    this._changed.emit();
  }

  /** Forget runs that were deleted (the selection, expanded rows), then refresh. */
  forget(ids: string[]): void {
    this._selection = this._selection.filter(id => !ids.includes(id));
    this.refresh();
    this._changed.emit();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._requests.cancelAll();
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

  /** The filter part of the server query under the current filters. */
  filterQuery(): IRunsFilter {
    const f = this._filters;
    return {
      q: f.q.trim() || undefined,
      status: f.status || undefined,
      kind: f.kind || undefined,
      tag: f.tag.trim() || undefined,
      notebook: f.notebook.trim() || undefined,
      top_level: this.nested || undefined,
      group_sweeps: this.grouped || undefined
    };
  }

  /** The server query for one page: after the previous page's cursor when known, else by offset. */
  query(page: number, refresh = false): IRunsQuery {
    const f = this._filters;
    const base: IRunsQuery = {
      ...this.filterQuery(),
      limit: this.pageSize,
      sort: f.sort,
      order: f.order,
      stats: this._withStats || undefined
    };
    const cursor = page > 0 ? this._cursors.get(page - 1) : undefined;
    if (!refresh && cursor && this._total !== null) {
      return { ...base, after: cursor, count: false };
    }
    const count = page === 0 || refresh || this._total === null;
    return { ...base, offset: page * this.pageSize, count: count ? undefined : false };
  }

  private _visiblePages(): { from: number; to: number } {
    const from = Math.floor(this._visible.first / this.pageSize);
    const to = Math.max(from, Math.floor(this._visible.last / this.pageSize));
    return { from, to };
  }

  /** Cancel pages out of view, queue the missing ones (those on screen first), start what fits. */
  private _schedule(): void {
    if (this._disposed) {
      return;
    }
    const { from, to } = this._visiblePages();
    const pageCount = this._total === null ? from + 1 : Math.ceil(this._total / this.pageSize);
    const keep = { from: Math.max(0, from - 1), to: Math.min(Math.max(pageCount - 1, 0), to + 1) };
    const wanted: number[] = [];
    for (let page = from; page <= Math.min(to, keep.to); page++) {
      wanted.push(page);
    }
    wanted.push(...[to + 1, from - 1].filter(page => page >= keep.from && page <= keep.to));
    for (const page of [...this._pages.keys()]) {
      if (page < from - this._keepPages || page > to + this._keepPages) {
        this._pages.delete(page);
        this._cursors.delete(page);
      }
    }
    this._requests.want(wanted, keep);
  }

  private _received(page: number, result: IRunsPage): void {
    this._pages.set(page, result.runs);
    this._cursors.set(page, result.next_cursor ?? null);
    if (result.total !== null && result.total !== undefined) {
      this._total = result.total;
    }
    this._error = null;
    this._reconcileExpansions();
    this._changed.emit();
  }

  private async _loadExpansion(expansion: IExpansion): Promise<void> {
    const generation = this._generation;
    const query: IRunsQuery =
      expansion.mode === 'sweep'
        ? { sweep: expansion.id, sort: 'started_at', order: 'asc', limit: MAX_EXPANDED_ROWS }
        : { parent: expansion.id, sort: 'started_at', order: 'asc', limit: MAX_EXPANDED_ROWS };
    try {
      const page = await this.api.listRuns({ ...query, stats: this._withStats || undefined });
      if (generation !== this._generation) {
        return;
      }
      expansion.rows = page.runs;
      expansion.nested = expansion.nested.filter(n => page.runs[n.index]?.id === n.id);
      expansion.error = null;
    } catch (error) {
      expansion.error = messageOf(error);
    }
    this._changed.emit();
  }

  /** Rows shift when runs arrive: keep each expansion on its run, or drop it when the run is not loaded. */
  private _reconcileExpansions(): void {
    this._expansions = this._expansions
      .map(expansion => {
        if (this.rowAt(expansion.index)?.id === expansion.id) {
          return expansion;
        }
        for (const [page, rows] of this._pages) {
          const at = rows.findIndex(r => r.id === expansion.id);
          if (at >= 0) {
            return { ...expansion, index: page * this.pageSize + at };
          }
        }
        return null;
      })
      .filter((e): e is IExpansion => e !== null)
      .sort((a, b) => a.index - b.index);
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
