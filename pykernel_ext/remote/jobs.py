"""A remote cell from submission to results: following its events, recording its run, bringing its
variables home. A `--no-wait` cell is the same object, followed on a background thread and handed to
the notebook as a handle whose `.result()` brings the variables back later.
"""
from __future__ import annotations

import sys
import threading
import time
from collections import deque
from typing import Any, Protocol

from .errors import RemoteCellError, RemoteError, RemoteTimeout
from .executor import RemoteTask, Requirements
from ..records import RemoteOutcome, WorkerEvent
from .graph import Mirror, Packed, unpack
from .rebind import adopt, give_source

END_GRACE_SECONDS = 2.0  # after the result, wait this long at most for the last output events
INTERRUPT_WAIT_SECONDS = 3.0  # after an interrupt, wait this long for the cell to stop
VIEW_REFRESH_SECONDS = 1.0
MAX_JOBS_KEPT = 200


class OutputSink(Protocol):
    """Where a remote cell's output goes: the cell output, a status widget, a terminal."""

    def stream(self, name: str, text: str) -> None: ...

    def display(self, data: dict[str, Any], metadata: dict[str, Any]) -> None: ...

    def clear(self, wait: bool) -> None: ...

    def status(self, job: "RemoteJob") -> None: ...


class PrintSink:
    """Plain output: text to sys.stdout/sys.stderr, displays as their text/plain form."""

    def stream(self, name: str, text: str) -> None:
        stream = sys.stderr if name == "stderr" else sys.stdout
        stream.write(text)
        stream.flush()

    def display(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        print(data.get("text/plain", ""))

    def clear(self, wait: bool) -> None:
        pass

    def status(self, job: "RemoteJob") -> None:
        pass


class QuietSink(PrintSink):
    """No output: a `--no-wait` cell without a view keeps its output in the job (`.stdout`, `.stderr`)."""

    def stream(self, name: str, text: str) -> None:
        pass

    def display(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        pass


class _Logs:
    """The cell's stdout/stderr as the run records them, capped like a `%%track` cell's."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.size = 0
        self.truncated = False

    def add(self, name: str, text: str) -> str:
        """Keep `text` (up to the cap); returns what was kept."""
        room = self.cap - self.size
        if room <= 0:
            self.truncated = True
            return ""
        kept = text[:room]
        self.parts.setdefault(name, []).append(kept)
        self.size += len(kept)
        self.truncated = self.truncated or len(text) > room
        return kept

    def record(self) -> dict[str, Any]:
        return {"stdout": "".join(self.parts["stdout"]), "stderr": "".join(self.parts["stderr"]),
                "truncated": self.truncated}


class RemoteJob:
    """One remote cell. `status`: queued, running, ok, failed or interrupted."""

    def __init__(self, task: RemoteTask, run: Any, namespace: dict[str, Any], *, name: str, variable: str | None,
                 wants: Requirements, timeout: float | None, log_cap: int, mirror: Mirror | None,
                 cuda: bool = False, cell_file: tuple[str, str] | None = None) -> None:
        self.task = task
        self.run = run
        self.key = task.key
        self.name = name
        self.variable = variable
        self.wants = wants
        self.timeout = timeout
        self.status = "queued"
        self.error: BaseException | None = None
        self.submitted_at = task.submitted_at
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.logs = _Logs(log_cap)
        self.notes: list[str] = []  # what the user should know: values that could not come back
        self.returned_bytes = 0
        self._namespace = namespace
        self._mirror = mirror  # what was sent: results refer to these notebook objects
        self._cuda = cuda
        self._cell_file = cell_file  # (filename, text) the worker compiled the cell as: definitions' source
        self._graph: Packed | None = None  # the results, unpacked into the notebook by `apply()`
        self._values: dict[str, Any] = {}
        self._applied = False
        self._done = threading.Event()
        self._sink: OutputSink = PrintSink()
        self._thread: threading.Thread | None = None
        self._apply_lock = threading.Lock()

    # ---- public handle -----------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.run.id

    @property
    def worker(self) -> str | None:
        return self.task.worker_address

    @property
    def stdout(self) -> str:
        return "".join(self.logs.parts["stdout"])

    @property
    def stderr(self) -> str:
        return "".join(self.logs.parts["stderr"])

    def done(self) -> bool:
        """True once the cell has ended (any way)."""
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the cell, put its variables into the notebook, and return them as a dict.

        Raises the cell's error (with the remote traceback) if it failed, after bringing back what it had
        done until then, as a local cell would. Interrupting the wait leaves the cell running; `cancel()`
        stops it.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done.wait(0.1):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"remote cell {self.name!r} is still {self.status} after {timeout} s")
        values = self.apply()
        if self.error is not None:
            raise self.error
        return values

    def cancel(self) -> None:
        """Stop the cell: a queued one is cancelled, a running one gets KeyboardInterrupt on its worker."""
        if not self.done():
            self.task.interrupt()

    def apply(self) -> dict[str, Any]:
        """Bring the results into the notebook (once): assigned names are bound, and notebook objects the
        cell changed in place are updated in place; returns the assigned values."""
        with self._apply_lock:
            if self._applied or self._graph is None:
                self._applied = True
                return dict(self._values)
            self._applied = True
            graph, self._graph = self._graph, None
            self._values = apply_results(graph, self._mirror, self._namespace, cuda=self._cuda,
                                         cell_file=self._cell_file)
            self._applied_results()
            return dict(self._values)

    def _applied_results(self) -> None:
        """After the results are in the notebook: a stateless cell's mirror (the notebook objects it sent)
        is no longer needed here."""
        self._mirror = None

    def __repr__(self) -> str:
        return f"<RemoteJob {self.name!r} {self.status} on {self.worker or '(not started)'} run {self.run_id[:8]}>"

    def summary(self) -> str:
        """One status line: name, status, worker, elapsed time."""
        end = self.ended_at or time.time()
        elapsed = end - (self.started_at or self.submitted_at)
        where = f" on {self.task.worker.get('host')} ({self.worker})" if self.task.worker else ""
        return f"remote {self.name!r}: {self.status}{where} · {elapsed:.1f} s · run {self.run_id[:8]}"

    # ---- following the cell ------------------------------------------------------------------------

    def follow(self, sink: OutputSink) -> dict[str, Any]:
        """Wait in this thread, showing output live; returns the variables (already in the namespace)."""
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame: the error is the cell's
        self._sink = sink
        self._follow()
        try:
            values = self.apply()
        finally:
            self._show_notes()
        if self.error is not None:
            raise self.error
        return values

    def follow_in_background(self, sink: OutputSink) -> None:
        """`--no-wait`: follow on a daemon thread; `result()` collects later."""
        self._sink = sink
        self._thread = threading.Thread(target=self._follow, name=f"pykernel-ext-{self.key}", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        """Follow to the end and record the run; the outcome lands in `self.error` / `self._values`."""
        outcome: dict[str, Any] | None = None
        error: BaseException | None = None
        try:
            try:
                self._consume()
                outcome = self.task.outcome()
            except KeyboardInterrupt:
                outcome, error = self._stop(), KeyboardInterrupt()
            except RemoteTimeout as exc:
                outcome, error = self._stop(), exc
            except RemoteError as exc:  # the worker died, or no worker can take it
                self.task.cancel()
                error = exc
            if outcome is not None:
                taken = self._take(outcome)
                error = error or taken
        except BaseException as exc:  # noqa: BLE001 - record whatever ended it, then report it
            error = exc
        finally:
            self.task.release()
            self._end(outcome, error)

    def _consume(self) -> None:
        deadline = None if self.timeout is None else self.submitted_at + self.timeout
        done_at: float | None = None
        next_view = time.monotonic() + VIEW_REFRESH_SECONDS
        while True:
            event = self.task.next_event(0.05)
            if event is not None and event.get("type") != "_done":
                self._handle(event)
                continue
            if self.task.done():
                # The result can overtake the last output events; give them a moment unless it failed.
                done_at = done_at or time.monotonic()
                if self.task.ended or not self.task.finished() or \
                        time.monotonic() - done_at > END_GRACE_SECONDS:
                    return
                continue
            if event is not None:
                continue  # woken by the result before the future says done: look again
            self.task.check(self.wants)
            if deadline is not None and time.time() > deadline:
                raise RemoteTimeout(f"the cell ran past --timeout {self.timeout:g} s and was stopped")
            if time.monotonic() > next_view:
                next_view = time.monotonic() + VIEW_REFRESH_SECONDS
                self._sink.status(self)

    def _handle(self, event: WorkerEvent) -> None:
        kind = event.get("type")
        if kind == "stream":
            kept = self.logs.add(event["name"], event["text"])
            self.run.add_output(event["name"], kept)  # in the store within seconds, as a local cell's output
            self._sink.stream(event["name"], event["text"])
        elif kind == "display":
            self._sink.display(event.get("data") or {}, event.get("metadata") or {})
        elif kind == "clear":
            self._sink.clear(bool(event.get("wait")))
        elif kind == "metric":
            self.run.log(step=event.get("step"), **(event.get("values") or {}))
        elif kind == "start":
            self.status, self.started_at = "running", time.time()
            self._sink.status(self)

    def _stop(self) -> dict[str, Any] | None:
        """Interrupt the cell and wait (briefly) for it to stop; its outcome if it did."""
        self.status = "interrupting"
        try:
            self.task.interrupt()
            deadline = time.monotonic() + INTERRUPT_WAIT_SECONDS
            while not self.task.done() and time.monotonic() < deadline:
                event = self.task.next_event(0.05)
                if event is not None:
                    self._handle(event)
        except KeyboardInterrupt:
            pass  # a second interrupt: stop waiting for the worker
        if not self.task.done():
            self.notes.append(f"the cell is still running on {self.worker} (blocked outside Python code?); it "
                              "stops when it next runs Python. To force it, restart that worker.")
            self.task.cancel()
            return None
        if not self.task.finished():
            return None
        return self.task.outcome()

    def _take(self, outcome: RemoteOutcome) -> BaseException | None:
        """Keep the worker's results (also after an error or an interrupt); the cell's own error becomes the
        exception to raise."""
        self._graph = outcome.get("graph")
        self.returned_bytes = int(outcome.get("returned_bytes") or 0)
        for name, reason in (outcome.get("dropped") or {}).items():
            self.notes.append(f"{name!r} was not brought back: {reason}")
        unpulled = outcome.get("unpulled") or []
        if unpulled:
            self.notes.append(f"changed on the worker but not pulled, so unchanged here: {', '.join(unpulled)}")
        status = outcome.get("status")
        if status == "ok":
            return None
        if status == "interrupted":
            return KeyboardInterrupt()
        error = outcome.get("error") or {}
        return RemoteCellError(error.get("type", "Error"), error.get("message", ""), error.get("traceback", ""),
                               worker=(outcome.get("worker") or {}).get("address"))

    def _end(self, outcome: dict[str, Any] | None, error: BaseException | None) -> None:
        self.ended_at = time.time()
        self.error = error
        self.status = "ok" if error is None else ("interrupted" if isinstance(error, KeyboardInterrupt)
                                                    else "failed")
        outcome = outcome or {}
        worker = dict(outcome.get("worker") or self.task.worker or {})
        try:
            self.run.record_remote_outcome(
                error, logs=self.logs.record(), resources=outcome.get("resources") or {}, worker=worker,
                outputs=outcome.get("outputs"), scalars=outcome.get("scalars") or {},
                warnings=outcome.get("warnings") or [], data=outcome.get("data") or [],
                remote={"key": self.key, "requirements": self.wants.describe(), "notes": self.notes,
                        "sent_bytes": self.task.sent_bytes, "returned_bytes": self.returned_bytes,
                        **self.remote_details()})
        finally:
            if self._thread is not None:
                self._show_notes()  # a --no-wait cell: nobody waits in follow() to show them
            self._done.set()
            self._sink.status(self)

    def remote_details(self) -> dict[str, Any]:
        """Extra details for the run record (a session cell adds its session)."""
        return {}

    def _show_notes(self) -> None:
        notes, self.notes_shown = self.notes[getattr(self, "notes_shown", 0):], len(self.notes)
        if notes:
            self._sink.stream("stderr", "".join(f"pykernel-ext: {note}\n" for note in notes))


def apply_results(graph: Packed, mirror: Mirror | None, namespace: dict[str, Any], *, cuda: bool,
                  cell_file: tuple[str, str] | None = None) -> dict[str, Any]:
    """Unpack a cell's results into `namespace`: bind what it assigned, update in place what it changed,
    rebind names whose object could only be replaced, drop names it deleted. Returns the assigned values.
    With `cell_file` (filename, text), functions and classes the cell defined get their source from it."""
    root, unpacked = unpack(graph, mirror, cuda=cuda)
    values = dict(root.get("values") or {})
    replaced = {id(old): new for old, new in unpacked.replaced}
    if replaced:
        for name, value in list(namespace.items()):
            if id(value) in replaced:
                namespace[name] = replaced[id(value)]
    for name in root.get("deleted") or []:
        namespace.pop(name, None)
    values = adopt(values, namespace)  # functions defined in the cell read the notebook's globals here
    if cell_file is not None:
        give_source(values, *cell_file)
    namespace.update(values)
    return values


# ---- the kernel's list of remote cells --------------------------------------------------------------

JOBS: deque[RemoteJob] = deque(maxlen=MAX_JOBS_KEPT)


def format_jobs(jobs: list[RemoteJob] | None = None) -> str:
    """`%remote_jobs`: one line per remote cell of this kernel, newest last."""
    jobs = list(JOBS) if jobs is None else jobs
    if not jobs:
        return "No remote cells in this kernel yet."
    header = f"{'handle':<14} {'name':<24} {'status':<12} {'worker':<28} {'started':<9} {'time':>8}  run"
    lines = [header]
    for job in jobs:
        start = time.strftime("%H:%M:%S", time.localtime(job.submitted_at))
        elapsed = (job.ended_at or time.time()) - job.submitted_at
        lines.append(f"{(job.variable or '-'):<14} {job.name[:24]:<24} {job.status:<12} "
                     f"{(job.worker or '-')[:28]:<28} {start:<9} {elapsed:>7.1f}s  {job.run_id[:8]}")
    return "\n".join(lines)
