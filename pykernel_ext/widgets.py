"""Run status in a cell's output: live while a run runs, and a record of it that survives saving.

While a tracked cell runs, an ipywidget shows its state, elapsed time, GPU use and latest metrics, with a
link that opens the run in the Runs sidebar. When it ends, and for a `--no-wait` remote cell from the start,
the output is a plain MIME bundle: `application/vnd.pykernel-ext.run+json` (the run's id and a snapshot,
which the JupyterLab extension renders live from the store, so a reopened notebook shows how the run
ended, and writes that final state back into the output), plus `text/html` and `text/plain` for every
other viewer. Widget state is not saved with a notebook; this bundle is.

User strings (names, parameter values) are always escaped: the status is text, never markup.
"""
from __future__ import annotations

import html
import math
from typing import Any

from .records import FINAL_STATUSES

RUN_MIME = "application/vnd.pykernel-ext.run+json"
LINK_ATTRIBUTE = "data-pykernel-ext-run"  # the JupyterLab extension opens the run when such an element is clicked
MAX_METRICS_SHOWN = 4
_STATUS_COLORS = {"ok": "#2e7d32", "failed": "#c62828", "interrupted": "#ef6c00", "running": "#1565c0",
                  "queued": "#6a1b9a"}


def in_jupyter_frontend() -> bool:
    """True in a kernel talking to a Jupyter front end (widgets render there); False in a terminal."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def run_snapshot(run: Any, job: Any = None) -> dict[str, Any]:
    """What the output records of a run: enough to show it without the store, and its id to follow it."""
    summary = getattr(run, "summary", {}) or {}
    ended = getattr(run, "ended_at", None)
    snapshot = {
        "version": 1, "run_id": run.id, "name": summary.get("name"), "kind": summary.get("kind"),
        "status": run.status, "started_at": run.started_at, "ended_at": ended,
        "duration_s": (ended - run.started_at) if ended else None,
        "metrics": _finite_metrics(run.latest_metrics), "error_type": summary.get("error_type"),
    }
    if job is not None:
        snapshot["job"] = {"name": job.name, "status": job.status, "worker": job.worker}
    return snapshot


def run_bundle(run: Any, line: str, job: Any = None) -> dict[str, Any]:
    """The MIME bundle of a run's status: the JupyterLab extension's type, HTML and plain text."""
    status = job.status if job is not None else run.status
    return {RUN_MIME: run_snapshot(run, job), "text/plain": line, "text/html": _status_html(line, status)}


def show_run_summary(run: Any) -> None:
    """Display the one-line summary of a finished run at the end of the cell's output."""
    line = run.summary_line()
    if not in_jupyter_frontend():
        print(line)
        return
    from IPython.display import display

    display(run_bundle(run, line), raw=True)


def remote_job_view(job: Any) -> Any:
    """The live status of a `--no-wait` remote cell: its status bundle and its output in Jupyter, one
    printed line elsewhere (the output is then in the handle's `.stdout` / `.stderr`)."""
    if not in_jupyter_frontend():
        return _TextJobView(job)
    return _WidgetJobView(job)


