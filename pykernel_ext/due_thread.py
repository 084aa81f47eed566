"""One daemon thread that calls an action on registered items, each when it is due and then at its own
interval: the live flush of running runs and the resource sampler both use one.

Starting and joining a thread per run costs ~0.2 ms, most of a tracked cell's budget, so runs register with a
long-lived thread instead, and unregistering never waits for it. Rebuilt in a forked child by its owner
(`PerProcess`), since a fork keeps no threads.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Generic, Hashable, TypeVar

Item = TypeVar("Item", bound=Hashable)


class DueThread(Generic[Item]):
    """Calls `action(item)` for each registered item when it is due, then every `interval_of(item)` seconds.
    `on_error(item)` is called (inside an `except`) when the action raises: one item's failure must not end
    the thread that serves every item."""

    def __init__(self, name: str, action: Callable[[Item], None], interval_of: Callable[[Item], float],
                 on_error: Callable[[Item], None]) -> None:
        self._action, self._interval_of, self._on_error = action, interval_of, on_error
        self._cond = threading.Condition()
        self._due: dict[Item, float] = {}  # item -> monotonic time it is next due
        self._wake_at: float | None = None  # when the waiting thread wakes by itself; None: only if notified
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def add(self, item: Item, first_due: float) -> None:
        """Serve `item` from monotonic time `first_due` on, until `remove`."""
        with self._cond:
            self._due[item] = first_due
            # A notify costs a GIL hand-off on every tracked cell; only wake a thread that would sleep past due.
            if self._wake_at is None or first_due < self._wake_at:
                self._cond.notify()

    def wake(self, item: Item) -> None:
        """Serve `item` now; ignored once it was removed."""
        with self._cond:
            if item in self._due:
                self._due[item] = 0.0
                self._cond.notify()

    def remove(self, item: Item) -> None:
        with self._cond:
            self._due.pop(item, None)  # no notify: the thread finds out when it next wakes

    def _loop(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [item for item, at in self._due.items() if at <= now]
                for item in due:
                    self._due[item] = now + self._interval_of(item)
                if not due:
                    timeout = min(self._due.values()) - now if self._due else None
                    self._wake_at = None if timeout is None else now + timeout
                    self._cond.wait(timeout)
                    self._wake_at = None
                    continue
            for item in due:  # outside the lock: a store write or a GPU reading takes milliseconds
                try:
                    self._action(item)
                except Exception:  # noqa: BLE001 - reported by on_error; the thread serves every item
                    self._on_error(item)
