"""Where a sweep's notebooks run: the cluster the user points at, or a LocalCluster sized to --parallel.

Each notebook is one Dask task that drives papermill (the kernel is a subprocess of the worker), so a
worker thread per concurrent run is what parallelism needs.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

from ..config import Settings
from ..errors import BatchError
from .execute import NotebookOutcome, NotebookTask, execute_notebook_task


class BatchCluster:
    """A Dask client for the batch, closed (and its LocalCluster stopped) on exit."""

    def __init__(self, options: Any, settings: Settings) -> None:
        self.options = options
        self.settings = settings
        self.client: Any = None
        self.cluster: Any = None

    def __enter__(self) -> "BatchCluster":
        from distributed import Client

        from ..remote.cluster import resolve_address

        address, origin = resolve_address(self.options.scheduler, self.settings)
        if address:
            try:
                self.client = Client(address, timeout=10, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise BatchError(f"cannot reach the Dask scheduler {address} (from {origin}): {exc}") from None
        else:
            self.cluster = _local_cluster(self.options.parallel, self.options.gpus_per_run)
            self.client = Client(self.cluster, set_as_default=False)
        self._check_resources()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def _check_resources(self) -> None:

        wanted = self.options.gpus_per_run
        if not wanted:
            return
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {}).values()
        offered = [w.get("resources", {}).get("GPU", 0) for w in workers]
        if not any(gpu >= wanted for gpu in offered):
            described = ", ".join(f"{w.get('name')}: {w.get('resources') or 'no resources'}" for w in workers)
            raise BatchError(f"--gpus-per-run {wanted:g}: no worker offers {wanted:g} GPU(s); the cluster has "
                             f"{described or 'no workers'}")

    def map(self, tasks: list[NotebookTask], counts: dict[str, int],
            progress: Callable[[dict[str, int]], None] | None) -> Iterator[NotebookOutcome]:
        """Submit at most --parallel tasks at a time; yield outcomes as they complete."""
        from distributed import as_completed

        resources = {"GPU": self.options.gpus_per_run} if self.options.gpus_per_run else None
        pending = list(tasks)
        window = max(1, self.options.parallel)
        running = as_completed(loop=self.client.loop)
        by_future: dict[Any, NotebookTask] = {}

        def submit_next() -> None:
            task = pending.pop(0)
            future = self.client.submit(execute_notebook_task, task, key=f"notebook-{task.run_id}",
                                        resources=resources, pure=False, retries=0)
            by_future[future] = task
            running.add(future)
            counts["running"] += 1  # the caller counts it down when the outcome is handled

        while pending and len(by_future) < window:
            submit_next()
        if progress:
            progress(dict(counts))
        for future in running:
            task = by_future.pop(future)
            if pending:
                submit_next()  # before the caller reports progress, so "running" stays true
            yield _outcome(future, task)


def _outcome(future: Any, task: NotebookTask) -> NotebookOutcome:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - a worker that died or a task that could not run
        return NotebookOutcome(run_id=task.run_id, status="failed", executed=None, bundle=None, host="?",
                               started_at=None, duration_s=0.0, cpu_seconds=0.0,
                               error={"kind": "worker", "cell_index": None, "ename": type(exc).__name__,
                                      "evalue": f"the Dask worker running it failed: {exc}", "traceback": ""})


def _local_cluster(parallel: int, gpus_per_run: float) -> Any:
    """One single-threaded worker per concurrent run; with GPUs requested, one worker per GPU."""
    import dask
    from distributed import LocalCluster

    from ..gpu import gpu_status

    status = gpu_status()
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        if gpus_per_run and status.available:
            from distributed import Nanny

            cluster = LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address=None,
                                   silence_logs=logging.ERROR)
            for gpu in status.gpus:
                cluster.worker_spec[f"gpu-{gpu['index']}"] = {"cls": Nanny, "options": {
                    "nthreads": 1, "resources": {"GPU": 1},
                    "env": {"CUDA_VISIBLE_DEVICES": str(gpu.get("uuid") or gpu["index"])}}}
            cluster.sync(cluster._correct_state)
            return cluster
        return LocalCluster(n_workers=max(1, parallel), threads_per_worker=1, processes=True, host="127.0.0.1",
                            dashboard_address=None, silence_logs=logging.ERROR)
