"""Run a cell on a worker of a Dask cluster, tracked like any run: `%%remote` and `remote()`.

    from pykernel_ext.remote import remote
    out = remote("model = train(lr)", gpus=1)      # blocks; `model` lands in the caller's namespace
    job = remote("model = train(lr)", wait=False)  # returns a RemoteJob; job.result() later

Importing this package is cheap: Dask, distributed and cloudpickle load on first use.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..tracking import RunContext, TrackOptions, check_data_paths, start_run
from .errors import (ClusterUnavailable, RemoteCellError, RemoteError, RemoteTimeout, RemoteUsageError,
                     ResourceUnavailable, ShippingError, WorkerDied)
from .jobs import JOBS, OutputSink, PrintSink, QuietSink, RemoteJob, format_jobs
from .executor import Requirements

if TYPE_CHECKING:
    from .session_kernel import RemoteSession

__all__ = [
    "remote", "submit_remote", "session", "sessions", "close_session", "format_sessions", "RemoteSession", "RemoteOptions", "RemoteJob", "Requirements", "JOBS", "format_jobs", "worker_gpus",
    "RemoteError", "RemoteUsageError", "RemoteCellError", "ShippingError", "ResourceUnavailable", "WorkerDied",
    "RemoteTimeout", "ClusterUnavailable", "DEFAULT_HANDLE",
]

DEFAULT_HANDLE = "_remote_job"  # the name a --no-wait handle is bound to, besides --name when it is a name


@dataclass
class RemoteOptions:
    """How to run a remote cell (the `%%remote` options beyond `%%track`'s)."""

    gpus: float = 0
    cpus: float | None = None
    memory: int | None = None
    scheduler: str | None = None
    push: list[str] = field(default_factory=list)
    pull: list[str] = field(default_factory=list)
    timeout: float | None = None
    wait: bool = True
    session: str | None = None  # run in this remote session (a namespace that lives on one worker)
    home_bytes: int | None = None  # in a session, assigned values up to this size also come home


def submit_remote(context: RunContext, options: RemoteOptions, track: TrackOptions | None = None, *,
               sink: OutputSink | None = None, display_source: str | None = None, line_offset: int = 0,
               view_factory: Any = None) -> RemoteJob:
    """Ship and submit one remote cell as a tracked run; returns its job.

    With `options.wait` the caller follows it (`job.follow(sink)`: live output, then the variables or the
    cell's error as RemoteCellError); without, it is followed on a background thread and `view_factory(job)`
    (if given) receives its output. Raises RemoteUsageError subclasses before anything is sent (a value
    that cannot be pickled, a resource no worker offers) and ClusterUnavailable when no scheduler answers.
    """
    from .cluster import get_executor
    from .shipping import cell_names, is_silent, names_to_send, prepare_cell
    from ..records import CellPayload

    track = track or TrackOptions()
    sink = sink or PrintSink()
    namespace = context.namespace if context.namespace is not None else {}
    python_source = context.python_source or context.source
    reads, writes = cell_names(python_source)
    if options.session:
        return _submit_session_cell(context, options, track, sink, display_source, line_offset, view_factory,
                                    reads, writes)
    payload = CellPayload(
        key="", topic="", source=python_source, filename=f"<remote cell {context.execution_count or len(JOBS) + 1}>",
        display_source=display_source if display_source is not None else context.source,
        line_offset=line_offset, writes=list(writes), pull=list(options.pull), silent=is_silent(context.source),
        metrics=list(track.metrics),
    )
    shipment = prepare_cell(payload, namespace, names_to_send(reads, namespace, list(options.push)))
    executor = get_executor(options.scheduler)
    payload.key, payload.topic = executor.new_key(), executor.topic
    wants = Requirements(gpus=options.gpus, cpus=options.cpus, memory=options.memory)
    placement = executor.restrictions(wants)
    for note in shipment.notes:
        sink.stream("stderr", f"pykernel-ext: {note}\n")
    check_data_paths(track, context.cwd or os.getcwd())  # before sending: start_run comes after
    settings = Settings.from_env()
    payload.sample_interval = settings.gpu_sample_interval
    task = executor.submit(shipment, placement)
    run = _record_while_it_runs(task, track, context, settings)
    name, variable = _job_names(track, options, run, payload.key)
    job = RemoteJob(task, run, namespace, name=name, variable=variable, wants=wants, timeout=options.timeout,
                    log_cap=run.settings.log_cap_bytes, mirror=shipment.mirror, cuda=_local_cuda(),
                    cell_file=_cell_file(payload))
    return _launch(job, options, view_factory)


def _submit_session_cell(context: RunContext, options: RemoteOptions, track: TrackOptions, sink: OutputSink,
                         display_source: str | None, line_offset: int, view_factory: Any,
                         reads: tuple[str, ...], writes: tuple[str, ...]) -> RemoteJob:
    """A cell of remote session `options.session`: only changed notebook values travel; small results come home."""
    from .session_kernel import get_session
    from .session_cells import SessionJob, SessionTask
    from ..records import SessionCell
    from .shipping import is_silent, names_to_send
    from ..records import CellPayload

    namespace = context.namespace if context.namespace is not None else {}
    settings = Settings.from_env()
    notes: list[str] = []
    wants = Requirements(gpus=options.gpus, cpus=options.cpus, memory=options.memory)
    session = get_session(options.session or "", wants, options.scheduler, notes=notes)
    check_data_paths(track, context.cwd or os.getcwd())  # before sending: start_run comes after
    plan = session.plan(names_to_send(reads, namespace, list(options.push)), namespace)
    executor = session.executor
    payload = CellPayload(
        key=executor.new_key(), topic=executor.topic, source=context.python_source or context.source,
        filename=f"<remote cell {context.execution_count or len(JOBS) + 1}>",
        display_source=display_source if display_source is not None else context.source, line_offset=line_offset,
        writes=list(writes), pull=list(options.pull), silent=is_silent(context.source), metrics=list(track.metrics),
        sample_interval=settings.gpu_sample_interval)
    if plan.inputs is not None:
        payload.source_lines = _function_sources([namespace[n] for n in plan.names])
    cell = SessionCell(payload, plan.inputs, reads=list(reads),
                       home_bytes=settings.session_home_bytes if options.home_bytes is None else options.home_bytes)
    for note in notes:
        sink.stream("stderr", f"pykernel-ext: {note}\n")
    events = executor.register_events(payload.key)
    task = SessionTask(session, cell, plan, namespace, events)
    track.tags.setdefault("session", session.name)
    run = _record_while_it_runs(task, track, context, settings)
    previous, session.previous_run = session.previous_run, run.id
    session.cells += 1
    name, variable = _job_names(track, options, run, payload.key)
    job = SessionJob(task, run, namespace, session=session, previous_run=previous, name=name,  # type: ignore[arg-type]
                     variable=variable, wants=session.wants, timeout=options.timeout,
                     log_cap=run.settings.log_cap_bytes, cuda=_local_cuda(), cell_file=_cell_file(payload))
    return _launch(job, options, view_factory)


def _record_while_it_runs(task: Any, track: TrackOptions, context: RunContext, settings: Settings) -> Any:
    """The cell's run, recorded while the worker already runs the cell, so the record costs the cell no
    time. Not activated: cells run locally meanwhile (a --no-wait cell keeps going) must not become its
    children or log metrics into it. A run that cannot be recorded stops the cell it would describe."""

    try:
        return start_run(track, context, settings, capture_output=False, sample_resources=False, activate=False)
    except BaseException:
        task.interrupt()
        task.release()
        raise


def _job_names(track: TrackOptions, options: RemoteOptions, run: Any, key: str) -> tuple[str, str | None]:
    """The job's display name, and the notebook variable a --no-wait cell's job is bound to (its --name
    when that is an identifier, else the default handle; none for a cell the notebook waits for)."""
    name = track.name or run.summary.get("name") or key
    if options.wait:
        return name, None
    return name, track.name if track.name and track.name.isidentifier() else DEFAULT_HANDLE


def _cell_file(payload: Any) -> tuple[str, str]:
    """A filename for the cell unique in this kernel (`<remote cell 5>` may run twice), and the text the
    worker compiles it as (its line numbers are the notebook cell's)."""
    return f"{payload.filename[:-1]} {payload.key[-8:]}>", "\n" * payload.line_offset + payload.source


def _launch(job: RemoteJob, options: RemoteOptions, view_factory: Any) -> RemoteJob:
    JOBS.append(job)
    if not options.wait:
        job.follow_in_background(view_factory(job) if view_factory else QuietSink())
    return job


def _function_sources(values: list[Any]) -> dict[str, list[str]]:
    from .shipping import _function_sources as sources

    return sources(values)


def remote(code: str, namespace: dict[str, Any] | None = None, *, gpus: float = 0, cpus: float | None = None,
           memory: int | None = None, scheduler: str | None = None, push: list[str] | tuple = (),
           pull: list[str] | tuple = (), timeout: float | None = None, wait: bool = True,
           name: str | None = None, params: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
           data: list[str] | tuple = (), metrics: list[str] | tuple = (),
           artifacts: list[str] | tuple = (), session: str | None = None,
           home_bytes: int | None = None) -> dict[str, Any] | RemoteJob:
    """Run `code` on a Dask worker as a tracked run (kind "remote"), as `%%remote` does.

    `namespace` (default: the caller's globals) supplies the values the code reads and receives the
    names it assigns (or `pull`); notebook objects the code changes in place are updated in place. Returns
    the assigned values as a dict, or with `wait=False` a RemoteJob whose `result()` returns them later.
    The code's own errors raise RemoteCellError with its traceback.

    `session="train"` runs it in a remote session (started on first use on a worker offering `gpus`,
    `cpus`, `memory`): its namespace stays on that worker across calls; notebook values are sent only
    when they changed; assigned values up to `home_bytes` (default 1 MB) come home, bigger ones stay
    until pulled (`session(...).pull("model")`).
    """
    if namespace is None:
        namespace = sys._getframe(1).f_globals
    context = RunContext(kind="remote", source=code, python_source=code, namespace=namespace,
                         module_name=namespace.get("__name__", "__main__"))
    track = TrackOptions(name=name, params=dict(params or {}), data=list(data), metrics=list(metrics),
                         artifacts=list(artifacts), tags=dict(tags or {}))
    options = RemoteOptions(gpus=gpus, cpus=cpus, memory=memory, scheduler=scheduler, push=list(push),
                            pull=list(pull), timeout=timeout, wait=wait, session=session, home_bytes=home_bytes)
    job = submit_remote(context, options, track)
    return job.follow(PrintSink()) if wait else job


def session(name: str, *, gpus: float = 0, cpus: float | None = None, memory: int | None = None,
            scheduler: str | None = None) -> "RemoteSession":
    """The remote session `name` of this kernel, started on first use on a worker offering the resources:
    `s = session("train", gpus=1); s.run("model.fit()"); s.pull("model"); s.push("lr"); s.close()`."""
    from .session_kernel import get_session

    return get_session(name, Requirements(gpus=gpus, cpus=cpus, memory=memory), scheduler)


def sessions() -> list["RemoteSession"]:
    """This kernel's remote sessions."""
    from .session_kernel import SESSIONS

    return list(SESSIONS.values())


def close_session(name: str | None = None) -> None:
    """Close this kernel's session `name` (every session when None), freeing its worker's GPU memory."""
    from .session_kernel import close_all, forget

    if name is None:
        close_all()
    elif forget(name) is None:
        raise RemoteUsageError(f"no remote session named {name!r} in this process")


def format_sessions() -> str:
    """`%remote_session`'s table: each session's worker, resources, variables and sizes, GPU memory, idle time."""
    from .session_format import format_sessions as table
    from .session_kernel import SESSIONS

    return table(list(SESSIONS.values()))


def worker_gpus(scheduler_address: str | None = None, timeout: float = 2.0) -> list[dict[str, Any]]:
    """Workers of the known clusters with their GPU readings; see `cluster.worker_gpus`."""
    from .cluster import worker_gpus as _worker_gpus

    return _worker_gpus(scheduler_address, timeout)


def _local_cuda() -> bool:
    """Whether the notebook's process can hold CUDA tensors (torch is asked only if already imported)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            return bool(torch.cuda.is_available())
        except Exception:  # noqa: BLE001
            return False
    from ..gpu import gpu_status

    return gpu_status().available


def __getattr__(name: str) -> Any:
    # RemoteSession without importing the session machinery at `%load_ext` time.
    if name == "RemoteSession":
        from .session_kernel import RemoteSession

        return RemoteSession
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
