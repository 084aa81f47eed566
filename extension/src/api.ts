/**
 * The only code that talks to the server: one `requestAPI`, typed payloads, the push channel.
 *
 * The run record's types come from records.generated.ts (generated from pykernel_ext/records.py); the rest of
 * the payloads mirror `pykernel_ext/server/api.py`, and the README's API section documents them.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type {
  ClosureEntry,
  DataEntry,
  GpuSampleRow,
  MetricSeries,
  MetricStats,
  RunListEntry,
  RunView,
  Status
} from './records.generated';

export { KINDS, STATUSES } from './records.generated';

export const API_PATH = 'pykernel-ext/api/v1';

// The run record's types are generated from pykernel_ext/records.py (through its JSON Schema): the Python and
// TypeScript sides cannot drift apart without a test failing. The names below are the ones the views use.
export type RunStatus = Status;
export type IRunSummary = RunListEntry;
export type IMetricStats = MetricStats;

export interface IRunsPage {
  runs: IRunSummary[];
  /** Matching runs; null when the request asked not to count (`count=false`). */
  total: number | null;
  offset: number;
  limit: number;
  /** Pass as `after` for the next page (keyset paging); null on the last page. */
  next_cursor?: string | null;
  sort?: string;
}

export interface IKeyCount {
  key: string;
  count: number;
  /** Parameters only: every value is a number. */
  numeric?: boolean;
}

/** The keys the filtered runs hold, for the column picker. */
export interface IRunKeys {
  params: IKeyCount[];
  metrics: IKeyCount[];
  tags: IKeyCount[];
  runs_examined: number;
  sampled: boolean;
}

/** A change to one run (`PATCH runs/<id>`); absent fields stay as they are. */
export interface IRunPatch {
  name?: string;
  note?: string | null;
  starred?: boolean;
  archived?: boolean;
  tags?: { set?: Record<string, string>; remove?: string[] };
}

export interface IDeleteReport {
  deleted: string[];
  blobs_removed: number;
  bytes_freed: number;
  environments_removed: number;
}

export type ISeries = MetricSeries;

export type IDataInput = DataEntry;

export type IClosureEntry = ClosureEntry;

export type IRunGpuSample = GpuSampleRow;

export type IRunDetail = RunView;

export interface ISideBySide {
  names: string[];
  values: Record<string, unknown[]>;
  different: string[];
}

export interface IComparison {
  runs: IRunSummary[];
  params: ISideBySide;
  metrics: ISideBySide;
  data: ISideBySide;
  outputs: ISideBySide;
  metric_series: Record<string, (ISeries | null)[]>;
  code: { hashes: (string | null)[]; same: boolean; diffs: string[] };
  environment: {
    fields: Record<string, unknown[]>;
    changed: Record<string, unknown[]>;
    packages_changed: Record<string, (string | null)[]>;
  };
  git: (string | null)[];
}

export interface IGpuSample {
  index: number;
  uuid: string;
  name: string;
  utilization_percent: number | null;
  memory_used_bytes: number | null;
  memory_total_bytes: number | null;
  power_watts: number | null;
  temperature_c: number | null;
  timestamp: number;
}

export interface IGpuHost {
  host: string | null;
  source: 'local' | 'dask';
  worker: string | null;
  name?: string | null;
  available: boolean;
  reason: string | null;
  driver_version: string | null;
  gpus: IGpuSample[];
}

export interface IGpuReport {
  timestamp: number;
  hosts: IGpuHost[];
  gpu_count: number;
}

/** Which runs: the filter part of a list query (also what `runs/keys` takes). */
export interface IRunsFilter {
  notebook?: string;
  status?: string;
  kind?: string;
  tag?: string;
  /** The search syntax: `lr=0.1 loss<=0.2 status:failed tag:k=v words`. */
  q?: string;
  parent?: string;
  top_level?: boolean;
  sweep?: string;
  group_sweeps?: boolean;
  /** Comma-separated run ids. */
  ids?: string;
  archived?: 'exclude' | 'include' | 'only';
  starred?: boolean;
}

export interface IRunsQuery extends IRunsFilter {
  limit?: number;
  offset?: number;
  /** A `next_cursor` from the previous page (keyset paging; not with `offset`). */
  after?: string;
  /** `started_at` (and other columns), `param:NAME`, `metric:NAME`, `metric:NAME:min|max`. */
  sort?: string;
  order?: 'asc' | 'desc';
  /** false: do not count the matching runs (a next page). */
  count?: boolean;
  /** true: each row's metric last/min/max in `metric_stats`. */
  stats?: boolean;
}

export interface IRunsEvent {
  runs: IRunSummary[];
  more: boolean;
}

export type Topic = 'runs' | 'gpus';

export interface IEventHandlers {
  runs?: (event: IRunsEvent) => void;
  gpus?: (report: IGpuReport) => void;
  /** The channel is (re)connected: state may have been missed, so refresh. */
  open?: () => void;
  /** The channel failed; the browser retries on its own. */
  error?: () => void;
}

export interface IEventStream {
  close(): void;
}

/** An API error with the server's JSON `message`. */
export class APIError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
    this.name = 'APIError';
  }
}

/** A request the caller cancelled (a page that scrolled away); not an error to show. */
export class AbortedError extends Error {
  constructor() {
    super('cancelled');
    this.name = 'AbortedError';
  }
}

