"""What runs on the Dask worker: one remote cell, in a fresh namespace, with its output sent home live.

The worker never touches the run store: it returns the cell's results, its error, its host and the
resources it used, and the notebook's process records the run.
"""
from __future__ import annotations

import ast
import builtins
import ctypes
import linecache
import os
import socket
import sys
import threading
import time
import traceback
import types
from typing import Any, Iterator

from ..records import CellPayload, RemoteOutcome
from .graph import Mirror, Packed, measure, pack, unpack
from .streaming import (CellOutput, clear_output, display, flush_figures, prepare_matplotlib,
                        routed_output, run_proxy_installed)


# ---- interrupting a running cell ------------------------------------------------------------------

_running: dict[str, dict[str, Any]] = {}  # task key -> {"ident": thread, "in_user_code": bool}
_running_lock = threading.Lock()


def interrupt_task(key: str) -> bool:
    """Raise KeyboardInterrupt in the thread running task `key` (called through `Client.run`).

    Dask's `cancel()` cannot stop a task that is running; an asynchronous exception can, as soon as the
    thread next runs Python bytecode. Returns whether the cell's code was running.
    """
    with _running_lock:
        entry = _running.get(key)
        if not entry or not entry["in_user_code"]:
            return False
        hit = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(entry["ident"]),
                                                         ctypes.py_object(KeyboardInterrupt))
        entry["interrupt_sent"] = entry.get("interrupt_sent") or hit == 1
        return hit == 1


class _Registration:
    def __init__(self, key: str) -> None:
        self.key = key
        self.ident = threading.get_ident()

    def __enter__(self) -> "_Registration":
        with _running_lock:
            _running[self.key] = {"ident": self.ident, "in_user_code": False}
        return self

    def enter_user_code(self) -> None:
        with _running_lock:
            _running[self.key]["in_user_code"] = True

    def leave_user_code(self) -> None:
        """From here on no interrupt is sent; one sent as the code ended is raised here, where the caller
        reports the cell as interrupted, rather than later inside Dask's own code."""
        with _running_lock:
            entry = _running.get(self.key) or {}
            sent = entry.get("in_user_code") and entry.get("interrupt_sent")
            entry["in_user_code"] = False
        if sent:
            # A pending asynchronous exception is raised at the next backward jump of the eval loop.
            # (Clearing it with SetAsyncExc(id, NULL) instead would leave CPython's eval breaker set.)
            for _ in range(100):
                pass

    def __exit__(self, *exc: Any) -> None:
        self.leave_user_code()
        with _running_lock:
            _running.pop(self.key, None)


# ---- the task -------------------------------------------------------------------------------------


def run_cell(payload: CellPayload, inputs: Packed) -> RemoteOutcome:
    """Run one remote cell on this worker and return its outcome (never raises for the cell's errors).

    The inputs arrive as one graph; what comes back is one graph too: the names the cell assigned (or
    `payload.pull`), and the new state of every input object the cell changed in place. It comes back after
    an error or an interrupt as well, as a local cell keeps what it did before it stopped.
    """
    from distributed import get_worker

    worker = get_worker()
    info = worker_info(worker)

    def send(message: dict[str, Any]) -> None:
        worker.log_event(payload.topic, {"key": payload.key, **message})

    send({"type": "start", "info": info})  # "worker" is taken: the scheduler stamps it
    warnings: list[str] = []  # what the run should record as not captured on the worker
    sampler = start_sampler(payload.sample_interval, warnings)
    started = time.time()
    mirror = Mirror("worker", weak_only=False, track_changes=True)
    with routed_output(CellOutput(send)), run_proxy_installed():
        try:
            values, _ = unpack(inputs, mirror, cuda=worker_has_cuda())
        except BaseException as exc:  # noqa: BLE001 - reported as the cell's error, with what to do
            outcome: dict[str, Any] = {"status": "failed", "error": unpack_error_record(exc)}
            namespace = None
        else:
            namespace = cell_namespace(values)
            outcome = execute(payload, namespace)
            if outcome["status"] != "interrupted":
                show_open_figures()
    result: RemoteOutcome = RemoteOutcome(**outcome)  # type: ignore[typeddict-item]
    if namespace is not None:
        result.update(describe_results(namespace, payload, warnings))
        result.update(collect_results(namespace, payload, mirror, list(values)))
    result.update(worker=info, started_at=started, ended_at=time.time(),
                  resources=stop_sampler(sampler, info["host"], warnings), warnings=warnings)
    send({"type": "end", "status": result["status"]})
    return result


