"""`%%track` in a real IPython shell: the cell behaves as untracked, and the run records what it should."""
from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from conftest import run_cell
from pykernel_ext.store import RunStore


def only_run(home: Path) -> dict:
    with RunStore.open(home / ".pykernel_ext") as s:
        rows, total = s.list_runs(limit=10)
        assert total == 1, f"expected one run, found {total}"
        run = s.get_run(rows[0]["id"])
        run["environment"] = s.environment(run["environment_id"])
        return run


def all_runs(home: Path) -> list[dict]:
    with RunStore.open(home / ".pykernel_ext") as s:
        rows, _ = s.list_runs(limit=100, descending=False)
        return [s.get_run(r["id"]) for r in rows]


def test_cell_behaves_as_untracked_and_is_recorded(shell, store_home, capsys):
    run_cell(shell, "lr = 0.01\nepochs = 3\nunused = 'x'")
    result = run_cell(shell, "%%track --name first\ntotal = lr * epochs\nprint('training')\ntotal * 2")
    assert result.success and result.result == pytest.approx(0.06)
    assert shell.user_ns["total"] == pytest.approx(0.03)
    out = capsys.readouterr().out
    assert "training" in out and "run " in out and "· ok ·" in out
    run = only_run(store_home)
    assert run["status"] == "ok" and run["name"] == "first" and run["kind"] == "cell"
    assert run["params"] == {"lr": 0.01, "epochs": 3}  # `unused` is not read, so not a parameter
    assert run["code"]["source"].startswith("total = lr * epochs")
    assert run["execution_count"] == shell.execution_count - 1
    assert [o["name"] for o in run["outputs"]] == ["total"]
    assert run["outputs"][0]["value"] == pytest.approx(0.03)
    assert run["duration_s"] >= 0 and run["ended_at"] >= run["started_at"]


def test_stdout_and_stderr_are_shown_live_and_stored(shell, store_home, capsys):
    run_cell(shell, "%%track\nimport sys\nprint('to out')\nprint('to err', file=sys.stderr)")
    captured = capsys.readouterr()
    assert "to out" in captured.out and "to err" in captured.err
    run = only_run(store_home)
    with RunStore.open(store_home / ".pykernel_ext") as s:
        assert s.blobs.read_text(run["logs"]["stdout_blob"]) == "to out\n"
        assert s.blobs.read_text(run["logs"]["stderr_blob"]) == "to err\n"


def test_exception_reaches_the_user_and_run_is_failed(shell, store_home, capsys):
    run_cell(shell, "x = 1")
    result = run_cell(shell, "%%track\nx = 2\ny = 1 / 0\nz = 3")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    assert shell.user_ns["x"] == 2 and "z" not in shell.user_ns  # as an untracked cell would leave it
    out = capsys.readouterr().out
    assert "ZeroDivisionError" in out and "----> 3 y = 1 / 0" in out
    run = only_run(store_home)
    assert run["status"] == "failed" and run["error_type"] == "ZeroDivisionError"
    assert run["error"]["message"] == "division by zero"
    assert "y = 1 / 0" in run["error"]["traceback"] and "magics.py" not in run["error"]["traceback"]


def test_keyboard_interrupt_records_interrupted(shell, store_home):
    result = run_cell(shell, "%%track\nraise KeyboardInterrupt")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert only_run(store_home)["status"] == "interrupted"


def test_last_expression_and_rich_display_work(shell, store_home):
    shell.display_pub.clear_output = lambda *a, **k: None
    result = run_cell(shell, "%%track\nfrom IPython.display import display, HTML\ndisplay(HTML('<b>x</b>'))\n41 + 1")
    assert result.success and result.result == 42
    result = run_cell(shell, "%%track\n41 + 1;")
    assert result.success and result.result is None  # a trailing semicolon still silences the value


def test_line_magics_and_shell_escapes_inside_the_cell(shell, store_home):
    result = run_cell(shell, "%%track\nfiles = !echo hello\n%time value = 5")
    assert result.success and shell.user_ns["value"] == 5 and list(shell.user_ns["files"]) == ["hello"]
    assert only_run(store_home)["code"]["source"].startswith("files = !echo hello")


