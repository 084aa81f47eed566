"""Every example notebook runs top to bottom on a CPU (through papermill, as a user's batch run would)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import REPO, cli

EXAMPLES = sorted((REPO / "examples").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_notebook_runs(notebook: Path, store_home: Path):
    import papermill

    for path in notebook.parent.iterdir():  # examples may ship small helper files beside them
        if path.is_file() and not path.name.endswith(".ipynb"):
            shutil.copy(path, store_home / path.name)
    papermill.execute_notebook(str(notebook), str(store_home / f"out-{notebook.name}"), kernel_name="python3",
                               cwd=str(store_home), progress_bar=False, execution_timeout=120)
    runs = json.loads(cli("runs", "list", "--json", "--limit", "100").stdout)
    assert runs, "an example records at least one run"
    assert all(r["status"] == "ok" for r in runs), [(r["name"], r["status"], r["error_message"]) for r in runs]


def test_track_example_records_what_it_promises(store_home: Path):
    import papermill

    notebook = REPO / "examples" / "01_track.ipynb"
    papermill.execute_notebook(str(notebook), str(store_home / "out.ipynb"), kernel_name="python3",
                               cwd=str(store_home), progress_bar=False, parameters={"epochs": 6})
    runs = {r["name"]: r for r in json.loads(cli("runs", "list", "--json").stdout)}
    train = json.loads(cli("runs", "show", runs["train"]["id"], "--json").stdout)
    assert train["params"] == {"epochs": 6, "lr": 0.05, "hidden": 32}  # what the cell reads (seed: the data cell)
    assert {d["name"] for d in train["data"]} == {"X", "y"}
    assert {e["name"] for e in train["code"]["closure"]} == {"MLP", "train_epoch"}
    assert len(train["metric_series"]["loss"]["values"]) == 6
    import nbformat

    executed = nbformat.read(store_home / "out.ipynb", as_version=4)
    listing = "".join(o.get("text", "") for o in executed.cells[-1].outputs)
    assert "NAME" in listing and "evaluate" in listing  # `!pykernel-ext runs list` ran in the kernel
    evaluate = json.loads(cli("runs", "show", runs["evaluate"]["id"], "--json").stdout)
    assert [a["path"] for a in evaluate["artifacts"]] == ["model.pt"]
    assert 0.0 <= evaluate["metrics"]["accuracy"] <= 1.0


@pytest.mark.parametrize("notebook", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_notebook_exports_to_a_script_that_runs(notebook: Path, store_home: Path):
    # What the README promises for any notebook, on ours first: no cell left commented out, and the script
    # runs to the end (02_remote's `%%remote --gpus $gpus` once exported as a commented-out cell).
    import subprocess
    import sys

    shutil.copy(notebook, store_home / notebook.name)
    done = cli("export", notebook.name, "-o", "script.py", cwd=store_home)
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
    ran = subprocess.run([sys.executable, "script.py", "--epochs", "3"], cwd=store_home, capture_output=True,
                         text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    runs = json.loads(cli("runs", "list", "--json", "--limit", "100").stdout)
    assert runs and all(r["status"] == "ok" for r in runs), [(r["name"], r["status"], r["error_message"]) for r in runs]
