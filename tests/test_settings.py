"""Documented settings, exercised for real: where the store is found when PYKERNEL_EXT_HOME is unset (a real
kernel, the real CLI and a real Jupyter server all agree), and the hour prices that make a run's cost."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

from conftest import cli, run_cell
from kernel_helpers import execute
from pykernel_ext.config import STORE_DIRNAME
from pykernel_ext.store import RunStore

API = "pykernel-ext/api/v1"

# (layout, folder the user works in, folder whose .pykernel_ext/ must hold the store), under tmp_path/"tree"
LAYOUTS = {
    # The nearest ancestor holding .pykernel_ext/ wins, even over a nearer git root.
    "ancestor": ("project/sub/notebooks", "project"),
    # Else the git root.
    "git root": ("repo/notebooks/exp", "repo"),
    # Else the folder itself.
    "folder": ("plain", "plain"),
}


def _build(tree: Path, layout: str) -> tuple[Path, Path]:
    work_rel, home_rel = LAYOUTS[layout]
    work, home = tree / work_rel, tree / home_rel
    work.mkdir(parents=True)
    if layout == "ancestor":
        (home / STORE_DIRNAME).mkdir()
        subprocess.run(["git", "init", "-q"], cwd=tree / "project/sub", check=True)
    elif layout == "git root":
        subprocess.run(["git", "init", "-q"], cwd=home, check=True)
    return work, home


@pytest.fixture(params=sorted(LAYOUTS))
def layout(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(work folder, expected home) with PYKERNEL_EXT_HOME unset, for this process and the ones it starts."""
    for parent in (tmp_path, *tmp_path.parents):
        assert not (parent / STORE_DIRNAME).exists() and not (parent / ".git").exists(), \
            f"{parent} holds a store or a git repository: the layouts below would resolve to it"
    for name in ("PYKERNEL_EXT_HOME", "PYKERNEL_EXT_NOTEBOOK", "PYKERNEL_EXT_PARENT_RUN", "JPY_SESSION_NAME"):
        monkeypatch.delenv(name, raising=False)
    work, home = _build(tmp_path / "tree", request.param)
    monkeypatch.chdir(work)
    return work, home


@pytest.fixture
def jp_root_dir(layout: tuple[Path, Path]) -> Path:
    return layout[0]  # JupyterLab started in the folder the user works in


@pytest.fixture
def jp_server_config(layout) -> dict:
    return {"ServerApp": {"jpserver_extensions": {"pykernel_ext": True}}}


def test_kernel_and_cli_find_the_same_store(layout):
    work, home = layout
    env = {**os.environ, "JPY_SESSION_NAME": str(work / "train.ipynb")}
    manager, client = start_new_kernel(kernel_name="python3", env=env, cwd=str(work))
    try:
        execute(client, "%load_ext pykernel_ext")
        reply, _ = execute(client, "%%track --name located\nlr = 0.1\nloss = lr * 2")
        assert reply["status"] == "ok"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)

    stores = sorted(p.parent.parent for p in home.parent.rglob(f"{STORE_DIRNAME}/runs.sqlite"))
    assert stores == [home], "one store, at the home; none in the work folder"
    with RunStore.open(home / STORE_DIRNAME) as store:
        rows, _ = store.list_runs()
    assert [r["name"] for r in rows] == ["located"]
    assert rows[0]["notebook"] == (work / "train.ipynb").relative_to(home).as_posix()  # portable label

    listed = json.loads(cli("runs", "list", "--json", cwd=work).stdout)
    assert [r["id"] for r in listed] == [rows[0]["id"]]


async def test_the_server_finds_the_same_store(layout, jp_fetch, jp_serverapp, monkeypatch):
    work, home = layout
    # The server opened (and created) the store when it started, before anything was recorded.
    assert jp_serverapp.web_app.settings["pykernel_ext"]["api"].store_dir == home / STORE_DIRNAME
    import pykernel_ext

    monkeypatch.setenv("PYKERNEL_EXT_NOTEBOOK", str(work / "train.ipynb"))
    with pykernel_ext.track(name="located", code="loss = 0.2"):
        pass
    served = json.loads((await jp_fetch(API, "runs")).body)
    assert [r["name"] for r in served["runs"]] == ["located"]
    assert served["runs"][0]["notebook_server_path"] == "train.ipynb"  # relative to the Jupyter root


def test_hour_prices_make_the_recorded_cost(shell, store_home, monkeypatch):
    monkeypatch.setenv("PYKERNEL_EXT_CPU_HOUR_PRICE", "36000")  # $10 per CPU second: visible in any run
    monkeypatch.setenv("PYKERNEL_EXT_GPU_HOUR_PRICE", "7.5")
    run_cell(shell, "%%track --name priced\nimport time\nend = time.process_time() + 0.2\n"
                    "while time.process_time() < end:\n    pass")
    monkeypatch.delenv("PYKERNEL_EXT_CPU_HOUR_PRICE")
    monkeypatch.delenv("PYKERNEL_EXT_GPU_HOUR_PRICE")
    run_cell(shell, "%%track --name default-prices\nx = 1")
    with RunStore.open(store_home / STORE_DIRNAME) as store:
        rows, _ = store.list_runs(descending=False)
        priced, default = (store.get_run(r["id"]) for r in rows)
    cost = priced["cost"]
    assert (cost["cpu_hour_price"], cost["gpu_hour_price"]) == (36000.0, 7.5)
    assert cost["cpu_hours"] * 3600 == pytest.approx(priced["resources"]["cpu_seconds"])
    assert priced["resources"]["cpu_seconds"] >= 0.2
    assert cost["usd"] == pytest.approx(cost["cpu_hours"] * 36000 + cost["gpu_hours"] * 7.5)
    assert cost["usd"] >= 2.0 and priced["cost_usd"] == pytest.approx(cost["usd"])  # the list shows it too
    assert (default["cost"]["cpu_hour_price"], default["cost"]["gpu_hour_price"]) == (0.04, 2.5)


def test_a_price_that_is_not_a_number_stops_the_cell_with_what_to_do(shell, store_home, monkeypatch):
    monkeypatch.setenv("PYKERNEL_EXT_GPU_HOUR_PRICE", "2,50")
    result = run_cell(shell, "%%track\nran = True")
    assert not result.success and "ran" not in shell.user_ns
    message = str(result.error_in_exec)
    assert "PYKERNEL_EXT_GPU_HOUR_PRICE='2,50' is not a number" in message and "unset it" in message
