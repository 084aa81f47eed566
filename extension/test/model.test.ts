import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import {
  AbortedError,
  IEventHandlers,
  IGpuReport,
  IRunDetail,
  IRunKeys,
  IRunsAPI,
  IRunsPage,
  IRunsQuery,
  IRunSummary,
  Topic
} from '../src/api';
import { GpuModel } from '../src/gpuModel';
import { CompareModel, RunDetailModel, RunsModel } from '../src/model';

function run(i: number, patch: Partial<IRunSummary> = {}): IRunSummary {
  return {
    id: `run${String(i).padStart(6, '0')}`,
    parent_id: null,
    kind: 'cell',
    name: `train-${i}`,
    status: 'ok',
    notebook: 'a.ipynb',
    notebook_server_path: 'a.ipynb',
    cell_id: null,
    execution_count: i,
    started_at: 1_700_000_000 - i,
    ended_at: null,
    updated_at: 1_700_000_000 - i,
    duration_s: 1,
    code_hash: null,
    host: 'h',
    error_type: null,
    error_message: null,
    cost_usd: null,
    params: {},
    metrics: {},
    tags: {},
    reproduces: null,
    ...patch
  };
}

/** A server holding `total` runs, answering queries on demand (so tests control the timing). */
class FakeAPI implements IRunsAPI {
  queries: IRunsQuery[] = [];
  signals: (AbortSignal | undefined)[] = [];
  pending: { query: IRunsQuery; signal?: AbortSignal; resolve: (page: IRunsPage) => void; reject: (e: Error) => void }[] = [];
  handlers: IEventHandlers[] = [];
  topics: Topic[][] = [];
  closed = 0;
  /** Runs listed under a parent or a sweep, by its id. */
  nested = new Map<string, IRunSummary[]>();
  constructor(
    public total = 100_000,
    public decorate: (r: IRunSummary) => IRunSummary = r => r
  ) {}

  listRuns(query: IRunsQuery, signal?: AbortSignal): Promise<IRunsPage> {
    this.queries.push(query);
    this.signals.push(signal);
    return new Promise((resolve, reject) => {
      const entry = { query, signal, resolve, reject };
      this.pending.push(entry);
      signal?.addEventListener('abort', () => {
        this.pending = this.pending.filter(p => p !== entry);
        reject(new AbortedError());
      });
    });
  }

  /** Answer every waiting list request from the fake data set. */
  async answerAll(total = this.total): Promise<void> {
    const waiting = this.pending.splice(0);
    for (const { query, resolve } of waiting) {
      resolve(this.page(query, total));
    }
    await flush();
  }

  page(query: IRunsQuery, total = this.total): IRunsPage {
    const owner = query.sweep ?? query.parent;
    if (owner) {
      const runs = this.nested.get(owner) ?? [];
      return { runs, total: runs.length, offset: 0, limit: query.limit ?? 50, next_cursor: null };
    }
    const offset = query.after !== undefined ? Number(query.after) : query.offset ?? 0;
    const count = Math.max(0, Math.min(query.limit ?? 50, total - offset));
    return {
      runs: Array.from({ length: count }, (_, k) => this.decorate(run(offset + k))),
      total: query.count === false ? null : total,
      offset,
      limit: query.limit ?? 50,
      next_cursor: offset + count < total ? String(offset + count) : null
    };
  }

  getRun = vi.fn(async (id: string) => ({ ...run(1), id, updated_at: Date.now() }) as unknown as IRunDetail);
  compare = vi.fn(async (ids: string[]) => ({ runs: ids.map((id, i) => ({ ...run(i), id })) }) as never);
  gpus = vi.fn(async (): Promise<IGpuReport> => ({ timestamp: 1, hosts: [], gpu_count: 0 }));
  runKeys = vi.fn(async (): Promise<IRunKeys> => ({ params: [], metrics: [], tags: [], runs_examined: 0, sampled: false }));
  patchRun = vi.fn(async (id: string) => ({ ...run(1), id }));
  deleteRun = vi.fn(async (id: string) => ({ deleted: [id], blobs_removed: 0, bytes_freed: 0, environments_removed: 0 }));
  executedNotebook = vi.fn(async () => ({ cells: [] }));
  executedNotebookUrl = (id: string) => `/n/${id}`;

