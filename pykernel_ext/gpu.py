"""NVML sampling (nvidia-ml-py, imported as `pynvml`) with a clear "no GPU" state.

Everything here is safe to call on a machine without an NVIDIA driver: the first call finds out why there is
no GPU, caches that answer, and every later call costs a dictionary lookup. Nothing here raises.

Indexes are NVML's (physical, PCI-bus order), not the renumbered CUDA ordinals a pinned process sees, so a
run recorded on a worker pinned to GPU 3 says "3", which is the device a person can find on the machine.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

NO_DRIVER_REASON = "NVML library not found (no NVIDIA driver on this machine)"


@dataclass
class GpuSample:
    """One reading of one GPU; fields a device does not support are None."""

    index: int
    uuid: str
    name: str
    utilization_percent: float | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    power_watts: float | None
    temperature_c: float | None
    timestamp: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return asdict(self)


@dataclass
class GpuStatus:
    """Whether GPUs can be sampled here, and if not, why not."""

    available: bool
    reason: str | None = None  # why not, in words a user can act on
    driver_version: str | None = None
    gpus: list[dict] = field(default_factory=list)  # visible devices: index, uuid, name, memory_total_bytes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {
            "available": self.available,
            "reason": self.reason,
            "driver_version": self.driver_version,
            "gpus": [dict(g) for g in self.gpus],
        }


@dataclass
class _Device:
    index: int
    uuid: str
    name: str
    handle: Any


@dataclass
class _View:
    """The devices one CUDA_VISIBLE_DEVICES value exposes; replaced whole so readers never see half."""

    key: str | None
    visible: list[_Device]
    status: GpuStatus


@dataclass
class _State:
    """What one nvmlInit found. Kept for the process: NVML stays initialised once it worked."""

    init_error: str | None = None
    driver_version: str | None = None
    devices: list[_Device] = field(default_factory=list)  # every device on the machine
    # CUDA_VISIBLE_DEVICES may change after import (a notebook sets it before importing torch).
    view: _View | None = None


_lock = threading.Lock()
_state: _State | None = None
_logged_errors: set[tuple[int, str]] = set()


def _text(value: Any) -> str:
    # nvidia-ml-py returns bytes from older releases and str from newer ones.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _init_reason(exc: BaseException) -> str:
    import pynvml

    code = getattr(exc, "value", None)
    if code == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND:
        return NO_DRIVER_REASON
    if code == pynvml.NVML_ERROR_DRIVER_NOT_LOADED:
        return "NVIDIA driver is installed but not loaded (is the kernel module running?)"
    if code == pynvml.NVML_ERROR_NO_PERMISSION:
        return "no permission to query the NVIDIA driver"
    return f"NVML failed to initialise: {exc}"


def _initialise() -> _State:
    state = _State()
    try:
        import pynvml
    except ImportError:
        state.init_error = "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
        return state
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError subclasses, or OSError from a broken library
        state.init_error = _init_reason(exc)
        return state
    try:
        state.driver_version = _text(pynvml.nvmlSystemGetDriverVersion())
    except Exception:
        state.driver_version = None
    try:
        count = pynvml.nvmlDeviceGetCount()
    except Exception as exc:
        state.init_error = f"NVML could not count devices: {exc}"
        return state
    for index in range(count):
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            state.devices.append(_Device(index, _text(pynvml.nvmlDeviceGetUUID(handle)),
                                         _text(pynvml.nvmlDeviceGetName(handle)), handle))
        except Exception as exc:  # one broken or lost device must not hide the others
            _log_once(index, exc, "listing")
    return state


def resolve_visible_devices(value: str | None, uuids: list[str]) -> list[int]:
    """NVML indexes that `CUDA_VISIBLE_DEVICES=value` exposes, given the machine's GPU UUIDs in NVML order.

    Follows CUDA's rules: unset means all; entries are indexes or (prefixes of) `GPU-` UUIDs; parsing stops
    at the first invalid, unknown, ambiguous or repeated entry, so `""` and `"-1"` hide every GPU.
    CUDA numbers devices fastest-first unless CUDA_DEVICE_ORDER=PCI_BUS_ID while NVML uses bus order, so
    on a machine with mixed GPU models an index can name a different device; UUIDs are always exact.
    """
    if value is None:
        return list(range(len(uuids)))
    chosen: list[int] = []
    for raw in value.split(","):
        entry = raw.strip()
        found: int | None = None
        if entry.isascii() and entry.isdigit():
            found = int(entry) if int(entry) < len(uuids) else None
        elif entry.startswith("GPU-") and len(entry) > 4:
            # MIG- entries stop parsing here; _visible maps them to their parent GPU through NVML.
            matches = [i for i, u in enumerate(uuids) if u and u.startswith(entry)]
            found = matches[0] if len(matches) == 1 else None
        if found is None or found in chosen:
            break
        chosen.append(found)
    return chosen


def _mig_parent_index(entry: str) -> int | None:
    import pynvml

    try:
        mig = pynvml.nvmlDeviceGetHandleByUUID(entry)
        parent = pynvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig)
        return int(pynvml.nvmlDeviceGetIndex(parent))
    except Exception:
        return None


def _visible(state: _State, value: str | None) -> list[_Device]:
    by_index = {d.index: d for d in state.devices}
    # Positions are NVML indexes; a device that failed to list keeps its slot so later indexes still match.
    uuids = [by_index[i].uuid if i in by_index else "" for i in range(max(by_index, default=-1) + 1)]
    indexes = resolve_visible_devices(value, uuids)
    if value is not None and not indexes:
        first = value.split(",")[0].strip()
        if first.startswith("MIG-"):
            parent = _mig_parent_index(first)
            indexes = [parent] if parent is not None else []
    return [by_index[i] for i in indexes if i in by_index]


def _current_view() -> _View:
    global _state
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    view = _state.view if _state is not None else None
    if view is not None and (view.key == value or _state.init_error):  # type: ignore[union-attr]
        return view
    with _lock:
        if _state is None:
            _state = _initialise()
        view = _state.view
        if view is None or (view.key != value and not _state.init_error):
            visible = [] if _state.init_error else _visible(_state, value)
            view = _View(value, visible, _build_status(_state, visible, value))
            _state.view = view
        return view


def _build_status(state: _State, visible: list[_Device], value: str | None) -> GpuStatus:
    if state.init_error:
        return GpuStatus(False, state.init_error, state.driver_version, [])
    if not state.devices:
        return GpuStatus(False, "NVML found no NVIDIA GPU on this machine", state.driver_version, [])
    if not visible:
        reason = f"CUDA_VISIBLE_DEVICES={value!r} leaves none of this machine's {len(state.devices)} GPUs visible"
        return GpuStatus(False, reason, state.driver_version, [])
    gpus = []
    for dev in visible:
        mem = _memory_total(dev)
        gpus.append({"index": dev.index, "uuid": dev.uuid, "name": dev.name, "memory_total_bytes": mem})
    return GpuStatus(True, None, state.driver_version, gpus)


def _memory_total(dev: _Device) -> int | None:
    import pynvml

    try:
        return int(pynvml.nvmlDeviceGetMemoryInfo(dev.handle).total)
    except Exception:
        return None


def _log_once(index: int, exc: BaseException, what: str) -> None:
    key = (index, f"{type(exc).__name__}: {exc}")
    if key not in _logged_errors:
        _logged_errors.add(key)
        logger.warning("GPU %d: %s failed (%s); leaving it out until it answers again", index, what, key[1])


def gpu_status() -> GpuStatus:
    """Whether GPUs can be sampled and which are visible to this process (cached; never raises)."""
    try:
        return _current_view().status
    except Exception as exc:  # a bug here must not break the user's cell
        return GpuStatus(False, f"GPU status failed: {exc}", None, [])


def visible_gpu_count() -> int:
    """How many GPUs this process may use (0 when there is no GPU or none is visible)."""
    return len(gpu_status().gpus)


def _optional(func: Any, *args: Any) -> Any:
    """A metric the device may not support (power on some boards, utilisation on MIG) reads as None."""
    import pynvml

    try:
        return func(*args)
    except pynvml.NVMLError as exc:
        if getattr(exc, "value", None) in (pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_NO_PERMISSION):
            return None
        raise


def _sample(dev: _Device, now: float) -> GpuSample:
    import pynvml

    util = _optional(pynvml.nvmlDeviceGetUtilizationRates, dev.handle)
    mem = _optional(pynvml.nvmlDeviceGetMemoryInfo, dev.handle)
    power_mw = _optional(pynvml.nvmlDeviceGetPowerUsage, dev.handle)
    temp = _optional(pynvml.nvmlDeviceGetTemperature, dev.handle, pynvml.NVML_TEMPERATURE_GPU)
    return GpuSample(
        index=dev.index,
        uuid=dev.uuid,
        name=dev.name,
        utilization_percent=float(util.gpu) if util is not None else None,
        memory_used_bytes=int(mem.used) if mem is not None else None,
        memory_total_bytes=int(mem.total) if mem is not None else None,
        power_watts=power_mw / 1000.0 if power_mw is not None else None,
        temperature_c=float(temp) if temp is not None else None,
        timestamp=now,
    )


def sample_gpus() -> list[GpuSample]:
    """One reading of every visible GPU; [] without a GPU. A device that errors is skipped (logged once)."""
    try:
        visible = _current_view().visible
    except Exception:
        return []
    now = time.time()
    samples = []
    for dev in visible:
        try:
            samples.append(_sample(dev, now))
        except Exception as exc:  # e.g. GPU fell off the bus: keep sampling the others
            _log_once(dev.index, exc, "sampling")
    return samples


def gpus_used_by_pid(pid: int) -> list[int]:
    """Indexes of visible GPUs on which `pid` holds a compute or graphics context; [] when unknown.

    NVML reports host PIDs, so inside a container with its own PID namespace this finds nothing.
    """
    try:
        visible = _current_view().visible
        if not visible:
            return []
        import pynvml
    except Exception:
        return []
    used = []
    for dev in visible:
        for getter in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            try:
                procs = getattr(pynvml, getter)(dev.handle)
            except Exception:
                continue
            if any(getattr(p, "pid", None) == pid for p in procs):
                used.append(dev.index)
                break
    return used
