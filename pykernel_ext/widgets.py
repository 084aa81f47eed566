"""Run status in a cell's output: an ipywidget in Jupyter, plain text elsewhere.

User strings (names, parameter values) are always escaped: the summary is text, never markup.
"""
from __future__ import annotations

import html
from typing import Any

_STATUS_COLORS = {"ok": "#2e7d32", "failed": "#c62828", "interrupted": "#ef6c00", "running": "#1565c0"}


def in_jupyter_frontend() -> bool:
    """True in a kernel talking to a Jupyter front end (widgets render there); False in a terminal."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def show_run_summary(run: Any) -> None:
    """Display the one-line summary of a finished run at the end of the cell's output."""
    line = run.summary_line()
    if not in_jupyter_frontend():
        print(line)
        return
    from IPython.display import display

    display(_summary_widget(run, line))


def _summary_widget(run: Any, line: str):
    import ipywidgets

    class RunSummary(ipywidgets.HTML):
        # Viewers without widget state (nbconvert, GitHub, papermill output) show the plain line.
        def _repr_mimebundle_(self, **kwargs: Any):
            bundle = super()._repr_mimebundle_(**kwargs)
            if isinstance(bundle, dict):
                bundle["text/plain"] = line
            return bundle

    color = _STATUS_COLORS.get(run.status, "#555")
    body = html.escape(line).replace(html.escape(run.status), f'<b style="color:{color}">{html.escape(run.status)}</b>', 1)
    return RunSummary(value=f'<span class="pykernel-ext-run-summary" style="font-family:monospace;font-size:12px">'
                            f"{body}</span>")


def remote_job_view(job: Any) -> Any:
    """The live status of a `--no-wait` remote cell: a widget with its status line and output in Jupyter,
    one printed line elsewhere (the output is then in the handle's `.stdout` / `.stderr`)."""
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
    """Status line plus an Output area; updated from the job's background thread (comm messages are
    thread-safe in ipykernel)."""

    def __init__(self, job: Any) -> None:
        import ipywidgets
        from IPython.display import display

        class RemoteJobBox(ipywidgets.VBox):
            # Viewers without widget state (nbconvert, GitHub, papermill output) show the status line.
            def _repr_mimebundle_(self, **kwargs: Any):
                bundle = super()._repr_mimebundle_(**kwargs)
                if isinstance(bundle, dict):
                    bundle["text/plain"] = job.summary()
                return bundle

        self._header = ipywidgets.HTML()
        self._out = ipywidgets.Output()
        self._box = RemoteJobBox([self._header, self._out])
        self.status(job)
        display(self._box)

    def stream(self, name: str, text: str) -> None:
        (self._out.append_stderr if name == "stderr" else self._out.append_stdout)(text)

    def display(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        self._out.outputs += ({"output_type": "display_data", "data": data, "metadata": metadata},)

    def clear(self, wait: bool) -> None:
        self._out.outputs = ()

    def status(self, job: Any) -> None:
        line = job.summary()
        color = _STATUS_COLORS.get(job.status, "#555")
        prefix = f"remote {job.name!r}: "
        rest = line[len(prefix) + len(job.status):] if line.startswith(prefix) else ""
        body = (f'{html.escape(prefix)}<b style="color:{color}">{html.escape(job.status)}</b>{html.escape(rest)}'
                if rest else html.escape(line))
        self._header.value = (f'<span class="pykernel-ext-remote-job" style="font-family:monospace;font-size:12px">'
                              f"{body}</span>")


class LiveRunStatus:
    """A tracked cell's status while it runs (run id, state, elapsed time, GPU use), refreshed every
    second from a daemon thread; closed when the cell ends and its summary line takes over.

    Does nothing outside a Jupyter front end. Its static fallback is empty, so a saved notebook shows only
    the final summary.
    """

    REFRESH_SECONDS = 1.0

    def __init__(self, run: Any) -> None:
        self.run = run
        self.widget: Any = None
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
        display(self.widget)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh, name="pykernel-ext-live-status", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.widget is None:
            return
        self._stop.set()
        self._thread.join(timeout=2)
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
        color = _STATUS_COLORS["running"]
        body = " · ".join(html.escape(p) for p in parts).replace("running", f'<b style="color:{color}">running</b>', 1)
        return f'<span class="pykernel-ext-live-status" style="font-family:monospace;font-size:12px">{body}</span>'


def _gpu_text() -> str:
    from .gpu import gpu_status, sample_gpus

    if not gpu_status().available:
        return "no GPU"
    samples = sample_gpus()
    return ", ".join(f"GPU{s.index} {s.utilization_percent or 0:.0f}% {(s.memory_used_bytes or 0) / 2**30:.1f} GiB"
                     for s in samples) or "GPU: no reading"