def cell_namespace(values: dict[str, Any]) -> dict[str, Any]:
    """The namespace a cell runs in: the globals its notebook functions share (so they see what the cell
    assigns, as they would in the notebook), holding the inputs."""
    namespace: dict[str, Any] = notebook_globals(values.values())
    namespace.update({"__name__": "__main__", "__builtins__": builtins, "display": display})
    namespace.update(values)
    return namespace


def notebook_globals(values: Any) -> dict[str, Any]:
    """The globals dict cloudpickle gave the notebook's functions (one per graph), or a new one."""
    for value in values:
        functions = [value] if isinstance(value, types.FunctionType) else (
            [v for v in vars(value).values() if isinstance(v, types.FunctionType)] if isinstance(value, type) else [])
        for function in functions:
            if function.__module__ == "__main__":
                return function.__globals__
    return {}


def execute(payload: CellPayload, namespace: dict[str, Any]) -> dict[str, Any]:
    """Run the cell's code in `namespace`: {"status": "ok" | "failed" | "interrupted", "error": ...}."""
    cell_lines = payload.display_source.splitlines(keepends=True)
    linecache.cache[payload.filename] = (len(payload.display_source), None, cell_lines, payload.filename)
    added = _add_source_lines(payload.source_lines)
    try:
        with _Registration(payload.key) as registration:
            try:
                try:
                    body, last = _compile(payload)
                    _prepare_namespace(namespace, payload)
                    registration.enter_user_code()
                    exec(body, namespace)
                    if last is not None:
                        value = eval(last, namespace)
                        if value is not None and not payload.silent:
                            display(value)
                finally:
                    registration.leave_user_code()
            except KeyboardInterrupt:
                return {"status": "interrupted"}
            except BaseException as exc:  # noqa: BLE001 - the cell's error is reported, never raised here
                return {"status": "failed", "error": _error_record(exc, payload.filename)}
        return {"status": "ok"}
    finally:
        linecache.cache.pop(payload.filename, None)
        for name in added:
            linecache.cache.pop(name, None)


def show_open_figures() -> None:
    # Figures left open are shown at the end, as the inline backend does (after an error too).
    try:
        flush_figures()
    except Exception as exc:  # noqa: BLE001 - a figure that cannot render must not lose the results
        print(f"pykernel-ext: a figure could not be rendered: {exc}", file=sys.stderr)


def _compile(payload: CellPayload) -> tuple[types.CodeType, types.CodeType | None]:
    # Leading blank lines make every line number (SyntaxErrors included) match the notebook cell.
    source = "\n" * payload.line_offset + payload.source
    tree = ast.parse(source, filename=payload.filename)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(body=tree.body.pop().value), payload.filename, "eval")
    return compile(tree, payload.filename, "exec"), last


def _route_ipython_display() -> None:
    """`from IPython.display import display` in a remote cell sends home too. IPython is touched only by the
    magic layer (the rule of the house), which patches it with our worker-side functions."""
    try:
        from ..magics import route_ipython_display
    except ImportError:  # no IPython on this worker: the cell's own import of it fails as it would anyway
        return
    route_ipython_display(display, clear_output)


def _prepare_namespace(namespace: dict[str, Any], payload: CellPayload) -> None:
    prepare_matplotlib(payload.source)
    if "IPython" in payload.source or "IPython.display" in sys.modules:
        _route_ipython_display()
    if "get_ipython" in payload.source:
        namespace["get_ipython"] = lambda: _WORKER_SHELL


def _add_source_lines(sources: dict[str, list[str]]) -> list[str]:
    added = []
    for filename, lines in sources.items():
        if filename not in linecache.cache and not os.path.exists(filename):
            linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)
            added.append(filename)
    return added


