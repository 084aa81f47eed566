/**
 * The only code that talks to the server: one `requestAPI`, typed payloads, the push channel.
 *
 * Payload shapes mirror `pykernel_ext/server/api.py`; the README's API section documents them.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export const API_PATH = 'pykernel-ext/api/v1';

export type RunStatus = 'running' | 'ok' | 'failed' | 'interrupted';

export interface IRunSummary {
  id: string;
  parent_id: string | null;
  kind: string;
  name: string | null;
  status: RunStatus;
  notebook: string | null;
  /** The notebook's path relative to the Jupyter root, or null when it lies outside it. */
  notebook_server_path: string | null;
  cell_id: string | null;
  execution_count: number | null;
  started_at: number;
  ended_at: number | null;
  updated_at: number;
  duration_s: number | null;
  code_hash: string | null;
  host: string | null;
  error_type: string | null;
  error_message: string | null;
  cost_usd: number | null;
  params: Record<string, unknown>;
  metrics: Record<string, number | null>;
  tags: Record<string, string>;
  reproduces: string | null;
}

export interface IRunsPage {
  runs: IRunSummary[];
  total: number;
  offset: number;
  limit: number;
}

export interface ISeries {
  steps: (number | null)[];
  values: (number | null)[];
  timestamps: number[];
  downsampled_from?: number;
}

export interface IDataInput {
  name: string;
  source?: string;
  kind?: string;
  hash?: string | null;
  size?: number | null;
  detail?: unknown;
  path?: string | null;
  error?: string | null;
}

export interface IClosureEntry {
  name: string;
  kind: string;
  source: string;
  hash?: string;
}

export interface IRunGpuSample {
  host: string | null;
  gpu_index: number;
  timestamp: number;
  utilization: number | null;
  memory_used: number | null;
  memory_total: number | null;
}

export interface IEnvironment {
  python?: { version?: string; executable?: string } | null;
  platform?: string | null;
  hostname?: string | null;
  torch?: { version?: string; cuda?: string | null } | null;
  packages?: Record<string, string>;
  [key: string]: unknown;
}

export interface IRunDetail extends IRunSummary {
  code?: {
    source?: string;
    hash?: string | null;
    closure?: IClosureEntry[];
    reads?: string[];
    writes?: string[];
  };
  data?: IDataInput[];
  outputs?: { name: string; type?: string; value?: unknown; hash?: string }[];
  metric_series: Record<string, ISeries>;
  artifacts: { path: string; blob: string; size: number }[];
  error?: { type: string; message: string; traceback: string } | null;
  logs_text: {
    stdout: string;
    stderr: string;
    stdout_truncated: boolean;
    stderr_truncated: boolean;
    /** Why a stream could not be read (a damaged record), when it could not. */
    stdout_error?: string;
    stderr_error?: string;
  };
  environment_id?: string | null;
  environment: IEnvironment | null;
  git?: {
    commit?: string;
    branch?: string;
    remote_url?: string;
    dirty?: boolean;
  } | null;
  hardware?: Record<string, unknown>;
  resources?: Record<string, unknown>;
  gpu_samples: IRunGpuSample[];
  cost?: { usd?: number; gpu_hours?: number; cpu_hours?: number };
  children: string[];
  warnings?: string[];
}

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

export interface IRunsQuery {
  limit?: number;
  offset?: number;
  notebook?: string;
  status?: string;
  kind?: string;
  tag?: string;
  q?: string;
  sort?: string;
  order?: 'asc' | 'desc';
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

/** What the models need from the server; `RunsClient` implements it, tests fake it. */
export interface IRunsAPI {
  listRuns(query: IRunsQuery): Promise<IRunsPage>;
  getRun(id: string): Promise<IRunDetail>;
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
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new APIError(0, `cannot reach the server: ${String(error)}`);
  }
  const text = await response.text();
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

  listRuns(query: IRunsQuery): Promise<IRunsPage> {
    return requestAPI<IRunsPage>(`runs${queryString(query)}`, {}, this.settings);
  }

  getRun(id: string): Promise<IRunDetail> {
    return requestAPI<IRunDetail>(`runs/${encodeURIComponent(id)}`, {}, this.settings);
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
