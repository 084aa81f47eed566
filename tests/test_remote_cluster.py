"""`%%remote` against a persistent cluster of real `dask scheduler` / `dask worker --resources GPU=1`
processes started by `pykernel-ext cluster start`, found by the kernel through its state file.

A CPU worker that declares GPU=1 exercises the `--gpus 1` scheduling path on a machine without GPUs.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import cli, run_cell
from conftest_remote import last_run


@pytest.fixture(scope="module")
def cluster_home(tmp_path_factory):
    """A store folder with a running `pykernel-ext cluster` (1 worker declaring GPU=1); stopped at the end."""
    from pykernel_ext.remote import cluster

    home = tmp_path_factory.mktemp("cluster-home")
    env = {"PYKERNEL_EXT_HOME": str(home), "PYKERNEL_EXT_SCHEDULER": ""}
    started = cli("cluster", "start", "--workers", "1", "--nthreads", "2", "--resources", "GPU=1", env=env)
    assert started.returncode == 0, started.stderr + started.stdout
    try:
        yield home
    finally:
        cluster.close_all()
        cli("cluster", "stop", env=env)


@pytest.fixture
def on_cluster(cluster_home: Path, shell, monkeypatch) -> Path:
    """Point this test's kernel (and store) at the cluster's home, as a notebook in that project would be."""
    monkeypatch.setenv("PYKERNEL_EXT_HOME", str(cluster_home))
    monkeypatch.delenv("PYKERNEL_EXT_SCHEDULER", raising=False)
    return cluster_home


def state(home: Path) -> dict:
    return json.loads((home / ".pykernel_ext" / "cluster.json").read_text())


def test_status_lists_the_workers_and_their_resources(on_cluster):
    env = {"PYKERNEL_EXT_HOME": str(on_cluster)}
    shown = cli("cluster", "status", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "1 worker(s)" in shown.stdout and "pykernel-ext-0" in shown.stdout and "GPU=1" in shown.stdout
    report = json.loads(cli("cluster", "status", "--json", env=env).stdout)
    assert report["running"] and report["workers"][0]["resources"] == {"GPU": 1.0}
    assert report["workers"][0]["name"] == "pykernel-ext-0" and report["workers"][0]["gpus"] == []
    again = cli("cluster", "start", env=env)
    assert again.returncode == 2 and "already running" in again.stderr


def test_a_gpu_cell_is_scheduled_on_the_worker_declaring_a_gpu(shell, on_cluster):
    from pykernel_ext.remote import cluster

    run_cell(shell, "import numpy as np\nw = np.linspace(0, 1, 5)")
    result = run_cell(shell, "%%remote --gpus 1 --name on-gpu\nimport os\nprint('on the worker')\n"
                             "where = os.environ.get('CUDA_VISIBLE_DEVICES')\nw2 = w * 2")
    assert result.success, result.error_in_exec
    assert shell.user_ns["w2"][-1] == 2.0
    executor = cluster.get_executor()
    assert executor.origin == "pykernel-ext cluster"
    assert executor.address == state(on_cluster)["scheduler"]["address"]
    run = last_run(on_cluster)
    assert run["name"] == "on-gpu" and run["kind"] == "remote" and run["status"] == "ok"
    assert run["worker"]["name"] == "pykernel-ext-0" and run["worker"]["resources"] == {"GPU": 1.0}
    assert run["remote"]["requirements"] == "GPU=1"


def test_the_notebooks_own_module_travels_to_workers_that_cannot_import_it(shell, on_cluster, tmp_path, monkeypatch):
    folder = tmp_path / "notebook-folder"
    folder.mkdir()
    (folder / "mylib.py").write_text("import helpers_nb\n\ndef scale(x):\n    return helpers_nb.factor() * x\n\n"
                                     "class Box:\n    def __init__(self, v):\n        self.v = v\n")
    (folder / "helpers_nb.py").write_text("def factor():\n    return 3\n")
    monkeypatch.syspath_prepend(str(folder))
    try:
        assert run_cell(shell, "from mylib import scale, Box\nimport mylib").success
        result = run_cell(shell, "%%remote\nimport os\ncwd = os.getcwd()\nboth = (scale(2), mylib.scale(3))\nbox = Box(4)")
        assert result.success, result.error_in_exec
        ns = shell.user_ns
        assert ns["both"] == (6, 9)
        assert type(ns["box"]) is ns["Box"], "the notebook's class comes back as itself"
        assert ns["mylib"].__file__ == str(folder / "mylib.py"), "the notebook keeps the real module"
        probe = run_cell(shell, "%%remote\nimport importlib.util\nfound = importlib.util.find_spec('mylib')")
        assert probe.success and shell.user_ns["found"] is None, "the worker really cannot import it"
    finally:
        for name in ("mylib", "helpers_nb"):
            __import__("sys").modules.pop(name, None)


def test_a_dataloader_with_worker_processes_runs_on_the_cluster(shell, on_cluster):
    result = run_cell(shell, "%%remote\nimport torch\nfrom torch.utils.data import DataLoader, TensorDataset\n"
                             "loader = DataLoader(TensorDataset(torch.ones(16, 2)), batch_size=4, num_workers=2)\n"
                             "n = sum(len(b[0]) for b in loader)")
    assert result.success, result.error_in_exec
    assert shell.user_ns["n"] == 16


def test_more_gpus_than_any_worker_declares_fails_with_what_the_cluster_has(shell, on_cluster):
    result = run_cell(shell, "%%remote --gpus 2\nx = 1")
    message = str(result.error_in_exec)
    assert "no worker offers GPU=2" in message and "GPU=1" in message


def test_the_server_view_of_workers_includes_the_persistent_cluster(on_cluster):
    from pykernel_ext.remote.cluster import known_addresses, worker_gpus

    address = state(on_cluster)["scheduler"]["address"]
    assert address in known_addresses()
    rows = [r for r in worker_gpus() if r["scheduler"] == address]
    assert len(rows) == 1 and rows[0]["resources"] == {"GPU": 1.0} and rows[0]["nthreads"] == 2


def test_a_killed_worker_fails_the_cell_and_is_replaced(shell, on_cluster):
    result = run_cell(shell, "%%remote --gpus 1\nimport os\nos.kill(os.getpid(), 9)")
    assert type(result.error_in_exec).__name__ == "WorkerDied"
    assert last_run(on_cluster)["status"] == "failed"
    result = run_cell(shell, "%%remote --gpus 1\nback = True")  # `dask worker`'s nanny restarts it
    assert result.success, result.error_in_exec


def test_a_session_on_dask_scheduler_and_worker_processes(shell, on_cluster):
    from pykernel_ext.remote import session_kernel

    try:
        result = run_cell(shell, "%%remote --session on-cluster --gpus 1\nimport os\nwhere = os.getpid()\n"
                                 "import torch\nw = torch.zeros(3)")
        assert result.success, result.error_in_exec
        result = run_cell(shell, "%%remote --session on-cluster\nw += 1\nsame = os.getpid() == where")
        assert result.success, result.error_in_exec
        assert shell.user_ns["same"] is True and float(shell.user_ns["w"].sum()) == 3.0
        session = session_kernel.SESSIONS["on-cluster"]
        assert session.executor.origin == "pykernel-ext cluster" and session.info()["resources"] == {"GPU": 1.0}
        # The session holds the worker's only GPU: a second session asking for one cannot start.
        result = run_cell(shell, "%%remote --session second --gpus 1\nx = 1")
        assert result.error_in_exec is not None and "free for a session" in str(result.error_in_exec)
        assert "on-cluster" in str(result.error_in_exec), "the message names the session holding it"
    finally:
        session_kernel.close_all()


def _other_kernel(home, code: str, *, kill: bool = False):
    """Another kernel process on the same cluster: opens session 'shared', runs `code` in it, then exits
    (or is killed with SIGKILL, as the OOM killer would)."""
    import os
    import signal
    import subprocess
    import sys

    script = ("import os, signal, sys\nfrom pykernel_ext.remote import remote\n"
              f"remote({code!r}, {{}}, session='shared')\nprint('ready', flush=True)\n"
              + ("os.kill(os.getpid(), signal.SIGKILL)\n" if kill else ""))
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYKERNEL_EXT_HOME": str(home)})
    assert "ready" in process.stdout, process.stdout + process.stderr
    return process.returncode == -signal.SIGKILL if kill else process.returncode == 0


def test_a_kernel_that_exits_or_is_killed_frees_its_sessions(shell, on_cluster):
    from pykernel_ext.remote import session_kernel

    for kill in (False, True):
        assert _other_kernel(on_cluster, "x = 1", kill=kill)
        deadline = time.monotonic() + 60
        while True:  # the scheduler releases a dead client's task; its worker then closes the session
            result = run_cell(shell, "%%remote --session shared\nmine = True")
            if result.success or time.monotonic() > deadline:
                break
            assert "in use by another kernel" in str(result.error_in_exec)
            time.sleep(0.5)
        assert result.success, result.error_in_exec
        session_kernel.forget("shared")


def test_shutting_down_a_real_kernel_closes_its_sessions(on_cluster):
    import os

    from jupyter_client.manager import start_new_kernel

    from kernel_helpers import execute

    env = {**os.environ, "PYKERNEL_EXT_HOME": str(on_cluster)}
    env.pop("PYKERNEL_EXT_SCHEDULER", None)
    manager, client = start_new_kernel(kernel_name="python3", env=env, cwd=str(on_cluster))
    try:
        reply, _ = execute(client, "%load_ext pykernel_ext")
        reply, outputs = execute(client, "%%remote --session from-kernel\nimport os\nprint('pid', os.getpid())")
        assert reply["status"] == "ok", reply
        assert any("pid" in m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
        reply, outputs = execute(client, "%remote_session")
        listing = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
        assert "from-kernel: open" in listing
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=False)
    from distributed import Client

    with Client(state(on_cluster)["scheduler"]["address"], set_as_default=False, timeout=30) as probe:
        deadline = time.monotonic() + 30
        while any("pykernel-ext-session-from-kernel/" in str(k) for keys in probe.processing().values() for k in keys):
            assert time.monotonic() < deadline, "the kernel's session still holds its worker after shutdown"
            time.sleep(0.2)


# Keep last: it stops the module's cluster.
def test_stop_ends_every_process(on_cluster):
    from pykernel_ext.remote import cluster

    cluster.close_all()
    pids = [state(on_cluster)["scheduler"]["pid"]] + [w["pid"] for w in state(on_cluster)["workers"]]
    env = {"PYKERNEL_EXT_HOME": str(on_cluster)}
    stopped = cli("cluster", "stop", env=env)
    assert stopped.returncode == 0 and "Stopped" in stopped.stdout
    import psutil

    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    assert cli("cluster", "status", env=env).returncode == 1
    assert cluster.persistent_address(on_cluster / ".pykernel_ext") is None
