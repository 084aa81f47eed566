"""DaskExecutor: send a remote cell to a worker that has what it needs, follow it, stop it.

Dask leaves three gaps that a notebook user would fall into, closed here:
- a task whose resources no worker offers waits in the queue forever: we check before sending and while
  it waits, and fail with what the cluster has;
- `Future.cancel()` does not stop running code: `interrupt` raises KeyboardInterrupt in the task's
  thread on the worker;
- a task whose worker dies is silently retried elsewhere: we watch the worker it started on and fail.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from .errors import RemoteError, ResourceUnavailable, WorkerDied
from .shipping import Shipment, format_bytes

logger = logging.getLogger(__name__)

CHECK_SECONDS = 0.5  # how often a waiting cell asks the scheduler about its worker / its queue state
NO_WORKER_GRACE_SECONDS = 2.0  # a task no worker fits for this long fails (workers may be joining)
# With no worker at all, the cluster is starting, scaling up from zero or restarting a dead worker: wait longer.
EMPTY_CLUSTER_GRACE_SECONDS = 30.0


@dataclass
class Requirements:
    """What a cell asks of its worker: GPUs and CPUs (counts), memory (bytes)."""

    gpus: float = 0
    cpus: float | None = None
    memory: int | None = None

    def describe(self) -> str:
        wanted = []
        if self.gpus:
            wanted.append(f"GPU={_number(self.gpus)}")
        if self.cpus:
            wanted.append(f"{_number(self.cpus)} CPUs")
        if self.memory:
            wanted.append(f"{format_bytes(self.memory)} memory")
        return ", ".join(wanted) or "nothing in particular"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def describe_workers(workers: dict[str, dict[str, Any]]) -> str:
    """'2 workers: tcp://..:1 (4 threads, 8.0 GB, GPU=1); ...' for error messages and `cluster status`."""
    if not workers:
        return "no workers at all (the cluster is empty or still starting)"
    parts = []
    for address, info in sorted(workers.items()):
        resources = ", ".join(f"{k}={_number(v)}" for k, v in sorted((info.get("resources") or {}).items()))
        memory = info.get("memory_limit")
        parts.append(f"{address} ({info.get('nthreads')} threads, "
                     f"{format_bytes(memory) if memory else 'no memory limit'}, "
                     f"{resources or 'no resources declared'})")
    noun = "worker" if len(parts) == 1 else "workers"
    return f"{len(parts)} {noun}: " + "; ".join(parts)


class DaskExecutor:
    """One Dask client and what this kernel runs through it."""

    def __init__(self, client: Any, origin: str, direct: bool | None = None) -> None:
        self.client = client
        self.origin = origin  # where the address came from: --scheduler, environment, persistent, embedded
        self.direct = direct
        self.topic = f"pykernel-ext-remote-{client.id}"
        self._queues: dict[str, queue.Queue] = {}
        self._subscribed = False
        self._lock = threading.Lock()
        _shorten_batching(client)

    @property
    def address(self) -> str:
        return self.client.scheduler.address

    @property
    def alive(self) -> bool:
        return self.client.status == "running"

    def workers(self) -> dict[str, dict[str, Any]]:
        """The scheduler's current view of its workers: resources, nthreads, memory_limit, host, name."""
        return dict(self.client.scheduler_info(n_workers=-1).get("workers") or {})

    # ---- placement -------------------------------------------------------------------------------

    def restrictions(self, wants: Requirements, grace: float = NO_WORKER_GRACE_SECONDS) -> dict[str, Any]:
        """Keyword arguments for `submit` that place the cell on a worker offering `wants`.

        Raises ResourceUnavailable when no worker offers it within `grace` seconds (workers may be joining).
        """
        if not (wants.gpus or wants.cpus or wants.memory):
            return {}  # any worker will do; an empty cluster is caught while the cell waits
        started = time.monotonic()
        while True:
            workers = self.workers()
            found = _restrictions(wants, workers)
            if found is not None:
                return found
            waited = time.monotonic() - started
            if waited >= (grace if workers else EMPTY_CLUSTER_GRACE_SECONDS):
                raise ResourceUnavailable(wants.describe(), describe_workers(workers))
            time.sleep(0.2)

    # ---- running -----------------------------------------------------------------------------------

    @staticmethod
    def new_key() -> str:
        return f"remote-cell-{uuid.uuid4().hex}"

    def submit(self, shipment: Shipment, placement: dict[str, Any]) -> "RemoteTask":
        """Send the cell; its events (output, start, end) arrive on the returned task's queue."""
        from .worker import run_cell

        key = shipment.payload.key
        events = self.register_events(key)
        try:
            inputs = shipment.inputs if shipment.inline else self._scatter(shipment.inputs, placement)
            future = self.client.submit(run_cell, shipment.payload, inputs, key=key, pure=False, retries=0,
                                        allow_other_workers=False, **placement)
        except BaseException:
            self.forget_events(key)
            raise
        # Wake the waiting thread the moment the result is in, instead of at its next poll.
        future.add_done_callback(lambda _: events.put({"type": "_done"}))
        task = RemoteTask(self, key, future, events, inputs)
        task._sent_bytes = shipment.inputs.nbytes
        return task

    def register_events(self, key: str) -> queue.Queue:
        """The queue receiving the worker events (output, start, end) of the cell with this key."""
        events: queue.Queue = queue.Queue()
        with self._lock:
            if not self._subscribed:
                # One subscription for the client's life: subscribing per cell would cost a scheduler message
                # each, and a cell's first lines could reach the scheduler before its subscription.
                self._subscribe()
                self._subscribed = True
            self._queues[key] = events
        return events

    def _subscribe(self, limit_s: float = 10.0) -> None:
        """Subscribe to this client's topic and wait until the scheduler forwards its events to us.

        The subscription travels on the client's batched stream, and a session cell goes straight to its
        worker: on a kernel's first cell the worker's first output could reach the scheduler before the
        subscription did, and be lost. A probe event published through the scheduler and received back
        proves the subscription is in place (probes repeat: the publish request travels on another comm)."""
        self.client.subscribe_topic(self.topic, self._dispatch)
        probe_key = f"subscribed-{uuid.uuid4().hex}"
        arrived: queue.Queue = queue.Queue()
        self._queues[probe_key] = arrived
        deadline = time.monotonic() + limit_s
        try:
            while time.monotonic() < deadline:
                self.client.log_event(self.topic, {"key": probe_key, "type": "_probe"})
                try:
                    arrived.get(timeout=0.25)
                    return
                except queue.Empty:
                    continue
            logger.warning("pykernel-ext: the scheduler did not confirm the output subscription of %s within "
                           "%.0f s; the first output lines of a remote cell may be lost", self.topic, limit_s)
        finally:
            self._queues.pop(probe_key, None)

    def _scatter(self, inputs: Any, placement: dict[str, Any]) -> Any:
        # A big graph goes straight to a worker that can run the cell (the scheduler then prefers it: data
        # locality), never through the scheduler inside the task. One object: the graph stays whole.
        targets = placement.get("workers") or self._workers_offering(placement.get("resources") or {})
        return self.client.scatter(inputs, workers=targets[:1] or None, direct=self.direct, hash=False)

    def _workers_offering(self, resources: dict[str, float]) -> list[str]:
        return [address for address, info in self.workers().items()
                if all((info.get("resources") or {}).get(k, 0) >= v for k, v in resources.items())]

    def _dispatch(self, event: tuple[float, Any]) -> None:
        # Runs on the client's event-loop thread: hand over, never print here (ipykernel would send the
        # text to whichever cell started this thread, not to the cell that is waiting).
        message = event[1]
        if isinstance(message, dict):
            target = self._queues.get(message.get("key"))
            if target is not None:
                target.put(message)

    def forget_events(self, key: str) -> None:
        with self._lock:
            self._queues.pop(key, None)

    def interrupt(self, key: str, worker: str | None) -> bool:
        """Raise KeyboardInterrupt in the cell's thread on its worker; True if its code was running."""
        from .worker import interrupt_task

        try:
            answers = self.client.run(interrupt_task, key, workers=[worker] if worker else None,
                                      on_error="return")
        except Exception:  # noqa: BLE001 - the worker is gone: nothing left to stop
            return False
        return any(value is True for value in answers.values())

    def worker_alive(self, address: str) -> bool:
        return bool(self.client.sync(self.client.scheduler.ncores, workers=[address]))

    def task_state(self, key: str) -> str | None:
        return self.client.sync(self.client.scheduler.get_task_status, keys=[key]).get(key)

    def restart_worker(self, address: str) -> None:
        """The last resort for code stuck outside Python: restart the worker process (its nanny does)."""
        self.client.restart_workers([address])


