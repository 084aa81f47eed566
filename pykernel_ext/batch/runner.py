"""The driver of notebook runs: one parent run (kind `notebook`) per parameter set, executed inline or
concurrently on a Dask cluster, the tracked cells inside imported as its children. The driver writes.
"""
from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ..capture.notebook import notebook_code_text
from ..config import Settings
from ..errors import BatchError, PykernelExtError
from ..tracking import Run, RunContext, TrackOptions, open_store
from .execute import NotebookOutcome, NotebookTask, execute_notebook_task
from .parameters import literal_defaults, notebook_parameters


class NotebookRunFailed(PykernelExtError):
    """How a failed notebook run is recorded: names the failing cell and its error."""

    def __init__(self, message: str, remote_traceback: str = "") -> None:
        super().__init__(message)
        self.remote_traceback = remote_traceback or None


@dataclass
class BatchOptions:
    parallel: int = 1
    scheduler: str | None = None
    gpus_per_run: float = 0
    output_dir: Path | None = None
    kernel: str | None = None
    timeout: float | None = None
    name: str | None = None


@dataclass
class BatchResult:
    """One parameter set's outcome, as the summary table shows it."""

    run_id: str
    parameters: dict[str, Any]
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    duration_s: float = 0.0
    output_path: Path | None = None
    error: str | None = None
    children: list[str] = field(default_factory=list)


def load_notebook(path: Path) -> tuple[bytes, dict[str, Any]]:
    """The notebook's bytes and parsed JSON; BatchError when missing or not a notebook."""
    if not path.is_file():
        raise BatchError(f"notebook {path} does not exist")
    raw = path.read_bytes()
    try:
        parsed = json.loads(raw)
        if not isinstance(parsed, dict) or "cells" not in parsed:
            raise ValueError("no cells")
    except ValueError as exc:
        raise BatchError(f"{path} is not a Jupyter notebook ({exc})") from None
    return raw, parsed


DEFAULT_KERNEL = "python3"
# Names jupyter_client's KernelManager itself maps to the native kernel (papermill runs them).
_NATIVE_ALIASES = {"python": DEFAULT_KERNEL}


