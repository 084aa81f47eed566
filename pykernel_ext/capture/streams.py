"""Tee stdout and stderr while a run is active: the user sees output live as usual, the run keeps a copy.

With `on_pending`, the run also gets what was written since it last asked (`take_pending`), so a live flush
can append it to the store while the code runs; the pieces taken, in order, are exactly the kept copy.
"""
from __future__ import annotations

import io
import sys
import threading
from typing import Any, Callable, TextIO

STREAMS = ("stdout", "stderr")
PENDING_THRESHOLD_CHARS = 64 * 1024  # a burst of output is flushed at once, not only every few seconds


class _TeeStream:
    """Writes go to the original stream first (so display is unchanged), then to a capped buffer."""

    def __init__(self, original: TextIO, cap_bytes: int, on_pending: Callable[[], None] | None = None) -> None:
        self._original = original
        self._buffer = io.StringIO()
        self._cap = cap_bytes
        self._size = 0
        self.truncated = False
        self._lock = threading.Lock()
        self._on_pending = on_pending
        self._pending: list[str] = []
        self._pending_size = 0
        self._signalled = False

    def write(self, text: str) -> int:
        written = self._original.write(text)
        if isinstance(text, str):
            signal = False
            with self._lock:
                room = self._cap - self._size
                if room > 0:
                    kept = text[:room]
                    self._buffer.write(kept)
                    self._size += len(kept)
                    if self._on_pending is not None and kept:
                        self._pending.append(kept)
                        self._pending_size += len(kept)
                        signal = self._pending_size >= PENDING_THRESHOLD_CHARS and not self._signalled
                        self._signalled = self._signalled or signal
                if len(text) > room:
                    self.truncated = True
            if signal:  # outside the lock: the callback wakes another thread
                self._on_pending()
        return written

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def getvalue(self) -> str:
        with self._lock:
            return self._buffer.getvalue()

    def take_pending(self) -> str:
        """What was kept since the last call (empty without `on_pending`)."""
        with self._lock:
            text = "".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
            self._signalled = False
        return text

    def __getattr__(self, name: str) -> Any:
        # flush, isatty, fileno, encoding, ... behave exactly as the original stream's.
        return getattr(self._original, name)


class OutputCapture:
    """Context manager installing tees on sys.stdout / sys.stderr, restored in `finally`.

    `on_pending` is called (from the writing thread, at most once between two `take_pending` calls) when
    more than PENDING_THRESHOLD_CHARS wait to be taken; without it, nothing is kept for taking.
    """

    def __init__(self, cap_bytes: int = 8 * 1024 * 1024, on_pending: Callable[[], None] | None = None) -> None:
        self._cap = cap_bytes
        self._on_pending = on_pending
        self._saved: tuple[TextIO, TextIO] | None = None
        self.stdout: _TeeStream | None = None
        self.stderr: _TeeStream | None = None

    def start(self) -> "OutputCapture":
        self._saved = (sys.stdout, sys.stderr)
        self.stdout = _TeeStream(sys.stdout, self._cap, self._on_pending)
        self.stderr = _TeeStream(sys.stderr, self._cap, self._on_pending)
        sys.stdout, sys.stderr = self.stdout, self.stderr
        return self

    def take_pending(self) -> list[tuple[str, str]]:
        """(stream, text) for each stream with text written since the last call."""
        pieces = [(name, tee.take_pending()) for name, tee in (("stdout", self.stdout), ("stderr", self.stderr))
                  if tee is not None]
        return [(name, text) for name, text in pieces if text]

    def stop(self) -> dict[str, Any]:
        """Restore the streams (only if still ours) and return what was written."""
        if self._saved is not None:
            if sys.stdout is self.stdout:
                sys.stdout = self._saved[0]
            if sys.stderr is self.stderr:
                sys.stderr = self._saved[1]
            self._saved = None
        return {
            "stdout": self.stdout.getvalue() if self.stdout else "",
            "stderr": self.stderr.getvalue() if self.stderr else "",
            "truncated": bool((self.stdout and self.stdout.truncated) or (self.stderr and self.stderr.truncated)),
        }

    def __enter__(self) -> "OutputCapture":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
