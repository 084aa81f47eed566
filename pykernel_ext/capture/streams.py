"""Tee stdout and stderr while a run is active: the user sees output live as usual, the run keeps a copy."""
from __future__ import annotations

import io
import sys
import threading
from typing import Any, TextIO


class _TeeStream:
    """Writes go to the original stream first (so display is unchanged), then to a capped buffer."""

    def __init__(self, original: TextIO, cap_bytes: int) -> None:
        self._original = original
        self._buffer = io.StringIO()
        self._cap = cap_bytes
        self._size = 0
        self.truncated = False
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        written = self._original.write(text)
        if isinstance(text, str):
            with self._lock:
                room = self._cap - self._size
                if room > 0:
                    self._buffer.write(text[:room])
                    self._size += min(len(text), room)
                if len(text) > room:
                    self.truncated = True
        return written

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def getvalue(self) -> str:
        with self._lock:
            return self._buffer.getvalue()

    def __getattr__(self, name: str) -> Any:
        # flush, isatty, fileno, encoding, ... behave exactly as the original stream's.
        return getattr(self._original, name)


class OutputCapture:
    """Context manager installing tees on sys.stdout / sys.stderr, restored in `finally`."""

    def __init__(self, cap_bytes: int = 8 * 1024 * 1024) -> None:
        self._cap = cap_bytes
        self._saved: tuple[TextIO, TextIO] | None = None
        self.stdout: _TeeStream | None = None
        self.stderr: _TeeStream | None = None

    def start(self) -> "OutputCapture":
        self._saved = (sys.stdout, sys.stderr)
        self.stdout = _TeeStream(sys.stdout, self._cap)
        self.stderr = _TeeStream(sys.stderr, self._cap)
        sys.stdout, sys.stderr = self.stdout, self.stderr
        return self

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