def test_code_closure_follows_notebook_functions_transitively(shell, store_home):
    run_cell(shell, "import math\nscale = 2.0\ndef inner(v):\n    return math.sqrt(v) * scale\n"
                    "def outer(v):\n    return inner(v) + 1\nclass Model:\n    def forward(self, v):\n"
                    "        return outer(v)\ndef unrelated():\n    return 0\n")
    run_cell(shell, "%%track\nresult = Model().forward(16)")
    run = only_run(store_home)
    names = {e["name"]: e for e in run["code"]["closure"]}
    assert set(names) == {"Model", "outer", "inner"}
    assert "math.sqrt(v) * scale" in names["inner"]["source"] and names["Model"]["kind"] == "class"
    assert run["params"] == {"scale": 2.0}  # read through the closure, so a parameter of this cell


def test_explicit_params_and_tags(shell, store_home):
    run_cell(shell, "config = {'layers': [64, 32], 'act': 'relu'}\nbig = list(range(10000))\nseed = 7")
    run_cell(shell, "%%track --params big,seed --tag team=vision stage=dev\nn = len(config['layers'])")
    run = only_run(store_home)
    assert run["params"]["config"] == {"layers": [64, 32], "act": "relu"}
    assert run["params"]["seed"] == 7
    assert run["params"]["big"].startswith("[0, 1, 2")  # too big for JSON: its repr, clipped
    assert run["tags"] == {"team": "vision", "stage": "dev"}


def test_a_cell_records_the_parameters_it_reads_not_every_notebook_parameter(shell, store_home):
    run_cell(shell, "# Parameters\nepochs = 5\nmodel_name = 'resnet'\n")  # as papermill injects them
    run_cell(shell, "%%track\nprint('no parameter read here')")
    run_cell(shell, "%%track\nsteps = epochs * 2")
    first, second = all_runs(store_home)
    assert first["params"] == {} and second["params"] == {"epochs": 5}


def test_state_a_training_loop_changes_in_place_is_not_a_parameter(shell, store_home):
    # A loss history appended to, a counter incremented, a cache filled: the cell's state. Recorded as
    # parameters they would change from run to run and fill the sidebar with `history=[...]` columns.
    run_cell(shell, "lr = 0.01\nepochs = 3\nlosses = []\nseen = set()\ncache = {}\nbest = {'loss': 1.0}")
    run_cell(shell, "%%track\nfor epoch in range(epochs):\n    losses.append(lr / (epoch + 1))\n    seen |= {epoch}\n"
                    "    cache[epoch] = losses[-1]\nlimit = best['loss']")
    # A number the cell adds to cannot change in place: its value when the cell starts is an input.
    run_cell(shell, "%%track --params losses\nlosses.append(lr)\nlr *= 0.5")
    first, second = all_runs(store_home)
    assert first["params"] == {"lr": 0.01, "epochs": 3, "best": {"loss": 1.0}}
    assert second["params"] == {"losses": [0.01, 0.005, 0.01 / 3], "lr": 0.01}  # named: recorded


def test_a_notebook_kernel_records_the_notebook_and_reads_its_parameters(shell, store_home, monkeypatch):
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("batch = 64\nlr = 0.1")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    nbformat.write(nb, store_home / "train.ipynb")
    monkeypatch.setenv("JPY_SESSION_NAME", str(store_home / "train.ipynb"))
    run_cell(shell, "batch = 64\nlr = 0.1")
    run_cell(shell, "%%track\nz = lr * 2")
    run = only_run(store_home)
    assert run["params"] == {"lr": 0.1}
    assert run["notebook"] == "train.ipynb" and run["name"].startswith("train [")


def test_in_memory_data_is_hashed(shell, store_home):
    run_cell(shell, "import numpy as np, pandas as pd, torch\nX = np.arange(12.0).reshape(3, 4)\n"
                    "df = pd.DataFrame({'a': [1, 2]})\nt = torch.ones(3)\nnet = torch.nn.Linear(2, 1)\nraw = b'abc'\n"
                    "weird = np.array([object()], dtype=object)")
    run_cell(shell, "%%track\ns = X.sum() + df.a.sum() + t.sum().item() + net.weight.shape[0] + len(raw) + len(weird)")
    run = only_run(store_home)
    data = {d["name"]: d for d in run["data"]}
    assert set(data) == {"X", "df", "t", "net", "raw", "weird"}
    for name in ("X", "df", "t", "net", "raw"):
        assert len(data[name]["hash"]) == 64, name
    assert data["weird"]["hash"] is None and data["weird"]["error"]  # unhashable: recorded with its reason
    run_cell(shell, "X[0, 0] = 99")
    run_cell(shell, "%%track\ns = X.sum() + df.a.sum() + t.sum().item() + net.weight.shape[0] + len(raw) + len(weird)")
    second = {d["name"]: d for d in all_runs(store_home)[1]["data"]}
    assert second["X"]["hash"] != data["X"]["hash"] and second["df"]["hash"] == data["df"]["hash"]


