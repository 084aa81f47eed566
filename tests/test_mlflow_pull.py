"""`pykernel-ext mlflow pull`: runs a teammate logged with MLflow's own API, and runs a teammate pushed with
pykernel-ext, come into the local store as kind `mlflow`; `runs list` and the server's compare route show
them beside local runs. Pulling again refreshes, never duplicates; runs pushed from this store stay local.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cli
from conftest_mlflow import experiment, mlflow_server, push_here  # noqa: F401

API = "pykernel-ext/api/v1"

MLFLOW_SCRIPT = """\
import mlflow
import pandas as pd

mlflow.set_experiment({experiment!r})
frame = pd.DataFrame({{"sepal": [5.1, 4.9, 6.2], "label": [0, 0, 1]}})
with mlflow.start_run(run_name="baseline") as parent:
    mlflow.log_params({{"C": 0.5, "penalty": "l2", "layers": [64, 32]}})
    mlflow.set_tag("team", "vision")
    mlflow.log_input(mlflow.data.from_pandas(frame, name="iris"), context="training")
    for step in range(3):
        mlflow.log_metric("acc", 0.6 + step / 10, step=step)
    with mlflow.start_run(run_name="fold-1", nested=True):
        mlflow.log_metric("acc", 0.75)
with mlflow.start_run(run_name="crashed"):
    mlflow.log_param("C", 2.0)
    mlflow.end_run(status="FAILED")
"""

TEAMMATE_SCRIPT = """\
import pykernel_ext
width = 16
with pykernel_ext.track(name="teammate-fit", params={"width": width}):
    total = sum(range(width))
    pykernel_ext.log(total=total)
"""

OUR_SCRIPT = """\
import pykernel_ext
with pykernel_ext.track(name="ours", params={"C": 0.25}):
    pykernel_ext.log(acc=0.7)
"""


def python(script: str, cwd: Path, **env: str) -> None:
    """Run a script file (so track() blocks find their source) in `cwd`."""
    (cwd / "script.py").write_text(script)
    done = subprocess.run([sys.executable, "script.py"], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stderr


def listed(kind: str | None = None) -> dict[str, dict]:
    args = ["runs", "list", "--json", "--limit", "100"] + (["--kind", kind] if kind else [])
    return {r["name"]: r for r in json.loads(cli(*args).stdout)}


@pytest.fixture
def team_experiment(mlflow_server, experiment, store_home, tmp_path) -> str:
    """An experiment holding MLflow-logged runs, a teammate's pushed pykernel-ext run and one of ours."""
    target = ["--tracking-uri", mlflow_server.uri, "--experiment", experiment]
    python(MLFLOW_SCRIPT.format(experiment=experiment), tmp_path, MLFLOW_TRACKING_URI=mlflow_server.uri)
    teammate = tmp_path / "teammate"
    teammate.mkdir()
    python(TEAMMATE_SCRIPT, teammate, PYKERNEL_EXT_HOME=str(teammate))
    assert cli("mlflow", "push", "--all", *target, env={"PYKERNEL_EXT_HOME": str(teammate)}).returncode == 0
    python(OUR_SCRIPT, store_home)
    push_here(store_home, mlflow_server.uri, experiment)
    return experiment


def test_pull_brings_mlflow_runs_in_as_kind_mlflow(mlflow_server, team_experiment, store_home):
    done = cli("mlflow", "pull", "--tracking-uri", mlflow_server.uri, "--experiment", team_experiment)
    assert done.returncode == 0, done.stderr
    assert "pulled 4 run(s)" in done.stdout and "1 came from this store" in done.stdout

    pulled = listed("mlflow")
    assert set(pulled) == {"baseline", "fold-1", "crashed", "teammate-fit"}
    baseline = pulled["baseline"]
    assert baseline["params"] == {"C": 0.5, "penalty": "l2", "layers": [64, 32]}, "params typed back from text"
    assert baseline["metrics"] == {"acc": pytest.approx(0.8)} and baseline["tags"] == {"team": "vision"}
    assert baseline["status"] == "ok" and pulled["crashed"]["status"] == "failed"
    assert pulled["fold-1"]["parent_id"] == baseline["id"]
    assert listed("cell") == {} and listed("script").keys() == {"ours"}, "our own run stays as it was"

    shown = json.loads(cli("runs", "show", baseline["id"], "--json").stdout)
    assert shown["metric_series"]["acc"]["steps"] == [0, 1, 2]
    assert shown["metric_series"]["acc"]["values"] == pytest.approx([0.6, 0.7, 0.8])
    (iris,) = shown["data"]
    assert iris["name"] == "iris" and iris["hash"]
    assert shown["mlflow"]["experiment"] == team_experiment and shown["mlflow"]["tracking_uri"] == mlflow_server.uri

    teammate = json.loads(cli("runs", "show", pulled["teammate-fit"]["id"], "--json").stdout)
    assert "total = sum(range(width))" in teammate["code"]["source"], "code comes back from the pushed record"
    assert teammate["params"] == {"width": 16} and teammate["metrics"] == {"total": 120.0}

    again = cli("mlflow", "pull", "--tracking-uri", mlflow_server.uri, "--experiment", team_experiment)
    assert "pulled 4 run(s)" in again.stdout
    assert len(json.loads(cli("runs", "list", "--json", "--limit", "100").stdout)) == 5, "refreshed, not duplicated"
    assert len(json.loads(cli("runs", "show", baseline["id"], "--json").stdout)["metric_series"]["acc"]["steps"]) == 3


