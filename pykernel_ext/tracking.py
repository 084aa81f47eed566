"""The Run lifecycle shared by every entry point: a `%%track` cell, `pykernel_ext.track()` in a script,
a `%%remote` cell and a papermill run are the same record with a different `kind`.

Tracking never breaks the user's work: a capture that fails becomes a note in the run's `warnings`; a
store that cannot be written gives one warning and the code still runs. Only a user mistake that would
make the record meaningless (a `--data` path that does not exist) stops the code before it runs.
"""
from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .capture import code as code_capture
from .capture import inputs, outputs
from .capture.closure import store_module_sources
from .capture.params import explicit_params, params_from_namespace
from .capture.streams import OutputCapture
from .config import Settings
from .errors import DataPathNotFound, PykernelExtError
from . import run_facts as facts
from .live_flush import live_flusher
from .records import RunDetails, RunSummary
from .store import RunStore

logger = logging.getLogger(__name__)

ENV_PARENT_RUN = "PYKERNEL_EXT_PARENT_RUN"
ENV_NOTEBOOK = "PYKERNEL_EXT_NOTEBOOK"
ENV_REPRODUCES = "PYKERNEL_EXT_REPRODUCES"  # set by `pykernel-ext reproduce` for the kernel it starts
# Values a cell can change in place: when it does (`losses.append`), they are its state, not its parameters.
_MUTABLE_CONTAINERS = (list, dict, set, bytearray, collections.deque)
METRIC_FLUSH_ROWS = 5000  # a burst of metric points is flushed at once, not only every few seconds


class TrackingWarning(UserWarning):
    """Recording a run failed in part; the user's code ran and kept its results."""


@dataclass
class TrackOptions:
    """What the user asked to record, from magic options or `track()` arguments."""

    name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    param_names: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class RunContext:
    """Where the code runs: its source, namespace and notebook position."""

    kind: str = "cell"
    source: str = ""
    python_source: str | None = None  # source after IPython's transforms (magics, `!`)
    analysis_source: str | None = None  # the Python the cell runs, when magics stacked under it wrap it
    namespace: dict[str, Any] | None = None
    module_name: str = "__main__"
    notebook: str | None = None
    cell_id: str | None = None
    execution_count: int | None = None
    parent_id: str | None = None
    code_hash: str | None = None  # for runs whose code is not Python source (a notebook run: its content hash)
    reproduces: str | None = None
    cwd: str | None = None  # the folder the code runs in (relative paths); default: this process's


_stores: dict[Path, RunStore] = {}
_stores_lock = threading.Lock()
_active: list["Run"] = []


def open_store(settings: Settings | None = None) -> RunStore:
    """This process's store for the resolved location, opened once and reused."""
    settings = settings or Settings.from_env()
    with _stores_lock:
        store = _stores.get(settings.store_dir)
        if store is None:
            store = RunStore.open(settings.store_dir)
            store.mark_orphans_interrupted()
            _stores[settings.store_dir] = store
        return store


def active_run() -> "Run | None":
    """The innermost run in progress in this process, if any."""
    return _active[-1] if _active else None


def add_active(run: Any) -> None:
    """Make `run` (a Run, or any object with `log` and `log_artifact`) the target of `log()`.

    A remote worker installs a stand-in this way, so `pykernel_ext.log()` in a remote cell reaches the
    kernel's run."""
    if run not in _active:
        _active.append(run)


def remove_active(run: Any) -> None:
    with contextlib.suppress(ValueError):
        _active.remove(run)


