// Generated from pykernel_ext/records.py by `python -m pykernel_ext.record_schema --write`.
// Do not edit: change records.py and regenerate (a test fails when this file is out of date).

export interface ArtifactEntry {
  path: string;
  blob: string;
  size: number;
}

export interface ClearEvent {
  type: "clear";
  key: string;
  wait: boolean;
}

/** One piece of the code a run used beyond its own text: a notebook function or class, or a module of the user's own (its source stored once, as a blob). */
export interface ClosureEntry {
  name: string;
  kind: "function" | "class" | "module";
  source?: string | null;
  hash?: string | null;
  error?: string | null;
  path?: string | null;
  blob?: string | null;
}

export interface CodeRecord {
  source?: string;
  hash?: string | null;
  closure?: Array<ClosureEntry>;
  imports?: Array<string>;
  reads?: Array<string>;
  writes?: Array<string>;
  globals_read?: Array<string>;
}

export interface CostRecord {
  usd?: number | null;
  gpu_hours?: number;
  cpu_hours?: number;
  gpu_hour_price?: number;
  cpu_hour_price?: number;
}

/** A value or file the run read, with its content hash. */
export interface DataEntry {
  name: string;
  source?: string;
  kind?: string | null;
  hash?: string | null;
  size?: number | null;
  detail?: string | null;
  path?: string | null;
  error?: string | null;
}

export interface DisplayEvent {
  type: "display";
  key: string;
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
}

export interface EndEvent {
  type: "end";
  key: string;
  status: Status;
}

/** The software environment, stored once per distinct fingerprint. */
export interface EnvironmentRecord {
  python?: PythonInfo;
  platform?: string;
  machine?: string;
  hostname?: string;
  packages?: Record<string, string>;
  torch?: TorchInfo | null;
  cuda_visible_devices?: string | null;
}

/** How a run failed: the exception's type, its message and the traceback the user saw. */
export interface ErrorRecord {
  type: string;
  message: string;
  traceback: string;
}

export interface GitRecord {
  commit?: string | null;
  branch?: string | null;
  remote_url?: string | null;
  dirty?: boolean;
  diff?: string | null;
  diff_truncated?: boolean;
  untracked?: Array<string>;
  captured_at?: number;
  error?: string | null;
}

export interface GpuSampleRow {
  host: string | null;
  gpu_index: number;
  timestamp: number;
  utilization: number | null;
  memory_used: number | null;
  memory_total: number | null;
}

export type Kind = "cell" | "script" | "remote" | "notebook" | "mlflow";
export const KINDS: readonly Kind[] = ["cell", "script", "remote", "notebook", "mlflow"];

export interface LogsRecord {
  stdout_blob?: string | null;
  stderr_blob?: string | null;
  stdout_bytes?: number;
  stderr_bytes?: number;
  truncated?: boolean;
  partial?: boolean;
}

/** The run's output as text (for a run still running: what it printed so far). */
export interface LogsText {
  stdout?: string;
  stderr?: string;
  stdout_truncated?: boolean;
  stderr_truncated?: boolean;
  stdout_error?: string;
  stderr_error?: string;
}

export interface MetricEvent {
  type: "metric";
  key: string;
  step: number | null;
  values: Record<string, number>;
}

export interface MetricSeries {
  steps: Array<number | null>;
  values: Array<number | null>;
  timestamps: Array<number>;
  downsampled_from?: number;
}

export interface MetricStats {
  last: number | null;
  min: number | null;
  max: number | null;
  count: number;
}

/** The cell a notebook run failed in, as papermill marks it. */
export interface NotebookError {
  kind?: string;
  cell_index?: number | null;
  cell_number?: number | null;
  cell_id?: string | null;
  cell_source?: string | null;
  execution_count?: number | null;
  ename?: string;
  evalue?: string;
  traceback?: string;
}

