"""pykernel-ext: tracked, reproducible, GPU-reaching notebook work.

In a notebook: `%load_ext pykernel_ext`, then `%%track` (and `%%remote`) cells.
In a script: `with pykernel_ext.track(name="train", params={...}):` and `pykernel_ext.log(loss=...)`;
remote work: `from pykernel_ext.remote import remote` (the subpackage, imported on use).
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["track", "log", "active_run", "load_ipython_extension", "__version__"]


def track(*args: Any, **kwargs: Any):
    """Track a block of a script as a run; see `pykernel_ext.tracking.track`."""
    from .tracking import track as _track

    return _track(*args, **kwargs)


def log(step: int | None = None, **values: Any) -> None:
    """Log metrics to the active run: `pykernel_ext.log(loss=0.3, step=epoch)`."""
    from .tracking import log as _log

    _log(step=step, **values)


def active_run():
    """The run in progress in this process, or None."""
    from .tracking import active_run as _active_run

    return _active_run()


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext pykernel_ext`: registers %%track (and %%remote) and binds `pykernel_ext` in the notebook,
    so `pykernel_ext.log(...)` works in a cell without an import of its own."""
    import sys

    from . import magics, tracking

    magics.register(ipython)
    ipython.user_ns.setdefault("pykernel_ext", sys.modules[__name__])
    tracking.warm_up()


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The Jupyter server extension (REST API and push channel over the run store)."""
    return [{"module": "pykernel_ext.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension shipped in the package (for `jupyter labextension develop`)."""
    return [{"src": "labextension", "dest": "pykernel-ext"}]