class Run:
    """One recorded execution. Create with `start_run`, end with `finish`."""

    def __init__(self, options: TrackOptions, context: RunContext, settings: Settings) -> None:
        self.id = uuid.uuid4().hex
        self.options = options
        self.context = context
        self.settings = settings
        self.status = "running"
        self.store: RunStore | None = None
        self.warnings: list[str] = []
        self.details: RunDetails = {}
        self.summary: RunSummary = {}  # type: ignore[typeddict-item] - filled by start()
        self.started_at = time.time()
        self.ended_at: float | None = None
        self._metric_rows: list[tuple[str, int | None, float, float]] = []
        self._metric_counts: dict[str, int] = {}
        self._last_metrics: dict[str, float] = {}
        # Live flushes run on another thread: `_rows_lock` guards the pending metric points, `_flush_lock`
        # keeps a flush from landing after `finish` has written the run's end.
        self._rows_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._live = False
        self._live_logs_written = False
        self._live_warned = False
        self._output_pending: list[tuple[str, str]] = []  # remote output waiting for the next live flush
        self._extra_artifacts: list[Path] = []
        self._capture: OutputCapture | None = None
        self._sampler = None
        self._git_future = None
        self._reads: tuple[str, ...] = ()
        self._writes: tuple[str, ...] = ()
        self._changed: tuple[str, ...] = ()
        self._store_failed = False
        self.cwd = context.cwd or os.getcwd()
        self._artifacts_before: dict[str, Any] = {}

    # ---- public API used inside a run --------------------------------------------------------

    def log(self, step: int | None = None, **values: Any) -> None:
        """Record metric values; each name keeps a step-wise series (steps count up when not given)."""
        now = time.time()
        with self._rows_lock:
            for key, raw in values.items():
                value = facts.as_number(raw)
                if value is None:
                    self._warn(f"metric {key}={raw!r} is not a number and was not recorded")
                    continue
                index = self._metric_counts.get(key, 0)
                self._metric_counts[key] = index + 1
                self._metric_rows.append((key, index if step is None else int(step), value, now))
                self._last_metrics[key] = value
            burst = self._live and len(self._metric_rows) >= METRIC_FLUSH_ROWS
        if burst:
            live_flusher().wake(self)

    def add_output(self, stream: str, text: str) -> None:
        """Output produced elsewhere (a remote worker), written to the store by the live flushes like a local
        cell's, so a kernel killed meanwhile keeps it."""
        if self._live and text:
            with self._rows_lock:
                self._output_pending.append((stream, text))

    def add_details(self, **fields: Any) -> None:
        """Details learnt after the run started (a notebook run's stored notebook): written with its end."""
        self.details.update(fields)

    def log_artifact(self, path: str | os.PathLike) -> None:
        """Store a file as an artifact of this run when it ends."""
        self._extra_artifacts.append(Path(path))

    # ---- lifecycle ---------------------------------------------------------------------------

    def summarize_metrics(self, values: dict[str, float]) -> None:
        """Set summary metric values without series (a notebook run summarizing its cells' metrics)."""
        self._last_metrics.update({k: v for k, v in values.items() if facts.as_number(v) is not None})

    def start(self, *, capture_output: bool = True, sample_resources: bool = True, activate: bool = True) -> "Run":
        """Record everything known before the code runs, then write the run as `running`.

        `activate=False` for runs driven side by side (a sweep): they are not the target of `log()` and
        not the parent of runs started meanwhile.
        """
        ctx, opts = self.context, self.options
        check_data_paths(opts, self.cwd)
        namespace = ctx.namespace if ctx.namespace is not None else {}
        self._analyze_code()
        code = self._guard("code closure", lambda: self._code_record(namespace), {})
        self._guard("module sources", lambda: store_module_sources(code.get("closure") or [], self._put_text), None)
        inputs_read = self._reads + tuple(code.get("globals_read", ()))
        params, data_names = self._collect_params(namespace, inputs_read)
        self.details = {
            "code": code,
            "data": self._guard("data hashes", lambda: inputs.hash_inputs(
                inputs_read + tuple(data_names), namespace, params, opts.data, self.cwd), []),
            "environment_summary": {},
            "hardware": self._guard("hardware", facts.hardware_static, {}),
            "cwd": self.cwd,
            "options": {"param_names": list(opts.param_names), "data": list(opts.data),
                        "metrics": list(opts.metrics), "artifacts": list(opts.artifacts)},
            "warnings": self.warnings,
        }
        environment_id = self._guard("environment", self._store_environment, None)
        self._git_future = self._guard("git", lambda: facts.start_git(self.settings), None)
        self.summary = {
            "id": self.id, "kind": ctx.kind, "name": opts.name or facts.default_name(ctx),
            "parent_id": ctx.parent_id or _default_parent(), "status": "running",
            "notebook": facts.notebook_label(ctx.notebook, self.settings), "cell_id": ctx.cell_id,
            "execution_count": ctx.execution_count, "started_at": self.started_at,
            "code_hash": ctx.code_hash or self.details["code"].get("hash"), "environment_id": environment_id,
            "host": facts.hostname(), "owner_pid": os.getpid(), "owner_started_at": self._process_started_at(),
            "params": params, "tags": dict(opts.tags),
            "reproduces": ctx.reproduces or (os.environ.get(ENV_REPRODUCES) if ctx.kind == "cell" else None),
        }
        self._write("start", lambda store: store.begin_run(self.summary, self.details))
        self._artifacts_before = self._guard("artifacts", lambda: outputs.snapshot_artifacts(opts.artifacts, self.cwd), {})
        self._live = self.store is not None  # nothing to flush into when the run could not be written
        if sample_resources:
            self._sampler = self._guard("resource sampling", self._start_sampler, None)
        if capture_output:
            on_pending = (lambda: live_flusher().wake(self)) if self._live else None
            self._capture = OutputCapture(self.settings.log_cap_bytes, on_pending).start()
        if self._live:
            live_flusher().add(self)
        if activate:
            add_active(self)
        self.started_at = time.time()  # the run's clock starts when the code does
        return self

    def finish(self, error: BaseException | None = None, *, started_at: float | None = None,
               logs: dict[str, Any] | None = None,
               resources: dict[str, Any] | None = None, namespace: dict[str, Any] | None = None,
               extra_details: dict[str, Any] | None = None) -> None:
        """Record the outcome. `logs`/`resources`/`namespace` override local capture (remote runs)."""
        self.ended_at = time.time()
        if started_at is not None:
            self.started_at = started_at  # the code started later than the record (a run queued for a worker)
        remove_active(self)
        if isinstance(error, SystemExit) and error.code in (None, 0):
            error = None  # sys.exit() / sys.exit(0) ends the code successfully
        self._end_live_flushes()
        captured_logs = self._capture.stop() if self._capture else {}
        sampled = self._sampler.stop() if self._sampler else {}
        logs = logs if logs is not None else captured_logs
        resources = resources if resources is not None else sampled
        namespace = namespace if namespace is not None else (self.context.namespace or {})
        self.status = facts.status_of(error)
        duration = self.ended_at - self.started_at
        self._collect_metric_names(namespace)
        artifacts = self._guard("artifacts", self._store_artifacts, [])
        self.details.update({
            "outputs": self._guard("outputs", lambda: outputs.describe_outputs(self._writes, namespace), []),
            "error": facts.error_record(error),
            "logs": self._guard("logs", lambda: self._store_logs(logs), {}),
            "resources": {k: v for k, v in resources.items() if k != "gpu_samples"},
            "cost": self._guard("cost", lambda: facts.cost(duration, resources, self.settings), {}),
            **(extra_details or {}),
        })
        git_pending = self._attach_git()
        outcome = {
            "status": self.status, "ended_at": self.ended_at, "started_at": self.started_at,
            "duration_s": duration, "error_type": type(error).__name__ if error else None,
            "error_message": facts.one_line(error) if error else None,
            "cost_usd": self.details["cost"].get("usd"),
        }
        if self._last_metrics:
            outcome["metrics"] = dict(self._last_metrics)
            self._report_metrics_to_parent()
        self.summary.update(outcome)
        gpu_samples = resources.get("gpu_samples") or []
        with self._rows_lock:
            rows, self._metric_rows = self._metric_rows, []
        self._write("finish", lambda store: store.finish_run(
            self.id, outcome, self.details, rows, artifacts, gpu_samples, drop_log_chunks=self._live_logs_written))
        if git_pending:
            # Only now: a capture that lands meanwhile calls back at once, after the run's end is written.
            self._git_future.add_done_callback(self._attach_late_git)
        if os.environ.get("PYKERNEL_EXT_MLFLOW_URI") and self.store is not None:
            from .sync.mirror import run_ended  # MLflow mirroring: sync/ loads only when it is on

            run_ended(self.store, self.id)

    def record_remote_outcome(self, error: BaseException | None, *, logs: dict[str, Any],
                              resources: dict[str, Any], worker: dict[str, Any], outputs: list | None,
                              scalars: dict[str, float], warnings: list[str], data: list[dict[str, Any]],
                              remote: dict[str, Any]) -> None:
        """Finish a run whose code ran on a worker: logs, resources, outputs, --metrics values and the data
        hashes of values that live there come from the worker; the worker is where the code ran (the run's
        owner stays this process)."""
        if worker.get("host"):
            self.summary["host"] = worker["host"]
        self.warnings.extend(warnings)
        if data:
            known = {entry.get("name") for entry in self.details.get("data") or []}
            self.details.setdefault("data", []).extend(e for e in data if e.get("name") not in known)
        extra: dict[str, Any] = {"worker": worker, "remote": remote}
        if outputs is not None:
            extra["outputs"] = outputs
        self.finish(error, logs=logs, resources=resources, namespace=dict(scalars), extra_details=extra)

    # ---- pieces of the lifecycle ------------------------------------------------------------

    def _analyze_code(self) -> None:
        source = self.context.analysis_source or self.context.python_source or self.context.source
        if not source:
            return
        try:
            names = code_capture.analyze_names(source)
        except SyntaxError:
            return  # the code itself will raise it when it runs; nothing to learn here
        self._reads, self._writes, self._changed = names.reads, names.writes, names.changed

    def _code_record(self, namespace: dict[str, Any]) -> dict[str, Any]:
        source = self.context.source
        closure = code_capture.code_closure(self._reads, namespace, self.context.module_name, Path(self.cwd))
        self.warnings.extend(closure.warnings)
        return {
            "source": source,
            "hash": code_capture.code_hash(source) if source else None,
            "closure": closure.entries,
            "imports": closure.imports,
            "reads": list(self._reads),
            "writes": list(self._writes),
            "globals_read": closure.globals_read,
        }

    def _put_text(self, text: str) -> str | None:
        store = self._store()
        return store.blobs.put_text(text) if store is not None else None

    def _collect_params(self, namespace: dict[str, Any], reads: tuple[str, ...]) -> tuple[dict[str, Any], list[str]]:
        """The parameters the code reads (with its closure) and those named; and the named values that are
        data (hashed as data, not recorded as parameters). Containers the code changes in place are its
        state (a `losses` list it appends to), not parameters, unless named; a number it adds to
        (`lr *= decay`) cannot change in place, and its value when the cell starts is an input."""
        params = params_from_namespace([name for name in reads if not (
            name in self._changed and isinstance(namespace.get(name), _MUTABLE_CONTAINERS))], namespace)
        named, data_names, missing = explicit_params(self.options.param_names, namespace)
        params.update(named)
        for name in missing:
            self._warn(f"--params names {name!r}, which is not defined")
        for name in data_names:
            self._warn(f"--params names {name!r}, which holds data: its content hash is recorded under data")
        params.update(self.options.params)
        return params, data_names

    def _report_metrics_to_parent(self) -> None:
        """A run whose parent runs in this process (an exported script's run) summarizes its children's
        metrics, as a notebook run does."""
        parent_id = self.summary.get("parent_id")
        for run in _active:
            if isinstance(run, Run) and run.id == parent_id:
                run.summarize_metrics(self._last_metrics)

    def _collect_metric_names(self, namespace: dict[str, Any]) -> None:
        for name in self.options.metrics:
            if name not in namespace:
                self._warn(f"--metrics names {name!r}, which the code did not define")
            elif name not in self._metric_counts:
                self.log(**{name: namespace[name]})

    def _store_environment(self) -> str | None:
        from .capture.environment import current_environment

        env_id, env = current_environment()
        self.details["environment_summary"] = {
            "python": env.get("python"), "platform": env.get("platform"), "host": env.get("hostname"),
            "torch": env.get("torch"), "packages": len(env.get("packages") or {}),
        }
        store = self._store()
        if store is not None and (store.store_dir, env_id) not in _known_environments:
            store.put_environment(env_id, env)
            _known_environments.add((store.store_dir, env_id))
        return env_id

    def _process_started_at(self) -> float | None:
        """When this process started: with the pid, it tells a reader whether the run's owner still lives."""
        pid = os.getpid()
        if pid not in _process_start:
            try:
                import psutil

                _process_start[pid] = psutil.Process(pid).create_time()
            except Exception as exc:  # noqa: BLE001 - recorded on the run: the check it enables is lost
                self._warn(f"this process's start time is unknown ({type(exc).__name__}: {exc}): if the "
                           "process dies and its pid is reused, this run keeps reading 'running'")
                return None
        return _process_start[pid]

    def _start_sampler(self):
        from .capture.hardware import ResourceSampler

        return ResourceSampler(interval=self.settings.gpu_sample_interval).start()

    def _store_artifacts(self) -> list[tuple[str, str, int]]:
        selection = outputs.select_artifacts(self.options.artifacts, self._artifacts_before, self.cwd)
        base = Path(self.cwd)
        for path in selection.unchanged:
            self._warn(f"--artifacts: {facts.relative_label(path, base)} matched but is as it was before this run "
                       "started (another run's file); not recorded")
        for pattern in selection.unmatched:
            self._warn(f"--artifacts {pattern!r} matched no file")
        if selection.unchanged:
            self.details["artifacts_unchanged"] = [facts.relative_label(p, base) for p in selection.unchanged]
        store = self._store()
        if store is None:
            return []
        stored = []
        for path in selection.written + self._extra_artifacts:
            digest, size = store.blobs.put_file(path)
            stored.append((facts.relative_label(path, base), digest, size))
        return stored

    def _store_logs(self, logs: dict[str, Any]) -> dict[str, Any]:
        store = self._store()
        record: dict[str, Any] = {"truncated": bool(logs.get("truncated"))}
        for stream in ("stdout", "stderr"):
            text = logs.get(stream) or ""
            record[f"{stream}_bytes"] = len(text.encode("utf-8", errors="replace"))
            record[f"{stream}_blob"] = store.blobs.put_text(text) if (store and text) else None
        return record

    def _attach_git(self) -> bool:
        """Put git in the details if its capture is done; True when it is still running (it costs
        ~20 ms), so the run is written now and git added when it lands."""
        future = self._git_future
        if future is None:
            return False
        if not future.done():
            return True
        self.details["git"] = self._git_record(future)
        return False

    def _git_record(self, future) -> dict[str, Any] | None:
        """The git capture's record; a failed capture also becomes a warning on the run."""
        try:
            record = future.result()
        except Exception as exc:  # noqa: BLE001 - a git failure must not lose the run; it becomes a warning
            self._warn(f"git not recorded: {type(exc).__name__}: {exc}")
            return None
        if isinstance(record, dict) and record.get("error"):
            self._warn(f"git state incomplete: {record['error']}")
        return record

    def _attach_late_git(self, future) -> None:
        """Runs on the git thread after the run was written: add git, or say on the run why it is missing."""
        patch = {"git": self._git_record(future), "warnings": list(self.warnings)}
        store = self._store()
        if store is None:
            return  # the run itself was not recorded; the user was warned once already
        try:
            store.merge_details(self.id, patch)
        except Exception as exc:  # noqa: BLE001 - the cell has ended; the log is the only place left to say it
            logger.warning("pykernel-ext: run %s: git state not recorded (%s: %s)", self.id[:8],
                           type(exc).__name__, exc)

    # ---- live flushes (on the flusher's thread) -----------------------------------------------

    def flush_live(self) -> None:
        """Append the metric points and output gathered since the last flush to the store."""
        with self._flush_lock:
            if not self._live or self.store is None:
                return
            with self._rows_lock:
                rows, self._metric_rows = self._metric_rows, []
                last_values = dict(self._last_metrics) if rows else None
            chunks = self._capture.take_pending() if self._capture else []
            with self._rows_lock:
                chunks, self._output_pending = chunks + self._output_pending, []
            if not rows and not chunks:
                return
            try:
                self.store.append_live(self.id, rows, last_values, chunks)
            except Exception as exc:  # noqa: BLE001 - the run's end writes everything still held
                with self._rows_lock:
                    self._metric_rows[:0] = rows  # kept for the next flush or the end
                if not self._live_warned:
                    self._live_warned = True
                    self._warn(f"a live flush failed ({type(exc).__name__}: {exc}); metrics are written when "
                               "the run ends, output written meanwhile is lost if the process dies")
                return
            self._live_logs_written = self._live_logs_written or bool(chunks)

    def _end_live_flushes(self) -> None:
        if not self._live:
            return
        live_flusher().remove(self)
        with self._flush_lock:  # waits for a flush in progress, so none lands after the end
            self._live = False

    # ---- failure handling -------------------------------------------------------------------

    def _store(self) -> RunStore | None:
        if self.store is None and not self._store_failed:
            try:
                self.store = open_store(self.settings)
            except (PykernelExtError, OSError) as exc:
                self._fail_store(exc)
        return self.store

    def _write(self, what: str, action) -> None:
        store = self._store()
        if store is None:
            return
        try:
            action(store)
        except Exception as exc:  # noqa: BLE001 - recording must never break the user's code
            self._fail_store(exc)

    def _fail_store(self, exc: BaseException) -> None:
        if self._store_failed:
            return
        self._store_failed = True
        self.store = None
        warnings.warn(f"pykernel-ext: this run was not recorded ({exc}). Your code ran and its results are "
                      "kept.", TrackingWarning, stacklevel=2)

    def _guard(self, what: str, produce, default):
        try:
            return produce()
        except Exception as exc:  # noqa: BLE001 - one failing capture must not lose the rest
            self._warn(f"{what} not recorded: {type(exc).__name__}: {exc}")
            return default

    def _warn(self, message: str) -> None:
        self.warnings.append(message)

    @property
    def recorded(self) -> bool:
        return not self._store_failed

    @property
    def latest_metrics(self) -> dict[str, float]:
        """Each metric's last logged value so far (the live status shows them while the run runs)."""
        return dict(self._last_metrics)

    def summary_line(self) -> str:
        """One line for the cell output: id, status, duration, params, data hashed."""
        duration = (self.ended_at or time.time()) - self.started_at
        params = self.summary.get("params") or {}
        shown = ", ".join(f"{k}={facts.short(v)}" for k, v in list(params.items())[:4])
        if len(params) > 4:
            shown += f" (+{len(params) - 4})"
        data = self.details.get("data") or []
        hashed = sum(1 for d in data if d.get("hash"))
        text = f"run {self.id[:8]} · {self.status} · {facts.duration(duration)}"
        if shown:
            text += f" · params: {shown}"
        text += f" · data hashed: {hashed}" + (f"/{len(data)}" if hashed != len(data) else "")
        if not self.recorded:
            text += " · NOT RECORDED (see warning)"
        elif self.warnings:
            text += f" · {len(self.warnings)} capture warning(s): pykernel-ext runs show {self.id[:8]}"
        return text


