"""`pykernel-ext cluster start|status|stop`, registered into the `pykernel-ext` command."""
from __future__ import annotations

import argparse
import json
from typing import Any

from ..config import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `cluster` command and its actions."""
    cluster = subparsers.add_parser("cluster", help="a persistent local Dask cluster that notebooks share")
    actions = cluster.add_subparsers(title="cluster commands", metavar="ACTION")
    cluster.set_defaults(handler=lambda args: cluster.print_help() or 2)

    start = actions.add_parser("start", help="start `dask scheduler` and `dask worker` processes, detached")
    start.add_argument("--workers", type=_positive_int, help="number of workers (default: one per GPU, else 1)")
    start.add_argument("--nthreads", type=_positive_int, help="threads per worker (default: cores / workers)")
    start.add_argument("--gpus-per-worker", type=_positive_int, metavar="N",
                       help="GPUs pinned to each worker (CUDA_VISIBLE_DEVICES) and declared as GPU=N")
    start.add_argument("--resources", nargs="+", action="extend", default=[], metavar="NAME=N",
                       help="resources every worker declares, e.g. GPU=1 (not pinned)")
    start.add_argument("--memory-limit", metavar="SIZE", help="per worker, e.g. 16GB (default: auto)")
    start.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    start.add_argument("--port", type=int, default=0, help="scheduler port (default: any free port)")
    start.add_argument("--dashboard", action="store_true", help="serve Dask's dashboard (needs bokeh)")
    start.set_defaults(handler=cmd_start)

    status = actions.add_parser("status", help="workers, their resources and GPU use")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

    stop = actions.add_parser("stop", help="stop the cluster's processes")
    stop.set_defaults(handler=cmd_stop)


def cmd_start(args: argparse.Namespace) -> int:
    from . import persistent

    settings = Settings.from_env()
    state = persistent.start(settings.store_dir, workers=args.workers, gpus_per_worker=args.gpus_per_worker,
                             resources=_resources(args.resources), nthreads=args.nthreads,
                             memory_limit=args.memory_limit, host=args.host, port=args.port,
                             dashboard=args.dashboard)
    address = state["scheduler"]["address"]
    print(f"pykernel-ext cluster running at {address} with {len(state['workers'])} worker(s)")
    for worker in state["workers"]:
        declared = ", ".join(f"{k}={v:g}" for k, v in worker["resources"].items()) or "no resources"
        pinned = f", CUDA_VISIBLE_DEVICES={','.join(worker['gpus'])}" if worker["gpus"] else ""
        print(f"  {worker['name']}: {declared}{pinned}")
    print(f"Kernels using the store {settings.store_dir} use it automatically; elsewhere set "
          f"PYKERNEL_EXT_SCHEDULER={address}. Logs: {settings.store_dir / 'cluster-logs'}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from . import persistent

    report = persistent.status(Settings.from_env().store_dir)
    if args.json:
        print(json.dumps(report, default=str))
        return 0 if report["running"] else 1
    if report["state"] is None:
        print("No pykernel-ext cluster: `pykernel-ext cluster start` starts one.")
        return 1
    if not report["running"]:
        print(f"The cluster at {report.get('address')} does not answer; `pykernel-ext cluster stop` cleans up.")
        return 1
    print(f"pykernel-ext cluster at {report['address']}: {len(report['workers'])} worker(s)")
    for worker in report["workers"]:
        print("  " + format_worker(worker))
    return 0


def format_worker(worker: dict[str, Any]) -> str:
    """One line: name, address, threads, memory, resources, then each GPU's utilization and memory."""
    from .shipping import format_bytes

    declared = ", ".join(f"{k}={v:g}" for k, v in (worker.get("resources") or {}).items()) or "no resources"
    memory = format_bytes(worker["memory_limit"]) if worker.get("memory_limit") else "no limit"
    line = f"{worker.get('name')} {worker.get('worker')} · {worker.get('nthreads')} threads · {memory} · {declared}"
    for gpu in worker.get("gpus") or []:
        util = gpu.get("utilization_percent")
        used, total = gpu.get("memory_used_bytes"), gpu.get("memory_total_bytes")
        line += (f"\n      GPU {gpu.get('index')} {gpu.get('name')}: "
                 f"{'?' if util is None else f'{util:.0f}'}% · "
                 f"{format_bytes(used) if used is not None else '?'} / {format_bytes(total) if total else '?'}")
    if not worker.get("gpus"):
        line += " · no GPU readings"
    return line


def cmd_stop(args: argparse.Namespace) -> int:
    from . import persistent

    state = persistent.stop(Settings.from_env().store_dir)
    if state is None:
        print("No pykernel-ext cluster to stop.")
        return 1
    print(f"Stopped the pykernel-ext cluster at {(state.get('scheduler') or {}).get('address')} "
          f"({len(state.get('workers') or [])} worker(s)).")
    return 0


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be 1 or more")
    return number


def _resources(pairs: list[str]) -> dict[str, float]:
    resources = {}
    for pair in pairs:
        name, sep, amount = pair.partition("=")
        try:
            resources[name.strip()] = float(amount)
        except ValueError:
            raise ValueError(f"--resources {pair!r} is not NAME=NUMBER (e.g. GPU=1)") from None
        if not sep or not name.strip():
            raise ValueError(f"--resources {pair!r} is not NAME=NUMBER (e.g. GPU=1)")
    return resources
