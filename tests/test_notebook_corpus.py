"""The conformance corpus: realistic notebooks (tests/notebooks/) through every entry point.

Each notebook runs through `pykernel-ext run` (started from another folder) and through bare papermill with
the same parameters: same outcome, and a failing cell named and quoted exactly as papermill marks it. Then
it is exported and run as a script with the same parameters: its runs compare equal to the notebook's in
parameters, code and metrics (`runs diff`). Then `reproduce --check` from yet another folder exits 0.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import REPO, cli

CORPUS = REPO / "tests" / "notebooks"


@dataclass(frozen=True)
class Case:
    notebook: str
    parameters: tuple[tuple[str, str], ...]  # -p NAME VALUE, given alike to papermill and to the script
    failing: str | None = None  # the error the notebook stops with
    timeout: float | None = None  # per cell, for pykernel-ext run and papermill
    cells: tuple[str, ...] = field(default=())  # the tracked cells (run names) it records


CASES = [
    Case("train_classifier.ipynb", (("epochs", "3"),), cells=("data-stats", "train", "evaluate")),
    Case("failing_check.ipynb", (("limit", "12"),), failing="AssertionError", cells=("total",)),
    Case("slow_cell.ipynb", (("seconds", "6"),), failing="CellTimeoutError", timeout=2, cells=("wait",)),
    Case("bad_magic.ipynb", (("name", "parity"),), failing="UsageError", cells=("greet",)),
]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A copy of the corpus (runs write checkpoints and outputs beside their notebooks)."""
    folder = tmp_path / "corpus"
    shutil.copytree(CORPUS, folder, ignore=shutil.ignore_patterns("__pycache__", "ckpt", "*.py.partial"))
    return folder


def runs(**filters: str) -> list[dict]:
    args = ["runs", "list", "--json", "--limit", "200"]
    for key, value in filters.items():
        args += [f"--{key}", value]
    return json.loads(cli(*args).stdout)


def show(run_id: str) -> dict:
    return json.loads(cli("runs", "show", run_id, "--json").stdout)


def diff(a: str, b: str) -> dict:
    return json.loads(cli("runs", "diff", a, b, "--json").stdout)


def children(parent_id: str) -> dict[str, dict]:
    return {r["name"]: r for r in runs() if r["parent_id"] == parent_id}


def papermill_cell(executed: dict, ename: str) -> dict:
    """The cell papermill marks as failed: the one after its anchor cell; a cell that timed out gets no
    marker and is the last one papermill started."""
    cells = executed["cells"]
    if ename == "CellTimeoutError":
        started = [c for c in cells if c["cell_type"] == "code" and c["metadata"].get("papermill", {}).get("start_time")]
        return started[-1]
    anchor = next(i for i, c in enumerate(cells) if 'id="papermill-error-cell"' in "".join(c["source"]))
    return cells[anchor + 1]


