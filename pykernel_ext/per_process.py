"""One object per process, built on first use and built again in a forked child.

A forked child inherits our background helpers' objects but not their threads (git capture, resource
sampling, remote output flushing), so each must be rebuilt there. The lock is replaced at fork too: a child
forked while another thread held it would otherwise wait on it forever.
"""
from __future__ import annotations

import os
import threading
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    """`PerProcess(factory).get()` returns this process's instance, creating it when needed."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._value: T | None = None
        self._pid: int | None = None
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget)

    def get(self) -> T:
        with self._lock:
            if self._value is None or self._pid != os.getpid():
                self._value = self._factory()
                self._pid = os.getpid()
            return self._value

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._value = None
