"""The run record and the messages between processes, typed once.

Everything else derives from here: the store's columns and sortable fields (`SUMMARY_COLUMNS`), the status
and kind lists, the CLI's `--json`, the server's JSON Schema (`pykernel_ext.record_schema`, served at
`/pykernel-ext/api/v1/schema` and written to `pykernel_ext/schema/run-record.schema.json`) and the front end's
types (`extension/src/records.generated.ts`, generated from that schema; a test fails when any of them drifts).

A run is a `RunSummary` (what list views read: one row of the `runs` table) plus `RunDetails` (everything
else, stored as one JSON document); `RunRecord` is both, with the series, artifacts and children a full read
adds. Remote workers and notebook executions report to the process that writes the store with the messages
at the end of this module.

This module imports nothing of the project, and nothing heavy: it is loaded by every process.
"""
# No `from __future__ import annotations`: TypedDict must see Required[...] as objects, not strings.
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict, Union, get_args, get_type_hints

try:  # Python 3.11+
    from typing import NotRequired, Required
except ImportError:  # pragma: no cover - 3.10
    from typing_extensions import NotRequired, Required

# ---- statuses and kinds ---------------------------------------------------------------------------------

Status = Literal["running", "ok", "failed", "interrupted"]
Kind = Literal["cell", "script", "remote", "notebook", "mlflow"]
STATUSES: tuple[str, ...] = get_args(Status)
KINDS: tuple[str, ...] = get_args(Kind)
FINAL_STATUSES: tuple[str, ...] = tuple(s for s in STATUSES if s != "running")

JSONValue = Any  # any JSON value (NaN and infinities are written as null)
JSONObject = dict[str, Any]