def resolve_kernel(requested: str | None, notebook: dict[str, Any]) -> tuple[str, str | None]:
    """The kernel to run with (--kernel, else the notebook's own, else python3), checked to exist, and a
    note for the user when the notebook names none."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    own = (notebook.get("metadata", {}).get("kernelspec") or {}).get("name")
    name = requested or own or DEFAULT_KERNEL
    note = None if requested or own else (f"the notebook names no kernel (no kernelspec in its metadata); running it "
                                          f"with {DEFAULT_KERNEL} (choose another with --kernel)")
    manager = KernelSpecManager()
    try:
        manager.get_kernel_spec(_NATIVE_ALIASES.get(name, name))
    except NoSuchKernel:
        known = ", ".join(sorted(manager.find_kernel_specs())) or "none"
        raise BatchError(f"no kernel named {name!r} is installed; installed kernels: {known} "
                         f"(choose one with --kernel)") from None
    return name, note


class BatchRunner:
    """Runs one notebook for several parameter sets and records each as a run."""

    def __init__(self, notebook: Path, options: BatchOptions, settings: Settings | None = None) -> None:
        self.notebook = Path(notebook)
        self.options = options
        self.settings = settings or Settings.from_env()
        self.notebook_bytes, parsed = load_notebook(self.notebook)
        self.kernel, self.kernel_note = resolve_kernel(options.kernel, parsed)
        metadata = parsed.get("metadata") or {}
        named = (metadata.get("language_info") or {}).get("name") or (metadata.get("kernelspec") or {}).get("language")
        self.language = None if named else "python"  # a notebook naming no kernel runs with python3's language
        self.label = _label(self.notebook, self.settings.home)
        self.parameters = notebook_parameters(parsed)  # the parameters cell: names, types, defaults
        self._defaults = literal_defaults(self.parameters)
        self.code = notebook_code_text(parsed)
        self.output_dir = Path(options.output_dir or Path("pykernel-ext-runs") / self.notebook.stem)

    def run(self, parameter_sets: list[dict[str, Any]], progress: Callable[[dict[str, int]], None] | None = None,
            reproduces: str | None = None, cwd: Path | None = None) -> list[BatchResult]:
        """Execute every parameter set; returns results in the order given.

        Kernels start in `cwd` (default: the notebook's folder) when the worker can see it.
        """
        store = open_store(self.settings)
        blob = store.blobs.put_bytes(self.notebook_bytes)
        folder = Path(cwd) if cwd else self.notebook.resolve().parent
        runs = [self._start(params, blob, reproduces, folder) for params in parameter_sets]
        store.assign_sweep([run.id for run in runs])  # one invocation's runs group as a sweep in the sidebar
        tasks = [self._task(run, params, reproduces, folder) for run, params in zip(runs, parameter_sets)]
        counts = {"total": len(tasks), "done": 0, "running": 0, "failed": 0}
        results: dict[str, BatchResult] = {}
        try:
            for outcome in self._execute(tasks, counts, progress):
                run = next(r for r in runs if r.id == outcome.run_id)
                results[run.id] = self._finish(store, run, outcome, parameter_sets[runs.index(run)])
                counts["done"] += 1
                counts["running"] -= 1
                counts["failed"] += results[run.id].status != "ok"
                if progress:
                    progress(dict(counts))
        except BaseException as exc:
            for run in runs:
                if run.id not in results:
                    run.finish(exc if isinstance(exc, KeyboardInterrupt) else NotebookRunFailed(f"the batch stopped: {exc}"))
            raise
        return [results[run.id] for run in runs]

    # ---- parts ---------------------------------------------------------------------------------

    def _start(self, params: dict[str, Any], blob: str, reproduces: str | None, folder: Path) -> Run:
        # The run's code is the notebook's code cells (not its JSON: outputs and metadata are no code), as
        # its exported script records it; relative paths among its parameters are the kernel's, the
        # notebook's folder.
        context = RunContext(kind="notebook", notebook=self.label, source=self.code, namespace={},
                             reproduces=reproduces, cwd=str(folder))
        name = self.options.name or self.notebook.stem
        options = TrackOptions(name=name, params=self._effective(params))
        run = Run(options, context, self.settings)
        run.start(capture_output=False, sample_resources=False, activate=False)
        run.add_details(notebook_file={"path": self.label, "blob": blob, "kernel": self.kernel,
                                       "size": len(self.notebook_bytes), "timeout": self.options.timeout})
        return run

    def _task(self, run: Run, params: dict[str, Any], reproduces: str | None, cwd: Path) -> NotebookTask:
        return NotebookTask(run_id=run.id, notebook_label=self.label, notebook_bytes=self.notebook_bytes,
                            parameters=params, language=self.language,
                            kernel=self.kernel, cwd=str(cwd),
                            timeout=self.options.timeout, reproduces=reproduces)

    def _effective(self, given: dict[str, Any]) -> dict[str, Any]:
        """The notebook's defaults (those that are literals) overridden by the values given."""
        return {**self._defaults, **given}

    def _execute(self, tasks: list[NotebookTask], counts: dict[str, int],
                 progress: Callable[[dict[str, int]], None] | None) -> Iterator[NotebookOutcome]:
        if self.options.parallel <= 1 and not self.options.scheduler and not self.options.gpus_per_run:
            for task in tasks:  # one at a time, in this process: no cluster to start
                counts["running"] += 1
                if progress:
                    progress(dict(counts))
                yield execute_notebook_task(task)
            return
        from .cluster import BatchCluster

        with BatchCluster(self.options, self.settings) as cluster:
            yield from cluster.map(tasks, counts, progress)

    def _finish(self, store, run: Run, outcome: NotebookOutcome, params: dict[str, Any]) -> BatchResult:
        from ..store.transfer import import_runs

        children = import_runs(store, outcome.bundle, parent_id=run.id) if outcome.bundle else []
        metrics = _children_metrics(store, children)
        run.summarize_metrics(metrics)
        output_path = self._write_output(run.id, outcome.executed)
        executed_blob = store.blobs.put_bytes(outcome.executed) if outcome.executed else None
        error = NotebookRunFailed(_describe(outcome.error), outcome.error.get("traceback", "")) if outcome.error else None
        # Time spent queued for a worker is not the run's.
        run.finish(error, started_at=outcome.started_at or None, logs={}, resources={"cpu_seconds": outcome.cpu_seconds}, namespace={}, extra_details={
            "executed_notebook": {"blob": executed_blob, "path": str(output_path) if output_path else None},
            "notebook_error": outcome.error, "worker": {"host": outcome.host}, "children_count": len(children),
        })
        return BatchResult(run.id, params, run.status, metrics, outcome.duration_s, output_path,
                           _describe(outcome.error) if outcome.error else None, children)

    def _write_output(self, run_id: str, executed: bytes | None) -> Path | None:
        if executed is None:
            return None
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / f"{self.notebook.stem}-{run_id[:8]}.ipynb"
        path.write_bytes(executed)
        return path


def _children_metrics(store, children: list[str]) -> dict[str, float]:
    """Last value of each metric over the children, in start order (the final cell's word wins)."""
    merged: dict[str, float] = {}
    for child in children:
        merged.update(store.get_run(child).get("metrics") or {})
    return merged


def _describe(error: dict[str, Any] | None) -> str:
    """`cell 5 (`assert loss < 1`): AssertionError: ...`: the cell counted from 1 in the notebook as the
    user wrote it, quoted from the cell papermill marked."""
    if not error:
        return ""
    number = error.get("cell_number")
    where = f"cell {number}" if number is not None else "the notebook"
    first_line = (error.get("cell_source") or "").strip().splitlines()[:1]
    if first_line:
        where += f" (`{first_line[0][:60]}`)"
    return f"{where}: {error['ename']}: {error['evalue']}".rstrip(": ")


def _label(path: Path, home: Path) -> str:
    absolute = path.resolve()
    with contextlib.suppress(ValueError):
        return absolute.relative_to(home).as_posix()
    return absolute.as_posix()


def print_progress(counts: dict[str, int], stream=sys.stderr) -> None:
    """One progress line, rewritten in place: a bar plus done / running / failed counts."""
    total = max(counts["total"], 1)
    width = 24
    filled = int(width * counts["done"] / total)
    bar = "#" * filled + "-" * (width - filled)
    end = "\n" if counts["done"] >= counts["total"] else ""
    stream.write(f"\r[{bar}] {counts['done']}/{counts['total']} done, {counts['running']} running, "
                 f"{counts['failed']} failed{end}")
    stream.flush()

