"""A matplotlib backend for remote cells: Agg rendering, with `show()` sending figures to the notebook.

Selected on workers through MPLBACKEND (see `streaming.prepare_matplotlib`); it works like
matplotlib-inline's backend in a kernel, without needing IPython on the worker.
"""
from __future__ import annotations

from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg as FigureCanvas  # noqa: F401 - the backend's canvas
from matplotlib.backend_bases import FigureManagerBase as FigureManager  # noqa: F401


def show(*args: Any, **kwargs: Any) -> None:
    """Send every open figure of this worker's running cell home as a PNG, then close it."""
    from .streaming import flush_figures

    flush_figures()