  subscribe(topics: Topic[], handlers: IEventHandlers) {
    this.topics.push(topics);
    this.handlers.push(handlers);
    return { close: () => (this.closed += 1) };
  }

  artifactUrl = (id: string, path: string) => `/a/${id}/${path}`;
  logUrl = (id: string, stream: string) => `/l/${id}/${stream}`;
}

async function flush(): Promise<void> {
  for (let i = 0; i < 8; i++) {
    await Promise.resolve();
  }
}

describe('RunsModel paging', () => {
  let api: FakeAPI;
  let model: RunsModel;
  beforeEach(() => {
    api = new FakeAPI();
    model = new RunsModel(api, { pageSize: 100, debounceMs: 0 });
  });
  afterEach(() => model.dispose());

  it('fetches only the pages in view (and one on each side), even with 100,000 runs', async () => {
    model.reload();
    await api.answerAll();
    expect(model.total).toBe(100_000);
    expect(model.rowAt(0)?.id).toBe('run000000');
    api.queries = [];
    model.setVisibleRange(50_000, 50_030);
    expect(api.queries.map(q => q.offset).sort()).toEqual([49_900, 50_000, 50_100]);
    expect(api.queries.every(q => q.count === false && q.limit === 100)).toBe(true); // the total is known
    expect(model.displayRow(50_010)).toBeUndefined(); // loading: a placeholder row
    await api.answerAll();
    expect(model.rowAt(50_010)?.name).toBe('train-50010');
  });

  it('continues from the previous page by its cursor (keyset paging)', async () => {
    model.setVisibleRange(0, 20);
    await api.answerAll();
    api.queries = [];
    model.setVisibleRange(150, 170); // pages 0..2 wanted: 0 loaded, 1 after page 0, 2 by offset
    const second = api.queries.find(q => q.after === '100');
    expect(second).toMatchObject({ count: false });
    expect(second?.offset).toBeUndefined();
    await api.answerAll();
    expect(model.rowAt(150)?.id).toBe('run000150');
  });

  it('cancels pages that scrolled away, so the rows on screen are served next', async () => {
    model.setVisibleRange(0, 20);
    await api.answerAll();
    model.setVisibleRange(30_000, 30_020);
    const early = api.pending.map(p => p.signal);
    model.setVisibleRange(90_000, 90_020);
    expect(early.every(signal => signal?.aborted)).toBe(true);
    expect(model.inFlight).toBeLessThanOrEqual(3);
    expect(api.pending.map(p => p.query.offset).sort()).toEqual([89_900, 90_000, 90_100]);
    await api.answerAll();
    expect(model.rowAt(90_010)?.id).toBe('run090010');
    expect(model.rowAt(30_010)).toBeUndefined();
  });

  it('keeps a scrollbar drag to a few requests in flight and fills the end position', async () => {
    model.setVisibleRange(0, 30);
    await api.answerAll();
    api.queries = [];
    for (let row = 0; row <= 100_000; row += 333) {
      model.setVisibleRange(row, row + 30); // a drag: the position moves every frame, nothing answered yet
      expect(model.inFlight).toBeLessThanOrEqual(3);
    }
    model.setVisibleRange(99_970, 99_999);
    const aborted = api.signals.filter(s => s?.aborted).length;
    expect(aborted).toBeGreaterThan(api.queries.length - 10);
    await api.answerAll();
    expect(model.displayRow(99_985)?.type).toBe('run');
    expect(model.inFlight).toBe(0);
  });

  it('answers a new filter at once, whatever was loading', async () => {
    model.setVisibleRange(40_000, 40_030);
    await api.answerAll();
    model.setVisibleRange(60_000, 60_030);
    const loading = api.pending.map(p => p.signal);
    model.setFilters({ status: 'failed' });
    expect(loading.every(signal => signal?.aborted)).toBe(true);
    expect(api.pending).toHaveLength(1);
    expect(api.pending[0].query).toMatchObject({ status: 'failed', offset: 0 });
  });

  it('drops pages far from the view and fetches them again when needed', async () => {
    const small = new RunsModel(api, { pageSize: 10, keepPages: 1 });
    small.setVisibleRange(0, 5);
    await api.answerAll();
    small.setVisibleRange(500, 505);
    await api.answerAll();
    expect(small.rowAt(0)).toBeUndefined();
    api.queries = [];
    small.setVisibleRange(0, 5);
    expect(api.queries.map(q => q.offset)).toContain(0);
    small.dispose();
  });

  it('sends filters to the server and ignores answers to an older query', async () => {
    model.setVisibleRange(0, 5);
    model.setFilters({ status: 'failed', q: ' lr=0.1 ', tag: 'team=vision' });
    expect(api.queries[1]).toMatchObject({ status: 'failed', q: 'lr=0.1', tag: 'team=vision', offset: 0, sort: 'started_at', order: 'desc' });
    expect(api.queries[1].group_sweeps).toBeUndefined(); // a filtered list is flat: cells match too
    expect(api.queries[1].top_level).toBeUndefined();
    expect(api.signals[0]?.aborted).toBe(true); // the old query's page: cancelled, its answer never applies
    await api.answerAll(3);
    expect(model.total).toBe(3);
    expect(model.generation).toBe(1);
  });

  it('folds sweeps and nests cells only in the plain view', () => {
    model.setVisibleRange(0, 5);
    expect(api.queries[0]).toMatchObject({ top_level: true, group_sweeps: true });
    model.setFilters({ sort: 'metric:loss' });
    expect(api.queries.at(-1)).toMatchObject({ top_level: true, sort: 'metric:loss' });
    expect(api.queries.at(-1)?.group_sweeps).toBeUndefined();
    model.setFilters({ nested: false, sort: 'started_at' });
    expect(api.queries.at(-1)?.top_level).toBeUndefined();
  });

  it('waits for a pause in typing before searching', async () => {
    vi.useFakeTimers();
    const typed = new RunsModel(api, { debounceMs: 250 });
    typed.setFilters({ q: 'l' });
    typed.setFilters({ q: 'lr' });
    expect(api.queries).toHaveLength(0);
    vi.advanceTimersByTime(300);
    expect(api.queries).toHaveLength(1);
    expect(api.queries[0].q).toBe('lr');
    typed.dispose();
    vi.useRealTimers();
  });

  it('reports errors as text', async () => {
    model.setVisibleRange(0, 5);
    api.pending.shift()!.reject(new Error('status=x is unknown'));
    await flush();
    expect(model.error).toBe('status=x is unknown');
  });
});