def test_data_files_folders_and_path_parameters(shell, store_home):
    (store_home / "train.csv").write_text("a,b\n1,2\n")
    folder = store_home / "images"
    folder.mkdir()
    (folder / "1.txt").write_text("one")
    run_cell(shell, "labels = 'train.csv'")
    run_cell(shell, "%%track --data images\nimport os\nrows = open(labels).read().count('\\n')")
    run = only_run(store_home)
    data = {d["source"]: d for d in run["data"]}
    assert data["--data"]["kind"] == "folder" and len(data["--data"]["hash"]) == 64
    assert data["param labels"]["kind"] == "file" and data["param labels"]["size"] == 8


def test_missing_data_path_fails_before_the_cell_runs(shell, store_home):
    result = run_cell(shell, "%%track --data nowhere.csv\nran = True")
    assert isinstance(result.error_in_exec, UsageError)
    assert "nowhere.csv" in str(result.error_in_exec) and "does not exist" in str(result.error_in_exec)
    assert "ran" not in shell.user_ns
    assert not (store_home / ".pykernel_ext" / "runs.sqlite").exists() or all_runs(store_home) == []


@pytest.mark.parametrize("line, expected", [
    ("--bogus", "unrecognized arguments: --bogus"),
    ("--tag novalue", "is not KEY=VALUE"),
    ("--params 'a b'", "is not a Python name"),
    ("--name 'unclosed", "check the quotes"),
    ("--metrics", "expected one argument"),
])
def test_malformed_options_raise_usage_errors_with_usage(shell, store_home, line, expected):
    result = run_cell(shell, f"%%track {line}\nran = True")
    error = result.error_in_exec
    assert isinstance(error, UsageError) and expected in str(error) and "usage: %%track" in str(error)
    assert "ran" not in shell.user_ns


def test_metrics_logged_and_named(shell, store_home):
    run_cell(shell, "import pykernel_ext")
    run_cell(shell, "%%track --metrics accuracy\nfor epoch in range(3):\n"
                    "    pykernel_ext.log(loss=1.0 / (epoch + 1), step=epoch * 10)\naccuracy = 0.9")
    run = only_run(store_home)
    assert run["metrics"] == {"loss": pytest.approx(1 / 3), "accuracy": 0.9}
    assert run["metric_series"]["loss"]["steps"] == [0, 10, 20]
    assert run["metric_series"]["loss"]["values"] == pytest.approx([1.0, 0.5, 1 / 3])


def test_non_numeric_metric_is_a_warning_not_an_error(shell, store_home):
    run_cell(shell, "import pykernel_ext")
    result = run_cell(shell, "%%track\npykernel_ext.log(note='text', loss=1)")
    assert result.success
    run = only_run(store_home)
    assert run["metrics"] == {"loss": 1.0} and any("note" in w for w in run["warnings"])


def test_artifacts_are_stored_content_addressed(shell, store_home):
    run_cell(shell, "%%track --artifacts 'out/**/*.bin'\nimport os\nos.makedirs('out/sub', exist_ok=True)\n"
                    "open('out/sub/model.bin', 'wb').write(b'weights')")
    run = only_run(store_home)
    assert [a["path"] for a in run["artifacts"]] == ["out/sub/model.bin"]
    with RunStore.open(store_home / ".pykernel_ext") as s:
        assert s.blobs.read_bytes(run["artifacts"][0]["blob"]) == b"weights"