async def test_pulled_runs_compare_beside_local_runs_in_the_server_api(jp_fetch, mlflow_server, team_experiment):
    assert cli("mlflow", "pull", "--tracking-uri", mlflow_server.uri, "--experiment", team_experiment).returncode == 0
    runs = listed()
    response = await jp_fetch(API, "runs", params={"kind": "mlflow", "limit": "50"})
    kinds = {r["kind"] for r in json.loads(response.body)["runs"]}
    assert kinds == {"mlflow"}
    ids = f"{runs['ours']['id']},{runs['baseline']['id']},{runs['crashed']['id']}"
    compared = json.loads((await jp_fetch(API, "compare", params={"ids": ids})).body)
    assert [r["kind"] for r in compared["runs"]] == ["script", "mlflow", "mlflow"]
    assert compared["params"]["values"]["C"] == [0.25, 0.5, 2.0] and "C" in compared["params"]["different"]
    assert compared["metrics"]["values"]["acc"] == [pytest.approx(0.7), pytest.approx(0.8), None]
    assert [len(s["values"]) if s else 0 for s in compared["metric_series"]["acc"]] == [1, 3, 0]


def test_pull_names_the_experiments_there_when_the_name_is_wrong(mlflow_server, store_home):
    done = cli("mlflow", "pull", "--tracking-uri", mlflow_server.uri, "--experiment", "no-such-experiment")
    assert done.returncode == 2
    assert "has no experiment named 'no-such-experiment'; it has: " in done.stderr and "Default" in done.stderr


def test_without_mlflow_the_commands_name_the_extra(store_home, tmp_path):
    blocker = tmp_path / "no-mlflow"
    blocker.mkdir()
    (blocker / "mlflow.py").write_text("raise ImportError(\"No module named 'mlflow'\")\n")
    env = {"PYTHONPATH": f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    python(OUR_SCRIPT, store_home)
    for args in (("push", "--all"), ("pull",)):
        done = cli("mlflow", *args, "--tracking-uri", "sqlite:///team.db", env=env, cwd=store_home)
        assert done.returncode == 2
        assert "pip install 'pykernel-ext[mlflow]'" in done.stderr, done.stderr
    status = cli("mlflow", "status", env=env)
    assert status.returncode == 0 and "mirror: off" in status.stdout


def test_bad_input_gets_a_clear_error(store_home):
    python(OUR_SCRIPT, store_home)
    cases = {
        ("mlflow", "push", "--tracking-uri", "sqlite:///x.db"): "name the runs to push (RUN_ID ...), or --all, or --pending",
        ("mlflow", "push", "--all", "--tracking-uri", "localhost:5000"): "has no scheme: write http://HOST:PORT",
        ("mlflow", "push", "ffff", "--tracking-uri", "sqlite:///x.db"): "no run matches 'ffff'",
    }
    for args, message in cases.items():
        done = cli(*args, env={"MLFLOW_TRACKING_URI": "", "PYKERNEL_EXT_MLFLOW_URI": ""})
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
    done = cli("mlflow", "push", "--all", env={"MLFLOW_TRACKING_URI": "", "PYKERNEL_EXT_MLFLOW_URI": ""})
    assert done.returncode == 2 and "no MLflow tracking server given: pass --tracking-uri URI" in done.stderr


def test_our_limits_are_mlflows():
    from mlflow.utils import validation

    from pykernel_ext.sync import convert

    for name in ("MAX_PARAM_VAL_LENGTH", "MAX_TAG_VAL_LENGTH", "MAX_ENTITY_KEY_LENGTH", "MAX_DATASET_DIGEST_SIZE",
                 "MAX_DATASET_NAME_SIZE"):
        assert getattr(convert, name) == getattr(validation, name), name
