"""The push channel: run status changes and GPU samples as server-sent events.

One `EventHub` per server polls the store (`runs_changed_since`) and the GPUs once a second, and only while
somebody listens; every subscriber gets the same events through its own bounded queue, so a slow browser tab
drops old GPU samples instead of growing the server's memory. Store and NVML work run on the executor.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from .api import RunsAPI, cluster_gpus, gpu_report, to_json

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0
RECONCILE_SECONDS = 15.0
CHANGES_LIMIT = 500
# A writer stamps `updated_at` before its transaction commits, so a change can become visible after a later
# one was already seen: each poll looks this far back and skips what it already sent.
OVERLAP_SECONDS = 5.0
QUEUE_SIZE = 64


@dataclass
class Event:
    """One server-sent event."""

    name: str
    data: Any

    def encode(self) -> bytes:
        return f"event: {self.name}\ndata: {to_json(self.data)}\n\n".encode()


class ChangeCursor:
    """Which run changes were already pushed; decides the next `runs_changed_since` bound."""

    def __init__(self, start: float) -> None:
        self.cursor = start
        self._sent: dict[str, float] = {}  # run id -> updated_at last pushed
        self._full = False

    @property
    def since(self) -> float:
        # After a full batch, go strictly forward: looking back would fetch the same batch again forever.
        return self.cursor if self._full else self.cursor - OVERLAP_SECONDS

    def take(self, rows: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
        """The rows not pushed yet (in the version seen now), remembering them."""
        self._full = len(rows) >= limit
        fresh = [r for r in rows if self._sent.get(r["id"]) != r["updated_at"]]
        for row in fresh:
            self._sent[row["id"]] = row["updated_at"]
            self.cursor = max(self.cursor, row["updated_at"])
        horizon = self.cursor - 2 * OVERLAP_SECONDS
        self._sent = {k: v for k, v in self._sent.items() if v >= horizon}
        return fresh


@dataclass(eq=False)
class Subscription:
    """One listener: a bounded queue of events for the topics it asked for."""

    topics: tuple[str, ...]
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    closed: bool = False

    def offer(self, event: Event) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()  # drop the oldest: the newest state matters most
        self.queue.put_nowait(event)

    async def next(self, timeout: float) -> Event | None:
        """The next event, or None after `timeout` seconds (time for a heartbeat) or when closed."""
        if self.closed:
            return None
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    def close(self) -> None:
        self.closed = True
        self.offer(Event("closed", None))  # wakes a waiting `next`


class EventHub:
    """Polls while anyone subscribes and fans the events out."""

    def __init__(self, api: RunsAPI, executor: concurrent.futures.Executor, interval: float = POLL_SECONDS) -> None:
        self.api = api
        self.executor = executor
        self.interval = interval
        self.subscribers: set[Subscription] = set()
        self._task: asyncio.Task | None = None
        self._changes = ChangeCursor(time.time())
        self._cluster: list[dict[str, Any]] = []
        self._cluster_future: asyncio.Future | None = None
        self._last_reconcile = 0.0

    def subscribe(self, topics: tuple[str, ...]) -> Subscription:
        sub = Subscription(topics)
        self.subscribers.add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        self.subscribers.discard(sub)
        if not self.subscribers and self._task is not None:
            self._task.cancel()  # nobody listens: stop polling now rather than after the next sleep
            self._task = None

    def stop(self) -> None:
        for sub in list(self.subscribers):
            self.unsubscribe(sub)

    def _wanted(self, topic: str) -> bool:
        return any(topic in s.topics for s in self.subscribers)

    def _publish(self, event: Event) -> None:
        for sub in list(self.subscribers):
            if event.name in sub.topics:
                sub.offer(event)

    async def _run(self) -> None:
        while self.subscribers:
            started = time.monotonic()
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one failed poll (a locked store?) must not end the channel
                logger.exception("pykernel-ext: polling for run changes failed; retrying")
            await asyncio.sleep(max(0.05, self.interval - (time.monotonic() - started)))

    async def tick(self) -> None:
        """One poll: changed runs, then GPU samples, each only when somebody wants them."""
        loop = asyncio.get_running_loop()
        if self._wanted("runs"):
            if time.monotonic() - self._last_reconcile > RECONCILE_SECONDS:
                self._last_reconcile = time.monotonic()
                await loop.run_in_executor(self.executor, self.api.reconcile)
            rows = await loop.run_in_executor(
                self.executor, self.api.changes_since, self._changes.since, CHANGES_LIMIT)
            fresh = self._changes.take(rows, CHANGES_LIMIT)
            if fresh:
                self._publish(Event("runs", {"runs": fresh, "more": len(rows) >= CHANGES_LIMIT}))
        if self._wanted("gpus"):
            local = await loop.run_in_executor(self.executor, self.api.local_gpus)
            self._refresh_cluster(loop)
            self._publish(Event("gpus", gpu_report(local, self._cluster)))

    def _refresh_cluster(self, loop: asyncio.AbstractEventLoop) -> None:
        # Asking the Dask workers may take up to its timeout: never wait for it within a tick, publish the
        # last answer and start a new question only when the previous one is back.
        future = self._cluster_future
        if future is not None and future.done():
            with contextlib.suppress(Exception):
                self._cluster = future.result()
            future = None
        if future is None:
            self._cluster_future = loop.run_in_executor(self.executor, cluster_gpus, 2.0)
