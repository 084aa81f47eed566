"""Mirroring: with PYKERNEL_EXT_MLFLOW_URI set, every run that ends is pushed to MLflow in the background.

The process that writes the store mirrors (DESIGN: the driver writes), so a kernel mirrors its cells and
`%%remote` cells, `pykernel-ext run` its notebook runs with the cells they bring back, a script its
`track()` blocks. When a run ends, `run_ended` adds it to the outbox table (one short write, so a
process killed right after loses nothing) and wakes this process's mirror thread, which imports mlflow
and pushes. A cell never waits for MLflow: a server that is down or refuses leaves the run pending in the
outbox, retried with backoff by this process or any later one mirroring to the same target;
`pykernel-ext mlflow status` shows it.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import warnings
from pathlib import Path

from ..per_process import PerProcess
from ..store import RunStore
from ..store.outbox import MlflowOutbox, owner_name
from .client import check_reachable
from .target import MlflowTarget, ServerUnreachable, scrub

log = logging.getLogger("pykernel_ext.sync")

ENV_RETRY_MAX_S = "PYKERNEL_EXT_MLFLOW_RETRY_MAX_S"  # the longest wait between two attempts (default 300)
ENV_EXIT_WAIT_S = "PYKERNEL_EXT_MLFLOW_EXIT_WAIT_S"  # how long a process that ends waits for its pushes (30)
# A run's git state lands a moment after it ends (git runs on another thread); wait that long before pushing.
SETTLE_S = 1.0
CLAIM_LIMIT = 50
LEASE_S = 600.0
IDLE_AFTER_S = 2 * SETTLE_S
ENV_PARENT_RUN = "PYKERNEL_EXT_PARENT_RUN"


def run_ended(store: RunStore, run_id: str) -> None:
    """Queue a run that just ended (and the cell runs a notebook run brought back) for MLflow.

    Called by tracking in the thread that finished the run: one short write, then the mirror thread
    takes over. Does nothing unless PYKERNEL_EXT_MLFLOW_URI is set."""
    target = MlflowTarget.from_env()
    # A kernel that papermill runs for `pykernel-ext run` records into a scratch store and hands its
    # runs to the driver, which imports and mirrors them: the kernel itself does not.
    if target is None or os.environ.get(ENV_PARENT_RUN):
        return
    try:
        run_ids = [run_id] + _descendants(store, run_id)
        MlflowOutbox(store, target.label, target.experiment).enqueue(run_ids, not_before=time.time() + SETTLE_S)
        _mirror.get().watch(store, target)
    except Exception as exc:  # noqa: BLE001 - the run is recorded; only its trip to MLflow is in doubt
        warnings.warn(f"pykernel-ext: run {run_id[:8]} is recorded but was not queued for MLflow "
                      f"({scrub(str(exc), target.tracking_uri)}); push it with `pykernel-ext mlflow push {run_id[:8]}`",
                      MirrorWarning, stacklevel=3)


class MirrorWarning(UserWarning):
    """A run could not be queued for MLflow; it is recorded locally all the same."""


def _descendants(store: RunStore, run_id: str) -> list[str]:
    """Runs under this one that never passed through a run's end here (imported from a notebook run)."""
    found, frontier = [], [run_id]
    while frontier:
        rows, _ = store.list_runs(parent_id=frontier.pop(), limit=100_000, descending=False)
        children = [r["id"] for r in rows if r["status"] != "running"]
        found += children
        frontier += children
    return found


