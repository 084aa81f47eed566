"""The server's GPU panel over a real Dask LocalCluster (real worker processes), found the way users point
at a cluster: PYKERNEL_EXT_SCHEDULER."""
from __future__ import annotations

import json

import pytest

from pykernel_ext.gpu import gpu_status

API = "pykernel-ext/api/v1"


@pytest.fixture(scope="module")
def local_cluster():
    from distributed import LocalCluster, Nanny

    # Two single-threaded worker processes, one declaring a GPU resource as the embedded cluster's GPU
    # workers do (remote/cluster.py builds its LocalCluster the same way); readings come from each
    # worker's own NVML.
    cluster = LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address=None)
    template = cluster.new_spec.get("options", {})
    cluster.worker_spec["cpu"] = {"cls": Nanny, "options": {**template, "nthreads": 1}}
    cluster.worker_spec["gpu"] = {"cls": Nanny, "options": {**template, "nthreads": 1, "resources": {"GPU": 1}}}
    cluster.sync(cluster._correct_state)
    cluster.wait_for_workers(2, timeout=120)
    try:
        yield cluster
    finally:
        cluster.close()


async def test_gpu_panel_lists_the_clusters_workers(jp_fetch, local_cluster, monkeypatch):
    monkeypatch.setenv("PYKERNEL_EXT_SCHEDULER", local_cluster.scheduler_address)
    report = json.loads((await jp_fetch(API, "gpus")).body)
    local, *workers = report["hosts"]
    status = gpu_status()
    assert local["source"] == "local" and local["available"] is status.available
    if not status.available:
        assert local["gpus"] == [] and local["reason"]  # the clear "no GPU" state
    expected = set(local_cluster.scheduler_info["workers"])
    assert {w["worker"] for w in workers} == expected and len(expected) == 2
    by_name = {w["name"]: w for w in workers}
    assert by_name["gpu"]["resources"] == {"GPU": 1} and by_name["cpu"]["resources"] == {}
    for worker in workers:
        assert worker["source"] == "dask" and worker["host"] == "127.0.0.1" and worker["nthreads"] == 1
        # Each worker reads its own GPUs: the ones this machine shows (none here on a CPU-only machine).
        assert len(worker["gpus"]) == len(status.gpus) and worker["available"] is bool(status.gpus)
    assert report["gpu_count"] == len(local["gpus"]) + sum(len(w["gpus"]) for w in workers)


async def test_gpu_panel_without_a_reachable_cluster_shows_this_machine(jp_fetch, monkeypatch):
    monkeypatch.setenv("PYKERNEL_EXT_SCHEDULER", "tcp://127.0.0.1:9")  # nothing listens on the discard port
    report = json.loads((await jp_fetch(API, "gpus")).body)
    assert [h["source"] for h in report["hosts"]] == ["local"]