describe('RunsModel rows that expand', () => {
  const sweep = (i: number) => run(i, { sweep_id: 'run000002', sweep: { size: 3, statuses: { ok: 3 } } });

  it('expands a sweep into its runs and a notebook run into its cells', async () => {
    const api = new FakeAPI(10, r => (r.id === 'run000002' ? sweep(2) : r.id === 'run000004' ? { ...r, children_count: 2 } : r));
    api.nested.set('run000002', [sweep(2), run(20, { sweep_id: 'run000002' }), run(21, { sweep_id: 'run000002', children_count: 1 })]);
    api.nested.set('run000004', [run(40, { parent_id: 'run000004' }), run(41, { parent_id: 'run000004' })]);
    api.nested.set('run000021', [run(210, { parent_id: 'run000021' })]);
    const model = new RunsModel(api, { pageSize: 100 });
    model.setVisibleRange(0, 9);
    await api.answerAll();
    const group = model.displayRow(2);
    expect(group).toMatchObject({ type: 'run', group: true, expandable: true, expanded: false, depth: 0 });
    model.toggleExpanded(sweep(2), 2);
    expect(model.displayRow(3)).toMatchObject({ type: 'loading', depth: 1 });
    expect(api.queries.at(-1)).toMatchObject({ sweep: 'run000002', sort: 'started_at', order: 'asc' });
    await api.answerAll();
    expect(model.displayCount).toBe(13);
    expect(model.displayRow(4)).toMatchObject({ type: 'run', depth: 1, run: { id: 'run000020' } });
    expect(model.displayRow(6)).toMatchObject({ type: 'run', depth: 0, run: { id: 'run000003' } });
    // a cell run under a run of the sweep: two levels down
    model.toggleExpanded(run(21), 5);
    await api.answerAll();
    expect(model.displayRow(6)).toMatchObject({ type: 'run', depth: 2, run: { id: 'run000210' } });
    // the notebook run further down still expands at its own place
    model.toggleExpanded(run(4), 8);
    await api.answerAll();
    expect(model.displayRow(9)).toMatchObject({ depth: 1, run: { id: 'run000040' } });
    expect(model.displayCount).toBe(16);
    model.toggleExpanded(sweep(2), 2);
    expect(model.displayCount).toBe(12);
    expect(model.displayRow(5)).toMatchObject({ depth: 1, run: { id: 'run000040' } });
    model.dispose();
  });

  it('selects all of a sweep at once', async () => {
    const api = new FakeAPI(5);
    api.nested.set('s', [run(1), run(2), run(3)]);
    const model = new RunsModel(api);
    const members = model.sweepMembers('s');
    await api.answerAll();
    model.toggleAll((await members).map(r => r.id));
    expect(model.selection).toEqual(['run000001', 'run000002', 'run000003']);
    model.toggleAll(['run000001', 'run000002', 'run000003']);
    expect(model.selection).toEqual([]);
  });
});

