"""Kernel side of remote sessions: `%%remote --session NAME`, `%remote_pull`, `%remote_session`, and the
Python API (`session("train", gpus=1)`, `remote(code, session="train")`).

A session is a namespace that lives on one worker across cells (see `session_worker`). The kernel keeps, per
session, a Mirror of the objects it shares with the session and the fingerprint of every name at its last
transfer: a cell sends only the notebook values it reads that changed since they were last sent, so re-running a
cell over a big dataset or a model already there ships nothing. Values the cell assigns come home when they are
small (`--home-limit`, default 1 MB); big ones (the model, activations) stay until pulled.
"""
from __future__ import annotations

import atexit
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from .errors import RemoteError, RemoteUsageError, ResourceUnavailable, WorkerDied
from .executor import CHECK_SECONDS, DaskExecutor, Requirements, describe_workers
from .graph import Mirror, Packed, pack
from .session_worker import HANDLER, decode, encode, hold_session

TASK_PREFIX = "pykernel-ext-session-"
START_TIMEOUT_SECONDS = 30.0  # a session waiting this long for its worker (resources held by others) fails
CALL_TIMEOUT_SECONDS = 30.0  # pull, push, info, close: answered by the session thread or the worker at once

SESSIONS: dict[str, "RemoteSession"] = {}
_sessions_lock = threading.RLock()


class SessionInUse(RemoteUsageError):
    """The session name belongs to another kernel."""


class SessionLost(RemoteError):
    """The session ended (its worker died, it was idle too long, it was closed) and its variables with it."""


@dataclass
class SessionCellPlan:
    """What a session cell sends: the names whose values changed since they were last sent."""

    names: list[str]
    inputs: Packed | None


