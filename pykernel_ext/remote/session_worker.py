"""Worker side of a remote session: a namespace that lives on one worker across cells, like an IPython engine.

A session is one long-running Dask task (`hold_session`) placed by the scheduler on a worker that offers what the
session asked for (`--gpus`, `--cpus`, `--memory`). The task secedes from the worker's thread pool, so it holds
its resources (the scheduler counts them as used) without holding a thread slot, and serves the session in its
own thread: every cell of the session runs there, so a model stays on its GPU and thread-local state (CUDA
streams, RNG) stays put.

The kernel talks to the session directly, over a Dask comm to the worker (a handler this module installs on it),
never through the scheduler per cell. Output streams home as for any remote cell (worker events).

The session ends when the kernel closes it, when it has been idle for `idle_seconds`, or when the scheduler
releases its task (the kernel that owns it went away); its variables are dropped and GPU memory is freed.
"""
from __future__ import annotations

import asyncio
import builtins
import gc
import logging
import queue
import sys
import threading
import time
from typing import Any

from ..records import CellPayload, RemoteOutcome, SessionCell
from .graph import Mirror, Packed, StaleHandles, changed_within, measure, unpack
from .rebind import adopt
from .streaming import CellOutput, display, routed_output, run_proxy_installed
from .worker import (describe_results, execute, show_open_figures, start_sampler, stop_sampler,
                     worker_has_cuda, worker_info)

logger = logging.getLogger(__name__)
HANDLER = "pykernel_ext_session"
POLL_SECONDS = 1.0  # how often an idle session checks its task and its idle time

_sessions: dict[str, "WorkerSession"] = {}
_sessions_lock = threading.Lock()


def hold_session(name: str, owner: dict[str, Any], idle_seconds: float, key: str) -> dict[str, Any]:
    """The Dask task that is the session: serve it until it is closed, idle or released."""
    from distributed import get_worker, secede

    worker = get_worker()
    install_handler(worker)
    session = WorkerSession(name, owner, idle_seconds, key, worker)
    _wait_for_ended(name)
    with _sessions_lock:
        if name in _sessions:
            raise RuntimeError(f"a session named {name!r} already runs on this worker")
        _sessions[name] = session
    secede()  # the thread slot is free for other tasks; the session keeps its resources
    try:
        reason = session.serve()
    finally:
        with _sessions_lock:
            _sessions.pop(name, None)
        session.close()
    return {"closed": reason, "cells": session.cells}


