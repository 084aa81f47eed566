"""One notebook execution, as it runs on a Dask worker (or inline): papermill with a kernel whose
tracked cells record into a private scratch store, returned whole to the driver, which writes.
"""
from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_REPRODUCES = "PYKERNEL_EXT_REPRODUCES"


@dataclass
class NotebookTask:
    """Everything a worker needs; plain data so it pickles to any cluster."""

    run_id: str
    notebook_label: str  # the notebook's path as the store shows it
    notebook_bytes: bytes
    parameters: dict[str, Any]  # what papermill injects (the values given)
    kernel: str
    effective_parameters: dict[str, Any] = field(default_factory=dict)  # defaults + given, as recorded
    cwd: str | None = None  # the notebook's folder, when the worker can see it
    timeout: float | None = None  # per cell, as papermill's execution_timeout
    reproduces: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class NotebookOutcome:
    """What came back: status, error, the executed notebook and the tracked cells' records."""

    run_id: str
    status: str  # ok | failed
    error: dict[str, Any] | None
    executed: bytes | None
    bundle: dict[str, Any] | None
    host: str
    started_at: float | None  # when the worker began (a queued run waited before that)
    duration_s: float
    cpu_seconds: float


def execute_notebook_task(task: NotebookTask) -> NotebookOutcome:
    """Run the notebook with papermill; never raises for the notebook's own failures."""
    started = time.time()
    cpu_start = _children_cpu()
    with tempfile.TemporaryDirectory(prefix="pykernel-ext-run-") as scratch:
        scratch_path = Path(scratch)
        source = scratch_path / Path(task.notebook_label).name
        source.write_bytes(task.notebook_bytes)
        executed = scratch_path / "executed.ipynb"
        error = _run_papermill(task, source, executed, scratch_path)
        bundle = _private_bundle(scratch_path / "home")
        return NotebookOutcome(
            run_id=task.run_id, status="failed" if error else "ok", error=error,
            executed=executed.read_bytes() if executed.exists() else None, bundle=bundle,
            host=socket.gethostname(), started_at=started, duration_s=time.time() - started, cpu_seconds=_children_cpu() - cpu_start,
        )


def _run_papermill(task: NotebookTask, source: Path, executed: Path, scratch: Path) -> dict[str, Any] | None:
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    env = {
        "PYKERNEL_EXT_HOME": str(scratch / "home"),
        "PYKERNEL_EXT_PARENT_RUN": task.run_id,
        "PYKERNEL_EXT_PARAMS": json.dumps(task.effective_parameters or task.parameters, default=str),
        "PYKERNEL_EXT_NOTEBOOK": task.notebook_label,
        **({ENV_REPRODUCES: task.reproduces} if task.reproduces else {}),
        **task.extra_env,
    }
    cwd = task.cwd if task.cwd and os.path.isdir(task.cwd) else str(scratch)
    kernel_log = scratch / "kernel-stderr.log"
    try:
        papermill.execute_notebook(
            str(source), str(executed), parameters=task.parameters, kernel_name=task.kernel, cwd=cwd,
            progress_bar=False, log_output=False, execution_timeout=task.timeout,
            kernel_manager_class=kernel_manager_with_env(env, kernel_log),
        )
    except papermill.PapermillExecutionError as exc:
        return {"kind": "cell", "cell_index": exc.cell_index, "execution_count": exc.exec_count,
                "ename": exc.ename, "evalue": exc.evalue, "traceback": "\n".join(exc.traceback),
                "cell_source": _cell_source(executed, exc.cell_index)}
    except DeadKernelError as exc:
        index = _running_cell(executed)
        return {"kind": "kernel_died", "cell_index": index, "ename": "DeadKernelError",
                "evalue": f"the kernel died while running cell {index}: {exc}", "traceback": _tail(kernel_log),
                "cell_source": _cell_source(executed, index)}
    except CellTimeoutError as exc:
        index = _running_cell(executed)
        return {"kind": "timeout", "cell_index": index, "ename": "CellTimeoutError",
                "evalue": f"cell {index} ran longer than {task.timeout:g} s: {exc}", "traceback": "",
                "cell_source": _cell_source(executed, index)}
    except Exception as exc:  # noqa: BLE001 - a kernel that fails to start, a bad notebook: the run fails
        return {"kind": "error", "cell_index": None, "ename": type(exc).__name__, "evalue": str(exc),
                "traceback": "", "cell_source": None}
    return None


def kernel_manager_with_env(extra_env: dict[str, str], stderr_log: Path | None = None) -> type:
    """An AsyncKernelManager class whose kernels start with `extra_env` added to this process's
    environment (per run, so concurrent runs on one worker never share os.environ) and, given
    `stderr_log`, write their stderr there: kernel chatter stays out of the CLI's output, and the log's
    tail explains a kernel that died."""
    from jupyter_client import AsyncKernelManager

    class RunKernelManager(AsyncKernelManager):
        async def _async_pre_start_kernel(self, **kw: Any):  # type: ignore[override]
            kw["env"] = {**os.environ, **(kw.get("env") or {}), **extra_env}
            if stderr_log is not None:
                kw.setdefault("stderr", open(stderr_log, "ab"))  # noqa: SIM115 - the kernel process owns it
            return await super()._async_pre_start_kernel(**kw)

    return RunKernelManager


def _tail(log: Path, limit: int = 4000) -> str:
    try:
        return log.read_text(encoding="utf-8", errors="replace")[-limit:]
    except OSError:
        return ""


def _private_bundle(home: Path) -> dict[str, Any] | None:
    if not (home / ".pykernel_ext" / "runs.sqlite").exists():
        return None
    from ..store.transfer import export_runs, open_private_store

    with open_private_store(home) as store:
        store.mark_orphans_interrupted()
        return export_runs(store)


def _notebook(executed: Path) -> dict[str, Any] | None:
    try:
        return json.loads(executed.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _cell_source(executed: Path, index: int | None) -> str | None:
    cells = _executed_cells(_notebook(executed))
    if index is None or not 0 <= index < len(cells):
        return None
    source = cells[index].get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _executed_cells(notebook: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The cells as papermill numbered them while executing: the error banners it adds afterwards (markdown
    cells tagged papermill-error-cell-tag, one at the top) would shift every index by one or two."""
    return [cell for cell in (notebook or {}).get("cells", [])
            if "papermill-error-cell-tag" not in cell.get("metadata", {}).get("tags", [])]


def _running_cell(executed: Path) -> int | None:
    """The cell the execution stopped in (it saves after every cell): the one papermill marked running,
    else the last one it started (after a timeout papermill marks the cell completed)."""
    started = None
    for index, cell in enumerate(_executed_cells(_notebook(executed))):
        marks = cell.get("metadata", {}).get("papermill", {})
        if marks.get("status") == "running":
            return index
        if marks.get("start_time"):
            started = index
    return started


def _children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system