/** What the models need from the server; `RunsClient` implements it, tests fake it. */
export interface IRunsAPI {
  listRuns(query: IRunsQuery, signal?: AbortSignal): Promise<IRunsPage>;
  runKeys(filter: IRunsFilter): Promise<IRunKeys>;
  getRun(id: string): Promise<IRunDetail>;
  patchRun(id: string, patch: IRunPatch): Promise<IRunSummary>;
  deleteRun(id: string): Promise<IDeleteReport>;
  /** The executed notebook a `pykernel-ext run` run stored (nbformat JSON). */
  executedNotebook(id: string): Promise<Record<string, unknown>>;
  executedNotebookUrl(id: string): string;
  compare(ids: string[]): Promise<IComparison>;
  gpus(): Promise<IGpuReport>;
  subscribe(topics: Topic[], handlers: IEventHandlers): IEventStream;
  artifactUrl(runId: string, path: string): string;
  logUrl(runId: string, stream: 'stdout' | 'stderr'): string;
}

/** Query string of defined, non-empty values, in a stable order. */
export function queryString(params: object): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '') {
      continue;
    }
    parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

/** Each segment of a recorded artifact path percent-encoded, slashes kept. */
export function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

/**
 * Call the API: `endPoint` is relative to `/pykernel-ext/api/v1/`. Rejects with `APIError`
 * carrying the server's message (or a network error's) so views can show it as text.
 */
export async function requestAPI<T>(
  endPoint: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, API_PATH, endPoint);
  let response: Response;
  let text: string;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
    text = await response.text();
  } catch (error) {
    if (init.signal?.aborted) {
      throw new AbortedError();
    }
    throw new APIError(0, `cannot reach the server: ${String(error)}`);
  }
  let data: unknown = null;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      throw new APIError(response.status, `not JSON from ${endPoint}: ${text.slice(0, 200)}`);
    }
  }
  if (!response.ok) {
    const message = (data as { message?: string } | null)?.message ?? response.statusText;
    throw new APIError(response.status, message || `HTTP ${response.status}`);
  }
  return data as T;
}

type EventSourceCtor = new (url: string, init?: EventSourceInit) => EventSource;

/** The real client over `requestAPI` and server-sent events. */
export class RunsClient implements IRunsAPI {
  constructor(
    private readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings(),
    private readonly eventSource: EventSourceCtor | undefined = (globalThis as {
      EventSource?: EventSourceCtor;
    }).EventSource
  ) {}

  listRuns(query: IRunsQuery, signal?: AbortSignal): Promise<IRunsPage> {
    return requestAPI<IRunsPage>(`runs${queryString(query)}`, signal ? { signal } : {}, this.settings);
  }

  runKeys(filter: IRunsFilter): Promise<IRunKeys> {
    return requestAPI<IRunKeys>(`runs/keys${queryString(filter)}`, {}, this.settings);
  }

  getRun(id: string): Promise<IRunDetail> {
    return requestAPI<IRunDetail>(`runs/${encodeURIComponent(id)}`, {}, this.settings);
  }

  /** Rename, annotate, tag, star or archive (Jupyter's auth and XSRF header come with the request). */
  patchRun(id: string, patch: IRunPatch): Promise<IRunSummary> {
    return requestAPI<IRunSummary>(
      `runs/${encodeURIComponent(id)}`,
      { method: 'PATCH', body: JSON.stringify(patch), headers: { 'Content-Type': 'application/json' } },
      this.settings
    );
  }

  /** Delete a run, its child runs and the stored files no other run uses. */
  deleteRun(id: string): Promise<IDeleteReport> {
    return requestAPI<IDeleteReport>(`runs/${encodeURIComponent(id)}`, { method: 'DELETE' }, this.settings);
  }

  executedNotebook(id: string): Promise<Record<string, unknown>> {
    return requestAPI<Record<string, unknown>>(`runs/${encodeURIComponent(id)}/notebook`, {}, this.settings);
  }

  executedNotebookUrl(id: string): string {
    return this.url(`runs/${encodeURIComponent(id)}/notebook`);
  }

  compare(ids: string[]): Promise<IComparison> {
    return requestAPI<IComparison>(`compare${queryString({ ids: ids.join(',') })}`, {}, this.settings);
  }

  gpus(): Promise<IGpuReport> {
    return requestAPI<IGpuReport>('gpus', {}, this.settings);
  }

  artifactUrl(runId: string, path: string): string {
    return this.url(`runs/${encodeURIComponent(runId)}/artifacts/${encodePath(path)}`);
  }

  logUrl(runId: string, stream: 'stdout' | 'stderr'): string {
    return this.url(`runs/${encodeURIComponent(runId)}/logs/${stream}`);
  }

  subscribe(topics: Topic[], handlers: IEventHandlers): IEventStream {
    if (!this.eventSource) {
      handlers.error?.();
      return { close: () => undefined };
    }
    const params: Record<string, string> = { topics: topics.join(',') };
    // Like JupyterLab's websockets: the cookie authenticates unless the settings ask for the token.
    if (this.settings.appendToken && this.settings.token) {
      params.token = this.settings.token;
    }
    const source = new this.eventSource(this.url(`events${queryString(params)}`), {
      withCredentials: true
    });
    const listen = <T>(name: string, handler?: (data: T) => void): void => {
      if (handler) {
        source.addEventListener(name, event =>
          handler(JSON.parse((event as MessageEvent<string>).data) as T)
        );
      }
    };
    listen<IRunsEvent>('runs', handlers.runs);
    listen<IGpuReport>('gpus', handlers.gpus);
    source.onopen = () => handlers.open?.();
    source.onerror = () => handlers.error?.();
    return { close: () => source.close() };
  }

  private url(endPoint: string): string {
    return URLExt.join(this.settings.baseUrl, API_PATH, endPoint);
  }
}
