"""Which Dask cluster a remote cell runs on, and the embedded one a kernel starts when there is none.

Discovery order: `--scheduler`; `PYKERNEL_EXT_SCHEDULER`; Dask's own `scheduler-address` config; the
persistent cluster of `pykernel-ext cluster start` (when its state file exists and it answers); else a
`LocalCluster` started once per kernel, with one worker per visible GPU (pinned through
CUDA_VISIBLE_DEVICES, declaring `GPU=1`) or one CPU worker without GPU resources.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from ..config import Settings
from .errors import ClusterUnavailable
from .executor import DaskExecutor

logger = logging.getLogger(__name__)
CONNECT_TIMEOUT_SECONDS = 10.0
PERSISTENT_STATE = "cluster.json"  # written by `pykernel-ext cluster start`
EMBEDDED_DIR = "clusters"  # <store>/clusters/<pid>.json: embedded clusters of running kernels

_executors: dict[str, DaskExecutor] = {}
_embedded: dict[str, Any] = {}  # "cluster", "executor", "state_file"
_lock = threading.RLock()


def resolve_address(explicit: str | None = None, settings: Settings | None = None) -> tuple[str | None, str]:
    """(scheduler address or None for the embedded cluster, where it came from)."""
    if explicit:
        return explicit, "--scheduler"
    settings = settings or Settings.from_env()
    if settings.scheduler:
        return settings.scheduler, "PYKERNEL_EXT_SCHEDULER"
    import dask.config

    configured = dask.config.get("scheduler-address", None) or dask.config.get("scheduler_address", None)
    if configured:
        return str(configured), "dask config scheduler-address"
    persistent = persistent_address(settings.store_dir)
    if persistent:
        return persistent, "pykernel-ext cluster"
    return None, "embedded"


def get_executor(explicit: str | None = None, settings: Settings | None = None) -> DaskExecutor:
    """The executor for the cluster discovery picks, connecting (or starting the embedded one) once."""
    settings = settings or Settings.from_env()
    address, origin = resolve_address(explicit, settings)
    with _lock:
        if address is None:
            return _embedded_executor(settings)
        executor = _executors.get(address)
        if executor is None or not executor.alive:
            executor = DaskExecutor(_connect(address, origin), origin, direct=_is_local(address) or None)
            _executors[address] = executor
        return executor


def _connect(address: str, origin: str) -> Any:
    from distributed import Client

    try:
        # Security (TLS certificates) comes from Dask's config, as for any Dask client.
        return Client(address, timeout=CONNECT_TIMEOUT_SECONDS, set_as_default=False,
                      direct_to_workers=_is_local(address) or None)
    except (OSError, TimeoutError) as exc:
        raise ClusterUnavailable(f"cannot reach the Dask scheduler {address} (from {origin}): {exc}") from None


def _is_local(address: str) -> bool:
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1", "0.0.0.0")


# ---- the embedded cluster ---------------------------------------------------------------------------


def _embedded_executor(settings: Settings) -> DaskExecutor:
    executor = _embedded.get("executor")
    if executor is not None and executor.alive:
        return executor
    cluster = start_embedded_cluster()
    from distributed import Client

    client = Client(cluster, set_as_default=False, direct_to_workers=True)
    client.wait_for_workers(len(cluster.worker_spec), timeout=60)
    executor = DaskExecutor(client, "embedded", direct=True)
    _embedded.update(cluster=cluster, executor=executor, state_file=_record_embedded(settings, cluster))
    return executor


def embedded_worker_specs() -> list[dict[str, Any]]:
    """Worker options: one per visible GPU (pinned, GPU=1), or one CPU worker declaring nothing."""
    import psutil

    from ..gpu import gpu_status

    cores = os.cpu_count() or 1
    memory = psutil.virtual_memory().total
    status = gpu_status()
    gpus = status.gpus if status.available else []
    # Jupyter's interrupt signals the kernel's process group, workers included: they must ignore it.
    preload = ["pykernel_ext.remote.worker"]
    if not gpus:
        return [{"name": "cpu-0", "nthreads": cores, "memory_limit": memory, "preload": preload}]
    share = max(1, cores // len(gpus))
    return [{"name": f"gpu-{gpu['index']}", "nthreads": share, "memory_limit": memory // len(gpus),
             "resources": {"GPU": 1}, "env": {"CUDA_VISIBLE_DEVICES": str(gpu.get("uuid") or gpu["index"])},
             "preload": preload}
            for gpu in gpus]


def start_embedded_cluster() -> Any:
    """A LocalCluster of worker processes, started in this process (the kernel) and closed at exit."""
    import dask
    from distributed import LocalCluster, Nanny

    specs = embedded_worker_specs()
    # A random port: the usual 8787 is often taken by another notebook's cluster.
    scheduler_options = {"allowed_failures": 0, "dashboard": _importable("bokeh")}
    # Worker processes that may start processes of their own: a DataLoader with num_workers > 0, as nearly
    # every training cell has, fails in a daemonic process. Set for this kernel, not just this block, so a
    # worker its nanny restarts later is started the same way.
    dask.config.set({"distributed.worker.daemon": False})
    # A cell whose worker dies must fail, not be re-run on another worker: no retries on our cluster.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address=":0",
                               silence_logs=logging.ERROR, scheduler_kwargs=scheduler_options)
        template = cluster.new_spec.get("options", {})
        for spec in specs:
            name = spec.pop("name")
            cluster.worker_spec[name] = {"cls": Nanny, "options": {**template, **spec}}
        cluster.sync(cluster._correct_state)
    atexit.register(shutdown_embedded)
    return cluster


def _record_embedded(settings: Settings, cluster: Any) -> Path | None:
    """Write <store>/clusters/<pid>.json so the server extension can find this kernel's workers."""
    path = settings.store_dir / EMBEDDED_DIR / f"{os.getpid()}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob("*.json"):  # kernels killed before their exit handlers ran
            if not pid_alive(stale.stem):
                stale.unlink(missing_ok=True)
        path.write_text(json.dumps({"address": cluster.scheduler_address, "pid": os.getpid(), "kind": "embedded",
                                    "dashboard": cluster.dashboard_link if _importable("bokeh") else None,
                                    "started_at": time.time()}))
    except OSError:
        return None  # a read-only store only hides the workers from the server's panel
    return path


