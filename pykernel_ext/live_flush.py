"""Live flushes of running runs: their metric points and their stdout/stderr reach the store while the code
still runs, so a kernel killed mid-cell (OOM killer, `kill -9`, a crash in CUDA) keeps what it had logged.

One daemon thread per process serves every running run: each is flushed every FLUSH_SECONDS, or at once when
it has gathered more than a threshold (`wake`). The user's code only appends to buffers; it never waits on the
store. Like the resource sampler's thread, it is rebuilt in a forked child (`PerProcess`).
"""
from __future__ import annotations

import logging
import time
from typing import Protocol

from .due_thread import DueThread
from .per_process import PerProcess

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 2.0


class LiveTarget(Protocol):
    def flush_live(self) -> None:
        """Write what was gathered since the last flush. Must not raise for store trouble (it warns)."""


class LiveFlusher:
    """One daemon thread flushing registered runs when they are due."""

    def __init__(self) -> None:
        self._thread: DueThread[LiveTarget] = DueThread(
            "pykernel-ext-live-flush", lambda target: target.flush_live(), lambda _: FLUSH_SECONDS, _flush_failed)

    def add(self, target: LiveTarget) -> None:
        """Flush `target` every FLUSH_SECONDS from now until `remove`."""
        self._thread.add(target, time.monotonic() + FLUSH_SECONDS)

    def wake(self, target: LiveTarget) -> None:
        """Flush `target` now (it gathered a lot); ignored once it was removed."""
        self._thread.wake(target)

    def remove(self, target: LiveTarget) -> None:
        self._thread.remove(target)


def _flush_failed(target: LiveTarget) -> None:
    logger.warning("pykernel-ext: a live flush failed; the run is written when it ends", exc_info=True)


_instance: PerProcess[LiveFlusher] = PerProcess(LiveFlusher)


def live_flusher() -> LiveFlusher:
    """This process's flusher (its thread starts on first use)."""
    return _instance.get()
