"""`pykernel-ext run --timeout`, `--gpus-per-run` and `reproduce --tolerance`, as documented in the README:
real papermill executions in real kernels, a real Dask cluster whose workers declare GPU resources."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import cli
from pykernel_ext.gpu import gpu_status
from test_batch import make_notebook, runs, show

SLOW_EPOCHS = """%%track --name "slow epochs"
import time
for epoch in range(600):
    print(f"epoch {epoch}", flush=True)
    pykernel_ext.log(loss=1.0 / (epoch + 1), step=epoch)
    time.sleep(0.1)
"""


def test_timeout_fails_the_run_naming_the_cell_and_keeps_what_it_did(store_home):
    notebook = make_notebook(store_home, SLOW_EPOCHS)
    done = cli("run", str(notebook), "--timeout", "3", "--output-dir", "out", cwd=store_home)
    assert done.returncode == 1, done.stdout + done.stderr
    [parent] = runs("notebook")
    assert parent["status"] == "failed"
    # Cells count from 1 in the notebook as written (papermill's injected cell left out): the third cell.
    assert parent["error_message"].startswith('cell 3 (`%%track --name "slow epochs"`): CellTimeoutError: '
                                              "the cell ran longer than 3 s (--timeout)")
    assert "failed at cell 3 (`%%track" in done.stderr
    [child] = runs("cell")
    assert child["parent_id"] == parent["id"] and child["status"] == "interrupted"
    # The cell's first epochs reached the store before its kernel was shut down.
    full = json.loads(cli("runs", "show", child["id"], "--json").stdout)
    assert full["logs_text"]["stdout"].startswith("epoch 0\nepoch 1\n")
    assert full["metric_series"]["loss"]["steps"][:2] == [0, 1]


def test_timeout_leaves_runs_within_it_alone(store_home):
    notebook = make_notebook(store_home, "%%track --name quick\nloss = lr * 2")
    done = cli("run", str(notebook), "--timeout", "120", "--output-dir", "out", cwd=store_home)
    assert done.returncode == 0, done.stderr
    assert [r["status"] for r in runs()] == ["ok", "ok"]


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_timeout_must_be_a_positive_number(store_home, value):
    notebook = make_notebook(store_home, "pass")
    done = cli("run", str(notebook), "--timeout", value, cwd=store_home)
    assert done.returncode == 2 and "--timeout" in done.stderr, done.stderr
    assert runs() == []


@pytest.fixture(scope="module")
def gpu_labelled_cluster():
    """A LocalCluster of two worker processes: one declares GPU=1 (a scheduling label here; on a GPU box the
    embedded cluster pins the device too), the other nothing. Each worker's kernels see which one they are on."""
    from distributed import LocalCluster, Nanny

    cluster = LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address=None)
    template = cluster.new_spec.get("options", {})
    cluster.worker_spec["cpu-worker"] = {"cls": Nanny, "options": {
        **template, "nthreads": 2, "env": {"WORKER_ROLE": "cpu"}}}
    cluster.worker_spec["gpu-worker"] = {"cls": Nanny, "options": {
        **template, "nthreads": 2, "resources": {"GPU": 1}, "env": {"WORKER_ROLE": "gpu"}}}
    cluster.sync(cluster._correct_state)
    cluster.wait_for_workers(2, timeout=120)
    try:
        yield cluster
    finally:
        cluster.close()


WHERE = "%%track --name where\nimport os\npykernel_ext.log(on_gpu_worker=float(os.environ.get('WORKER_ROLE') == 'gpu'))"


def test_gpus_per_run_places_every_run_on_a_worker_offering_gpus(store_home, gpu_labelled_cluster):
    notebook = make_notebook(store_home, WHERE)
    done = cli("run", str(notebook), "--scheduler", gpu_labelled_cluster.scheduler_address, "--gpus-per-run", "1",
               "--sweep", "label=a,b,c,d", "--output-dir", "out", cwd=store_home)
    assert done.returncode == 0, done.stdout + done.stderr
    parents = runs("notebook")
    assert len(parents) == 4 and all(p["status"] == "ok" for p in parents)
    assert [p["metrics"]["on_gpu_worker"] for p in parents] == [1.0] * 4


def test_without_gpus_per_run_both_workers_take_runs(store_home, gpu_labelled_cluster):
    # The control for the test above: the CPU worker does take runs when nothing asks for a GPU.
    notebook = make_notebook(store_home, WHERE + "\nimport time\ntime.sleep(1)")
    done = cli("run", str(notebook), "--scheduler", gpu_labelled_cluster.scheduler_address, "--parallel", "4",
               "--sweep", "label=a,b,c,d", "--output-dir", "out", cwd=store_home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p["metrics"]["on_gpu_worker"] for p in runs("notebook")) == [0.0, 0.0, 1.0, 1.0]