def _error_record(exc: BaseException, filename: str) -> dict[str, Any]:
    tb = exc.__traceback__
    # Start at the cell's own frame: our frames around it mean nothing to the user.
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    hint = _hint(exc)
    if hint:
        text += f"\n{hint}\n"
    return {"type": type(exc).__name__, "message": str(exc), "traceback": text}


def _hint(exc: BaseException) -> str | None:
    """What to change when the cell failed because of how the worker was started, not because of its code."""
    if "daemonic processes are not allowed to have children" in str(exc):
        return ("pykernel-ext: this Dask worker runs as a daemonic process, which cannot start processes (a "
                "DataLoader with num_workers > 0, multiprocessing). Start the workers with "
                "DASK_DISTRIBUTED__WORKER__DAEMON=False in their environment (Dask config "
                "distributed.worker.daemon: false), as `pykernel-ext cluster start` and the embedded cluster do; "
                "or use num_workers=0.")
    return None


# ---- results --------------------------------------------------------------------------------------


def collect_results(namespace: dict[str, Any], payload: CellPayload, mirror: Mirror,
                    sent: list[str]) -> dict[str, Any]:
    """The graph to send home: assigned (or pulled) names, changed inputs, deleted names; what could not come
    back is left out and named in `dropped`."""
    explicit = bool(payload.pull)
    names = payload.pull or [n for n in payload.writes if n in namespace]
    dropped = {n: "the cell did not define it" for n in names if n not in namespace}
    values = {n: namespace[n] for n in names if n in namespace}
    changed = [] if explicit else [obj for _, obj in mirror.changed_objects()]
    deleted = [] if explicit else [n for n in sent if n not in namespace]
    unpulled = [n for n in sent if n in namespace and n not in values and _changed(namespace[n], mirror)] \
        if explicit else []
    graph, failures = pack_leaving_out(values, changed, deleted, mirror, namespace)
    dropped.update(failures)
    return {"graph": graph, "dropped": dropped, "unpulled": unpulled, "returned_bytes": graph.nbytes}


def describe_results(namespace: dict[str, Any], payload: CellPayload, warnings: list[str]) -> dict[str, Any]:
    """What the run records of the results, computed here where they live: the outputs (types, values,
    content hashes) and the --metrics values."""
    from ..capture.outputs import describe_outputs

    try:
        outputs = describe_outputs(payload.writes, namespace)
    except Exception as exc:  # noqa: BLE001 - a record, never a reason to lose the results
        warnings.append(f"outputs not recorded: {type(exc).__name__}: {exc}")
        outputs = []
    scalars = {}
    for name in payload.metrics:
        number = _as_number(namespace.get(name))
        if number is not None:
            scalars[name] = number
    return {"outputs": outputs, "scalars": scalars}


def _as_number(value: Any) -> float | None:
    try:
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            value = value.item()
        return float(value) if isinstance(value, (int, float)) else None
    except Exception:  # noqa: BLE001
        return None


def pack_leaving_out(values: dict[str, Any], changed: list[Any], deleted: list[str], mirror: Mirror,
                     namespace: dict[str, Any]) -> tuple[Packed, dict[str, str]]:
    """Pack the results as one graph; a value that cannot be pickled is left out (with the reason), not the rest."""
    try:
        return pack({"values": values, "changed": changed, "deleted": deleted}, mirror), {}
    except Exception:  # noqa: BLE001 - find which values cannot travel, then send the others
        pass
    failures: dict[str, str] = {}
    for name, value in list(values.items()):
        reason = _unpicklable(value, mirror)
        if reason:
            failures[name] = reason
            del values[name]
    for obj in list(changed):
        reason = _unpicklable(obj, mirror)
        if reason:
            holders = [n for n, v in namespace.items() if v is obj] or [f"a {type(obj).__name__} object"]
            for holder in holders:
                failures[holder] = f"changed in place, but {reason}"
            changed.remove(obj)
    return pack({"values": values, "changed": changed, "deleted": deleted}, mirror), failures


def _unpicklable(value: Any, mirror: Mirror) -> str | None:
    try:
        measure(value, mirror)
    except Exception as exc:  # noqa: BLE001 - any pickling failure means it cannot come back
        return f"{type(exc).__name__}: {exc}"
    return None