class RemoteTask:
    """One submitted cell: its future, its event queue and the worker it runs on (once started)."""

    def __init__(self, executor: DaskExecutor, key: str, future: Any, events: queue.Queue, inputs: Any) -> None:
        self.executor = executor
        self.key = key
        self.future = future
        self.events = events
        self._inputs = inputs  # the scattered graph's future, held until the cell ends
        self._sent_bytes = 0
        self.submitted_at = time.time()
        self.worker: dict[str, Any] | None = None  # the worker's own description, from its start event
        self.ended = False  # the worker's `end` event arrived: every output event is in the queue
        self._next_check = time.monotonic() + CHECK_SECONDS
        self._no_worker_since: float | None = None

    @property
    def worker_address(self) -> str | None:
        return (self.worker or {}).get("address")

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        """The next output or lifecycle event, or None after `timeout` seconds."""
        try:
            message = self.events.get(timeout=timeout)
        except queue.Empty:
            return None
        if message.get("type") == "start":
            self.worker = message.get("info") or {}
        elif message.get("type") == "end":
            self.ended = True
        return message

    def done(self) -> bool:
        return self.future.done()

    def finished(self) -> bool:
        """Done with a result (not cancelled, not lost)."""
        return self.future.status == "finished"

    def cancel(self) -> None:
        self.future.cancel()

    @property
    def sent_bytes(self) -> int:
        return self._sent_bytes

    def check(self, wants: Requirements | None = None) -> None:
        """Raise WorkerDied or ResourceUnavailable when the cell can no longer finish (rate-limited)."""
        now = time.monotonic()
        if now < self._next_check or self.future.done():
            return
        self._next_check = now + CHECK_SECONDS
        try:
            if self.worker_address is not None:
                if not self.executor.worker_alive(self.worker_address):
                    raise WorkerDied(self.worker_address, "it left the cluster while running the cell (its process "
                                     "was killed, ran out of memory, or its machine went away)")
                return
            state = self.executor.task_state(self.key)
        except RemoteError:
            raise
        except Exception:  # noqa: BLE001 - a slow scheduler answer is not a verdict; ask again later
            return
        if state != "no-worker":
            self._no_worker_since = None
            return
        if self._no_worker_since is None:
            self._no_worker_since = now
        waited = now - self._no_worker_since
        if waited > NO_WORKER_GRACE_SECONDS:
            workers = self.executor.workers()
            if workers or waited > EMPTY_CLUSTER_GRACE_SECONDS:
                raise ResourceUnavailable((wants or Requirements()).describe(), describe_workers(workers))

    def outcome(self) -> dict[str, Any]:
        """The worker's result dict; Dask's own failures become our errors."""
        try:
            return self.future.result()
        except Exception as exc:  # noqa: BLE001 - mapped to what the user can act on
            raise _dask_failure(exc, self.worker_address) from None

    def interrupt(self) -> bool:
        """Stop the cell: cancel it if it is queued, raise KeyboardInterrupt in it if it runs."""
        if self.worker_address is None and not self.future.done():
            self.future.cancel()
            # It may have started between our look and the cancel; stopping it then is still right.
        return self.executor.interrupt(self.key, self.worker_address)

    def release(self) -> None:
        """Drop the task's data on the cluster and its event subscription."""
        self.executor.forget_events(self.key)
        self._inputs = None
        try:
            self.future.release()
        except Exception:  # noqa: BLE001
            pass


