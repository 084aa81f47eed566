"""`pykernel-ext mlflow push` against a real `mlflow server` (and a `sqlite:` URI), with runs made through
the real entry points: %%track in an IPython shell, `pykernel-ext run` (papermill), a script with
`pykernel_ext.track()`, and `%%remote` on the embedded Dask LocalCluster. Read back with MlflowClient.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from conftest import cli, run_cell
from conftest_mlflow import by_local_id, experiment, mlflow_runs, mlflow_server, push_here  # noqa: F401
from conftest_remote import embedded_cluster  # noqa: F401
from pykernel_ext.store import RunStore

MODEL_CELL = """\
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc = nn.Linear(4, width)
        self.out = nn.Linear(width, 1)

    def forward(self, x):
        return self.out(torch.relu(self.fc(x)))

def train_one_epoch(model, opt, x, y):
    opt.zero_grad()
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    opt.step()
    return loss.item()

torch.manual_seed(0)
lr = 0.05
epochs = 4
x, y = torch.randn(32, 4), torch.randn(32, 1)
model = Net(8)
opt = torch.optim.SGD(model.parameters(), lr=lr)
"""

TRAIN_CELL = """\
%%track --name train --params lr --data data/train.csv --artifacts "checkpoints/*.pt" --tag team=vision
import os
import pykernel_ext
os.makedirs("checkpoints", exist_ok=True)
for epoch in range(epochs):
    loss = train_one_epoch(model, opt, x, y)
    pykernel_ext.log(loss=loss, step=epoch)
torch.save(model.state_dict(), "checkpoints/net.pt")
print("final loss", round(loss, 4))
"""


def git_repo(folder: Path) -> str:
    """Make `folder` a git repository with one commit; returns the commit."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=folder,
                              check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (folder / ".gitignore").write_text(".pykernel_ext/\n")
    git("add", ".gitignore")
    git("commit", "-qm", "start")
    return git("rev-parse", "HEAD")


