"""Hardware of a run: what the machine has (once per process) and what a run used (sampled while it runs).

A `%%track` cell starts a ResourceSampler before the user's code and stops it after, so both ends are
on the cell's critical path: start and stop together cost well under a millisecond without a GPU.
"""
from __future__ import annotations

import logging
import os
import platform
import threading
import time
from typing import Any

from pykernel_ext.due_thread import DueThread
from pykernel_ext.gpu import gpu_status, gpus_used_by_pid, sample_gpus
from pykernel_ext.per_process import PerProcess

MAX_GPU_SAMPLES = 2000

logger = logging.getLogger(__name__)

_static: dict[str, Any] | None = None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def capture_hardware_static() -> dict[str, Any]:
    """{cpu_model, cpu_logical_cores, cpu_physical_cores, memory_total_bytes, gpu: GpuStatus.to_dict()}.

    Cached per process (the machine does not change under a kernel); returns a fresh copy.
    """
    global _static
    if _static is None:
        import psutil

        _static = {
            "cpu_model": _cpu_model(),
            "cpu_logical_cores": psutil.cpu_count(logical=True),
            "cpu_physical_cores": psutil.cpu_count(logical=False),
            "memory_total_bytes": psutil.virtual_memory().total,
            "gpu": gpu_status().to_dict(),
        }
    out = dict(_static)
    out["gpu"] = gpu_status().to_dict()  # CUDA_VISIBLE_DEVICES may have changed which GPUs are visible
    return out


_own: tuple[int, Any] | None = None


def _own_process() -> Any:
    """psutil's handle on this process, kept: building one reads /proc and costs ~15 us."""
    global _own
    import psutil

    if _own is None or _own[0] != os.getpid():
        _own = (os.getpid(), psutil.Process())
    return _own[1]


def _proc_memory(pid: int) -> tuple[int | None, int | None]:
    """(current RSS, lifetime peak RSS) of a process on Linux; Nones where /proc does not tell.

    For this process: one line of /proc/self/statm plus getrusage's peak, a few microseconds; start and
    stop sit on every tracked cell's path. For another process: /proc/PID/status.
    """
    if pid == os.getpid():
        try:
            import resource

            with open("/proc/self/statm", "rb") as fh:
                rss = int(fh.read().split()[1]) * _PAGE_SIZE
            return rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # ru_maxrss is in KiB
        except (OSError, ValueError, IndexError, ImportError):
            return None, None
    rss = hwm = None
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    hwm = int(line.split()[1]) * 1024  # reported in kB
                elif line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                    break  # VmRSS follows VmHWM
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _new_sampling_thread() -> DueThread[ResourceSampler]:
    """One daemon thread shared by every running ResourceSampler; stopping one never waits for it."""
    return DueThread("pykernel-ext-sampler", lambda sampler: sampler._tick(), lambda sampler: sampler.interval,
                     lambda _: logger.debug("resource sampling failed", exc_info=True))


_thread: PerProcess[DueThread[ResourceSampler]] = PerProcess(_new_sampling_thread)


def _sampling_thread() -> DueThread[ResourceSampler]:
    return _thread.get()