def _wait_for_ended(name: str, timeout: float = 10.0) -> None:
    """A session of that name whose task the scheduler released (its kernel died) is still winding down here:
    tell it to stop now and wait for it, so that the name can start again at once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _sessions_lock:
            old = _sessions.get(name)
        if old is None or old._ended() is None and not old.closing:
            return
        old.closing = True
        time.sleep(0.05)


def install_handler(worker: Any) -> None:
    worker.handlers.setdefault(HANDLER, _handle)


async def _handle(comm: Any = None, session: str | None = None, action: str | None = None,
                  request: Any = None) -> dict[str, Any]:
    """Requests from the kernel, on the worker's event loop. Cells, pushes and pulls run in the session's
    thread, one at a time; `interrupt` and `info` are answered at once, also while a cell runs."""
    from .worker import interrupt_task

    found = _sessions.get(session or "")
    if found is None:
        return {"status": "missing"}
    request = decode(request)
    if action == "interrupt":
        return {"status": "ok", "interrupted": interrupt_task(request)}
    if action == "info":
        return {"status": "ok", "info": encode(found.info())}
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    found.requests.put((action, request, loop, future))
    result = await future
    return {"status": "ok", "result": encode(result)}


# Requests and answers travel as pickle bytes when small: Dask's serialization of a Serialize wrapper costs about
# half a millisecond a message, a third of a trivial session cell. Big ones (a graph with a model) go as Dask
# frames, whose buffers are never copied into one message.
SMALL_MESSAGE_BYTES = 1_000_000


def encode(value: Any) -> Any:
    import pickle

    from distributed.protocol import to_serialize

    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    if sum(b.raw().nbytes for b in buffers) + len(data) > SMALL_MESSAGE_BYTES:
        return to_serialize(value)
    return pickle.dumps(value, protocol=5) if buffers else data


def decode(value: Any) -> Any:
    import pickle

    return pickle.loads(value) if isinstance(value, bytes) else value


class WorkerSession:
    """A session's namespace, its mirror of the objects the kernel shares with it, and its thread's loop."""

    def __init__(self, name: str, owner: dict[str, Any], idle_seconds: float, key: str, worker: Any) -> None:
        self.name = name
        self.owner = owner
        self.idle_seconds = idle_seconds
        self.key = key
        self.worker = worker
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins, "display": display}
        self.mirror = Mirror("worker", weak_only=True, track_changes=True)
        self.synced: dict[str, Any] = {}  # name -> deep fingerprint when the kernel last received or sent it
        self.requests: queue.Queue = queue.Queue()
        self.started_at = time.time()
        self.last_used = time.time()
        self.cells = 0
        self.busy = False
        self.closing = False
        self._worker_info: dict[str, Any] | None = None

    # ---- the session's thread -------------------------------------------------------------------

    def serve(self) -> str:
        while True:
            try:
                action, request, loop, future = self.requests.get(timeout=POLL_SECONDS)
            except queue.Empty:
                ended = self._ended()
                if ended:
                    return ended
                continue
            self.busy, self.last_used = True, time.time()
            try:
                result = self._dispatch(action, request)
            except BaseException as exc:  # noqa: BLE001 - answered to the kernel, never kills the session
                result = {"status": "failed", "error": {"type": type(exc).__name__, "message": str(exc),
                                                        "traceback": f"{type(exc).__name__}: {exc}\n"}}
            finally:
                self.busy, self.last_used = False, time.time()
            loop.call_soon_threadsafe(_resolve, future, result)
            if action == "close":
                return "closed"

    def _ended(self) -> str | None:
        if self.closing:
            return "closed"
        if time.time() - self.last_used > self.idle_seconds:
            return f"idle for {self.idle_seconds:g} s"
        state = getattr(self.worker.state.tasks.get(self.key), "state", None)
        if state not in ("executing", "long-running"):
            return "released by the scheduler (its kernel went away)"
        return None

    def _dispatch(self, action: str, request: Any) -> dict[str, Any]:
        if action == "run":
            return self.run(request)
        if action == "pull":
            return self.pull(request)
        if action == "push":
            return self.push(request)
        if action == "close":
            return {"status": "ok"}
        raise ValueError(f"unknown session request {action!r}")

    # ---- requests -------------------------------------------------------------------------------

    def receive(self, inputs: Packed | None) -> list[str]:
        """Bind values the kernel sent; returns their names. Raises StaleHandles (the kernel resends)."""
        if inputs is None:
            return []
        values, _ = unpack(inputs, self.mirror, cuda=worker_has_cuda())
        # Fingerprint what is bound: a notebook function is rebound to the session's namespace (a new
        # object), and fingerprinting the one received would make every function read look changed
        # after the cell, and come home as a copy without its source.
        bound = adopt(values, self.namespace)
        self.namespace.update(bound)
        for name, value in bound.items():
            self.synced[name] = _deep(value)
        return list(values)

    def run(self, cell: SessionCell) -> RemoteOutcome | dict[str, Any]:
        payload = cell.payload
        warnings: list[str] = []
        info = self.worker_info()
        sampler = start_sampler(payload.sample_interval, warnings)
        started = time.time()
        try:
            received = self.receive(cell.inputs)
        except StaleHandles as exc:
            stop_sampler(sampler, info["host"], warnings)
            return {"status": "stale", "handles": exc.handles}
        sent_events = [0]

        def send(message: dict[str, Any]) -> None:
            sent_events[0] += 1
            self.worker.log_event(payload.topic, {"key": payload.key, **message})

        namespace = self.namespace
        with routed_output(CellOutput(send)), run_proxy_installed():
            outcome = execute(payload, namespace)
            if outcome["status"] != "interrupted":
                show_open_figures()
        self.cells += 1
        result: RemoteOutcome = RemoteOutcome(**outcome)  # type: ignore[typeddict-item]
        result.update(describe_results(namespace, payload, warnings))
        unsent_reads = [n for n in cell.reads if n not in received and n in namespace]
        result["data"] = self._hash_session_values(unsent_reads, warnings) if unsent_reads else []
        result.update(self._results(payload, cell.home_bytes))
        result.update(worker=info, started_at=started, ended_at=time.time(), received=received,
                      resources=stop_sampler(sampler, info["host"], warnings), warnings=warnings,
                      events=sent_events[0])
        return result

    def _results(self, payload: CellPayload, home_bytes: int) -> dict[str, Any]:
        """What goes home: pulled names, and names assigned or changed here (of those the kernel knows) that
        are small; the rest stays, listed with its size."""
        candidates = list(dict.fromkeys(
            [n for n in payload.writes if n in self.namespace]
            + [n for n, fp in self.synced.items() if n in self.namespace and _deep(self.namespace[n]) != fp]))
        values: dict[str, Any] = {}
        kept: dict[str, int] = {}
        dropped: dict[str, str] = {}
        for name in payload.pull:
            if name not in self.namespace:
                dropped[name] = "the session does not define it"
            else:
                values[name] = self.namespace[name]
        for name in candidates:
            if name in values or name.startswith("_"):
                continue
            try:
                value = self.namespace[name]
                size = measure({"value": value, "changed": changed_within(value, self.mirror)}, self.mirror)
            except Exception as exc:  # noqa: BLE001 - it stays in the session, where it works
                kept[name] = -1
                dropped[name] = f"stays in the session: it cannot be pickled ({type(exc).__name__}: {exc})"
                continue
            if size <= home_bytes:
                values[name] = self.namespace[name]
            else:
                kept[name] = size
        graph, failures = _pack_names(values, self.mirror)
        dropped.update(failures)
        for name in values:
            if name not in failures:
                self.synced[name] = _deep(self.namespace[name])
        return {"graph": graph, "dropped": dropped, "kept": kept, "returned_bytes": graph.nbytes}

    def pull(self, names: list[str]) -> dict[str, Any]:
        missing = [n for n in names if n not in self.namespace]
        values = {n: self.namespace[n] for n in names if n in self.namespace}
        graph, failures = _pack_names(values, self.mirror)
        for name in values:
            if name not in failures:
                self.synced[name] = _deep(self.namespace[name])
        failures.update({n: "the session does not define it" for n in missing})
        return {"status": "ok", "graph": graph, "dropped": failures}

    def push(self, inputs: Packed) -> dict[str, Any]:
        try:
            return {"status": "ok", "received": self.receive(inputs)}
        except StaleHandles as exc:
            return {"status": "stale", "handles": exc.handles}

    def _hash_session_values(self, names: list[str], warnings: list[str]) -> list[dict[str, Any]]:
        """Data hashes of the values the cell read that live here (the kernel hashes those it sent)."""
        try:
            from ..capture.inputs import hash_inputs

            entries = hash_inputs([n for n in names if n in self.namespace], self.namespace, {}, [])
        except Exception as exc:  # noqa: BLE001
            warnings.append(f"data hashes on the worker not recorded: {type(exc).__name__}: {exc}")
            return []
        for entry in entries:
            entry["source"] = f"session {self.name}"
        return entries

    # ---- state ----------------------------------------------------------------------------------

    def worker_info(self) -> dict[str, Any]:
        """The worker's description (host, GPUs, resources), read once: it does not change while it runs."""
        if self._worker_info is None:
            self._worker_info = worker_info(self.worker)
        return dict(self._worker_info)

    def info(self) -> dict[str, Any]:
        variables = {}
        for name, value in list(self.namespace.items()):
            if name.startswith("__") or name in ("display",) or type(value).__name__ in ("module", "function", "type"):
                continue
            variables[name] = {"type": type(value).__name__, "bytes": approx_nbytes(value)}
        state = self.worker.state
        described = self.worker_info()
        return {
            "name": self.name, "owner": self.owner, "worker": self.worker.address, "host": described["host"],
            "worker_info": described,
            "resources": dict((state.tasks.get(self.key).resource_restrictions or {}) if state.tasks.get(self.key) else {}),
            "variables": variables, "gpu_memory_bytes": _gpu_memory(), "started_at": self.started_at,
            "idle_seconds": 0.0 if self.busy else time.time() - self.last_used, "busy": self.busy,
            "cells": self.cells, "idle_limit": self.idle_seconds,
        }

    def close(self) -> None:
        """Drop the namespace and free GPU memory the session's tensors held."""
        self.closing = True
        self.namespace.clear()
        self.synced.clear()
        self.mirror = Mirror("worker", weak_only=True, track_changes=True)
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None:
            try:
                if torch.cuda.is_available() and torch.cuda.is_initialized():
                    torch.cuda.empty_cache()
            except Exception:  # noqa: BLE001 - freeing is best effort; the process keeps running
                logger.warning("pykernel-ext: session %r: GPU memory not released", self.name, exc_info=True)
        while True:  # requests that arrived while closing get an answer instead of hanging the kernel
            try:
                _, _, loop, future = self.requests.get_nowait()
            except queue.Empty:
                break
            loop.call_soon_threadsafe(_resolve, future, {"status": "missing"})