def _shorten_batching(client: Any) -> None:
    # The client batches its messages to the scheduler every 10 ms, made for programs sending thousands of
    # tasks. A notebook sends a few per cell and waits for them: 2 ms halves a trivial cell's round trip.
    comm = getattr(client, "scheduler_comm", None)
    if comm is not None and hasattr(comm, "interval"):
        comm.interval = 0.002


def _restrictions(wants: Requirements, workers: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """submit() placement for `wants`, or None when no worker offers it.

    GPUs are always a Dask resource. CPUs and memory are resources where workers declare them (`CPU`,
    `MEMORY`); elsewhere the cell is pinned to workers with enough threads / memory limit.
    """
    declared = {name for info in workers.values() for name in (info.get("resources") or {})}
    resources: dict[str, float] = {}
    if wants.gpus:
        resources["GPU"] = wants.gpus
    if wants.cpus and "CPU" in declared:
        resources["CPU"] = wants.cpus
    if wants.memory and "MEMORY" in declared:
        resources["MEMORY"] = wants.memory
    fitting = []
    for address, info in workers.items():
        offered = info.get("resources") or {}
        if any(offered.get(k, 0) < v for k, v in resources.items()):
            continue
        if wants.cpus and "CPU" not in resources and (info.get("nthreads") or 0) < wants.cpus:
            continue
        limit = info.get("memory_limit") or 0
        if wants.memory and "MEMORY" not in resources and limit and limit < wants.memory:
            continue
        fitting.append(address)
    if not fitting:
        return None
    placement: dict[str, Any] = {}
    if resources:
        placement["resources"] = resources
    if (wants.cpus and "CPU" not in resources) or (wants.memory and "MEMORY" not in resources):
        placement["workers"] = fitting
    return placement


def _dask_failure(exc: BaseException, worker: str | None) -> BaseException:
    from concurrent.futures import CancelledError as FuturesCancelled

    name = type(exc).__name__
    if name == "KilledWorker":
        return WorkerDied(worker, "its process ended while running the cell")
    if isinstance(exc, FuturesCancelled) or name == "CancelledError":
        return KeyboardInterrupt()
    if isinstance(exc, ModuleNotFoundError) and "pykernel_ext" in str(exc):
        return RemoteError("the worker cannot import pykernel_ext: install pykernel-ext (the same version as "
                           "the notebook's) in the workers' environment")
    return RemoteError(f"the cluster could not run the cell: {name}: {exc}")