def source_of(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


@pytest.mark.parametrize("case", CASES, ids=[c.notebook.removesuffix(".ipynb") for c in CASES])
def test_a_corpus_notebook_through_every_entry_point(case: Case, corpus: Path, store_home: Path, tmp_path: Path):
    notebook = corpus / case.notebook
    own_cells = json.loads(notebook.read_text())["cells"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    options = [arg for name, value in case.parameters for arg in ("-p", name, value)]
    timeout = ["--timeout", str(case.timeout)] if case.timeout else []

    # 1. pykernel-ext run, started from another folder: the kernel runs in the notebook's folder.
    done = cli("run", str(notebook), *options, *timeout, "--output-dir", str(tmp_path / "out"), cwd=elsewhere)
    assert done.returncode == (1 if case.failing else 0), done.stdout + done.stderr
    [notebook_run] = runs(kind="notebook")
    record = show(notebook_run["id"])
    assert record["cwd"] == str(corpus)
    if not json.loads(notebook.read_text())["metadata"].get("kernelspec"):
        assert "names no kernel" in done.stderr and "python3" in done.stderr
    tracked = children(notebook_run["id"])
    assert set(tracked) == set(case.cells)
    for name, run in tracked.items():  # nbclient sends no cell ids: the kernel found its cells
        cell = next(c for c in own_cells if c.get("id") == run["cell_id"])
        assert source_of(cell).startswith(f"%%track --name {name}") and run["notebook"] == notebook_run["notebook"]

    # 2. Bare papermill, the same parameters: the same outcome, the same failing cell.
    executed_path = corpus / f"{notebook.stem}-papermill.ipynb"
    kernelspec = json.loads(notebook.read_text())["metadata"].get("kernelspec")
    papermill = [sys.executable, "-m", "papermill", str(notebook), str(executed_path), *options, "--cwd", str(corpus),
                 "--no-progress-bar", *([] if kernelspec else ["-k", "python3", "-l", "python"]),  # papermill needs both
                 *(["--execution-timeout", str(int(case.timeout))] if case.timeout else [])]
    bare = subprocess.run(papermill, capture_output=True, text=True, cwd=elsewhere, timeout=300)
    assert (bare.returncode != 0) == bool(case.failing), bare.stderr[-2000:]
    bare_runs = {r["name"]: r for r in runs(kind="cell") if r["parent_id"] is None}
    assert set(bare_runs) == set(case.cells)
    for name, run in tracked.items():
        assert bare_runs[name]["params"] == run["params"], name
        assert bare_runs[name]["code_hash"] == run["code_hash"] and bare_runs[name]["cell_id"] == run["cell_id"], name
        if run["status"] == "ok":
            assert bare_runs[name]["metrics"] == run["metrics"], name
    if case.failing:
        marked = papermill_cell(json.loads(executed_path.read_text()), case.failing)
        error = record["notebook_error"]
        assert error["ename"] == case.failing and error["cell_source"] == source_of(marked)
        assert error["cell_id"] == marked["id"]
        number = next(i for i, c in enumerate(own_cells, start=1) if c["id"] == marked["id"])
        first_line = source_of(marked).splitlines()[0]
        assert f"cell {number} (`{first_line[:60]}`): {case.failing}" in notebook_run["error_message"]
        assert f"failed at cell {number} (`" in done.stderr
        if case.failing != "CellTimeoutError":  # the error the cell itself showed (papermill's own message
            shown = json.dumps(marked["outputs"])  # is empty for a bad magic, whose UsageError goes to stderr)
            assert error["evalue"] and error["evalue"] in shown.replace("\\n", "\n")

    # 3. Exported and run as a script with the same parameters: the same runs.
    script = corpus / f"{notebook.stem}.py"
    assert cli("export", str(notebook), "-o", str(script)).returncode == 0
    flags = [arg for name, value in case.parameters for arg in (f"--{name}", value)]
    scripted = subprocess.run([sys.executable, str(script), *flags], capture_output=True, text=True, cwd=corpus,
                              timeout=300)
    script_fails = case.failing not in (None, "CellTimeoutError")  # a script has no cell timeout
    assert (scripted.returncode != 0) == script_fails, scripted.stderr[-2000:]
    [script_run] = [r for r in runs(kind="script") if r["parent_id"] is None]
    compared = diff(notebook_run["id"], script_run["id"])
    assert compared["params"]["different"] == [] and compared["code"]["same"], compared["params"]
    assert compared["data"]["different"] == []
    if script_fails:
        assert script_run["status"] == "failed" and script_run["error_type"] == case.failing
    in_script = children(script_run["id"])
    assert set(in_script) == set(case.cells)
    for name, run in tracked.items():
        pair = diff(run["id"], in_script[name]["id"])
        assert pair["params"]["different"] == [] and pair["code"]["same"], (name, pair["params"], pair["code"])
        assert pair["data"]["different"] == [], (name, pair["data"])
        if run["status"] == "ok":
            assert pair["metrics"]["different"] == [], (name, pair["metrics"])
    if not script_fails and case.failing is None:
        assert diff(notebook_run["id"], script_run["id"])["metrics"]["different"] == []

    # 4. reproduce --check from another folder: no false differences.
    again = cli("reproduce", notebook_run["id"], "--check", cwd=elsewhere)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "results: same within tolerance" in again.stdout
    if case.notebook == "train_classifier.ipynb":
        check_training_notebook(notebook, notebook_run, tracked, corpus, elsewhere, tmp_path)


def check_training_notebook(notebook: Path, notebook_run: dict, tracked: dict[str, dict], corpus: Path,
                            elsewhere: Path, tmp_path: Path) -> None:
    """What the training notebook's runs record: code closure, configs, data, artifacts."""
    parent = show(notebook_run["id"])
    assert parent["params"] == {"epochs": 3, "lr": 0.1, "hidden": 16, "data_path": "data/points.csv", "seed": 0,
                                "save_checkpoint": True, "batch_size": 32}  # log_every is no literal
    assert [(d["name"], d["source"]) for d in parent["data"]] == [("data/points.csv", "param data_path")]
    train = show(tracked["train"]["id"])
    # papermill injects the values after the parameters cell, so `log_every` was derived from the default.
    assert train["params"] == {"cfg.lr": 0.1, "cfg.hidden": 16, "cfg.epochs": 3, "log_every": 2, "seed": 0,
                               "save_checkpoint": True}  # not the globals `lr`, `hidden`: attributes of cfg
    closure = {e["name"]: e for e in train["code"]["closure"]}
    assert set(closure) == {"MLP", "train_epoch", "timed", "TrainConfig"}
    assert closure["MLP"]["source"].startswith("class MLP(nn.Module):")
    assert closure["train_epoch"]["source"].startswith("@timed\ndef train_epoch(")
    assert "from torch import nn" in train["code"]["imports"]
    [loader] = train["data"]
    assert loader["name"] == "loader" and loader["kind"] == "dataloader" and len(loader["hash"]) == 64
    assert [a["path"] for a in train["artifacts"]] == ["ckpt/last.pt"]
    assert train["code"]["source"].startswith("%%time\n") and {"model", "final_loss"} <= {o["name"] for o in train["outputs"]}
    evaluate = show(tracked["evaluate"]["id"])
    closure = {e["name"]: e for e in evaluate["code"]["closure"]}  # the local module, the classes of model, cfg
    assert {(e["kind"], name) for name, e in closure.items()} == {("module", "nbhelpers"), ("class", "MLP"),
                                                                  ("class", "TrainConfig")}
    assert closure["nbhelpers"]["path"] == "nbhelpers.py" and len(closure["nbhelpers"]["blob"]) == 64

    # A later run that writes no checkpoint lists none (ckpt/last.pt is an earlier run's).
    later = cli("run", str(notebook), "-p", "epochs", "1", "-p", "save_checkpoint", "false",
                "--output-dir", str(tmp_path / "out"), cwd=elsewhere)
    assert later.returncode == 0, later.stderr
    newest = max(runs(kind="notebook"), key=lambda r: r["started_at"])
    later_train = show(children(newest["id"])["train"]["id"])
    assert later_train["artifacts"] == [] and later_train["artifacts_unchanged"] == ["ckpt/last.pt"]

    # A tracked cell whose inputs are parameters, files and a local module reproduces on its own.
    again = cli("reproduce", tracked["data-stats"]["id"], "--check", cwd=elsewhere)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "code: same" in again.stdout and "results: same within tolerance" in again.stdout
