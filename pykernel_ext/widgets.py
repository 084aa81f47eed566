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
