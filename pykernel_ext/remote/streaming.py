"""Worker side of live output: stdout, stderr, `display()` and matplotlib figures of a remote cell, sent to
the notebook as Dask events (`Worker.log_event`) while the cell runs.

A worker runs several tasks in threads of one process, so `sys.stdout` cannot simply be swapped per cell:
it is replaced once by a router that sends each write to the cell running in the writing thread. Writes
are batched for at most FLUSH_SECONDS, so a loop printing thousands of lines costs a few events, not
thousands, and output still reaches the notebook well within 100 ms.
"""
from __future__ import annotations

import base64
import logging
import os
import sys
import threading
from typing import Any, Callable

from ..per_process import PerProcess

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.02
MAX_PENDING_CHARS = 256 * 1024  # flush at once past this, so a huge print is not held in memory
MPL_BACKEND = "module://pykernel_ext.remote.mpl_backend"

# Rich representations a display can carry, in the order Jupyter front ends prefer them.
_REPR_METHODS = (
    ("text/html", "_repr_html_"), ("text/markdown", "_repr_markdown_"), ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"), ("image/jpeg", "_repr_jpeg_"), ("text/latex", "_repr_latex_"),
    ("application/json", "_repr_json_"), ("application/javascript", "_repr_javascript_"),
)


class CellOutput:
    """Everything one running cell sends home: buffered text streams and immediate rich displays."""

    def __init__(self, send: Callable[[dict[str, Any]], None]) -> None:
        self._send = send
        self._lock = threading.Lock()  # guards the pending text
        self._sending = threading.RLock()  # one flush at a time, so text never overtakes older text
        self._pending: list[tuple[str, list[str]]] = []  # (name, pieces) in write order, one name merged
        self._pending_chars = 0

    def write(self, name: str, text: str) -> None:
        if not text:
            return
        with self._lock:
            first = self._pending_chars == 0
            if self._pending and self._pending[-1][0] == name:
                self._pending[-1][1].append(text)
            else:
                self._pending.append((name, [text]))
            self._pending_chars += len(text)
            urgent = self._pending_chars > MAX_PENDING_CHARS
        if urgent:
            self.flush()
        elif first:
            _flusher().wake(self)

    def flush(self) -> None:
        with self._sending:
            with self._lock:
                batches, self._pending, self._pending_chars = self._pending, [], 0
            for name, pieces in batches:
                self._send({"type": "stream", "name": name, "text": "".join(pieces)})

    def display(self, data: dict[str, Any], metadata: dict[str, Any] | None = None) -> None:
        with self._sending:
            self.flush()  # text printed before a display must appear before it
            self._send({"type": "display", "data": data, "metadata": metadata or {}})

    def clear(self, wait: bool = False) -> None:
        with self._sending:
            self.flush()
            self._send({"type": "clear", "wait": bool(wait)})

    def metric(self, step: int | None, values: dict[str, float]) -> None:
        with self._sending:
            self._send({"type": "metric", "step": step, "values": values})


class RemoteRunProxy:
    """Stands in for the notebook's run on a worker: `pykernel_ext.log()` in a remote cell sends the
    metrics home, where the run records them."""

    id = None  # code asking for the active run's id (a parent for nested runs) finds none here

    def log(self, step: int | None = None, **values: Any) -> None:
        output = current_output()
        if output is None:
            return
        numbers = {}
        for key, raw in values.items():
            try:
                numbers[key] = float(raw.item() if hasattr(raw, "item") else raw)
            except (TypeError, ValueError):
                continue  # the run in the notebook warns about non-numbers; here we just skip them
        output.metric(None if step is None else int(step), numbers)

    def log_artifact(self, path: Any) -> None:
        print(f"pykernel-ext: log_artifact({path!r}) in a remote cell is not stored (the file is on the "
              "worker); use --artifacts with a shared folder", file=sys.stderr)


_proxy = RemoteRunProxy()
_proxy_users = 0
_proxy_lock = threading.Lock()


class run_proxy_installed:
    """While remote cells run on this worker, `pykernel_ext.log()` reaches their runs; removed after, so
    other work in the process (a batch run's driver code) never sees it."""

    def __enter__(self) -> None:
        global _proxy_users
        from .. import tracking

        with _proxy_lock:
            _proxy_users += 1
            tracking.add_active(_proxy)

    def __exit__(self, *exc: Any) -> None:
        global _proxy_users
        from .. import tracking

        with _proxy_lock:
            _proxy_users -= 1
            if _proxy_users == 0:
                tracking.remove_active(_proxy)


