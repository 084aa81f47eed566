"""Small facts a run records, computed the same way for every entry point: its status and error record, its
default name and notebook label, its cost, the machine's hardware (once per process) and a git capture shared
by runs that start together."""
from __future__ import annotations

import functools
import os
import socket
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Settings
from .records import ErrorRecord, Status

if TYPE_CHECKING:
    from .tracking import RunContext


def status_of(error: BaseException | None) -> Status:
    if error is None:
        return "ok"
    return "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"


def error_record(error: BaseException | None) -> ErrorRecord | None:
    if error is None:
        return None
    remote_tb = getattr(error, "remote_traceback", None)
    text = remote_tb or "".join(traceback.format_exception(type(error), error, _user_frames(error.__traceback__)))
    return ErrorRecord(type=type(error).__name__, message=str(error), traceback=text)


def _user_frames(tb):
    # Our own frames (the magic, the cell executor) mark themselves with __tracebackhide__, as IPython does.
    while tb is not None and "__tracebackhide__" in tb.tb_frame.f_locals:
        tb = tb.tb_next
    return tb


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:500]


def as_number(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return float(raw)
    try:
        if hasattr(raw, "item") and getattr(raw, "ndim", 0) == 0:
            raw = raw.item()  # numpy scalar or 0-d tensor
        if isinstance(raw, (int, float)):
            return float(raw)
    except Exception:  # noqa: BLE001
        return None
    return None


def hardware_static() -> dict[str, Any]:
    # Cached per process by capture.hardware, except its GPU entry, which follows CUDA_VISIBLE_DEVICES.
    from .capture.hardware import capture_hardware_static

    return capture_hardware_static()


GIT_REUSE_SECONDS = 1.0
_git_captures: dict[str, tuple[float, Any]] = {}


def start_git(settings: Settings):
    """A git capture for the current folder, shared by runs that start within GIT_REUSE_SECONDS.

    Each capture spawns git (~15 ms of CPU on another thread); a loop of quick tracked cells would
    otherwise spend most of its time there. The capture records when it was taken (`captured_at`).
    """
    from .capture.git import start_git_capture

    folder = os.getcwd()
    now = time.monotonic()
    previous = _git_captures.get(folder)
    if previous is not None and now - previous[0] < GIT_REUSE_SECONDS:
        return previous[1]
    future = start_git_capture(folder, diff_cap_bytes=settings.git_diff_cap_bytes)
    _git_captures[folder] = (now, future)
    return future


def cost(duration: float, resources: dict[str, Any], settings: Settings) -> dict[str, Any]:
    from .capture.hardware import estimate_cost

    gpus = len(resources.get("gpus_used") or []) if resources.get("gpu_available") else 0
    return estimate_cost(duration, float(resources.get("cpu_seconds") or 0.0), gpus,
                         settings.gpu_hour_price, settings.cpu_hour_price)


@functools.lru_cache(maxsize=1)
def hostname() -> str:
    return socket.gethostname()




def default_name(ctx: "RunContext") -> str:
    base = Path(ctx.notebook).stem if ctx.notebook else ctx.kind
    return f"{base} [{ctx.execution_count}]" if ctx.execution_count is not None else base


def notebook_label(notebook: str | None, settings: Settings) -> str | None:
    """Notebook path relative to the store's home when inside it (portable across machines); a path
    that is already relative (a batch driver's label) stays as given."""
    if not notebook:
        return None
    if not Path(notebook).is_absolute():
        return Path(notebook).as_posix()
    return relative_label(Path(notebook), settings.home)


def relative_label(path: Path, home: Path | None = None) -> str:
    absolute = Path(path).resolve() if not Path(path).is_absolute() else Path(path)
    base = home or Path.cwd()
    try:
        return absolute.relative_to(base).as_posix()
    except ValueError:
        return absolute.as_posix()


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"
