"""`pykernel-ext cluster start|status|stop`: a local Dask cluster that outlives kernels, shared by notebooks.

It runs the real `dask scheduler` and `dask worker` programs as detached processes (their own sessions,
so closing the terminal or a kernel does not end them) and writes `<store>/cluster.json`; kernels using
this store find it there and use it before starting an embedded cluster of their own.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .cluster import PERSISTENT_STATE, persistent_address, pid_alive, read_state
from .errors import ClusterUnavailable, RemoteUsageError

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0


def _dask_command(*args: str) -> list[str]:
    # `python -m dask` is the `dask` console script of this environment, found without relying on PATH.
    return [sys.executable, "-m", "dask", *args]


def plan_workers(workers: int | None, gpus_per_worker: int | None, resources: dict[str, float],
                 nthreads: int | None) -> list[dict[str, Any]]:
    """One entry per worker: name, nthreads, resources, and the GPUs it is pinned to (CUDA_VISIBLE_DEVICES).

    With GPUs visible and no --resources, workers get `gpus_per_worker` GPUs each (default 1) and declare
    them as `GPU=n`; `--resources` is declared verbatim on every worker (a CPU machine can declare GPU=1
    to try GPU scheduling).
    """
    from ..gpu import gpu_status

    cores = os.cpu_count() or 1
    status = gpu_status()
    visible = [str(g.get("uuid") or g["index"]) for g in status.gpus] if status.available else []
    if resources or not (visible or gpus_per_worker):
        count = workers or 1
        return [{"name": f"pykernel-ext-{i}", "nthreads": nthreads or max(1, cores // count),
                 "resources": dict(resources), "gpus": []} for i in range(count)]
    per = gpus_per_worker or 1
    count = workers or max(1, len(visible) // per)
    if count * per > len(visible):
        raise RemoteUsageError(f"{count} worker(s) x {per} GPU(s) needs {count * per} GPUs; this machine shows "
                               f"{len(visible)}. Use --resources GPU=1 to declare GPUs without pinning them.")
    return [{"name": f"pykernel-ext-gpu-{i}", "nthreads": nthreads or max(1, cores // count),
             "resources": {"GPU": per}, "gpus": visible[i * per:(i + 1) * per]} for i in range(count)]


def start(store_dir: Path, *, workers: int | None = None, gpus_per_worker: int | None = None,
          resources: dict[str, float] | None = None, nthreads: int | None = None, memory_limit: str | None = None,
          host: str = "127.0.0.1", port: int = 0, dashboard: bool = False) -> dict[str, Any]:
    """Start the scheduler and workers detached, wait until every worker has joined, write the state file."""
    store_dir = Path(store_dir)
    running = persistent_address(store_dir)
    if running:
        raise RemoteUsageError(f"a pykernel-ext cluster is already running at {running}; "
                               "`pykernel-ext cluster stop` ends it")
    plan = plan_workers(workers, gpus_per_worker, resources or {}, nthreads)
    logs = store_dir / "cluster-logs"
    logs.mkdir(parents=True, exist_ok=True)
    scheduler_file = store_dir / "cluster-scheduler.json"
    scheduler_file.unlink(missing_ok=True)
    args = ["scheduler", "--host", host, "--port", str(port), "--scheduler-file", str(scheduler_file)]
    args += ["--dashboard-address", ":0"] if dashboard else ["--no-dashboard"]
    # A cell whose worker dies fails at once instead of being re-run on another worker.
    scheduler = _spawn(_dask_command(*args), logs / "scheduler.log",
                       {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"})
    state: dict[str, Any] = {"scheduler": {"pid": scheduler.pid, "log": str(logs / "scheduler.log")},
                             "workers": [], "started_at": time.time(), "scheduler_file": str(scheduler_file)}
    try:
        address = _wait_for_scheduler(scheduler, scheduler_file)
        state["scheduler"]["address"] = address
        for spec in plan:
            state["workers"].append(_start_worker(address, spec, memory_limit, logs))
        _write_state(store_dir, state)
        _wait_for_workers(address, len(plan))
    except BaseException:
        _stop_processes(state)
        (store_dir / PERSISTENT_STATE).unlink(missing_ok=True)
        raise
    return state


def _start_worker(address: str, spec: dict[str, Any], memory_limit: str | None, logs: Path) -> dict[str, Any]:
    args = ["worker", address, "--name", spec["name"], "--nthreads", str(spec["nthreads"]), "--nworkers", "1",
            "--death-timeout", "60", "--no-dashboard", "--memory-limit", memory_limit or "auto"]
    if spec["resources"]:
        args += ["--resources", " ".join(f"{k}={v:g}" for k, v in spec["resources"].items())]
    # Non-daemonic worker processes, so cells can start processes (a DataLoader with num_workers > 0).
    env = {"DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    if spec["gpus"]:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(spec["gpus"])
    log = logs / f"{spec['name']}.log"
    process = _spawn(_dask_command(*args), log, env)
    return {"pid": process.pid, "name": spec["name"], "resources": spec["resources"], "gpus": spec["gpus"],
            "log": str(log)}


def _spawn(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **env}, start_new_session=True)


def _wait_for_scheduler(process: subprocess.Popen, scheduler_file: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ClusterUnavailable(f"`dask scheduler` exited with code {process.returncode}; see "
                                     f"{scheduler_file.parent / 'cluster-logs' / 'scheduler.log'}")
        state = read_state(scheduler_file)
        if state and state.get("address"):
            return state["address"]
        time.sleep(0.1)
    raise ClusterUnavailable(f"`dask scheduler` did not start within {START_TIMEOUT_SECONDS:.0f} s")


def _wait_for_workers(address: str, count: int) -> None:
    from distributed import Client

    with Client(address, timeout=START_TIMEOUT_SECONDS, set_as_default=False) as client:
        try:
            client.wait_for_workers(count, timeout=START_TIMEOUT_SECONDS)
        except TimeoutError:
            raise ClusterUnavailable(f"only {len(client.scheduler_info()['workers'])} of {count} workers joined "
                                     f"within {START_TIMEOUT_SECONDS:.0f} s; see the logs in cluster-logs/") from None


def _write_state(store_dir: Path, state: dict[str, Any]) -> None:
    path = store_dir / PERSISTENT_STATE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)


def stop(store_dir: Path) -> dict[str, Any] | None:
    """End the cluster's processes (workers first) and remove the state file; None if there was none."""
    path = Path(store_dir) / PERSISTENT_STATE
    state = read_state(path)
    if state is None:
        return None
    _stop_processes(state)
    path.unlink(missing_ok=True)
    Path(state.get("scheduler_file") or path.with_name("cluster-scheduler.json")).unlink(missing_ok=True)
    return state