class Mirror:
    """This process's mirror thread: drains the outbox of the stores it has seen, for the target of
    the environment."""

    def __init__(self) -> None:
        self._stores: dict[Path, RunStore] = {}
        self._target: MlflowTarget | None = None
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pusher = None
        self.last_error: str | None = None
        atexit.register(self.wait_at_exit)

    def watch(self, store: RunStore, target: MlflowTarget) -> None:
        """Drain `store` (from now on) and push what is due."""
        # Imported here, not first on the mirror thread: at interpreter exit (a script that just ended,
        # its push still to do) importing it fails ("can't register atexit after shutdown").
        import concurrent.futures.thread  # noqa: F401

        with self._lock:
            self._stores.setdefault(store.store_dir, store)
            if self._target != target:
                self._target, self._pusher = target, None
            self._idle.clear()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="pykernel-ext-mlflow-mirror", daemon=True)
                self._thread.start()
        self._wake.set()

    def _loop(self) -> None:
        self._prepare()
        while True:
            delay = self._drain_all()
            # Idle: nothing due soon (what waits is due later, or leased by another process).
            if delay is None or delay > IDLE_AFTER_S:
                self._idle.set()
            self._wake.wait(timeout=delay if delay is not None else 3600)
            self._wake.clear()

    def _prepare(self) -> None:
        """Import mlflow now, while the process still runs (a script ends soon after its last run)."""
        try:
            from .client import require_mlflow

            require_mlflow()
        except Exception as exc:  # noqa: BLE001 - said once; the runs stay queued until mlflow is installed
            self._note_outcome(self._target, str(exc), 0)

    def _drain_all(self) -> float | None:
        """Push everything due; returns seconds until the next run is due (None: nothing pending)."""
        with self._lock:
            stores, target = list(self._stores.values()), self._target
        next_due: float | None = None
        for store in stores:
            try:
                due = self._drain(store, target)
            except Exception as exc:  # noqa: BLE001 - the thread must survive; the runs stay queued
                self._note_outcome(target, scrub(f"{type(exc).__name__}: {exc}", target.tracking_uri), 0)
                due = time.time() + 30
            if due is not None:
                next_due = due if next_due is None else min(next_due, due)
        return None if next_due is None else max(0.05, next_due - time.time())

    def _drain(self, store: RunStore, target: MlflowTarget) -> float | None:
        outbox = MlflowOutbox(store, target.label, target.experiment)
        while True:
            claimed = outbox.claim_due(owner_name(), lease_s=LEASE_S, limit=CLAIM_LIMIT)
            if not claimed:
                return outbox.next_due()
            try:
                check_reachable(target)  # a server that is down costs no mlflow request (nor its retries)
                results = self._pusher_for(store, target).push_claimed(claimed)
            except Exception as exc:  # noqa: BLE001 - unreachable, or no mlflow: every claimed run keeps it
                message = scrub(str(exc) if isinstance(exc, ServerUnreachable) else f"{type(exc).__name__}: {exc}",
                                target.tracking_uri)
                for run_id in claimed:
                    outbox.mark_failed(run_id, message, _retry_max_s())
                self._note_outcome(target, message, len(claimed))
                return outbox.next_due()
            failed = [r for r in results if r.action == "failed"]
            self._note_outcome(target, failed[-1].message if failed else None, len(failed))
            if failed:
                return outbox.next_due()  # a server that fails once fails the rest too: back off

    def _note_outcome(self, target: MlflowTarget, error: str | None, failures: int) -> None:
        # Logged once when pushes start failing and once when they work again, not at every retry:
        # a kernel shows a background thread's log in whatever cell runs at that moment.
        if error and not self.last_error:
            log.warning("pykernel-ext: %d run(s) not pushed to MLflow %s yet (%s); they stay in the outbox and "
                        "are retried (pykernel-ext mlflow status)", failures, target.label, error)
        elif self.last_error and not error:
            log.info("pykernel-ext: pushing to MLflow %s works again", target.label)
        self.last_error = error

    def _pusher_for(self, store: RunStore, target: MlflowTarget):
        from .push import Pusher  # imports mlflow: only on this thread, only when there is work

        with self._lock:
            if self._pusher is None or self._pusher.store is not store:
                self._pusher = Pusher(store, target, workers=1, retry_max_s=_retry_max_s())
            return self._pusher

    def wait_at_exit(self) -> None:
        """At interpreter exit (a script, `pykernel-ext run`), give pushes in flight a bounded time to end,
        unless the server is failing: those runs stay in the outbox for the next process."""
        deadline = time.monotonic() + _float_env(ENV_EXIT_WAIT_S, 30.0)
        self._wake.set()
        while self._thread is not None and self._thread.is_alive() and not self.last_error:
            if self._idle.wait(timeout=0.1) or time.monotonic() > deadline:
                return


def _retry_max_s() -> float:
    return _float_env(ENV_RETRY_MAX_S, 300.0)


def _float_env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        log.warning("pykernel-ext: %s=%r is not a number; using %s", name, os.environ.get(name), default)
        return default


_mirror: PerProcess[Mirror] = PerProcess(Mirror)