class RemoteSession:
    """A session's handle in the kernel: `pull`, `push`, `info`, `close`; its cells run with `run`."""

    def __init__(self, name: str, executor: DaskExecutor, wants: Requirements, future: Any, address: str,
                 info: dict[str, Any]) -> None:
        self.name = name
        self.executor = executor
        self.wants = wants
        self.future = future  # the session's Dask task; done means the session ended
        self.address = address
        self.worker = info.get("worker_info") or {"address": address, "host": info.get("host")}
        self.mirror = Mirror("home", weak_only=True, track_changes=True)
        self.synced: dict[str, tuple[int, Any]] = {}  # name -> (id of the value, deep fingerprint) at last transfer
        self.previous_run: str | None = None
        self.cells = 0
        self.state = "open"  # open | closed | lost
        self.reason = ""
        self._closing = False
        self._lock = threading.RLock()  # one pull or push at a time from this kernel
        self.in_flight: Any = None  # the answer of the session's latest cell (cells and requests stay in order)
        _watch(self)

    def __repr__(self) -> str:
        return f"<RemoteSession {self.name!r} {self.state} on {self.address} ({self.wants.describe()})>"

    # ---- the session's end ------------------------------------------------------------------------

    def _ended(self, future: Any) -> None:
        if self._closing or self.state != "open":
            return
        try:
            outcome = future.result(timeout=5)
            reason = str((outcome or {}).get("closed") or "it ended")
            self.state, self.reason = "closed", f"it was closed: {reason}"
        except BaseException as exc:  # noqa: BLE001 - the worker died or the task was lost
            self.state, self.reason = "lost", f"its worker {self.address} died ({type(exc).__name__})"
        # A note in the notebook: printed from Dask's thread, ipykernel shows it under the latest cell.
        print(f"pykernel-ext: remote session {self.name!r} ended: {self.reason}; its variables are gone.",
              file=sys.stderr, flush=True)

    def ensure_open(self) -> None:
        if self.state != "open":
            raise SessionLost(f"remote session {self.name!r} is gone: {self.reason}; its variables are gone "
                              f"with it. Run `%remote_session close {self.name}` (or `.close()`), then run its "
                              "cells again to start a new session.")

    def mark_lost(self, reason: str) -> None:
        if self.state == "open":
            self.state, self.reason = "lost", reason

    # ---- requests -----------------------------------------------------------------------------------

    def call(self, action: str, request: Any = None, timeout: float | None = CALL_TIMEOUT_SECONDS) -> dict[str, Any]:
        """One request to the session, straight to its worker (no scheduler in between); waits for the answer."""
        future = self.call_async(action, request)
        try:
            answer = future.result(timeout=timeout)
        except OSError as exc:
            answer = exc
        except TimeoutError:
            future.cancel()
            raise RemoteError(f"remote session {self.name!r} did not answer {action!r} within {timeout:g} s "
                              "(is a cell of it still running?)") from None
        return self.answer(answer)

    def call_async(self, action: str, request: Any = None, sent: threading.Event | None = None) -> Any:
        """Send a request from any thread; returns a concurrent.futures.Future of the raw answer. `sent` is set
        once the request is written (the caller may then do its own work without competing for the GIL with
        the client's event loop, which still has to serialize and write the request)."""
        import asyncio

        message = encode(request) if request is not None else None
        pool = self.executor.client.rpc

        async def send() -> Any:
            comm = await pool.connect(self.address)
            try:
                await comm.write({"op": HANDLER, "session": self.name, "action": action, "request": message,
                                  "reply": True}, on_error="raise")
                if sent is not None:
                    sent.set()
                answer = await comm.read()
            except BaseException:
                comm.abort()  # never reuse a connection a request or an answer may be half written on
                raise
            pool.reuse(self.address, comm)
            if isinstance(answer, dict) and answer.get("status") == "uncaught-error":
                raise RemoteError(f"the session's worker failed to answer: {answer.get('exception_text') or answer}")
            return answer

        return asyncio.run_coroutine_threadsafe(send(), self.executor.client.loop.asyncio_loop)

    def answer(self, answer: Any) -> dict[str, Any]:
        """The result of a raw answer (or its exception): a dead worker marks the session lost."""
        if isinstance(answer, BaseException):
            if isinstance(answer, OSError):
                self.mark_lost(f"its worker {self.address} died or cannot be reached ({type(answer).__name__})")
                raise WorkerDied(self.address, f"it died or cannot be reached ({type(answer).__name__}); the session "
                                               "and its variables are gone") from None
            raise answer
        if not isinstance(answer, dict) or answer.get("status") == "missing":
            self.mark_lost(f"its worker {self.address} no longer holds it")
            self.ensure_open()
        if answer.get("status") == "uncaught-error":
            raise RemoteError(f"the session's worker failed to answer: {answer.get('exception')}")
        if "result" in answer:
            return decode(answer["result"])
        return decode(answer["info"]) if "info" in answer else answer

    def plan(self, names: list[str], namespace: dict[str, Any]) -> SessionCellPlan:
        """Pack the notebook values among `names` that changed since they were last sent."""
        from .fingerprint import deep_fingerprint

        changed = []
        for name in names:
            value = namespace[name]
            known = self.synced.get(name)
            if known is None or known[0] != id(value) or known[1] != deep_fingerprint(value):
                changed.append(name)
        if not changed:
            return SessionCellPlan([], None)
        return SessionCellPlan(changed, self._pack({n: namespace[n] for n in changed}))

    def _pack(self, values: dict[str, Any]) -> Packed:
        from .shipping import _shipping_error

        try:
            return pack(values, self.mirror)
        except Exception as exc:  # noqa: BLE001 - name the value that cannot travel
            raise _shipping_error(values, exc) from None

    def sent(self, names: list[str], namespace: dict[str, Any]) -> None:
        """Remember the fingerprints of values now in the session (sent, or just received from it)."""
        from .fingerprint import deep_fingerprint

        for name in names:
            if name in namespace:
                self.synced[name] = (id(namespace[name]), deep_fingerprint(namespace[name]))

    def resend_after_stale(self, handles: list[Any], values: dict[str, Any]) -> Packed:
        """The session dropped objects the kernel referred to: send those values whole."""
        self.mirror.forget(handles)
        return self._pack(values)

    def pull(self, names: list[str] | str, namespace: dict[str, Any] | None = None, *,
             cuda: bool | None = None) -> dict[str, Any]:
        """Bring `names` home into `namespace` (default: the caller's globals) as one graph: links between them
        and to the notebook's own objects hold. Tensors that were on a GPU land on one when `cuda` (default:
        when this process has CUDA), else on the CPU."""
        from . import _local_cuda
        from .jobs import apply_results

        names = [names] if isinstance(names, str) else list(names)
        namespace = sys._getframe(1).f_globals if namespace is None else namespace
        cuda = _local_cuda() if cuda is None else cuda
        self.ensure_open()
        with self._lock:
            self.wait_for_cells()
            answer = self.call("pull", list(names), timeout=None)
            values = apply_results(answer["graph"], self.mirror, namespace, cuda=cuda)
            self.sent(list(values), namespace)
        missing = answer.get("dropped") or {}
        if missing:
            details = "; ".join(f"{n!r}: {why}" for n, why in missing.items())
            raise RemoteUsageError(f"could not pull from session {self.name!r}: {details}")
        return values

    def push(self, names: list[str] | str, namespace: dict[str, Any] | None = None) -> list[str]:
        """Send values of `namespace` (default: the caller's globals) into the session."""
        names = [names] if isinstance(names, str) else list(names)
        namespace = sys._getframe(1).f_globals if namespace is None else namespace
        self.ensure_open()
        with self._lock:
            self.wait_for_cells()
            values = {n: namespace[n] for n in names}
            inputs = self._pack(values)
            answer = self.call("push", inputs, timeout=None)
            if answer.get("status") == "stale":
                answer = self.call("push", self.resend_after_stale(answer["handles"], values), timeout=None)
            self.sent(names, namespace)
        return list(answer.get("received") or [])

    def wait_for_cells(self) -> None:
        """Wait until the session's latest cell (a --no-wait one) was answered: requests stay in order."""
        import concurrent.futures

        if self.in_flight is not None and not self.in_flight.done():
            concurrent.futures.wait([self.in_flight])

    def info(self) -> dict[str, Any]:
        self.ensure_open()
        return self.call("info")

    def close(self) -> None:
        """End the session: its worker drops its variables and frees their GPU memory; its resources go back."""
        with _sessions_lock:
            if SESSIONS.get(self.name) is self:
                del SESSIONS[self.name]
        if self.state != "open":
            self._release()
            return
        self._closing = True
        self.state, self.reason = "closed", "closed by this kernel"
        try:
            self.call("close", timeout=10)
        except Exception:  # noqa: BLE001 - a worker that is gone has nothing left to close
            pass
        self._release()

    def _release(self) -> None:
        try:
            self.future.release()
        except Exception:  # noqa: BLE001 - a client that is closing has released it already
            pass

    def run(self, code: str, namespace: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
        """Run `code` in this session as a tracked run; see `remote()` for the options."""
        from . import remote

        if namespace is None:
            namespace = sys._getframe(1).f_globals
        return remote(code, namespace, session=self.name, **options)  # type: ignore[return-value]


# ---- noticing a session that ended on its own ---------------------------------------------------------

_watched: list[RemoteSession] = []
_watch_lock = threading.Lock()
WATCH_SECONDS = 1.0


def _watch(session: RemoteSession) -> None:
    """One daemon thread notices sessions that end without this kernel asking (idle, worker died), and says
    so in the notebook at once. (A Dask done-callback would also fire at interpreter exit, too late to run.)"""
    with _watch_lock:
        _watched.append(session)
        if len(_watched) == 1:
            threading.Thread(target=_watch_loop, name="pykernel-ext-sessions", daemon=True).start()


def _watch_loop() -> None:
    while True:
        time.sleep(WATCH_SECONDS)
        with _watch_lock:
            ended = [s for s in _watched if s.future.done() or s.state != "open"]
            for session in ended:
                _watched.remove(session)
            if not _watched:
                # Stop; the next session starts a new watcher (under the same lock, so none is missed).
                for session in ended:
                    session._ended(session.future)
                return
        for session in ended:
            session._ended(session.future)


# ---- finding or starting a session --------------------------------------------------------------------


def get_session(name: str, wants: Requirements, scheduler: str | None = None, *, notes: list[str] | None = None,
                idle_seconds: float | None = None) -> RemoteSession:
    """This kernel's session `name`, started (on a worker offering `wants`) on first use."""
    from ..config import Settings
    from .cluster import get_executor

    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise RemoteUsageError(f"{name!r} is not a session name: use letters, digits, '-', '_' and '.'")
    with _sessions_lock:
        existing = SESSIONS.get(name)
        if existing is not None:
            existing.ensure_open()
            if notes is not None and _asks_more(wants, existing.wants):
                notes.append(f"session {name!r} already holds {existing.wants.describe()}; "
                             f"--gpus/--cpus/--memory apply when a session starts")
            return existing
        settings = Settings.from_env()
        executor = get_executor(scheduler, settings)
        session = _start(name, wants, executor, settings.session_idle_seconds if idle_seconds is None else idle_seconds)
        SESSIONS[name] = session
        if len(SESSIONS) == 1:
            atexit.register(close_all)
        return session


def _asks_more(wants: Requirements, held: Requirements) -> bool:
    return any((getattr(wants, k) or 0) > (getattr(held, k) or 0) for k in ("gpus", "cpus", "memory"))


def _start(name: str, wants: Requirements, executor: DaskExecutor, idle_seconds: float) -> RemoteSession:
    from distributed import Lock

    # A key of its own per start: a session that died leaves its key erred, and must not block the next one.
    key = f"{TASK_PREFIX}{name}/{uuid.uuid4().hex[:12]}"
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "client": executor.client.id,
             "since": time.time()}
    # Two kernels starting the same name at once: one wins, the other sees it in use.
    with Lock(f"{TASK_PREFIX}{name}-lock", scheduler_rpc=executor.client.scheduler, loop=executor.client.loop):
        holder = _running_holder(executor, name)
        if holder is not None:
            raise SessionInUse(_in_use_message(name, executor, holder))
        placement = executor.restrictions(wants)
        future = executor.client.submit(hold_session, name, owner, idle_seconds, key, key=key, pure=False,
                                        retries=0, allow_other_workers=False, **placement)
        address, info = _wait_until_serving(executor, key, future, name, wants)
    return RemoteSession(name, executor, wants, future, address, info)


