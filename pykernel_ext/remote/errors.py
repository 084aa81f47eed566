"""Errors of `%%remote`: each carries what the user needs to act (the variable, the worker, the cluster)."""
from __future__ import annotations

from ..errors import PykernelExtError


class RemoteError(PykernelExtError):
    """Root of the errors a remote cell raises on purpose."""

    def _render_traceback_(self) -> list[str]:
        # Our frames say nothing useful to a notebook user; the message says what happened and what to do.
        return [f"{type(self).__name__}: {self}"]


class RemoteUsageError(RemoteError):
    """A mistake in how the cell was asked to run (shown as a usage error, nothing was sent)."""


class ShippingError(RemoteUsageError):
    """A value the cell needs cannot be sent to the worker; raised before anything is sent."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"cannot send variable {name!r} to the worker: {reason}. Nothing was sent. "
                         f"Recreate it inside the cell, or leave it out of the cell's code.")


class ClusterUnavailable(RemoteError):
    """No Dask scheduler could be reached or started."""


class ResourceUnavailable(RemoteUsageError):
    """No worker of the cluster offers what the cell asks for (`--gpus`, `--cpus`, `--memory`)."""

    def __init__(self, wanted: str, cluster: str) -> None:
        self.wanted = wanted
        self.cluster = cluster
        super().__init__(f"no worker offers {wanted}; the cluster has: {cluster}")


class WorkerDied(RemoteError):
    """The worker running the cell ended (killed, out of memory, machine lost) before the cell did."""

    def __init__(self, worker: str | None, reason: str) -> None:
        self.worker = worker
        super().__init__(f"the worker {worker or '(unknown)'} running this cell died: {reason}. Nothing was "
                         "brought back; the notebook's variables are unchanged.")


class RemoteTimeout(RemoteError):
    """The cell ran past `--timeout` and was stopped."""


class RemoteCellError(RemoteError):
    """The cell's own code raised on the worker. Shown as the remote traceback, with the cell's line numbers.

    IPython calls `_render_traceback_` instead of printing this frame's local traceback (as ipyparallel's
    RemoteError does), so the user sees where their code failed, not where we re-raised it.
    """

    def __init__(self, ename: str, evalue: str, remote_traceback: str, worker: str | None = None) -> None:
        self.ename = ename
        self.evalue = evalue
        self.remote_traceback = remote_traceback
        self.worker = worker
        super().__init__(f"{ename}: {evalue}" if evalue else ename)

    def _render_traceback_(self) -> list[str]:
        where = f" on worker {self.worker}" if self.worker else ""
        return [f"Remote {self.ename}{where}:", *self.remote_traceback.rstrip("\n").splitlines()]
