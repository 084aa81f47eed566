import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import {
  IEventHandlers,
  IGpuReport,
  IRunDetail,
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
  pending: { query: IRunsQuery; resolve: (page: IRunsPage) => void; reject: (e: Error) => void }[] = [];
  handlers: IEventHandlers[] = [];
  topics: Topic[][] = [];
  closed = 0;
  constructor(public total = 100_000) {}

  listRuns(query: IRunsQuery): Promise<IRunsPage> {
    this.queries.push(query);
    return new Promise((resolve, reject) => this.pending.push({ query, resolve, reject }));
  }

  /** Answer every waiting list request from the fake data set. */
  async answerAll(total = this.total): Promise<void> {
    const waiting = this.pending.splice(0);
    for (const { query, resolve } of waiting) {
      const offset = query.offset ?? 0;
      const count = Math.max(0, Math.min(query.limit ?? 50, total - offset));
      resolve({ runs: Array.from({ length: count }, (_, k) => run(offset + k)), total, offset, limit: query.limit ?? 50 });
    }
    await Promise.resolve();
    await Promise.resolve();
  }

  getRun = vi.fn(async (id: string) => ({ ...run(1), id, updated_at: Date.now() }) as unknown as IRunDetail);
  compare = vi.fn(async (ids: string[]) => ({ runs: ids.map((id, i) => ({ ...run(i), id })) }) as never);
  gpus = vi.fn(async (): Promise<IGpuReport> => ({ timestamp: 1, hosts: [], gpu_count: 0 }));

  subscribe(topics: Topic[], handlers: IEventHandlers) {
    this.topics.push(topics);
    this.handlers.push(handlers);
    return { close: () => (this.closed += 1) };
  }

  artifactUrl = (id: string, path: string) => `/a/${id}/${path}`;
  logUrl = (id: string, stream: string) => `/l/${id}/${stream}`;
}

async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) {
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

  it('fetches only the pages in view, even with 100,000 runs', async () => {
    model.reload();
    await api.answerAll();
    expect(model.total).toBe(100_000);
    expect(model.rowAt(0)?.id).toBe('run000000');
    model.setVisibleRange(50_000, 50_030);
    expect(api.queries.map(q => q.offset)).toEqual([0, 50_000, 50_100]);
    expect(model.rowAt(50_010)).toBeUndefined(); // loading: a placeholder row
    await api.answerAll();
    expect(model.rowAt(50_010)?.name).toBe('train-50010');
    expect(api.queries.every(q => q.limit === 100)).toBe(true);
  });

  it('asks for a page once while it loads', () => {
    model.rowAt(5);
    model.rowAt(6);
    model.setVisibleRange(0, 20);
    expect(api.queries.filter(q => q.offset === 0)).toHaveLength(1);
  });

  it('drops pages far from the view and fetches them again when needed', async () => {
    const small = new RunsModel(api, { pageSize: 10, keepPages: 1 });
    small.setVisibleRange(0, 5);
    await api.answerAll();
    small.setVisibleRange(500, 505);
    await api.answerAll();
    api.queries = [];
    expect(small.rowAt(0)).toBeUndefined();
    expect(api.queries.map(q => q.offset)).toEqual([0]);
    small.dispose();
  });

  it('sends filters to the server and ignores answers to an older query', async () => {
    model.rowAt(0);
    model.setFilters({ status: 'failed', q: ' lr=0.1 ', tag: 'team=vision' });
    expect(api.queries[1]).toMatchObject({ status: 'failed', q: 'lr=0.1', tag: 'team=vision', offset: 0, sort: 'started_at', order: 'desc' });
    const stale = api.pending.shift()!;
    stale.resolve({ runs: [run(999)], total: 1, offset: 0, limit: 100 });
    await flush();
    expect(model.total).toBeNull(); // the old answer was dropped
    await api.answerAll(3);
    expect(model.total).toBe(3);
    expect(model.generation).toBe(1);
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
    model.rowAt(0);
    api.pending.shift()!.reject(new Error('status=x is unknown'));
    await flush();
    expect(model.error).toBe('status=x is unknown');
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
    vi.advanceTimersByTime(2100);
    expect(api.pending.length).toBeGreaterThanOrEqual(2);
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
  it('needs two runs and loads the comparison', async () => {
    const api = new FakeAPI();
    const model = new CompareModel(api);
    await model.load(['a']);
    expect(model.error).toMatch(/two or more/);
    expect(api.compare).not.toHaveBeenCalled();
    await model.load(['a', 'b']);
    expect(model.comparison?.runs.map(r => r.id)).toEqual(['a', 'b']);
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