def _running_holder(executor: DaskExecutor, name: str) -> str | None:
    """The worker running a session task named `name` (started by any client), if one runs."""
    prefix = f"{TASK_PREFIX}{name}/"
    for address, keys in executor.client.processing().items():
        if any(str(key).startswith(prefix) for key in keys):
            return address
    return None


def _in_use_message(name: str, executor: DaskExecutor, worker: str) -> str:
    owner = ""
    if worker.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        try:
            info = _rpc_info(executor, worker, name)
            found = info.get("owner") or {}
            owner = (f" (kernel pid {found.get('pid')} on {found.get('host')}, since "
                     f"{time.strftime('%H:%M:%S', time.localtime(found.get('since') or 0))})")
        except Exception:  # noqa: BLE001 - who owns it is a courtesy; the refusal stands
            pass
    return (f"remote session {name!r} is in use by another kernel{owner} on {worker}. Choose another name, or "
            f"close it from that kernel with `%remote_session close {name}`.")


def _worker_of(executor: DaskExecutor, key: str) -> str | None:
    processing = executor.client.processing()
    for address, keys in processing.items():
        if key in keys:
            return address
    return None


def _rpc_info(executor: DaskExecutor, address: str, name: str) -> dict[str, Any]:
    async def ask() -> Any:
        return await executor.client.rpc(address).pykernel_ext_session(session=name, action="info", request=None)

    answer = executor.client.sync(ask, callback_timeout=5)
    return decode(answer.get("info")) or {} if isinstance(answer, dict) else {}


