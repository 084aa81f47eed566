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
from dataclasses import dataclass, field
from typing import Any, Iterator

from .streaming import (CellOutput, display, flush_figures, patch_ipython_display, prepare_matplotlib,
                        routed_output, run_proxy_installed)


@dataclass
class CellPayload:
    """Everything the worker needs to run one cell; built by `shipping.prepare_cell`."""

    key: str
    topic: str
    source: str  # Python source after IPython's transforms
    filename: str  # "<remote cell N>": what tracebacks show
    display_source: str  # the cell as the user sees it, for traceback source lines
    line_offset: int = 0  # lines before the body in the notebook cell (the `%%remote` line)
    values: dict[str, Any] = field(default_factory=dict)  # small values, sent inside the task
    modules: dict[str, str] = field(default_factory=dict)  # name -> module, imported on the worker
    writes: list[str] = field(default_factory=list)
    pull: list[str] = field(default_factory=list)  # explicit --pull names (replace `writes`)
    to_cpu: bool = False  # the notebook has no CUDA: bring tensors and modules back on the CPU
    source_lines: dict[str, list[str]] = field(default_factory=dict)  # linecache of shipped functions
    sample_interval: float = 0.5
    silent: bool = False  # the cell ends with `;`: do not display its last expression


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


def run_cell(payload: CellPayload, scattered: dict[str, Any]) -> dict[str, Any]:
    """Run one remote cell on this worker and return its outcome (never raises for the cell's errors)."""
    from distributed import get_worker

    worker = get_worker()
    info = worker_info(worker)

    def send(message: dict[str, Any]) -> None:
        worker.log_event(payload.topic, {"key": payload.key, **message})

    send({"type": "start", "info": info})  # "worker" is taken: the scheduler stamps it
    sampler = _start_sampler(payload.sample_interval)
    started = time.time()
    with routed_output(CellOutput(send)), run_proxy_installed():
        outcome = _execute(payload, scattered)
        if outcome["status"] != "interrupted":
            _show_open_figures()
    result = _collect(outcome, payload) if outcome["status"] == "ok" else dict(outcome)
    result.update(worker=info, started_at=started, ended_at=time.time(),
                  resources=_stop_sampler(sampler, info["host"]))
    send({"type": "end", "status": result["status"]})
    return result


def _execute(payload: CellPayload, scattered: dict[str, Any]) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins, "display": display}
    cell_lines = payload.display_source.splitlines(keepends=True)
    linecache.cache[payload.filename] = (len(payload.display_source), None, cell_lines, payload.filename)
    added = _add_source_lines(payload.source_lines)
    try:
        with _Registration(payload.key) as registration:
            try:
                try:
                    body, last = _compile(payload)
                    _fill_namespace(namespace, payload, scattered)
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
                return {"status": "error", "error": _error_record(exc, payload.filename)}
        return {"status": "ok", "namespace": namespace}
    finally:
        linecache.cache.pop(payload.filename, None)
        for name in added:
            linecache.cache.pop(name, None)


def _show_open_figures() -> None:
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


def _fill_namespace(namespace: dict[str, Any], payload: CellPayload, scattered: dict[str, Any]) -> None:
    import importlib

    prepare_matplotlib(payload.source)
    if "IPython" in payload.source or "IPython.display" in sys.modules:
        patch_ipython_display()
    if "get_ipython" in payload.source:
        namespace["get_ipython"] = lambda: _WORKER_SHELL
    for name, module in payload.modules.items():
        try:
            namespace[name] = importlib.import_module(module)
        except ImportError as exc:
            raise ModuleNotFoundError(f"module {module!r} (the notebook's {name!r}) cannot be imported on "
                                      f"this worker: {exc}") from None
    namespace.update(payload.values)
    namespace.update(scattered)
    # Rebinding copies each function's own globals in: the notebook functions they call get rebound too.
    pending = [name for name, value in namespace.items() if _notebook_function(value)]
    while pending:
        name = pending.pop()
        value = namespace[name]
        if _notebook_function(value) and value.__globals__ is not namespace:
            known = set(namespace)
            namespace[name] = _rebind(value, namespace)
            pending += [n for n in set(namespace) - known if _notebook_function(namespace[n])]


