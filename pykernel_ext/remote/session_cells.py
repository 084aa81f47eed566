"""A cell of a remote session, from the notebook to its run record: the same RemoteJob as any remote cell,
following a SessionTask (a direct call to the session's worker) instead of a Dask task."""
from __future__ import annotations

import concurrent.futures
import queue
import threading
import time
from typing import Any

from .errors import RemoteError, WorkerDied
from .executor import CHECK_SECONDS
from .jobs import RemoteJob
from .session_kernel import RemoteSession, SessionCellPlan
from ..records import SessionCell
from .shipping import format_bytes

_OUTPUT_EVENTS = ("stream", "display", "clear", "metric")
SEND_WAIT_SECONDS = 0.05  # at most this long; a slow connection must not hold the notebook


class SessionTask:
    """A session cell in flight, with the face of a RemoteTask so that RemoteJob follows it unchanged."""

    def __init__(self, session: RemoteSession, cell: SessionCell, plan: SessionCellPlan,
                 namespace: dict[str, Any], events: queue.Queue) -> None:
        self.session = session
        self.executor = session.executor
        self.key = cell.payload.key
        self.events = events
        self.submitted_at = time.time()
        self.worker: dict[str, Any] | None = dict(session.worker)
        self.sent_bytes = cell.inputs.nbytes if cell.inputs is not None else 0
        self._cell = cell
        self._names = plan.names
        self._values = {name: namespace[name] for name in plan.names}
        self._namespace = namespace
        self._received = 0
        self._answer: Any = None
        self._result: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._next_check = time.monotonic() + CHECK_SECONDS
        # Cells of a session run in order: wait for the one before (a --no-wait cell) to be answered.
        previous = getattr(session, "in_flight", None)
        if previous is not None and not previous.done():
            concurrent.futures.wait([previous])
        sent = threading.Event()
        self._future = session.call_async("run", cell, sent)
        session.in_flight = self._future
        # Wake the follower the moment the answer is in (no polling).
        self._future.add_done_callback(lambda _: events.put({"type": "_done"}))
        # Let the client's event loop write the request before this thread records the run: both need the GIL,
        # and the run's record (about a millisecond of Python) would otherwise delay the cell's start.
        sent.wait(SEND_WAIT_SECONDS)

    def _settle(self) -> None:
        """Turn the raw answer into the result (on the follower's thread); a stale reference is resent whole."""
        if self._result is not None or self._error is not None or not self._future.done():
            return
        try:
            try:
                raw = self._future.result()
            except OSError as exc:
                raw = exc
            answer = self.session.answer(raw)
            if answer.get("status") == "stale":
                self._cell.inputs = self.session.resend_after_stale(answer["handles"], self._values)
                self.sent_bytes = self._cell.inputs.nbytes
                answer = self.session.call("run", self._cell, timeout=None)
            self.session.sent(self._names, self._namespace)
            self._result = answer
        except BaseException as exc:  # noqa: BLE001 - handed to the follower, which reports it
            self._error = exc

    @property
    def worker_address(self) -> str:
        return self.session.address

    @property
    def ended(self) -> bool:
        """Every output event the cell sent has arrived."""
        self._settle()
        return self.done() and self._received >= int((self._result or {}).get("events") or 0)

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        try:
            message = self.events.get(timeout=timeout)
        except queue.Empty:
            return None
        if message.get("type") in _OUTPUT_EVENTS:
            self._received += 1
        return message

    def done(self) -> bool:
        return self._future.done()

    def finished(self) -> bool:
        self._settle()
        return self.done() and self._error is None

    def cancel(self) -> None:
        pass  # a session cell starts at once on its worker; interrupt() stops it

    def check(self, wants: Any = None) -> None:
        """Raise WorkerDied when the session's worker left the cluster (rate-limited)."""
        now = time.monotonic()
        if now < self._next_check or self.done():
            return
        self._next_check = now + CHECK_SECONDS
        try:
            alive = self.executor.worker_alive(self.session.address)
        except Exception:  # noqa: BLE001 - a slow scheduler answer is not a verdict
            return
        if not alive:
            self.session.mark_lost(f"its worker {self.session.address} died while running a cell")
            raise WorkerDied(self.session.address, f"it left the cluster while running the cell; remote session "
                                                   f"{self.session.name!r} and its variables are gone")

    def outcome(self) -> dict[str, Any]:
        self._settle()
        if self._error is not None:
            if isinstance(self._error, RemoteError):
                raise self._error
            raise RemoteError(f"remote session {self.session.name!r}: {type(self._error).__name__}: {self._error}")
        return dict(self._result or {})

    def interrupt(self) -> bool:
        try:
            answer = self.session.call("interrupt", self.key, timeout=5)
        except Exception:  # noqa: BLE001 - the worker is gone: nothing left to stop
            return False
        return bool((answer or {}).get("interrupted"))

    def release(self) -> None:
        self.executor.forget_events(self.key)


class SessionJob(RemoteJob):
    """A remote cell of a session: results go through the session's mirror, and the run records its session."""

    def __init__(self, task: SessionTask, run: Any, namespace: dict[str, Any], *, session: RemoteSession,
                 previous_run: str | None, **kwargs: Any) -> None:
        super().__init__(task, run, namespace, mirror=session.mirror, **kwargs)
        self.session = session
        self.previous_run = previous_run
        self.cell_number = session.cells
        self.kept: dict[str, int] = {}
        self.received: list[str] = []
        self.status, self.started_at = "running", time.time()  # it starts at once on its worker

    def _applied_results(self) -> None:
        """The session's mirror lives on (it maps the session's objects); what came home is now in sync."""
        self.session.sent(list(self._values), self._namespace)

    def _take(self, outcome: dict[str, Any]) -> BaseException | None:
        self.kept = {k: int(v) for k, v in (outcome.get("kept") or {}).items() if int(v) >= 0}
        self.received = list(outcome.get("received") or [])
        if self.kept:
            shown = ", ".join(f"{n} ({format_bytes(b)})" for n, b in sorted(self.kept.items()))
            self.notes.append(f"kept in session {self.session.name!r}: {shown}; bring home with "
                              f"`%remote_pull {self.session.name} {' '.join(sorted(self.kept))}`")
        return super()._take(outcome)

    def remote_details(self) -> dict[str, Any]:
        return {"session": self.session.name, "session_cell": self.cell_number, "previous_run": self.previous_run,
                "session_worker": self.session.address, "sent_names": self.received,
                "kept": self.kept}