describe('RunsModel live updates', () => {
  it('updates rows in place and refreshes for unknown runs', async () => {
    vi.useFakeTimers();
    const api = new FakeAPI(3);
    const model = new RunsModel(api, { pageSize: 100 });
    model.connect();
    expect(api.topics[0]).toEqual(['runs']);
    model.setVisibleRange(0, 2);
    await api.answerAll();
    const changed: string[] = [];
    model.runsChanged.connect((_, runs) => changed.push(...runs.map(r => r.id)));
    api.handlers[0].runs!({ runs: [run(1, { status: 'failed', updated_at: 2e9 })], more: false });
    expect(model.rowAt(1)?.status).toBe('failed');
    expect(changed).toEqual(['run000001']);
    expect(api.pending).toHaveLength(0); // a known row: no request
    api.handlers[0].runs!({ runs: [run(7, { status: 'running' })], more: false });
    vi.advanceTimersByTime(400);
    expect(api.pending.map(p => p.query.offset)).toEqual([0]); // a new run: the visible page again
    model.dispose();
    expect(api.closed).toBe(1);
    vi.useRealTimers();
  });

  it('polls while the push channel is down and stops when it is back', async () => {
    vi.useFakeTimers();
    const api = new FakeAPI(3);
    const model = new RunsModel(api, { pollMs: 1000 });
    model.connect();
    model.setVisibleRange(0, 2);
    await api.answerAll();
    api.handlers[0].error!();
    expect(model.live).toBe('polling');
    const before = api.queries.length;
    vi.advanceTimersByTime(2100);
    expect(api.queries.length - before).toBeGreaterThanOrEqual(2); // each poll supersedes the last
    expect(api.pending).toHaveLength(1);
    await api.answerAll(3);
    api.handlers[0].open!();
    expect(model.live).toBe('push');
    await api.answerAll(3);
    vi.advanceTimersByTime(5000);
    expect(api.pending).toHaveLength(0);
    model.dispose();
    vi.useRealTimers();
  });

  it('keeps a selection for comparison', () => {
    const model = new RunsModel(new FakeAPI());
    model.toggleSelected('a');
    model.toggleSelected('b');
    model.toggleSelected('a');
    model.toggleSelected('c');
    expect(model.selection).toEqual(['b', 'c']);
    expect(model.isSelected('b')).toBe(true);
    model.clearSelection();
    expect(model.selection).toEqual([]);
  });
});

describe('RunDetailModel', () => {
  it('loads a run and reloads it when the push channel says it changed', async () => {
    const api = new FakeAPI(3);
    const runs = new RunsModel(api);
    const detail = new RunDetailModel(api, runs);
    await detail.load('run000001');
    expect(detail.run?.id).toBe('run000001');
    expect(api.getRun).toHaveBeenCalledTimes(1);
    runs.applyChanges([run(2)]); // another run: nothing to do
    runs.applyChanges([run(1, { updated_at: 1 })]);
    await flush();
    expect(api.getRun).toHaveBeenCalledTimes(2);
    runs.dispose();
  });

  it('shows the newest of overlapping loads and reports errors', async () => {
    const api = new FakeAPI();
    api.getRun.mockImplementationOnce(() => Promise.reject(new Error('no run matches')));
    const detail = new RunDetailModel(api);
    await detail.load('dead');
    expect(detail.error).toBe('no run matches');
    expect(detail.run).toBeNull();
  });
});