class ResourceSampler:
    """Samples a process's memory, CPU time and GPU use between `start()` and `stop()`.

    `stop()` returns {peak_rss_bytes, rss_start_bytes, rss_end_bytes, cpu_seconds, gpu_available,
    gpu_samples (at most 2000, thinned evenly), gpu_summary {index: {name, utilization_mean, utilization_max,
    memory_used_max_bytes, memory_total_bytes}}, gpus_used}. Also a context manager; the dict is then in
    `.result`. Readings are taken every `interval` seconds on a shared background thread.
    """

    def __init__(self, interval: float = 0.5, pid: int | None = None) -> None:
        self.interval = max(float(interval), 0.01)  # a zero interval would spin the shared thread
        self.pid = pid if pid is not None else os.getpid()
        self.result: dict[str, Any] | None = None
        self._started = False
        self._stopped = False
        self._lock = threading.Lock()
        self._process: Any = None
        self._gpu = False
        self._peak_rss = 0
        self._rss_start = 0
        self._hwm_start: int | None = None
        self._cpu_start = 0.0
        self._ticks: list[list[dict]] = []  # one list of GpuSample dicts per sampling tick, thinned
        self._stride = 1
        self._tick_count = 0
        self._summary: dict[int, dict[str, Any]] = {}
        self._used: set[int] = set()

    def _cpu_seconds(self) -> float:
        if self.pid == os.getpid():
            # Nanosecond clocks for our own process; psutil reads /proc with 10 ms ticks.
            children = os.times()
            return time.process_time() + children.children_user + children.children_system
        t = self._process.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    def _rss(self) -> int:
        try:
            return int(self._process.memory_info().rss)
        except Exception:  # the process may have exited
            return 0

    def start(self) -> "ResourceSampler":
        """Take the first reading now and register for background readings every `interval` seconds."""
        if self._started:
            return self
        import psutil

        self._started = True
        self._process = _own_process() if self.pid == os.getpid() else psutil.Process(self.pid)
        rss, self._hwm_start = _proc_memory(self.pid)
        self._rss_start = self._peak_rss = rss if rss is not None else self._rss()
        self._cpu_start = self._cpu_seconds()
        self._gpu = gpu_status().available
        now = time.monotonic()
        # The first GPU reading is taken at once, off this thread; memory has just been read here.
        _sampling_thread().add(self, now if self._gpu else now + self.interval)
        return self

    def _tick(self) -> None:
        rss = self._rss()
        gpu = [s.to_dict() for s in sample_gpus()] if self._gpu else []
        used = gpus_used_by_pid(self.pid) if self._gpu else []
        with self._lock:
            if self._stopped:
                return
            self._peak_rss = max(self._peak_rss, rss)
            if self._gpu:
                self._add_gpu(gpu, used)

    def _add_gpu(self, samples: list[dict], used: list[int]) -> None:
        self._used.update(used)
        for sample in samples:
            self._summarise(sample)
        if self._tick_count % self._stride == 0:
            self._ticks.append(samples)
            if sum(len(t) for t in self._ticks) > MAX_GPU_SAMPLES:
                # Keep every other tick and halve the rate, so the kept series stays evenly spaced.
                self._ticks = self._ticks[::2]
                self._stride *= 2
        self._tick_count += 1

    def _summarise(self, s: dict[str, Any]) -> None:
        # Running aggregates over every sample, so thinning the stored series never changes the summary.
        agg = self._summary.setdefault(s["index"], {"name": s["name"], "util_sum": 0.0, "util_n": 0,
                                                    "utilization_max": None, "memory_used_max_bytes": None,
                                                    "memory_total_bytes": s["memory_total_bytes"]})
        util = s["utilization_percent"]
        if util is not None:
            agg["util_sum"] += util
            agg["util_n"] += 1
            agg["utilization_max"] = util if agg["utilization_max"] is None else max(agg["utilization_max"], util)
        used = s["memory_used_bytes"]
        if used is not None:
            prev = agg["memory_used_max_bytes"]
            agg["memory_used_max_bytes"] = used if prev is None else max(prev, used)

    def stop(self) -> dict[str, Any]:
        """Stop sampling, take the last reading and return the summary (the same one on a second call)."""
        if self.result is not None:
            return self.result
        if not self._started:
            raise RuntimeError("ResourceSampler.stop() called before start()")
        _sampling_thread().remove(self)
        rss_end, hwm_end = _proc_memory(self.pid)
        rss_end = rss_end if rss_end is not None else self._rss()
        cpu_end = self._cpu_seconds()
        gpu = [s.to_dict() for s in sample_gpus()] if self._gpu else []
        used = gpus_used_by_pid(self.pid) if self._gpu else []
        with self._lock:
            self._stopped = True  # a reading in flight on the sampling thread is dropped from here on
            if self._gpu:
                self._add_gpu(gpu, used)
        peak = max(self._peak_rss, rss_end)
        if self._hwm_start is not None and hwm_end is not None and hwm_end > self._hwm_start:
            # The lifetime peak rose during the run, so the run's exact peak is the new lifetime peak,
            # including a spike shorter than the sampling interval.
            peak = max(peak, hwm_end)
        self.result = {
            "peak_rss_bytes": peak,
            "rss_start_bytes": self._rss_start,
            "rss_end_bytes": rss_end,
            "cpu_seconds": max(0.0, cpu_end - self._cpu_start),
            "gpu_available": self._gpu,
            "gpu_samples": [s for tick in self._ticks for s in tick],
            "gpu_summary": self._gpu_summary(),
            "gpus_used": self._gpus_used(),
        }
        return self.result

    def _gpu_summary(self) -> dict[int, dict[str, Any]]:
        return {
            index: {
                "name": agg["name"],
                "utilization_mean": agg["util_sum"] / agg["util_n"] if agg["util_n"] else None,
                "utilization_max": agg["utilization_max"],
                "memory_used_max_bytes": agg["memory_used_max_bytes"],
                "memory_total_bytes": agg["memory_total_bytes"],
            }
            for index, agg in sorted(self._summary.items())
        }

    def _gpus_used(self) -> list[int]:
        if not self._gpu:
            return []
        if self._used:
            return sorted(self._used)
        # NVML did not list this pid (e.g. a container's PID namespace hides it): assume every visible GPU.
        return [g["index"] for g in gpu_status().gpus]

    def __enter__(self) -> "ResourceSampler":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def estimate_cost(duration_s: float, cpu_seconds: float, gpu_count: int,
                  gpu_hour_price: float, cpu_hour_price: float) -> dict[str, float]:
    """Compute cost of a run: GPU hours are wall time on every GPU it held, CPU hours are CPU time used."""
    gpu_hours = gpu_count * duration_s / 3600.0
    cpu_hours = cpu_seconds / 3600.0
    return {
        "gpu_hours": gpu_hours,
        "cpu_hours": cpu_hours,
        "usd": gpu_hours * gpu_hour_price + cpu_hours * cpu_hour_price,
        "gpu_hour_price": gpu_hour_price,
        "cpu_hour_price": cpu_hour_price,
    }