/** A name the run assigned: a plain value, or a content hash for data. */
export interface OutputEntry {
  name: string;
  type?: string;
  value?: unknown;
  hash?: string | null;
  size?: number | null;
  detail?: string | null;
  error?: string | null;
}

export interface PythonInfo {
  version?: string;
  implementation?: string;
  executable?: string;
}

/** What a remote cell records of its trip (and, in a session, where it belongs). */
export interface RemoteDetails {
  key?: string;
  requirements?: string;
  notes?: Array<string>;
  sent_bytes?: number;
  returned_bytes?: number;
  session?: string;
  session_cell?: number;
  previous_run?: string | null;
  session_worker?: string;
  sent_names?: Array<string>;
  kept?: Record<string, number>;
}

/** Everything about a run beyond its summary. */
export interface RunDetails {
  code?: CodeRecord;
  data?: Array<DataEntry>;
  outputs?: Array<OutputEntry>;
  environment_summary?: Record<string, unknown>;
  hardware?: Record<string, unknown>;
  resources?: Record<string, unknown>;
  cwd?: string;
  options?: Record<string, unknown>;
  warnings?: Array<string>;
  error?: ErrorRecord | null;
  logs?: LogsRecord;
  cost?: CostRecord;
  git?: GitRecord | null;
  worker?: Record<string, unknown>;
  remote?: RemoteDetails;
  artifacts_unchanged?: Array<string>;
  notebook_file?: Record<string, unknown>;
  executed_notebook?: Record<string, unknown>;
  notebook_error?: NotebookError | null;
  children_count?: number;
}

/** A row of the server's run list: the summary, and what the table shows beside it. */
export interface RunListEntry {
  id: string;
  kind: Kind;
  status: Status;
  started_at: number;
  name: string | null;
  parent_id: string | null;
  notebook: string | null;
  cell_id: string | null;
  execution_count: number | null;
  ended_at: number | null;
  duration_s: number | null;
  code_hash: string | null;
  environment_id: string | null;
  host: string | null;
  error_type: string | null;
  error_message: string | null;
  cost_usd: number | null;
  params: Record<string, unknown>;
  metrics: Record<string, number | null>;
  tags: Record<string, string>;
  reproduces: string | null;
  updated_at: number;
  note: string | null;
  starred: boolean;
  archived: boolean;
  sweep_id: string | null;
  notebook_server_path?: string | null;
  children_count?: number;
  sweep?: SweepInfo;
  metric_stats?: Record<string, MetricStats>;
}

/** A run in full, as `runs show --json` prints it. */
export interface RunRecord {
  id: string;
  kind: Kind;
  status: Status;
  started_at: number;
  name: string | null;
  parent_id: string | null;
  notebook: string | null;
  cell_id: string | null;
  execution_count: number | null;
  ended_at: number | null;
  duration_s: number | null;
  code_hash: string | null;
  environment_id: string | null;
  host: string | null;
  error_type: string | null;
  error_message: string | null;
  cost_usd: number | null;
  params: Record<string, unknown>;
  metrics: Record<string, number | null>;
  tags: Record<string, string>;
  reproduces: string | null;
  updated_at: number;
  note: string | null;
  starred: boolean;
  archived: boolean;
  sweep_id: string | null;
  code?: CodeRecord;
  data?: Array<DataEntry>;
  outputs?: Array<OutputEntry>;
  environment_summary?: Record<string, unknown>;
  hardware?: Record<string, unknown>;
  resources?: Record<string, unknown>;
  cwd?: string;
  options?: Record<string, unknown>;
  warnings?: Array<string>;
  error?: ErrorRecord | null;
  logs?: LogsRecord;
  cost?: CostRecord;
  git?: GitRecord | null;
  worker?: Record<string, unknown>;
  remote?: RemoteDetails;
  artifacts_unchanged?: Array<string>;
  notebook_file?: Record<string, unknown>;
  executed_notebook?: Record<string, unknown>;
  notebook_error?: NotebookError | null;
  children_count?: number;
  metric_series: Record<string, MetricSeries>;
  artifacts: Array<ArtifactEntry>;
  gpu_samples: Array<GpuSampleRow>;
  children: Array<string>;
  logs_text?: LogsText;
  environment?: EnvironmentRecord | null;
}