# ---- the summary: one row of the `runs` table ------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """How a summary field is stored and listed. `column`: its SQL column (JSON-encoded when `json`);
    `sortable`: the list can be ordered by it; `nullable`: some runs have no value (they sort last)."""

    column: str | None = None
    json: bool = False
    sortable: bool = False
    nullable: bool = True
    words: bool = False  # free words of a search match it


class RunSummary(TypedDict):
    """What a list view shows of a run; the columns of the `runs` table (every one is present; a value the run
    does not have is null)."""

    id: Annotated[str, Column(nullable=False, words=True)]
    kind: Annotated[Kind, Column(sortable=True, nullable=False)]
    status: Annotated[Status, Column(sortable=True, nullable=False)]
    started_at: Annotated[float, Column(sortable=True, nullable=False)]
    name: Annotated[str | None, Column(sortable=True, words=True)]
    parent_id: Annotated[str | None, Column()]  # the notebook or script run a cell run belongs to
    notebook: Annotated[str | None, Column(sortable=True, words=True)]  # relative to the store's home
    cell_id: Annotated[str | None, Column()]
    execution_count: Annotated[int | None, Column()]
    ended_at: Annotated[float | None, Column(sortable=True)]
    duration_s: Annotated[float | None, Column(sortable=True)]
    code_hash: Annotated[str | None, Column()]
    environment_id: Annotated[str | None, Column()]
    host: Annotated[str | None, Column()]  # where the code ran (a remote cell: its worker)
    error_type: Annotated[str | None, Column(words=True)]
    error_message: Annotated[str | None, Column(words=True)]
    cost_usd: Annotated[float | None, Column(sortable=True)]
    params: Annotated[dict[str, JSONValue], Column(column="params_json", json=True, nullable=False, words=True)]
    metrics: Annotated[dict[str, float | None], Column(column="metrics_json", json=True, nullable=False)]
    tags: Annotated[dict[str, str], Column(column="tags_json", json=True, nullable=False, words=True)]
    reproduces: Annotated[str | None, Column()]  # the run this one re-ran (`pykernel-ext reproduce`)
    updated_at: Annotated[float, Column(sortable=True, nullable=False)]
    note: Annotated[str | None, Column(words=True)]  # the user's own note (plain text)
    starred: Annotated[bool, Column(nullable=False)]
    archived: Annotated[bool, Column(nullable=False)]  # left out of the default views, still queryable
    sweep_id: Annotated[str | None, Column()]  # runs of one `pykernel-ext run` invocation share it


# Written by the process that owns a run, never listed: they say whether its owner still lives.
OWNER_COLUMNS: tuple[str, ...] = ("owner_host", "owner_pid", "owner_started_at")


def summary_columns() -> dict[str, Column]:
    """Field name -> its Column, in declaration order (the store's single field list)."""
    hints = get_type_hints(RunSummary, include_extras=True)
    columns = {}
    for name, hint in hints.items():
        meta = next((m for m in getattr(_strip_required(hint), "__metadata__", ()) if isinstance(m, Column)), None)
        if meta is None:
            raise TypeError(f"RunSummary.{name} has no Column annotation")
        columns[name] = Column(meta.column or name, meta.json, meta.sortable, meta.nullable, meta.words)
    return columns


def _strip_required(hint: Any) -> Any:
    origin = getattr(hint, "__origin__", None)
    if origin in (Required, NotRequired):
        return get_args(hint)[0]
    return hint


SUMMARY_COLUMNS: dict[str, Column] = summary_columns()


# ---- the details: everything else, one JSON document per run ---------------------------------------------


class ErrorRecord(TypedDict):
    """How a run failed: the exception's type, its message and the traceback the user saw."""

    type: str
    message: str
    traceback: str


class ClosureEntry(TypedDict, total=False):
    """One piece of the code a run used beyond its own text: a notebook function or class, or a module of the
    user's own (its source stored once, as a blob)."""

    name: Required[str]
    kind: Required[Literal["function", "class", "module"]]
    source: str | None
    hash: str | None
    error: str | None
    path: str | None
    blob: str | None


class CodeRecord(TypedDict, total=False):
    source: str
    hash: str | None
    closure: list[ClosureEntry]
    imports: list[str]  # `import numpy as np`: what re-running the code needs first
    reads: list[str]
    writes: list[str]
    globals_read: list[str]


class DataEntry(TypedDict, total=False):
    """A value or file the run read, with its content hash."""

    name: Required[str]
    source: str  # namespace | --data | param NAME | session NAME
    kind: str | None
    hash: str | None
    size: int | None
    detail: str | None
    path: str | None
    error: str | None


class OutputEntry(TypedDict, total=False):
    """A name the run assigned: a plain value, or a content hash for data."""

    name: Required[str]
    type: str
    value: JSONValue
    hash: str | None
    size: int | None
    detail: str | None
    error: str | None


class LogsRecord(TypedDict, total=False):
    stdout_blob: str | None
    stderr_blob: str | None
    stdout_bytes: int
    stderr_bytes: int
    truncated: bool
    partial: bool  # the process died: the logs end at the last live flush


class CostRecord(TypedDict, total=False):
    usd: float | None
    gpu_hours: float
    cpu_hours: float
    gpu_hour_price: float
    cpu_hour_price: float


class GitRecord(TypedDict, total=False):
    commit: str | None
    branch: str | None
    remote_url: str | None  # credentials removed
    dirty: bool
    diff: str | None
    diff_truncated: bool
    untracked: list[str]
    captured_at: float
    error: str | None


class RemoteDetails(TypedDict, total=False):
    """What a remote cell records of its trip (and, in a session, where it belongs)."""

    key: str
    requirements: str
    notes: list[str]
    sent_bytes: int
    returned_bytes: int
    session: str
    session_cell: int
    previous_run: str | None  # the session's cell before this one
    session_worker: str
    sent_names: list[str]
    kept: dict[str, int]  # names left in the session, with their size


class NotebookError(TypedDict, total=False):
    """The cell a notebook run failed in, as papermill marks it."""

    kind: str
    cell_index: int | None
    cell_number: int | None  # counted from 1, papermill's own cells left out
    cell_id: str | None
    cell_source: str | None
    execution_count: int | None
    ename: str
    evalue: str
    traceback: str


class RunDetails(TypedDict, total=False):
    """Everything about a run beyond its summary."""

    code: CodeRecord
    data: list[DataEntry]
    outputs: list[OutputEntry]
    environment_summary: JSONObject  # python, platform, host, torch, package count
    hardware: JSONObject
    resources: JSONObject  # peak_rss_bytes, cpu_seconds, gpu_summary, gpus_used, ...
    cwd: str
    options: JSONObject
    warnings: list[str]  # what could not be recorded, and why
    error: ErrorRecord | None
    logs: LogsRecord
    cost: CostRecord
    git: GitRecord | None
    worker: JSONObject  # a remote cell's worker: address, host, resources, GPUs
    remote: RemoteDetails
    artifacts_unchanged: list[str]  # matched an --artifacts glob but not written by the run
    notebook_file: JSONObject
    executed_notebook: JSONObject
    notebook_error: NotebookError | None
    children_count: int


class MetricSeries(TypedDict):
    steps: list[int | None]
    values: list[float | None]
    timestamps: list[float]
    downsampled_from: NotRequired[int]  # the server thins long series for charts


class ArtifactEntry(TypedDict):
    path: str
    blob: str
    size: int


class GpuSampleRow(TypedDict):
    host: str | None
    gpu_index: int
    timestamp: float
    utilization: float | None
    memory_used: int | None
    memory_total: int | None


class LogsText(TypedDict, total=False):
    """The run's output as text (for a run still running: what it printed so far)."""

    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    stdout_error: str  # why a stream could not be read (a damaged record)
    stderr_error: str


class PythonInfo(TypedDict, total=False):
    version: str
    implementation: str
    executable: str


class TorchInfo(TypedDict, total=False):
    version: str | None
    cuda: str | None  # the CUDA version torch was built for
    cudnn: int | None
    cuda_available: bool | None
    imported: bool


class EnvironmentRecord(TypedDict, total=False):
    """The software environment, stored once per distinct fingerprint."""

    python: PythonInfo
    platform: str
    machine: str
    hostname: str
    packages: dict[str, str]  # normalized name -> version
    torch: TorchInfo | None
    cuda_visible_devices: str | None


class RunRecord(RunSummary, RunDetails, total=False):
    """A run in full, as `runs show --json` prints it."""

    metric_series: Required[dict[str, MetricSeries]]
    artifacts: Required[list[ArtifactEntry]]
    gpu_samples: Required[list[GpuSampleRow]]
    children: Required[list[str]]
    logs_text: LogsText
    environment: EnvironmentRecord | None


# ---- what the server adds for the sidebar ---------------------------------------------------------------


class MetricStats(TypedDict):
    last: float | None
    min: float | None
    max: float | None
    count: int


class SweepInfo(TypedDict):
    size: int
    statuses: dict[str, int]


class RunListEntry(RunSummary, total=False):
    """A row of the server's run list: the summary, and what the table shows beside it."""

    notebook_server_path: str | None  # where Lab opens the notebook (under the Jupyter root), if it can
    children_count: int
    sweep: SweepInfo  # a folded sweep's size and statuses
    metric_stats: dict[str, MetricStats]


class RunView(RunListEntry, RunRecord, total=False):
    """The server's run route: the full record, and what the detail view shows beside it."""

    child_runs: list[RunListEntry]
    executed_notebook_server_path: str | None


# ---- messages to the process that writes the store -------------------------------------------------------


class StreamEvent(TypedDict):
    type: Literal["stream"]
    key: str
    name: Literal["stdout", "stderr"]
    text: str


class DisplayEvent(TypedDict):
    type: Literal["display"]
    key: str
    data: JSONObject
    metadata: JSONObject


class ClearEvent(TypedDict):
    type: Literal["clear"]
    key: str
    wait: bool


class MetricEvent(TypedDict):
    type: Literal["metric"]
    key: str
    step: int | None
    values: dict[str, float]


class StartEvent(TypedDict):
    type: Literal["start"]
    key: str
    info: JSONObject  # the worker: address, host, pid, resources, GPUs


class EndEvent(TypedDict):
    type: Literal["end"]
    key: str
    status: Status


# What a worker sends while a remote cell runs (Dask worker events, in order).
WorkerEvent = Union[StreamEvent, DisplayEvent, ClearEvent, MetricEvent, StartEvent, EndEvent]


class RemoteOutcome(TypedDict, total=False):
    """What a worker answers when a remote cell ends (a stateless cell's task result, a session's reply).

    `graph` (a packed object graph) holds the results; everything else is plain data for the run record."""

    status: Required[Status]
    error: ErrorRecord
    graph: Any  # remote.graph.Packed
    dropped: dict[str, str]  # names that could not come back, and why
    unpulled: list[str]
    kept: dict[str, int]  # sessions: names left there, and their size
    received: list[str]  # sessions: notebook values it received with the cell
    returned_bytes: int
    outputs: list[OutputEntry]
    scalars: dict[str, float]  # --metrics values
    data: list[DataEntry]  # hashes of values that live on the worker
    warnings: list[str]
    worker: JSONObject
    resources: JSONObject
    started_at: float
    ended_at: float
    events: int  # sessions: output events sent, so the kernel knows when it has them all


@dataclass
class CellPayload:
    """A remote cell for its worker (the inputs travel beside it, as one packed graph)."""

    key: str
    topic: str  # the worker events' topic (the kernel's subscription)
    source: str  # Python source after IPython's transforms
    filename: str  # "<remote cell N>": what tracebacks show
    display_source: str  # the cell as the user sees it, for traceback source lines
    line_offset: int = 0  # lines before the body in the notebook cell (the `%%remote` line)
    writes: list[str] = field(default_factory=list)
    pull: list[str] = field(default_factory=list)  # bring back only these (default: the writes)
    source_lines: dict[str, list[str]] = field(default_factory=dict)  # linecache of shipped functions
    sample_interval: float = 0.5
    silent: bool = False  # the cell ends with `;`: do not display its last expression
    metrics: list[str] = field(default_factory=list)  # --metrics names: their final values are sent home


@dataclass
class SessionCell:
    """A session cell: the payload of any remote cell, plus what the session needs to know."""

    payload: CellPayload
    inputs: Any  # remote.graph.Packed | None: the notebook values that changed since they were last sent
    reads: list[str] = field(default_factory=list)  # names the cell reads (data hashes of those living there)
    home_bytes: int = 1_000_000  # values the cell assigns up to this size also go home


@dataclass
class NotebookTask:
    """A notebook execution for a worker (or this process); plain data, so it pickles to any cluster."""

    run_id: str
    notebook_label: str  # the notebook's path as the store shows it
    notebook_bytes: bytes
    parameters: dict[str, Any]  # what papermill injects (the values given)
    kernel: str
    cwd: str | None = None  # the notebook's folder, when the worker can see it
    timeout: float | None = None  # per cell, as papermill's execution_timeout
    reproduces: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    language: str | None = None  # for a notebook whose metadata names none (papermill needs it to inject)


@dataclass
class NotebookOutcome:
    """What a notebook execution reports to its driver: status, error, the executed notebook and the runs
    its tracked cells recorded in a private store (the bundle the driver imports as the run's children)."""

    run_id: str
    status: Status
    error: NotebookError | None
    executed: bytes | None
    bundle: JSONObject | None
    host: str
    started_at: float | None  # when the worker began (a queued run waited before that)
    duration_s: float
    cpu_seconds: float