def _refused(done, store_home: Path, expected: str) -> None:
    """Refused at once: exit 2 naming what the cluster has; the run is kept as failed, saying why, and
    nothing executed (no cell run under it, no executed notebook)."""
    assert done.returncode == 2 and expected in done.stderr, done.stdout + done.stderr
    [parent] = runs()
    assert parent["kind"] == "notebook" and parent["status"] == "failed"
    assert expected in parent["error_message"] and show(parent["id"])["children"] == []
    assert not (store_home / "pykernel-ext-runs").exists()


def test_gpus_per_run_no_worker_can_meet_is_refused_before_anything_runs(store_home, gpu_labelled_cluster):
    notebook = make_notebook(store_home, WHERE)
    done = cli("run", str(notebook), "--scheduler", gpu_labelled_cluster.scheduler_address, "--gpus-per-run", "2",
               cwd=store_home)
    _refused(done, store_home, "--gpus-per-run 2: no worker offers 2 GPU(s)")
    assert "gpu-worker: {'GPU': 1}" in done.stderr and "cpu-worker: no resources" in done.stderr


@pytest.mark.skipif(gpu_status().available, reason="checks the machine without a GPU")
def test_gpus_per_run_without_a_gpu_here_says_so(store_home, monkeypatch):
    for name in ("PYKERNEL_EXT_SCHEDULER", "DASK_SCHEDULER_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    notebook = make_notebook(store_home, WHERE)
    done = cli("run", str(notebook), "--gpus-per-run", "1", cwd=store_home)
    _refused(done, store_home, "--gpus-per-run 1: no worker offers 1 GPU(s)")


def test_a_failing_cell_is_named_by_its_own_source(store_home):
    # papermill adds error banners to the executed notebook (one at the top): the index it reports is
    # that of the notebook as executed, not as saved.
    notebook = make_notebook(store_home, "%%track --name broken\nraise ValueError('diverged')")
    done = cli("run", str(notebook), cwd=store_home)
    assert done.returncode == 1
    [parent] = runs("notebook")
    assert parent["error_message"].startswith("cell 3 (`%%track --name broken`): ValueError: diverged")


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_status().available, reason="needs an NVIDIA GPU")
def test_gpus_per_run_pins_each_run_to_a_gpu_of_this_machine(store_home, monkeypatch):
    for name in ("PYKERNEL_EXT_SCHEDULER", "DASK_SCHEDULER_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    uuids = {g["uuid"] for g in gpu_status().gpus}
    body = ("%%track --name pinned\nimport os\nfrom pykernel_ext.gpu import gpu_status\n"
            "visible = os.environ['CUDA_VISIBLE_DEVICES']\nprint(visible, len(gpu_status().gpus))")
    notebook = make_notebook(store_home, body)
    done = cli("run", str(notebook), "--gpus-per-run", "1", "--sweep", "label=a,b", "--output-dir", "out",
               cwd=store_home)
    assert done.returncode == 0, done.stdout + done.stderr
    for child in runs("cell"):
        stdout = json.loads(cli("runs", "show", child["id"], "--json").stdout)["logs_text"]["stdout"]
        visible, count = stdout.split()
        assert visible in uuids and count == "1"  # one GPU, one of this machine's


# ---- reproduce --tolerance ----------------------------------------------------------------------------

# Every execution scores a little higher (a counter file beside the notebook): 1.0001, then 1.0002, ...
DRIFTING = """%%track --name drifting
from pathlib import Path
counter = Path('executions.txt')
count = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(count))
pykernel_ext.log(score=1.0 + count * 1e-4)
"""


def test_reproduce_tolerance_decides_what_counts_as_the_same_result(store_home):
    notebook = make_notebook(store_home, DRIFTING)
    assert cli("run", str(notebook), cwd=store_home).returncode == 0
    [original] = runs("notebook")
    assert original["metrics"] == {"score": pytest.approx(1.0001)}

    strict = cli("reproduce", original["id"], "--check", cwd=store_home)  # default: 1e-6 relative
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "metric score differs: 1.0001, 1.0002" in strict.stdout

    loose = cli("reproduce", original["id"], "--check", "--tolerance", "1e-3", cwd=store_home)
    assert loose.returncode == 0, loose.stdout + loose.stderr
    assert "results: same within tolerance" in loose.stdout and "differs" not in loose.stdout

    tight = cli("reproduce", original["id"], "--check", "--tolerance", "1e-5", cwd=store_home)
    assert tight.returncode == 1 and "metric score differs: 1.0001, 1.0004" in tight.stdout
    assert [r["reproduces"] for r in runs("notebook")].count(original["id"]) == 3


@pytest.mark.parametrize("value", ["-0.1", "nan", "lots"])
def test_reproduce_tolerance_must_be_a_number_at_least_zero(store_home, value):
    done = cli("reproduce", "abc", "--tolerance", value, cwd=store_home)
    assert done.returncode == 2 and "--tolerance" in done.stderr, done.stderr


def test_gpus_per_run_must_not_be_negative(store_home):
    notebook = make_notebook(store_home, "pass")
    done = cli("run", str(notebook), "--gpus-per-run", "-1", cwd=store_home)
    assert done.returncode == 2 and "--gpus-per-run" in done.stderr, done.stderr
    assert runs() == []