def _changed(value: Any, mirror: Mirror) -> bool:
    handle = mirror.handle_of(value)
    return handle is not None and mirror.changed(handle, value)


def unpack_error_record(exc: BaseException) -> dict[str, Any]:
    """The cell's inputs could not be rebuilt here: say which module is missing and what to do."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        message = (f"the cell's inputs need module {exc.name!r}, which this worker cannot import. Install it in "
                   f"the workers' environment (or, for your own module, put it on a path the workers share)")
        return {"type": "ModuleNotFoundError", "message": message, "traceback": f"ModuleNotFoundError: {message}\n"}
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {"type": type(exc).__name__, "message": f"the cell's inputs could not be rebuilt on the worker: {exc}",
            "traceback": text}


def worker_has_cuda() -> bool:
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


# ---- the worker and its GPUs ----------------------------------------------------------------------


def worker_info(worker: Any = None) -> dict[str, Any]:
    """Host, address, declared resources and visible GPUs of this worker (recorded with the run)."""
    from ..gpu import gpu_status

    state = getattr(worker, "state", None)
    status = gpu_status()
    return {
        "address": getattr(worker, "address", None), "name": str(getattr(worker, "name", "")),
        "host": socket.gethostname(), "pid": os.getpid(),
        "nthreads": getattr(state, "nthreads", None) if state is not None else None,
        "resources": dict(getattr(state, "total_resources", {}) or {}) if state is not None else {},
        "gpu_available": status.available, "gpu_reason": status.reason,
        "gpus": [dict(g) for g in status.gpus],
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def sample_worker_gpus() -> list[dict[str, Any]]:
    """One reading of this worker's GPUs (for `pykernel-ext cluster status` and the server's GPU panel)."""
    from ..gpu import sample_gpus

    host = socket.gethostname()
    return [{**s.to_dict(), "host": host} for s in sample_gpus()]


def start_sampler(interval: float, warnings: list[str]) -> Any:
    try:
        from ..capture.hardware import ResourceSampler

        return ResourceSampler(interval=interval).start()
    except Exception as exc:  # noqa: BLE001 - sampling is a record, never a reason to fail the cell
        warnings.append(f"resource sampling on the worker not recorded: {type(exc).__name__}: {exc}")
        return None


def stop_sampler(sampler: Any, host: str, warnings: list[str]) -> dict[str, Any]:
    if sampler is None:
        return {}
    try:
        resources = dict(sampler.stop())
    except Exception as exc:  # noqa: BLE001
        warnings.append(f"resource sampling on the worker not recorded: {type(exc).__name__}: {exc}")
        return {}
    resources["gpu_samples"] = [{**s, "host": host} for s in resources.get("gpu_samples") or []]
    return resources


# ---- `!command` lines ----------------------------------------------------------------------------


class _WorkerShell:
    """The little of IPython's shell a remote cell can use: `!cmd` and `x = !cmd` run on the worker."""

    def system(self, command: str) -> int:
        import subprocess

        process = subprocess.Popen(command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, bufsize=1)
        assert process.stdout is not None
        for line in _lines(process.stdout):
            sys.stdout.write(line)
        return process.wait()

    def getoutput(self, command: str, split: bool = True) -> list[str] | str:
        import subprocess

        out = subprocess.run(command, shell=True, capture_output=True, text=True).stdout
        return out.splitlines() if split else out

    def run_line_magic(self, name: str, line: str, *args: Any) -> None:
        raise RuntimeError(f"%{name} is an IPython magic; magics do not run in a remote cell")

    run_cell_magic = run_line_magic


def _lines(stream: Any) -> Iterator[str]:
    yield from iter(stream.readline, "")


_WORKER_SHELL = _WorkerShell()


def dask_setup(worker: Any = None) -> None:
    """Worker preload of the embedded cluster: ignore SIGINT.

    Jupyter interrupts a kernel by signalling its whole process group, which holds the embedded cluster's
    worker processes; without this, pressing interrupt would kill the worker instead of stopping the cell
    (the kernel stops the cell itself, through `interrupt_task`).
    """
    import signal

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