class _Flusher:
    """One daemon thread per worker process flushing cells that have pending text."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: set[CellOutput] = set()
        self.pid = os.getpid()
        threading.Thread(target=self._loop, name="pykernel-ext-output", daemon=True).start()

    def wake(self, output: CellOutput) -> None:
        with self._cond:
            self._due.add(output)
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._due:
                    self._cond.wait()
            # Let more writes gather: one event per FLUSH_SECONDS instead of one per print.
            threading.Event().wait(FLUSH_SECONDS)
            with self._cond:
                due, self._due = self._due, set()
            for output in due:
                try:
                    output.flush()
                except Exception:  # noqa: BLE001 - a closed worker must not kill this thread; the log says why
                    logger.warning("pykernel-ext: remote output could not be sent home", exc_info=True)


_flusher_instance: PerProcess[_Flusher] = PerProcess(_Flusher)


def _flusher() -> _Flusher:
    return _flusher_instance.get()


# ---- routing per thread -------------------------------------------------------------------------

_outputs: dict[int, CellOutput] = {}  # thread ident -> the cell running in it
_outputs_lock = threading.Lock()


def current_output() -> CellOutput | None:
    """The output of the cell running in this thread; a thread the cell started itself (a data loader, a
    progress bar's monitor) belongs to it when it is the only cell running on this worker."""
    output = _outputs.get(threading.get_ident())
    if output is None and len(_outputs) == 1:
        output = next(iter(_outputs.values()), None)
    return output


class _RoutedStream:
    """Stands in for sys.stdout/sys.stderr on the worker: a running cell's writes go home, others pass."""

    def __init__(self, original: Any, name: str) -> None:
        self._original = original
        self._name = name

    def write(self, text: str) -> int:
        output = current_output()
        if output is None:
            return self._original.write(text)
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        output.write(self._name, text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        output = current_output()
        if output is None:
            self._original.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


class routed_output:
    """Context manager: while it is open, this thread's prints, displays and figures go to `output`."""

    def __init__(self, output: CellOutput) -> None:
        self.output = output
        self._ident = threading.get_ident()

    def __enter__(self) -> CellOutput:
        _install_routing()
        with _outputs_lock:
            _outputs[self._ident] = self.output
        return self.output

    def __exit__(self, *exc: Any) -> None:
        with _outputs_lock:
            _outputs.pop(self._ident, None)
        self.output.flush()


def _install_routing() -> None:
    if not isinstance(sys.stdout, _RoutedStream):
        sys.stdout = _RoutedStream(sys.stdout, "stdout")
    if not isinstance(sys.stderr, _RoutedStream):
        sys.stderr = _RoutedStream(sys.stderr, "stderr")


# ---- rich display -------------------------------------------------------------------------------


def mime_bundle(obj: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The representations Jupyter would show for `obj`, without needing IPython on the worker."""
    if _is_figure(obj):
        return _figure_bundle(obj), {}
    data: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    method = getattr(obj, "_repr_mimebundle_", None)
    if callable(method) and not isinstance(obj, type):
        try:
            produced = method(include=None, exclude=None)
        except Exception:  # noqa: BLE001 - a broken repr falls back to the others, as in IPython
            produced = None
        if isinstance(produced, tuple) and len(produced) == 2:
            produced, metadata = produced
        if isinstance(produced, dict):
            data.update(produced)
    for mime, name in _REPR_METHODS:
        if mime in data or isinstance(obj, type):
            continue
        method = getattr(obj, name, None)
        if not callable(method):
            continue
        try:
            value = method()
        except Exception:  # noqa: BLE001
            continue
        if isinstance(value, tuple) and len(value) == 2:
            value, metadata[mime] = value
        if value is not None:
            data[mime] = value
    data.setdefault("text/plain", _safe_repr(obj))
    return _jsonable(data), _jsonable(metadata)


def _jsonable(bundle: dict[str, Any]) -> dict[str, Any]:
    # Events are msgpack: binary images travel base64-encoded, as in a notebook file.
    out = {}
    for key, value in bundle.items():
        if isinstance(value, (bytes, bytearray)):
            value = base64.b64encode(bytes(value)).decode("ascii")
        out[key] = value if isinstance(value, (str, int, float, bool, dict, list, type(None))) else str(value)
    return out


def _safe_repr(obj: Any) -> str:
    try:
        return repr(obj)
    except Exception as exc:  # noqa: BLE001
        return f"<{type(obj).__name__} object (repr failed: {exc})>"


def display(*objs: Any, raw: bool = False, metadata: dict[str, Any] | None = None, clear: bool = False,
            **_ignored: Any) -> None:
    """`display()` on the worker: sends each object's representations home (text alone off a cell)."""
    output = current_output()
    if output is None:
        print(*objs)
        return
    if clear:
        output.clear(wait=True)
    for obj in objs:
        if raw and isinstance(obj, dict):
            output.display(_jsonable(obj), metadata)
        else:
            data, md = mime_bundle(obj)
            output.display(data, {**md, **(metadata or {})})


def clear_output(wait: bool = False) -> None:
    """`clear_output()` on the worker: clears the cell's output in the notebook."""
    output = current_output()
    if output is not None:
        output.clear(wait)


# ---- matplotlib ---------------------------------------------------------------------------------


def prepare_matplotlib(source: str) -> None:
    """Use our non-interactive backend, whose `show()` sends figures home (as the inline backend does),
    when the cell uses matplotlib. Set through `matplotlib.use`, never MPLBACKEND: the environment is
    inherited by whatever else this worker starts (a papermill kernel must keep its inline backend)."""
    if "matplotlib" not in sys.modules and "matplotlib" not in source and "plt" not in source:
        return
    try:
        import matplotlib

        if matplotlib.get_backend() != MPL_BACKEND:
            matplotlib.use(MPL_BACKEND, force=True)
    except Exception:  # noqa: BLE001 - no matplotlib here, or a backend pinned by the user's code
        pass


def flush_figures() -> None:
    """Send every open pyplot figure home as a PNG and close it (called by `show()` and at cell end)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return
    for number in pyplot.get_fignums():
        figure = pyplot.figure(number)
        display(figure)
        pyplot.close(figure)


def _is_figure(obj: Any) -> bool:
    figure_module = sys.modules.get("matplotlib.figure")
    return figure_module is not None and isinstance(obj, figure_module.Figure)


def _figure_bundle(figure: Any) -> dict[str, Any]:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return {"image/png": base64.b64encode(buffer.getvalue()).decode("ascii"), "text/plain": _safe_repr(figure)}