def _wait_until_serving(executor: DaskExecutor, key: str, future: Any, name: str,
                        wants: Requirements) -> tuple[str, dict[str, Any]]:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if future.done():
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001
                raise RemoteError(f"remote session {name!r} could not start: {type(exc).__name__}: {exc}") from None
            raise RemoteError(f"remote session {name!r} ended as it started")
        address = _worker_of(executor, key)
        if address is not None:
            info = _rpc_info(executor, address, name)
            if info:
                return address, info
        time.sleep(CHECK_SECONDS / 10)
    future.release()
    raise ResourceUnavailable(wants.describe() + " free for a session",
                              describe_workers(executor.workers()) + _holders_note())


def _holders_note() -> str:
    held = [f"{s.name} ({s.wants.describe()} on {s.address})" for s in SESSIONS.values() if s.state == "open"]
    return ("; sessions of this kernel holding resources: " + ", ".join(held)) if held else ""


def close_all() -> None:
    """Close this kernel's sessions (at exit, so a kernel that ends frees its GPUs)."""
    for session in list(SESSIONS.values()):
        try:
            session.close()
        except Exception:  # noqa: BLE001 - at exit, a session whose worker is gone is closed already
            pass


def forget(name: str) -> RemoteSession | None:
    """`%remote_session close NAME`: close it if open, and forget it (a lost one too)."""
    with _sessions_lock:
        session = SESSIONS.get(name)
    if session is not None:
        session.close()
    return session