def push(*args: str) -> subprocess.CompletedProcess:
    """`pykernel-ext mlflow push ...` as a user types it."""
    done = cli("mlflow", "push", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def local_run(home: Path, run_id: str) -> dict:
    with RunStore.open(home / ".pykernel_ext") as store:
        return store.get_run(run_id)


def run_ids(home: Path, kind: str | None = None) -> list[str]:
    with RunStore.open(home / ".pykernel_ext") as store:
        rows, _ = store.list_runs(kind=kind, limit=1000, descending=False)
        return [r["id"] for r in rows]


def test_cell_run_arrives_with_params_series_tags_inputs_and_artifacts(shell, store_home, mlflow_server, experiment,
                                                                         monkeypatch):
    commit = git_repo(store_home)
    monkeypatch.setenv("JPY_SESSION_NAME", str(store_home / "train.ipynb"))
    (store_home / "data").mkdir()
    (store_home / "data" / "train.csv").write_text("a,b\n1,2\n3,4\n")
    assert run_cell(shell, MODEL_CELL).success
    assert run_cell(shell, TRAIN_CELL).success
    (run_id,) = run_ids(store_home)
    local = local_run(store_home, run_id)

    done = push(run_id, "--tracking-uri", mlflow_server.uri, "--experiment", experiment)
    assert f"{run_id[:8]}  created" in done.stdout and f"{mlflow_server.uri}/#/experiments/" in done.stdout

    client = mlflow_server.client()
    (remote,) = mlflow_runs(client, experiment)
    info, data = remote.info, remote.data
    assert info.run_name == "train" and info.status == "FINISHED"
    assert info.start_time == round(local["started_at"] * 1000) and info.end_time == round(local["ended_at"] * 1000)
    assert data.params == {"lr": "0.05", "epochs": "4"}
    assert data.tags["pykernel_ext.run_id"] == run_id and data.tags["pykernel_ext.kind"] == "cell"
    assert data.tags["team"] == "vision"
    assert data.tags["mlflow.source.name"] == "train.ipynb" and data.tags["mlflow.source.type"] == "NOTEBOOK"
    assert data.tags["mlflow.source.git.commit"] == commit
    assert data.tags["pykernel_ext.code_hash"] == local["code_hash"]
    series = local["metric_series"]["loss"]
    history = sorted(client.get_metric_history(info.run_id, "loss"), key=lambda m: m.step)
    assert [m.step for m in history] == [0, 1, 2, 3]
    assert [m.value for m in history] == pytest.approx(series["values"])
    assert [m.timestamp for m in history] == [round(t * 1000) for t in series["timestamps"]]
    assert data.metrics["loss"] == pytest.approx(local["metrics"]["loss"])

    datasets = {d.dataset.name: d.dataset for d in remote.inputs.dataset_inputs}
    csv = next(d for d in local["data"] if d["name"] == "data/train.csv")
    assert json.loads(datasets["data/train.csv"].source) == {"uri": csv["path"]}
    assert datasets["data/train.csv"].digest == csv["hash"][:36]
    assert json.loads(datasets["data/train.csv"].profile)["blake3"] == csv["hash"]
    model_hash = next(d for d in local["data"] if d["name"] == "model")["hash"]
    assert any(d.digest == model_hash[:36] for d in datasets.values()), "the model's state dict hash is an input"

    folder = Path(client.download_artifacts(info.run_id, "", str(store_home / "downloaded")))
    assert (folder / "code" / "cell.py").read_text() == local["code"]["source"]
    closure = (folder / "code" / "closure.py").read_text()
    # The notebook's function, and the class of the model the cell uses (defined in the notebook too).
    assert sorted(e["name"] for e in local["code"]["closure"]) == ["Net", "train_one_epoch"]
    assert "def train_one_epoch(model, opt, x, y):" in closure and "class Net(" in closure
    assert (folder / "logs" / "stdout.txt").read_text().startswith("final loss")
    assert (folder / "artifacts" / "checkpoints" / "net.pt").read_bytes() == (store_home / "checkpoints" / "net.pt").read_bytes()
    assert "torch==" in (folder / "environment" / "requirements.txt").read_text()
    assert json.loads((folder / "pykernel_ext" / "run.json").read_text())["id"] == run_id


def test_failed_cell_is_failed_in_mlflow_with_its_traceback(shell, store_home, mlflow_server, experiment):
    run_cell(shell, "%%track --name broken\nscale = 2\nvalues = [1, 2]\nvalues[scale]")
    (run_id,) = run_ids(store_home)
    push_here(store_home, mlflow_server.uri, experiment, [run_id])
    (remote,) = mlflow_runs(mlflow_server.client(), experiment)
    assert remote.info.status == "FAILED"
    assert remote.data.tags["pykernel_ext.error"] == "IndexError: list index out of range"
    path = mlflow_server.client().download_artifacts(remote.info.run_id, "error/traceback.txt", str(store_home))
    assert "values[scale]" in Path(path).read_text()


def test_push_again_updates_the_same_mlflow_run(shell, store_home, mlflow_server, experiment):
    run_cell(shell, "%%track --name steps\nimport pykernel_ext\nfor i in range(3):\n    pykernel_ext.log(acc=i / 10, step=i)")
    (run_id,) = run_ids(store_home)
    (first,) = push_here(store_home, mlflow_server.uri, experiment, [run_id])
    again = push(run_id, "--tracking-uri", mlflow_server.uri, "--experiment", experiment)
    assert first.action == "created" and f"{run_id[:8]}  unchanged" in again.stdout

    # Points added later (a live flush of a run that was pushed while it ran) go up once each.
    with RunStore.open(store_home / ".pykernel_ext") as store:
        now = time.time()
        store.append_metrics(run_id, [("acc", 3, 0.3, now), ("acc", 4, 0.4, now)], {"acc": 0.4})
    (updated,) = push_here(store_home, mlflow_server.uri, experiment, [run_id])
    (last,) = push_here(store_home, mlflow_server.uri, experiment)
    assert updated.action == "updated" and last.action == "unchanged"
    assert updated.mlflow_run_id == last.mlflow_run_id == first.mlflow_run_id

    client = mlflow_server.client()
    (remote,) = mlflow_runs(client, experiment)
    history = client.get_metric_history(remote.info.run_id, "acc")
    assert sorted(m.step for m in history) == [0, 1, 2, 3, 4], "every point once, none twice"
    assert remote.data.metrics["acc"] == pytest.approx(0.4)


def test_script_run_pushed_to_a_sqlite_uri(store_home, tmp_path):
    script = store_home / "train.py"
    script.write_text(textwrap.dedent("""\
        from dataclasses import dataclass
        import pykernel_ext

        @dataclass
        class Config:
            lr: float = 0.1
            layers: tuple = (64, 32)

        config = Config()
        with pykernel_ext.track(name="script", params={"lr": config.lr, "layers": list(config.layers),
                                                       "notes": "n" * 7000}):
            for step in range(5):
                pykernel_ext.log(loss=config.lr / (step + 1), step=step)
        """))
    done = subprocess.run([sys.executable, str(script)], cwd=store_home, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (run_id,) = run_ids(store_home)
    uri = f"sqlite:///{tmp_path / 'team.db'}"
    pushed = push("--all", "--tracking-uri", uri, "--experiment", "scripts")
    assert "note: param notes is 7000 characters, over MLflow's limit of 6000: truncated" in pushed.stdout

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (remote,) = mlflow_runs(client, "scripts")
    assert remote.data.tags["pykernel_ext.run_id"] == run_id and remote.data.tags["mlflow.source.type"] == "LOCAL"
    assert remote.data.params["lr"] == "0.1" and remote.data.params["layers"] == "[64, 32]"
    notes = remote.data.params["notes"]
    assert len(notes) == 6000 and notes.endswith("[truncated: 7000 characters (full value in pykernel_ext/params.json)]")
    assert remote.data.tags["pykernel_ext.truncated_params"] == "notes"
    full = client.download_artifacts(remote.info.run_id, "pykernel_ext/params.json", str(tmp_path))
    assert json.loads(Path(full).read_text())["notes"] == "n" * 7000
    assert len(client.get_metric_history(remote.info.run_id, "loss")) == 5
    assert "with pykernel_ext.track" not in Path(client.download_artifacts(
        remote.info.run_id, "code/script.py", str(tmp_path))).read_text(), "the block's body, as recorded"


def make_notebook(folder: Path) -> Path:
    params = nbformat.v4.new_code_cell("lr = 0.1\nepochs = 3")
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Training\nA small sweep."),
        nbformat.v4.new_code_cell("%load_ext pykernel_ext\nimport pykernel_ext"),
        params,
        nbformat.v4.new_code_cell("%%track --name fit\nfor step in range(epochs):\n"
                                  "    pykernel_ext.log(loss=lr / (step + 1), step=step)\nprint('fitted')"),
        nbformat.v4.new_code_cell("%%track --name evaluate\nscore = 1 - lr\npykernel_ext.log(score=score)"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "train.ipynb"
    nbformat.write(nb, path)
    return path


def test_notebook_run_and_its_cells_arrive_linked_to_their_parent(store_home, mlflow_server, experiment):
    make_notebook(store_home)
    done = cli("run", "train.ipynb", "-p", "lr", "0.2", cwd=store_home)
    assert done.returncode == 0, done.stdout + done.stderr
    (notebook_id,) = run_ids(store_home, kind="notebook")
    cells = run_ids(store_home, kind="cell")
    assert len(cells) == 2
    push_here(store_home, mlflow_server.uri, experiment)

    client = mlflow_server.client()
    remote = by_local_id(mlflow_runs(client, experiment))
    assert set(remote) == {notebook_id, *cells}
    parent = remote[notebook_id]
    assert parent.data.params["lr"] == "0.2" and parent.data.tags["mlflow.source.type"] == "NOTEBOOK"
    for cell in cells:
        assert remote[cell].data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert remote[cells[0]].info.run_name == "fit" and remote[cells[1]].info.run_name == "evaluate"
    names = {a.path for a in client.list_artifacts(parent.info.run_id, "notebook")}
    assert names == {"notebook/train.ipynb", "notebook/train.executed.ipynb"}
    executed = client.download_artifacts(parent.info.run_id, "notebook/train.executed.ipynb", str(store_home / "dl"))
    assert "fitted" in Path(executed).read_text()


def test_runs_pulled_from_mlflow_are_not_pushed_back(store_home, mlflow_server, experiment):
    with RunStore.open(store_home / ".pykernel_ext") as store:
        store.replace_run({"id": "ab" * 16, "kind": "mlflow", "name": "theirs", "status": "ok", "started_at": 1.0,
                           "ended_at": 2.0, "owner_host": None}, {})
    (result,) = push_here(store_home, mlflow_server.uri, experiment, ["ab" * 16])
    assert result.action == "skipped" and "pulled from MLflow" in result.message
    assert mlflow_runs(mlflow_server.client(), experiment) == []


def test_remote_cell_arrives_like_a_local_one(shell, store_home, mlflow_server, experiment, embedded_cluster):
    run_cell(shell, "import numpy as np\nweights = np.linspace(0, 1, 16)\nlr = 0.5\n"
                    "def step(w):\n    return w - lr * w.mean()\n")
    result = run_cell(shell, "%%remote --name remote-fit\nimport pykernel_ext\nfor i in range(3):\n"
                             "    weights = step(weights)\n    pykernel_ext.log(mean=float(weights.mean()), step=i)\n"
                             "print('worker done')")
    assert result.success, result.error_in_exec
    (run_id,) = run_ids(store_home, kind="remote")
    push_here(store_home, mlflow_server.uri, experiment, [run_id])

    client = mlflow_server.client()
    (remote,) = mlflow_runs(client, experiment)
    local = local_run(store_home, run_id)
    assert remote.data.tags["pykernel_ext.kind"] == "remote" and remote.info.run_name == "remote-fit"
    assert remote.data.params == {"lr": "0.5"}
    assert sorted(m.step for m in client.get_metric_history(remote.info.run_id, "mean")) == [0, 1, 2]
    assert {d.dataset.name for d in remote.inputs.dataset_inputs} == {d["name"] for d in local["data"] if d.get("hash")}
    stdout = client.download_artifacts(remote.info.run_id, "logs/stdout.txt", str(store_home / "dl"))
    assert Path(stdout).read_text() == "worker done\n"
    closure = client.download_artifacts(remote.info.run_id, "code/closure.py", str(store_home / "dl"))
    assert "def step(w):" in Path(closure).read_text()


def test_gpu_samples_become_mlflows_system_metrics(store, store_home, tmp_path):
    # Two GPUs, three ticks, as the resource sampler hands them to the store on a GPU machine.
    run_id, t0 = "9a" * 16, time.time()
    store.begin_run({"id": run_id, "kind": "cell", "name": "on-gpu", "started_at": t0}, {})
    samples = [{"host": "gpu-box", "index": gpu, "name": "H200", "timestamp": t0 + tick, "utilization_percent": 50.0 + tick,
                "memory_used_bytes": (tick + 1) * 10**9, "memory_total_bytes": 80 * 10**9}
               for tick in range(3) for gpu in range(2)]
    store.finish_run(run_id, {"status": "ok", "ended_at": t0 + 3, "duration_s": 3.0}, {}, gpu_samples=samples)
    uri = f"sqlite:///{tmp_path / 'team.db'}"
    push_here(store_home, uri, "gpus", [run_id])

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (remote,) = mlflow_runs(client, "gpus")

    def history(key: str) -> list[tuple[int, float]]:
        return sorted((m.step, m.value) for m in client.get_metric_history(remote.info.run_id, key))

    assert history("system/gpu_1_utilization_percentage") == [(0, 50.0), (1, 51.0), (2, 52.0)]
    assert history("system/gpu_0_memory_usage_megabytes") == [(0, 1000.0), (1, 2000.0), (2, 3000.0)]
    assert history("system/gpu_0_memory_usage_percentage") == [(0, 1.25), (1, 2.5), (2, 3.75)]
    timestamps = sorted(m.timestamp for m in client.get_metric_history(remote.info.run_id, "system/gpu_0_utilization_percentage"))
    assert timestamps == [round((t0 + tick) * 1000) for tick in range(3)]


@pytest.mark.gpu
def test_a_gpu_run_pushes_its_samples(store_home, tmp_path):
    from pykernel_ext.gpu import gpu_status

    if not gpu_status().available:
        pytest.skip("needs an NVIDIA GPU")
    (store_home / "gpu.py").write_text(textwrap.dedent("""\
        import time
        import torch
        import pykernel_ext
        with pykernel_ext.track(name="matmul"):
            a = torch.randn(4096, 4096, device="cuda")
            deadline = time.time() + 2
            while time.time() < deadline:
                a = (a @ a).clamp(-1, 1)
            torch.cuda.synchronize()
        """))
    done = subprocess.run([sys.executable, "gpu.py"], cwd=store_home, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    uri = f"sqlite:///{tmp_path / 'team.db'}"
    push_here(store_home, uri, "gpu")

    from mlflow.tracking import MlflowClient

    (remote,) = mlflow_runs(MlflowClient(tracking_uri=uri), "gpu")
    assert "system/gpu_0_utilization_percentage" in remote.data.metrics
    assert remote.data.metrics["system/gpu_0_memory_usage_megabytes"] > 0
