"""One notebook execution, as it runs on a Dask worker (or inline): papermill with a kernel whose
tracked cells record into a private scratch store, returned whole to the driver, which writes.
"""
from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from ..records import NotebookOutcome, NotebookTask
from . import failures

ENV_REPRODUCES = "PYKERNEL_EXT_REPRODUCES"


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

    from ..capture.notebook import ENV_NOTEBOOK_FILE

    env = {
        "PYKERNEL_EXT_HOME": str(scratch / "home"),
        "PYKERNEL_EXT_PARENT_RUN": task.run_id,
        "PYKERNEL_EXT_NOTEBOOK": task.notebook_label,
        ENV_NOTEBOOK_FILE: str(source),  # the kernel finds its cells' ids there (nbclient does not send them)
        **({ENV_REPRODUCES: task.reproduces} if task.reproduces else {}),
        **task.extra_env,
    }
    cwd = task.cwd if task.cwd and os.path.isdir(task.cwd) else str(scratch)
    kernel_log = scratch / "kernel-stderr.log"
    try:
        papermill.execute_notebook(
            str(source), str(executed), parameters=task.parameters, kernel_name=task.kernel, language=task.language,
            cwd=cwd,
            progress_bar=False, log_output=False, execution_timeout=task.timeout,
            kernel_manager_class=kernel_manager_with_env(env, kernel_log),
        )
    except papermill.PapermillExecutionError as exc:
        return _cell_failure(executed, exc)
    except DeadKernelError as exc:
        facts = failures.cell_facts(failures.read_executed(executed), failures.last_started_cell(
            failures.read_executed(executed)))
        return {"kind": "kernel_died", **facts, "ename": "DeadKernelError",
                "evalue": f"the kernel died while running this cell: {exc}", "traceback": _tail(kernel_log)}
    except CellTimeoutError:
        notebook = failures.read_executed(executed)
        facts = failures.cell_facts(notebook, failures.last_started_cell(notebook))
        return {"kind": "timeout", **facts, "ename": "CellTimeoutError",
                "evalue": f"the cell ran longer than {task.timeout:g} s (--timeout)", "traceback": ""}
    except Exception as exc:  # noqa: BLE001 - a kernel that fails to start, a bad notebook: the run fails
        return {"kind": "error", **failures.cell_facts(None, None), "ename": type(exc).__name__, "evalue": str(exc),
                "traceback": ""}
    return None


def _cell_failure(executed: Path, exc: Any) -> dict[str, Any]:
    """The failing cell as papermill marked it in the saved notebook, with the error the cell showed."""
    notebook = failures.read_executed(executed)
    index = failures.marked_error_cell(notebook)
    ename, evalue = exc.ename, exc.evalue
    if not evalue:  # papermill found no error output (a bad magic's UsageError goes to stderr only)
        ename, evalue = failures.error_from_outputs(notebook, index) or (ename, evalue)
    return {"kind": "cell", **failures.cell_facts(notebook, index), "ename": ename, "evalue": evalue,
            "traceback": "\n".join(exc.traceback or [])}


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


def _children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system