def _notebook_function(value: Any) -> bool:
    return isinstance(value, types.FunctionType) and value.__module__ == "__main__"


def _rebind(func: types.FunctionType, namespace: dict[str, Any]) -> types.FunctionType:
    """The notebook's function with the cell's namespace as its globals, so it sees what the cell assigns
    (and the other shipped functions), as it would in the notebook."""
    for key, value in func.__globals__.items():
        namespace.setdefault(key, value)
    rebound = types.FunctionType(func.__code__, namespace, func.__name__, func.__defaults__, func.__closure__)
    rebound.__kwdefaults__ = func.__kwdefaults__
    rebound.__dict__.update(func.__dict__)
    rebound.__qualname__ = func.__qualname__
    rebound.__annotations__ = func.__annotations__
    rebound.__doc__ = func.__doc__
    rebound.__module__ = func.__module__
    return rebound


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
    return {"type": type(exc).__name__, "message": str(exc), "traceback": text}


# ---- results --------------------------------------------------------------------------------------


def _collect(outcome: dict[str, Any], payload: CellPayload) -> dict[str, Any]:
    """The values to bring home: pickled here one by one, so one that cannot travel does not sink the rest."""
    import cloudpickle

    namespace = outcome["namespace"]
    explicit = bool(payload.pull)
    values: dict[str, Any] = {}
    modules: dict[str, str] = {}
    dropped: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for name in payload.pull or payload.writes:
        if name not in namespace:
            if explicit:
                dropped[name] = "the cell did not define it"
            continue
        value = namespace[name]
        if isinstance(value, types.ModuleType):
            modules[name] = value.__name__
            continue
        if payload.to_cpu:
            value = to_cpu(value)
        try:
            sizes[name] = pickled_size(value, cloudpickle)
        except Exception as exc:  # noqa: BLE001 - any pickling failure means it cannot come back
            dropped[name] = f"{type(exc).__name__}: {exc}"
            continue
        values[name] = value
    return {"status": "ok", "values": values, "modules": modules, "dropped": dropped, "sizes": sizes}


def pickled_size(value: Any, cloudpickle: Any) -> int:
    """Bytes `value` takes pickled; large buffers (arrays) are measured, not copied."""
    sizes: list[int] = []

    def keep_out_of_band(buffer: Any) -> bool:
        sizes.append(buffer.raw().nbytes)
        return False

    head = cloudpickle.dumps(value, protocol=5, buffer_callback=keep_out_of_band)
    return len(head) + sum(sizes)


def to_cpu(value: Any) -> Any:
    """CUDA tensors and modules moved to the CPU, inside dicts, lists and tuples too (like map_location)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return value
    if isinstance(value, torch.Tensor):
        return value.cpu() if value.is_cuda else value
    if isinstance(value, torch.nn.Module):
        on_gpu = any(t.is_cuda for t in list(value.parameters()) + list(value.buffers()))
        return value.to("cpu") if on_gpu else value
    if isinstance(value, dict):
        return type(value)((k, to_cpu(v)) for k, v in value.items()) if type(value) is dict else value
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        return type(value)(to_cpu(v) for v in value)
    return value


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


def _start_sampler(interval: float) -> Any:
    try:
        from ..capture.hardware import ResourceSampler

        return ResourceSampler(interval=interval).start()
    except Exception:  # noqa: BLE001 - sampling is a record, never a reason to fail the cell
        return None


def _stop_sampler(sampler: Any, host: str) -> dict[str, Any]:
    if sampler is None:
        return {}
    try:
        resources = dict(sampler.stop())
    except Exception:  # noqa: BLE001
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