def test_environment_hardware_and_cost(shell, store_home):
    run_cell(shell, "%%track\na = 1")
    run_cell(shell, "%%track\nb = 2")
    first, second = all_runs(store_home)
    assert first["environment_id"] == second["environment_id"]  # stored once per distinct environment
    env = only_environment(store_home)
    assert env["packages"]["ipython"] and env["python"]
    from pykernel_ext.gpu import gpu_status

    status, gpu = gpu_status(), first["hardware"]["gpu"]
    assert gpu["available"] is status.available and len(gpu["gpus"]) == len(status.gpus)
    if status.available:
        assert gpu["reason"] is None and all(g["name"] for g in gpu["gpus"])
    else:
        assert gpu["reason"] and gpu["gpus"] == []  # no usable GPU: an explicit state with the reason
    assert first["resources"]["peak_rss_bytes"] > 0
    assert first["cost"]["usd"] >= 0 and first["cost"]["gpu_hours"] == 0  # these cells used no GPU


def only_environment(home: Path) -> dict:
    with RunStore.open(home / ".pykernel_ext") as s:
        blob = s._conn.execute("SELECT blob FROM environments").fetchall()
        assert len(blob) == 1
        return json.loads(s.blobs.read_text(blob[0][0]))


def test_git_state_is_recorded(shell, store_home):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=store_home, check=True)
    (store_home / "train.py").write_text("print(1)\n")
    subprocess.run(git + ["add", "train.py"], cwd=store_home, check=True)
    subprocess.run(git + ["commit", "-qm", "init"], cwd=store_home, check=True)
    (store_home / "train.py").write_text("print(2)\n")
    run_cell(shell, "%%track\nq = 1")
    from pykernel_ext.capture.git import start_git_capture

    start_git_capture(str(store_home)).result(timeout=30)  # the same single-thread executor: ours is done
    run = only_run(store_home)
    assert len(run["git"]["commit"]) == 40 and run["git"]["dirty"] is True
    assert "+print(2)" in run["git"]["diff"]