def shutdown_embedded() -> None:
    """Close this kernel's embedded cluster (also run at exit) and remove its state file."""
    with _lock:
        executor, cluster, state = (_embedded.pop(k, None) for k in ("executor", "cluster", "state_file"))
    if state is not None:
        Path(state).unlink(missing_ok=True)
    for closing in (executor.client if executor else None, cluster):
        if closing is not None:
            try:
                closing.close()
            except Exception:  # noqa: BLE001 - at exit, a half-closed cluster is still being torn down
                pass


def close_all() -> None:
    """Close every client this kernel opened, and the embedded cluster."""
    with _lock:
        executors = list(_executors.values())
        _executors.clear()
    for executor in executors:
        try:
            executor.client.close()
        except Exception:  # noqa: BLE001
            pass
    shutdown_embedded()


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# ---- persistent and known clusters ------------------------------------------------------------------


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def persistent_address(store_dir: Path) -> str | None:
    """The address of `pykernel-ext cluster start`'s scheduler, when its state file exists and it answers."""
    state = read_state(Path(store_dir) / PERSISTENT_STATE)
    if not state:
        return None
    scheduler = state.get("scheduler") or {}
    address = scheduler.get("address")
    if not address or not pid_alive(scheduler.get("pid")) or not _answers(address):
        return None
    return address


def _answers(address: str, timeout: float = 1.0) -> bool:
    import socket

    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def known_addresses(settings: Settings | None = None) -> list[str]:
    """Schedulers this store knows of and that are alive: the configured one, the persistent cluster and
    every running kernel's embedded cluster."""
    settings = settings or Settings.from_env()
    found: dict[str, None] = {}
    if settings.scheduler:
        found[settings.scheduler] = None
    persistent = persistent_address(settings.store_dir)
    if persistent:
        found[persistent] = None
    for path in sorted((settings.store_dir / EMBEDDED_DIR).glob("*.json")):
        state = read_state(path)
        if state and state.get("address") and pid_alive(state.get("pid")):
            found[state["address"]] = None
        elif not pid_alive(path.stem):
            # A kernel that was killed could not remove its own file; whoever finds it removes it.
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                logger.info("pykernel-ext: stale cluster file %s not removed: %s", path, exc)
    return list(found)


def worker_gpus(scheduler_address: str | None = None, timeout: float = 2.0) -> list[dict[str, Any]]:
    """One dict per worker of the given scheduler, or of every known live cluster: worker, host, name,
    resources, gpus (GpuSample dicts read on that worker), nthreads, memory_limit.

    For the server extension's GPU panel: returns [] when no cluster is known or reachable, never raises,
    never starts a cluster.
    """
    try:
        addresses = [scheduler_address] if scheduler_address else known_addresses()
    except Exception:  # noqa: BLE001 - an unreadable store: the panel shows no clusters, the log says why
        logger.warning("pykernel-ext: cannot list the known Dask clusters", exc_info=True)
        return []
    rows: list[dict[str, Any]] = []
    for address in addresses:
        rows += _query_in_thread(address, timeout)
    return rows


def _query_in_thread(address: str, timeout: float) -> list[dict[str, Any]]:
    # A private event loop in its own thread: callers may already run one (the Jupyter server does).
    import asyncio

    box: list[list[dict[str, Any]]] = []

    def query() -> None:
        try:
            box.append(asyncio.run(asyncio.wait_for(_query(address, timeout), timeout + 1)))
        except BaseException as exc:  # noqa: BLE001 - unreachable or slow: that cluster shows nothing
            logger.info("pykernel-ext: the Dask cluster at %s did not answer (%s: %s)", address,
                        type(exc).__name__, exc)
            box.append([])

    thread = threading.Thread(target=query, name="pykernel-ext-worker-gpus", daemon=True)
    thread.start()
    thread.join(timeout + 2)
    return box[0] if box else []


async def _query(address: str, timeout: float) -> list[dict[str, Any]]:
    from distributed import Client

    from .worker import sample_worker_gpus

    async with Client(address, asynchronous=True, timeout=timeout, set_as_default=False) as client:
        identity = await client.scheduler.identity(n_workers=-1)
        workers = identity.get("workers") or {}
        try:
            samples = await asyncio_wait(client.run(sample_worker_gpus, on_error="return"), timeout)
        except Exception as exc:  # noqa: BLE001 - workers without pykernel_ext still list, without GPU readings
            logger.info("pykernel-ext: GPU readings of the workers at %s failed (%s: %s)", address,
                        type(exc).__name__, exc)
            samples = {}
    return [{
        "worker": address_, "host": info.get("host"), "name": str(info.get("name")),
        "resources": dict(info.get("resources") or {}),
        "gpus": samples.get(address_) if isinstance(samples.get(address_), list) else [],
        "nthreads": info.get("nthreads"), "memory_limit": info.get("memory_limit"), "scheduler": address,
    } for address_, info in sorted(workers.items())]


async def asyncio_wait(awaitable: Any, timeout: float) -> Any:
    import asyncio

    return await asyncio.wait_for(awaitable, timeout)