class _TextJobView:
    def __init__(self, job: Any) -> None:
        handle = job.variable or "_remote_job"
        print(f"{job.summary()} · `{handle}.result()` brings its variables back")

    def stream(self, name: str, text: str) -> None:
        pass  # kept by the job (handle.stdout / handle.stderr)

    def display(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        pass

    def clear(self, wait: bool) -> None:
        pass

    def status(self, job: Any) -> None:
        pass


class _WidgetJobView:
    """The job's status bundle (kept current by the lab extension from the store, and by display updates
    while the cell still runs) above an Output widget with what the cell prints; updated from the job's
    background thread (comm messages are thread-safe in ipykernel)."""

    def __init__(self, job: Any) -> None:
        import ipywidgets
        from IPython.display import display

        self._status = display(run_bundle(job.run, job.summary(), job), raw=True, display_id=True)
        self._out = ipywidgets.Output()
        self._out_display = display(self._out, display_id=True)
        self._settled = False

    def stream(self, name: str, text: str) -> None:
        (self._out.append_stderr if name == "stderr" else self._out.append_stdout)(text)

    def display(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        self._out.outputs += ({"output_type": "display_data", "data": data, "metadata": metadata},)

    def clear(self, wait: bool) -> None:
        self._out.outputs = ()

    def status(self, job: Any) -> None:
        if self._status is not None:
            self._status.update(run_bundle(job.run, job.summary(), job), raw=True)
        if job.status in FINAL_STATUSES and not self._settled:
            # Widget state is not saved with a notebook: the output ends as plain text, so a reopened
            # notebook shows what the cell printed instead of "model not found".
            self._settled = True
            self._out_display.update({"text/plain": job.stdout + job.stderr}, raw=True)


class LiveRunStatus:
    """A tracked cell's status while it runs (run id, state, elapsed time, GPU use, latest metrics, a link
    to the run in the sidebar), refreshed every second from a daemon thread; closed when the cell ends and
    its summary takes over.

    Does nothing outside a Jupyter front end. Its static fallback is empty, so a saved notebook shows only
    the final summary.
    """

    REFRESH_SECONDS = 1.0

    def __init__(self, run: Any) -> None:
        self.run = run
        self.widget: Any = None
        self._display: Any = None
        self._stop = None
        self._thread = None

    def start(self) -> "LiveRunStatus":
        if not in_jupyter_frontend():
            return self
        import threading

        import ipywidgets
        from IPython.display import display

        class LiveStatus(ipywidgets.HTML):
            def _repr_mimebundle_(self, **kwargs: Any):
                bundle = super()._repr_mimebundle_(**kwargs)
                if isinstance(bundle, dict):
                    bundle["text/plain"] = ""
                return bundle

        self.widget = LiveStatus(value=self._render())
        self._display = display(self.widget, display_id=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh, name="pykernel-ext-live-status", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.widget is None:
            return
        self._stop.set()
        self._thread.join(timeout=2)
        # Replace the widget's output before closing it: a saved notebook would otherwise keep a reference
        # to a widget whose state is gone ("Error displaying widget: model not found" when reopened).
        self._display.update({"text/plain": ""}, raw=True)
        self.widget.close()
        self.widget = None

    def _refresh(self) -> None:
        while not self._stop.wait(self.REFRESH_SECONDS):
            try:
                self.widget.value = self._render()
            except Exception:  # noqa: BLE001 - a closed comm while stopping; the summary follows anyway
                return

    def _render(self) -> str:
        import time

        elapsed = time.time() - self.run.started_at
        parts = [f"run {self.run.id[:8]}", "running", f"{elapsed:.0f} s", _gpu_text()]
        parts += [f"{k} {_number(v)}" for k, v in list(self.run.latest_metrics.items())[:MAX_METRICS_SHOWN]]
        color = _STATUS_COLORS["running"]
        body = " · ".join(html.escape(p) for p in parts).replace("running", f'<b style="color:{color}">running</b>', 1)
        return (f'<span class="pykernel-ext-live-status" style="font-family:monospace;font-size:12px">{body} · '
                f"{_run_link(self.run.id)}</span>")


def _status_html(line: str, status: str) -> str:
    color = _STATUS_COLORS.get(status, "#555")
    escaped = html.escape(status)
    body = html.escape(line).replace(escaped, f'<b style="color:{color}">{escaped}</b>', 1)
    return f'<span class="pykernel-ext-run-summary" style="font-family:monospace;font-size:12px">{body}</span>'


def _run_link(run_id: str) -> str:
    # The id is hexadecimal (the tracker makes it); escaping keeps that a fact of this function, not a hope.
    safe = html.escape(run_id, quote=True)
    return (f'<a href="#" {LINK_ATTRIBUTE}="{safe}" title="Show this run in the Runs sidebar" '
            f'style="color:#1565c0;text-decoration:underline;cursor:pointer">open in Runs</a>')


def _finite_metrics(values: dict[str, Any]) -> dict[str, float | None]:
    # JSON in a notebook cannot hold NaN: a diverged loss is recorded as null.
    return {k: (float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None) for k, v in values.items()}


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _gpu_text() -> str:
    from .gpu import gpu_status, sample_gpus

    if not gpu_status().available:
        return "no GPU"
    samples = sample_gpus()
    return ", ".join(f"GPU{s.index} {s.utilization_percent or 0:.0f}% {(s.memory_used_bytes or 0) / 2**30:.1f} GiB"
                     for s in samples) or "GPU: no reading"