def _stop_processes(state: dict[str, Any]) -> None:
    pids = [w.get("pid") for w in state.get("workers") or []] + [(state.get("scheduler") or {}).get("pid")]
    pids = [int(p) for p in pids if p and _is_our_dask(int(p))]
    for pid in pids:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        _reap(pids)
        time.sleep(0.1)
    for pid in pids:
        if pid_alive(pid):
            _signal_group(pid, signal.SIGKILL)
    _reap(pids)


def _is_our_dask(pid: int) -> bool:
    # Never signal a recycled pid: it must still be a dask program.
    try:
        import psutil

        return any("dask" in part for part in psutil.Process(pid).cmdline())
    except Exception:  # noqa: BLE001 - gone, or not ours to inspect
        return False


def _signal_group(pid: int, signum: int) -> None:
    # Each program was started in its own session: its group holds it and the worker process it spawned.
    try:
        os.killpg(pid, signum)
    except OSError:
        try:
            os.kill(pid, signum)
        except OSError:
            pass


def _reap(pids: list[int]) -> None:
    for pid in pids:  # our own children (same process started them) would linger as zombies otherwise
        try:
            os.waitpid(pid, os.WNOHANG)
        except (ChildProcessError, OSError):
            pass


def status(store_dir: Path, timeout: float = 3.0) -> dict[str, Any]:
    """The state file, whether the scheduler answers, and each worker's resources and GPU readings."""
    from .cluster import worker_gpus

    state = read_state(Path(store_dir) / PERSISTENT_STATE)
    if state is None:
        return {"running": False, "state": None, "workers": []}
    address = persistent_address(Path(store_dir))
    workers = worker_gpus(address, timeout=timeout) if address else []
    return {"running": bool(address), "address": (state.get("scheduler") or {}).get("address"),
            "state": state, "workers": workers}