/** What a list view shows of a run; the columns of the `runs` table (every one is present; a value the run does not have is null). */
export interface RunSummary {
  id: string;
  kind: Kind;
  status: Status;
  started_at: number;
  name: string | null;
  parent_id: string | null;
  notebook: string | null;
  cell_id: string | null;
  execution_count: number | null;
  ended_at: number | null;
  duration_s: number | null;
  code_hash: string | null;
  environment_id: string | null;
  host: string | null;
  error_type: string | null;
  error_message: string | null;
  cost_usd: number | null;
  params: Record<string, unknown>;
  metrics: Record<string, number | null>;
  tags: Record<string, string>;
  reproduces: string | null;
  updated_at: number;
  note: string | null;
  starred: boolean;
  archived: boolean;
  sweep_id: string | null;
}

/** The server's run route: the full record, and what the detail view shows beside it. */
export interface RunView {
  id: string;
  kind: Kind;
  status: Status;
  started_at: number;
  name: string | null;
  parent_id: string | null;
  notebook: string | null;
  cell_id: string | null;
  execution_count: number | null;
  ended_at: number | null;
  duration_s: number | null;
  code_hash: string | null;
  environment_id: string | null;
  host: string | null;
  error_type: string | null;
  error_message: string | null;
  cost_usd: number | null;
  params: Record<string, unknown>;
  metrics: Record<string, number | null>;
  tags: Record<string, string>;
  reproduces: string | null;
  updated_at: number;
  note: string | null;
  starred: boolean;
  archived: boolean;
  sweep_id: string | null;
  notebook_server_path?: string | null;
  children_count?: number;
  sweep?: SweepInfo;
  metric_stats?: Record<string, MetricStats>;
  code?: CodeRecord;
  data?: Array<DataEntry>;
  outputs?: Array<OutputEntry>;
  environment_summary?: Record<string, unknown>;
  hardware?: Record<string, unknown>;
  resources?: Record<string, unknown>;
  cwd?: string;
  options?: Record<string, unknown>;
  warnings?: Array<string>;
  error?: ErrorRecord | null;
  logs?: LogsRecord;
  cost?: CostRecord;
  git?: GitRecord | null;
  worker?: Record<string, unknown>;
  remote?: RemoteDetails;
  artifacts_unchanged?: Array<string>;
  notebook_file?: Record<string, unknown>;
  executed_notebook?: Record<string, unknown>;
  notebook_error?: NotebookError | null;
  metric_series: Record<string, MetricSeries>;
  artifacts: Array<ArtifactEntry>;
  gpu_samples: Array<GpuSampleRow>;
  children: Array<string>;
  logs_text?: LogsText;
  environment?: EnvironmentRecord | null;
  child_runs?: Array<RunListEntry>;
  executed_notebook_server_path?: string | null;
}

export interface StartEvent {
  type: "start";
  key: string;
  info: Record<string, unknown>;
}

export type Status = "running" | "ok" | "failed" | "interrupted";
export const STATUSES: readonly Status[] = ["running", "ok", "failed", "interrupted"];

export interface StreamEvent {
  type: "stream";
  key: string;
  name: "stdout" | "stderr";
  text: string;
}

export interface SweepInfo {
  size: number;
  statuses: Record<string, number>;
}

export interface TorchInfo {
  version?: string | null;
  cuda?: string | null;
  cudnn?: number | null;
  cuda_available?: boolean | null;
  imported?: boolean;
}

export type WorkerEvent = StreamEvent | DisplayEvent | ClearEvent | MetricEvent | StartEvent | EndEvent;
