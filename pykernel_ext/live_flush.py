"""Live flushes of running runs: their metric points and their stdout/stderr reach the store while the code
still runs, so a kernel killed mid-cell (OOM killer, `kill -9`, a crash in CUDA) keeps what it had logged.

One daemon thread per process serves every running run: each is flushed every FLUSH_SECONDS, or at once when
it has gathered more than a threshold (`wake`). The user's code only appends to buffers; it never waits on the
store. Like the resource sampler's thread, it is rebuilt in a forked child (`PerProcess`).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from .per_process import PerProcess

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 2.0


class LiveTarget(Protocol):
    def flush_live(self) -> None:
        """Write what was gathered since the last flush. Must not raise for store trouble (it warns)."""


class LiveFlusher:
    """One daemon thread flushing registered runs when they are due."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[LiveTarget, float] = {}  # target -> monotonic time of its next flush
        self._wake_at: float | None = None  # when the waiting thread wakes by itself; None: only if notified
        threading.Thread(target=self._loop, name="pykernel-ext-live-flush", daemon=True).start()

    def add(self, target: LiveTarget) -> None:
        """Flush `target` every FLUSH_SECONDS from now until `remove`."""
        due = time.monotonic() + FLUSH_SECONDS
        with self._cond:
            self._due[target] = due
            # A notify costs a GIL hand-off on every tracked cell; only wake a thread that would sleep past due.
            if self._wake_at is None or due < self._wake_at:
                self._cond.notify()

    def wake(self, target: LiveTarget) -> None:
        """Flush `target` now (it gathered a lot); ignored once it was removed."""
        with self._cond:
            if target in self._due:
                self._due[target] = 0.0
                self._cond.notify()

    def remove(self, target: LiveTarget) -> None:
        with self._cond:
            self._due.pop(target, None)  # no notify: the thread finds out when it next wakes

    def _loop(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [t for t, at in self._due.items() if at <= now]
                for target in due:
                    self._due[target] = now + FLUSH_SECONDS
                if not due:
                    timeout = min(self._due.values()) - now if self._due else None
                    self._wake_at = None if timeout is None else now + timeout
                    self._cond.wait(timeout)
                    self._wake_at = None
                    continue
            for target in due:  # outside the lock: a store write takes milliseconds
                try:
                    target.flush_live()
                except Exception:  # noqa: BLE001 - this thread serves every run; one failure must not end it
                    logger.warning("pykernel-ext: a live flush failed; the run is written when it ends",
                                   exc_info=True)


_instance: PerProcess[LiveFlusher] = PerProcess(LiveFlusher)


def live_flusher() -> LiveFlusher:
    """This process's flusher (its thread starts on first use)."""
    return _instance.get()