def _pack_names(values: dict[str, Any], mirror: Mirror) -> tuple[Packed, dict[str, str]]:
    """`values` as one graph, with the changed shared objects they hold (so they are updated at home)."""
    from .worker import pack_leaving_out

    try:
        changed = changed_within(values, mirror)
    except Exception:  # noqa: BLE001 - an unpicklable value: pack_leaving_out names it
        changed = []
    return pack_leaving_out(values, changed, [], mirror, values)


def _deep(value: Any) -> Any:
    from .fingerprint import deep_fingerprint

    return deep_fingerprint(value)


def _resolve(future: asyncio.Future, result: Any) -> None:
    if not future.done():
        future.set_result(result)


def approx_nbytes(value: Any) -> int:
    """Memory a value holds, without pickling it: tensors, arrays, modules (parameters and buffers), frames."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    torch = sys.modules.get("torch")
    if torch is not None:
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size()
        if isinstance(value, torch.nn.Module):
            return sum(t.numel() * t.element_size() for t in list(value.parameters()) + list(value.buffers()))
        if isinstance(value, torch.optim.Optimizer):  # its moments: often twice the model
            return sum(t.numel() * t.element_size() for state in value.state.values() for t in state.values()
                       if isinstance(t, torch.Tensor))
    usage = getattr(value, "memory_usage", None)
    if callable(usage):
        try:
            total = usage(deep=False)
            return int(total.sum() if hasattr(total, "sum") else total)
        except Exception:  # noqa: BLE001
            pass
    return sys.getsizeof(value)


def _gpu_memory() -> int | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            return int(torch.cuda.memory_allocated())
    except Exception:  # noqa: BLE001
        return None
    return 0