describe('CompareModel', () => {
  /** A fake whose list requests answer at once. */
  function answering(total: number): FakeAPI {
    const api = new FakeAPI(total);
    api.listRuns = (query: IRunsQuery) => {
      api.queries.push(query);
      if (query.ids) {
        const runs = query.ids.split(',').reverse().map(id => ({ ...run(0), id })); // the server's order
        return Promise.resolve({ runs, total: runs.length, offset: 0, limit: 1000 });
      }
      return Promise.resolve(api.page(query));
    };
    return api;
  }

  it('needs two runs, keeps their order and loads the full comparison for up to 20', async () => {
    const api = answering(100);
    const model = new CompareModel(api);
    await model.load(['a']);
    expect(model.error).toMatch(/two or more/);
    expect(api.compare).not.toHaveBeenCalled();
    await model.load(['a', 'b']);
    expect(api.queries.at(-1)).toMatchObject({ ids: 'a,b', stats: true });
    expect(model.ids).toEqual(['a', 'b']);
    expect(model.comparison?.runs.map(r => r.id)).toEqual(['a', 'b']);
  });

  it('plots up to 1,000 runs of a query and compares in full only up to 20', async () => {
    const api = answering(5000);
    const model = new CompareModel(api);
    await model.load({ query: { q: 'lr>0.01', sort: 'metric:loss' }, label: 'the listed runs' });
    expect(api.queries.at(-1)).toMatchObject({ q: 'lr>0.01', limit: 1000, stats: true });
    expect(model.summaries).toHaveLength(1000);
    expect(model.comparison).toBeNull();
    expect(api.compare).not.toHaveBeenCalled();
    expect(model.label).toBe('the listed runs');
  });
});

describe('GpuModel', () => {
  const report = (t: number, util: number): IGpuReport => ({
    timestamp: t,
    gpu_count: 1,
    hosts: [
      { host: 'here', source: 'local', worker: null, available: false, reason: 'no driver', driver_version: null, gpus: [] },
      {
        host: 'box',
        source: 'dask',
        worker: 'tcp://w:1',
        available: true,
        reason: null,
        driver_version: null,
        gpus: [
          {
            index: 0,
            uuid: 'GPU-1',
            name: 'A100',
            utilization_percent: util,
            memory_used_bytes: util * 10,
            memory_total_bytes: 1000,
            power_watts: null,
            temperature_c: null,
            timestamp: t
          }
        ]
      }
    ]
  });

  it('keeps a bounded history per GPU per host', () => {
    const model = new GpuModel(new FakeAPI(), { historyLength: 3 });
    for (let t = 1; t <= 5; t++) {
      model.ingest(report(t, t * 10));
    }
    model.ingest(report(5, 50)); // the same sample twice is one point
    const host = model.hosts[1];
    const trace = model.trace(host, host.gpus[0])!;
    expect(trace.utilization).toEqual([30, 40, 50]);
    expect(trace.timestamps).toEqual([3, 4, 5]);
    expect(model.noGpu).toBe(false);
  });

  it('says when no host has a GPU', () => {
    const model = new GpuModel(new FakeAPI());
    expect(model.noGpu).toBe(false); // nothing known yet
    model.ingest({ timestamp: 1, gpu_count: 0, hosts: [report(1, 0).hosts[0]] });
    expect(model.noGpu).toBe(true);
  });

  it('listens for samples and polls every second while the channel is down', async () => {
    vi.useFakeTimers();
    const api = new FakeAPI();
    const model = new GpuModel(api, { pollMs: 1000 });
    model.start();
    expect(api.topics[0]).toEqual(['gpus']);
    api.handlers[0].gpus!(report(1, 5));
    expect(model.loaded).toBe(true);
    api.handlers[0].error!();
    vi.advanceTimersByTime(3000);
    expect(api.gpus.mock.calls.length).toBeGreaterThanOrEqual(3);
    model.dispose();
    expect(api.closed).toBe(1);
    vi.useRealTimers();
  });
});