_known_environments: set[tuple[Path, str]] = set()  # (store folder, environment id) already written


def warm_up() -> threading.Thread:
    """Take the one-time probes (package list ~75 ms, NVML ~85 ms, the store's migrations) on a daemon
    thread, so the first tracked cell stays within its overhead budget."""

    def _probe() -> None:
        from .capture.environment import capture_environment

        for probe in (capture_environment, facts.hardware_static, open_store):
            try:
                probe()
            except Exception:  # noqa: BLE001 - only a head start: the run repeats the probe and warns on itself
                logger.debug("pykernel-ext: warm-up probe %s failed", probe.__name__, exc_info=True)

    thread = threading.Thread(target=_probe, name="pykernel-ext-warm-up", daemon=True)
    thread.start()
    return thread


def check_data_paths(options: TrackOptions, cwd: str) -> None:
    """Refuse a run whose `--data` names a path that does not exist (relative paths from `cwd`, the kernel's
    folder): the one mistake a run is refused for, checked before anything runs or is sent."""
    missing = [path for path in options.data if not os.path.exists(inputs.resolve(path, cwd))]
    if missing:
        raise DataPathNotFound(missing[0])


def start_run(options: TrackOptions | None = None, context: RunContext | None = None,
              settings: Settings | None = None, **start_kwargs: Any) -> Run:
    """Create and start a run (raises only for user mistakes such as a missing --data path)."""
    return Run(options or TrackOptions(), context or RunContext(), settings or Settings.from_env()).start(**start_kwargs)


def track(*args: Any, **kwargs: Any) -> Any:
    """Track a block of a script as a run; see `blocks.track`."""
    from .blocks import track as _track

    return _track(*args, **kwargs)


def log(step: int | None = None, **values: Any) -> None:
    """Log metrics to the active run: `pykernel_ext.log(loss=0.3, acc=0.9, step=epoch)`."""
    run = active_run()
    if run is None:
        warnings.warn("pykernel_ext.log() called outside a tracked run; nothing was recorded. Put it in a "
                      "%%track cell or a `with pykernel_ext.track():` block.", TrackingWarning, stacklevel=2)
        return
    run.log(step=step, **values)


_process_start: dict[int, float] = {}  # pid -> start time (a forked child has its own)


def _default_parent() -> str | None:
    outer = active_run()
    return outer.id if outer else (os.environ.get(ENV_PARENT_RUN) or None)