def test_unwritable_store_warns_once_and_keeps_results(shell, store_home, monkeypatch, capsys):
    blocker = store_home / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("PYKERNEL_EXT_HOME", str(blocker / "inside"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_cell(shell, "%%track\nkept = 123\nkept")
    assert result.success and result.result == 123 and shell.user_ns["kept"] == 123
    messages = [str(w.message) for w in caught if "not recorded" in str(w.message)]
    assert len(messages) == 1 and "PYKERNEL_EXT_HOME" in messages[0]
    assert "NOT RECORDED" in capsys.readouterr().out


def test_corrupt_store_warns_and_the_cell_still_runs(shell, store_home):
    folder = store_home / ".pykernel_ext"
    folder.mkdir()
    (folder / "runs.sqlite").write_bytes(b"garbage" * 1000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_cell(shell, "%%track\nvalue = 'still here'")
    assert result.success and shell.user_ns["value"] == "still here"
    assert any("corrupt" in str(w.message) for w in caught)
    assert (folder / "runs.sqlite").read_bytes().startswith(b"garbage")  # nothing of the user's is lost


def test_failing_capture_never_breaks_the_cell(shell, store_home):
    run_cell(shell, "class Weird:\n    def __getattr__(self, name):\n        raise RuntimeError('no')\nw = Weird()")
    result = run_cell(shell, "%%track\nout = type(w).__name__")
    assert result.success and shell.user_ns["out"] == "Weird"
    assert only_run(store_home)["status"] == "ok"


def test_load_ext_binds_pykernel_ext_for_the_readme_example(shell, store_home):
    shell.user_ns.pop("pykernel_ext", None)
    shell.run_line_magic("reload_ext", "pykernel_ext")
    result = run_cell(shell, "%%track --name readme\nfor epoch in range(2):\n    pykernel_ext.log(loss=1 / (epoch + 1), step=epoch)")
    assert result.success, result.error_in_exec
    assert only_run(store_home)["metrics"] == {"loss": 0.5}


def compare(store_home: Path, a: str, b: str) -> dict:
    from pykernel_ext.compare import compare_runs

    with RunStore.open(store_home / ".pykernel_ext") as s:
        return compare_runs(s, [a, b])


def test_notebook_classes_decorators_and_the_classes_of_objects_are_code(shell, store_home):
    run_cell(shell, "import functools\nimport torch\nfrom torch import nn\nfrom dataclasses import dataclass")
    run_cell(shell, "def timed(fn):\n    @functools.wraps(fn)\n    def wrapper(*args):\n        return fn(*args)\n"
                    "    return wrapper")
    run_cell(shell, "@dataclass\nclass Config:\n    hidden: int = 4")  # no method of its own: found by name
    model_cell = ("class Model(nn.Module):\n    def __init__(self, hidden):\n        super().__init__()\n"
                  "        self.layer = nn.Linear(2, hidden)\n    def f(self, x):\n        return x * {k}\n")
    run_cell(shell, model_cell.format(k=2))
    run_cell(shell, "@timed\ndef score(model, x):\n    return model.f(x)")
    run_cell(shell, "model = Model(Config().hidden)")  # the tracked cell reads the object, not the class
    run_cell(shell, "%%track\nresult = score(model, 3)")
    run_cell(shell, model_cell.format(k=3))
    run_cell(shell, "model = Model(Config().hidden)")
    run_cell(shell, "%%track\nresult = score(model, 3)")
    first, second = all_runs(store_home)
    closure = {e["name"]: e for e in first["code"]["closure"]}
    assert set(closure) == {"score", "timed", "Model"}
    assert closure["Model"]["source"].startswith("class Model(nn.Module):") and "return x * 2" in closure["Model"]["source"]
    assert closure["score"]["source"].startswith("@timed\ndef score")
    assert "from torch import nn" in first["code"]["imports"] and "import functools" in first["code"]["imports"]
    comparison = compare(store_home, first["id"], second["id"])
    assert not comparison["code"]["same"]
    assert "-        return x * 2\n+        return x * 3" in comparison["code"]["diffs"][0]
    run_cell(shell, "%%track\nc = Config()")
    config = {e["name"]: e for e in all_runs(store_home)[2]["code"]["closure"]}["Config"]
    assert config["source"] == "@dataclass\nclass Config:\n    hidden: int = 4\n"


def test_user_modules_are_recorded_once_by_content_and_a_reload_changes_the_code(shell, store_home, monkeypatch):
    module = store_home / "nbutils.py"
    module.write_text("def f(x):\n    return x * 2\n")
    monkeypatch.syspath_prepend(str(store_home))
    run_cell(shell, "import importlib\nimport nbutils")
    run_cell(shell, "%%track --metrics y\ny = nbutils.f(10)")
    run_cell(shell, "%%track --metrics y\ny = nbutils.f(10)")
    module.write_text("def f(x):\n    return x * 3\n")
    run_cell(shell, "importlib.reload(nbutils)")
    run_cell(shell, "%%track --metrics y\ny = nbutils.f(10)")
    first, same, changed = all_runs(store_home)
    [entry] = first["code"]["closure"]
    assert entry["kind"] == "module" and entry["name"] == "nbutils" and entry["path"] == "nbutils.py"
    assert entry["source"] is None and len(entry["blob"]) == 64  # the source is a blob, stored once
    assert same["code"]["closure"][0]["blob"] == entry["blob"]
    assert changed["code"]["closure"][0]["hash"] != entry["hash"]
    assert compare(store_home, first["id"], same["id"])["code"]["same"]
    comparison = compare(store_home, first["id"], changed["id"])
    assert not comparison["code"]["same"] and "+    return x * 3" in comparison["code"]["diffs"][0]
    with RunStore.open(store_home / ".pykernel_ext") as s:
        assert s.blobs.read_text(entry["blob"]) == "def f(x):\n    return x * 2\n"
    from conftest import cli
    from pykernel_ext.server.api import NotebookPaths, RunsAPI

    shown = json.loads(cli("runs", "show", first["id"], "--json").stdout)  # the source read back for views
    assert shown["code"]["closure"][0]["source"] == "def f(x):\n    return x * 2\n"
    api = RunsAPI(store_home / ".pykernel_ext", NotebookPaths(store_home, store_home))
    try:
        assert api.get_run(changed["id"])["code"]["closure"][0]["source"] == "def f(x):\n    return x * 3\n"
    finally:
        api.close()
    module.write_text("def f(x):\n    return x * 4\n")  # changed on disk, not reloaded: said so
    run_cell(shell, "%%track\ny = nbutils.f(1)")
    stale = all_runs(store_home)[3]
    assert any("changed on disk since it was imported: the run records the source that was loaded" in w
               for w in stale["warnings"])
    assert stale["code"]["closure"][0]["hash"] == changed["code"]["closure"][0]["hash"]  # x * 3 is what ran


def test_cell_magics_stacked_under_track_are_part_of_the_cell(shell, store_home):
    run_cell(shell, "lr = 0.5\nimport numpy as np\nX = np.ones(3)")
    result = run_cell(shell, "%%track\n%%time\nscaled = X * lr")
    assert result.success and shell.user_ns["scaled"].sum() == 1.5
    result = run_cell(shell, "%%track\n%%capture captured\nprint('hidden', lr)\ntotal = X.sum()")
    assert result.success and "hidden 0.5" in shell.user_ns["captured"].stdout
    timed, captured = all_runs(store_home)
    assert timed["params"] == {"lr": 0.5} and [d["name"] for d in timed["data"]] == ["X"]
    assert [o["name"] for o in timed["outputs"]] == ["scaled"] and timed["code"]["source"].startswith("%%time\n")
    assert captured["params"] == {"lr": 0.5} and {o["name"] for o in captured["outputs"]} == {"captured", "total"}


def test_configs_are_structured_parameters_and_datasets_are_data(shell, store_home):
    run_cell(shell, "import argparse, types\nfrom dataclasses import dataclass, field\nimport pandas as pd, torch\n"
                    "from torch.utils.data import DataLoader, Dataset, TensorDataset\n"
                    "@dataclass\nclass Optim:\n    lr: float = 0.01\n    betas: tuple = (0.9, 0.99)\n"
                    "@dataclass\nclass Config:\n    optim: Optim = field(default_factory=Optim)\n    epochs: int = 3\n"
                    "cfg = Config()\nns = types.SimpleNamespace(seed=1, name='a')\nargs = argparse.Namespace(batch=8)\n"
                    "import attrs, pydantic\nclass Model(pydantic.BaseModel):\n    depth: int = 2\n    act: str = 'relu'\n"
                    "@attrs.define\nclass Aug:\n    flip: bool = True\nmodel_cfg = Model()\naug = Aug()\n"
                    "big = {f'k{i}': i for i in range(100)}\ndf = pd.DataFrame({'a': range(300)})\n"
                    "class Points(Dataset):\n    def __init__(self, n):\n        self.x = torch.arange(n * 2.0).reshape(n, 2)\n"
                    "        self.files = ['points.csv']\n    def __len__(self):\n        return len(self.x)\n"
                    "    def __getitem__(self, i):\n        return self.x[i]\n"
                    "ds = TensorDataset(torch.ones(4, 2), torch.zeros(4))\nloader = DataLoader(ds, batch_size=2, num_workers=0)\n"
                    "points = Points(3)")
    (store_home / "points.csv").write_text("x,y\n1,2\n")
    run_cell(shell, "%%track --params df\nsteps = cfg.epochs * cfg.optim.lr + ns.seed + args.batch + big['k1']\n"
                    "deep = model_cfg.depth if aug.flip else 0\n"
                    "n = len(ds) + len(loader) + len(points)")
    run = only_run(store_home)
    assert run["params"] == {"cfg.optim.lr": 0.01, "cfg.optim.betas": [0.9, 0.99], "cfg.epochs": 3, "ns.seed": 1,
                             "ns.name": "a", "args.batch": 8, **{f"big.k{i}": i for i in range(100)},
                             "model_cfg.depth": 2, "model_cfg.act": "relu", "aug.flip": True}
    data = {d["name"]: d for d in run["data"]}
    assert data["df"]["kind"] == "dataframe" and len(data["df"]["hash"]) == 64  # data, not a parameter
    assert data["ds"]["kind"] == "dataset" and len(data["ds"]["hash"]) == 64
    assert data["loader"]["kind"] == "dataloader" and "over TensorDataset" in data["loader"]["detail"]
    assert data["points"]["kind"] == "dataset" and "files[0] points.csv" in data["points"]["detail"]
    run_cell(shell, "ds.tensors[0][0, 0] = 5.0")  # training data changed in place: the loader's hash follows
    run_cell(shell, "%%track\nn = len(loader)")
    assert all_runs(store_home)[1]["data"][0]["hash"] != data["loader"]["hash"]


def test_artifacts_are_only_the_files_the_run_wrote(shell, store_home):
    run_cell(shell, "import os\nos.makedirs('ckpt', exist_ok=True)\nsave = True")
    run_cell(shell, "%%track --artifacts 'ckpt/*.pt' 'logs/*.txt'\nif save:\n    open('ckpt/last.pt', 'wb').write(b'w1')")
    run_cell(shell, "save = False")
    run_cell(shell, "%%track --artifacts 'ckpt/*.pt'\nif save:\n    open('ckpt/last.pt', 'wb').write(b'w2')\n"
                    "raise RuntimeError('diverged before saving')")
    wrote, failed = all_runs(store_home)
    assert [a["path"] for a in wrote["artifacts"]] == ["ckpt/last.pt"]
    assert any("'logs/*.txt' matched no file" in w for w in wrote["warnings"])
    assert failed["status"] == "failed" and failed["artifacts"] == []
    assert failed["artifacts_unchanged"] == ["ckpt/last.pt"]
    assert any("ckpt/last.pt matched but is as it was before" in w for w in failed["warnings"])


def test_data_paths_are_named_relative_to_the_run_folder(shell, store_home):
    (store_home / "data.txt").write_text("1 2 3")
    run_cell(shell, f"path = {str(store_home / 'data.txt')!r}")
    run_cell(shell, "%%track --data data.txt\nopen('data.txt').read()")
    run_cell(shell, f"%%track --data {store_home / 'data.txt'}\nopen(path).read()")
    first, second = all_runs(store_home)
    assert [d["name"] for d in first["data"]] == ["data.txt"]
    assert {d["name"] for d in second["data"]} == {"data.txt"}  # absolute and relative: the same input
    assert first["cwd"] == str(store_home)
    assert compare(store_home, first["id"], second["id"])["data"]["different"] == []


def test_a_failing_tracked_cell_traceback_names_its_own_cell_number(shell, store_home, capsys):
    run_cell(shell, "x = 1")
    number = shell.execution_count
    run_cell(shell, "%%track\ny = x / 0")
    out = capsys.readouterr().out
    assert f"In[{number}]" in out and f"In[{number + 1}]" not in out


def test_an_ambiguous_run_prefix_never_claims_more_runs_than_it_lists(shell, store_home):
    from pykernel_ext.errors import AmbiguousRunId

    with RunStore.open(store_home / ".pykernel_ext") as s:
        for index in range(7):
            s.begin_run({"id": f"ab{index:030d}", "kind": "cell", "name": "n", "status": "ok", "started_at": 1.0,
                         "params": {}, "tags": {}}, {})
        with pytest.raises(AmbiguousRunId) as raised:
            s.resolve_run_id("ab")
    message = str(raised.value)
    assert "matches more than 5 runs" in message and message.count("ab000") == 5 and ", ..." in message


CLASS_CELLS = ["%load_ext pykernel_ext", "class Model:\n    def f(self, x):\n        return x * 2\n",
               "%%track --name uses-class\ny = Model().f(3)"]


def _class_runs(home: Path) -> list[dict]:
    return [r for r in all_runs(home) if r["name"] == "uses-class"]


def test_notebook_classes_have_their_source_under_nbconvert_and_a_jupyterlab_kernel(store_home):
    import os
    import sys

    import nbformat
    from jupyter_client.manager import start_new_kernel

    from kernel_helpers import execute

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CLASS_CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, store_home / "classes.ipynb")
    done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                           "classes.ipynb"], capture_output=True, text=True, cwd=store_home, timeout=300)
    assert done.returncode == 0, done.stderr
    [converted] = _class_runs(store_home)
    assert converted["notebook"] == "classes.ipynb" and converted["cell_id"] == nb.cells[2].id  # found by the kernel
    # JupyterLab's way: the kernel is told the notebook (JPY_SESSION_NAME) and each cell's id.
    env = {**os.environ, "JPY_SESSION_NAME": str(store_home / "classes.ipynb")}
    manager, client = start_new_kernel(kernel_name="python3", env=env, cwd=str(store_home))
    try:
        for cell in nb.cells:
            reply, _ = execute(client, cell.source, cell_id=cell.id)
            assert reply["status"] == "ok", reply
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert len(_class_runs(store_home)) == 2
    for run in _class_runs(store_home):
        [entry] = run["code"]["closure"]
        assert entry["kind"] == "class" and entry["source"] == CLASS_CELLS[1], entry
        assert run["cell_id"] == nb.cells[2].id
