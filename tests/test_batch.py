"""`pykernel-ext run` and `reproduce`: real papermill executions, real kernels, a real Dask LocalCluster."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from conftest import cli, run_cell
from pykernel_ext.batch.parameters import ParameterError, collect_parameters, notebook_parameters, parse_sweep


def make_notebook(folder: Path, body: str, params: str = "lr = 0.1  # learning rate\nepochs = 2\n"
                  "layers = [8, 4]\nverbose = False\nlabel = 'base'", name: str = "train.ipynb") -> Path:
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%load_ext pykernel_ext\nimport pykernel_ext"),
                                         cell, nbformat.v4.new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / name
    nbformat.write(nb, path)
    return path


TRAIN = ("%%track --name fit\nfor step in range(epochs):\n    pykernel_ext.log(loss=lr / (step + 1), step=step)\n"
         "width = sum(layers)\nprint('trained', label)")


def runs(kind: str | None = None) -> list[dict]:
    args = ["runs", "list", "--json", "--limit", "100"] + (["--kind", kind] if kind else [])
    return json.loads(cli(*args).stdout)


def show(run_id: str) -> dict:
    return json.loads(cli("runs", "show", run_id, "--json").stdout)


def test_parameters_are_typed_like_the_notebook_defaults(store_home):
    spec = notebook_parameters(make_notebook(store_home, "pass"))
    assert spec["lr"].kind == "float" and spec["lr"].help == "learning rate"
    values = collect_parameters(spec, [("epochs", "3"), ("lr", "0.5"), ("layers", "[16, 8]"), ("verbose", "yes"),
                                       ("label", "42")])
    assert values == {"epochs": 3, "lr": 0.5, "layers": [16, 8], "verbose": True, "label": "42"}
    with pytest.raises(ParameterError, match="defines no parameter bogus; it defines: lr"):
        collect_parameters(spec, [("bogus", "1")])
    assert parse_sweep("layers=[1],[2, 3]", spec) == ("layers", [[1], [2, 3]])
    assert parse_sweep("lr=0.1,0.01", spec) == ("lr", [0.1, 0.01])
    for bad in ("lr", "lr=", "=1,2", "lr=1,,2"):
        with pytest.raises(ParameterError):
            parse_sweep(bad, spec)


def test_values_that_do_not_take_the_defaults_type_pass_as_given_with_a_note(store_home, tmp_path):
    """As papermill does: `-y 'epochs: "It works"'` for `epochs = 2` reaches the notebook as that string."""
    spec = notebook_parameters(make_notebook(store_home, "pass"))
    notes: list[str] = []
    (tmp_path / "p.yaml").write_text("lr: 1\nlabel: 7\n")
    values = collect_parameters(spec, [("epochs", "three"), ("layers", "{a: 1}")], ['verbose: "no way"'], [str(tmp_path / "p.yaml")], notes)
    assert values == {"epochs": "three", "layers": {"a": 1}, "verbose": "no way", "lr": 1, "label": 7}
    assert any("epochs: 'three' is not an int like its default 2" in n and "passed as the string 'three'" in n
               for n in notes)
    assert any("layers: '{a: 1}' is a dict, not a list" in n for n in notes)
    assert any("verbose: 'no way' is a str, not a bool" in n for n in notes)
    assert any("label: 7 is an int, not a str" in n for n in notes)
    assert not any(n.startswith("parameter lr") for n in notes)  # an int where a float is expected fits


def test_one_parser_decides_the_parameters_for_run_and_export(store_home):
    from pykernel_ext import export
    from pykernel_ext.batch.parameters import read_parameters

    cell = ("# Parameters: papermill overrides these\nepochs = 20  # passes\n# learning rate\nlr = 0.1\n"
            "d = epochs == 3\na, b = 1, 2\nhidden: int = 8\n")
    found = {p.name: p for p in read_parameters(cell)}
    assert list(found) == ["epochs", "lr", "d", "hidden"]
    assert found["epochs"].help == "passes" and found["lr"].help == "learning rate"  # not the heading
    assert found["d"].kind == "any" and not found["d"].has_literal and found["hidden"].kind == "int"
    assert export.read_parameters is read_parameters  # the exporter uses the same parser
    spec = notebook_parameters(make_notebook(store_home, "pass", params=cell))
    assert list(spec) == list(found)
    assert collect_parameters(spec, [("d", "true")]) == {"d": True}


def test_single_run_records_parent_child_output_and_metrics(store_home):
    notebook = make_notebook(store_home, TRAIN)
    done = cli("run", str(notebook), "-p", "epochs", "3", "-y", "label: yaml", "--output-dir", "out", cwd=store_home)
    assert done.returncode == 0, done.stderr
    assert "1/1 done" in done.stderr and "ok" in done.stdout
    [parent] = runs("notebook")
    [child] = runs("cell")
    assert parent["status"] == "ok" and child["parent_id"] == parent["id"]
    assert parent["params"] == {"lr": 0.1, "epochs": 3, "layers": [8, 4], "verbose": False, "label": "yaml"}
    assert child["params"]["epochs"] == 3 and child["name"] == "fit"
    assert parent["metrics"] == {"loss": pytest.approx(0.1 / 3)}  # the cells' metrics, summarized
    full = show(parent["id"])
    assert full["children"] == [child["id"]] and full["notebook"] == "train.ipynb"
    assert full["code_hash"] and full["notebook"] and full["executed_notebook"]["blob"]
    executed = nbformat.read(store_home / "out" / f"train-{parent['id'][:8]}.ipynb", as_version=4)
    assert any("trained yaml" in o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert show(child["id"])["metric_series"]["loss"]["steps"] == [0, 1, 2]


def test_sweep_runs_the_cross_product_in_parallel_on_a_cluster(store_home):
    notebook = make_notebook(store_home, TRAIN)
    done = cli("run", str(notebook), "--sweep", "lr=0.1,0.2", "--sweep", "label=a,b", "--parallel", "2",
               "--output-dir", "out", cwd=store_home)
    assert done.returncode == 0, done.stderr
    parents = runs("notebook")
    assert sorted((p["params"]["lr"], p["params"]["label"]) for p in parents) == \
        [(0.1, "a"), (0.1, "b"), (0.2, "a"), (0.2, "b")]
    assert all(p["status"] == "ok" for p in parents)
    assert len(runs("cell")) == 4 and "4/4 done, 0 running, 0 failed" in done.stderr
    table = done.stdout.splitlines()
    assert table[0].split()[:3] == ["RUN", "STATUS", "PARAMS"] and len(table) == 5


def test_failures_name_the_cell_and_a_dead_kernel_does_not_stop_the_sweep(store_home):
    body = ("%%track --name maybe\nimport os\nif label == 'crash':\n    os._exit(1)\n"
            "if label == 'raise':\n    raise ValueError('bad label ' + label)")
    notebook = make_notebook(store_home, body)
    done = cli("run", str(notebook), "--sweep", "label=ok,raise,crash", "--output-dir", "out", cwd=store_home)
    assert done.returncode == 1
    by_label = {p["params"]["label"]: p for p in runs("notebook")}
    assert by_label["ok"]["status"] == "ok"
    assert by_label["raise"]["status"] == "failed"
    assert "cell 3" in by_label["raise"]["error_message"] and "ValueError: bad label raise" in by_label["raise"]["error_message"]
    assert by_label["crash"]["status"] == "failed" and "kernel died" in by_label["crash"]["error_message"]
    assert "failed at cell 3" in done.stderr
    children = {c["parent_id"]: c for c in runs("cell")}
    assert children[by_label["crash"]["id"]]["status"] == "interrupted"  # its cell never finished


@pytest.mark.parametrize("args, message", [
    (["missing.ipynb"], "does not exist"),
    (["NB", "-p", "bogus", "1"], "defines no parameter bogus"),
    (["NB", "--sweep", "lr"], "is malformed"),
    (["NB", "--kernel", "no-such-kernel"], "no kernel named 'no-such-kernel'"),
    (["NB", "-f", "nowhere.yaml"], "does not exist"),
])
def test_bad_input_fails_before_anything_runs(store_home, args, message):
    notebook = make_notebook(store_home, TRAIN)
    done = cli("run", *[str(notebook) if a == "NB" else a for a in args], cwd=store_home)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert runs() == []


def test_reproduce_a_notebook_run_and_detect_changed_data(store_home):
    (store_home / "data.txt").write_text("1 2 3")
    body = ("%%track --name read --data data.txt\nvalues = [int(v) for v in open('data.txt').read().split()]\n"
            "pykernel_ext.log(total=sum(values) * lr)")
    notebook = make_notebook(store_home, body)
    assert cli("run", str(notebook), "-p", "lr", "2.0", cwd=store_home).returncode == 0
    [parent] = runs("notebook")
    again = cli("reproduce", parent["id"], "--check", cwd=store_home)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "results: same within tolerance" in again.stdout and "code: same" in again.stdout
    newest = runs("notebook")[0]
    assert newest["reproduces"] == parent["id"] and newest["params"]["lr"] == 2.0
    (store_home / "data.txt").write_text("1 2 4")
    changed = cli("reproduce", parent["id"], "--check", cwd=store_home)
    assert changed.returncode == 1 and "metric total differs: 12, 14" in changed.stdout


def test_reproduce_a_tracked_cell_from_its_code_closure(shell, store_home):
    run_cell(shell, "import numpy as np\nfrom collections import Counter\nbase = 3\n"
                    "def score(x):\n    return int(np.int64(x) * base) + len(Counter('ab'))\n")
    run_cell(shell, "%%track --name cellrun --metrics result\n%%time\nresult = score(7) + int(np.sqrt(4))")
    [original] = runs("cell")
    again = cli("reproduce", original["id"], "--check", cwd=store_home)
    assert again.returncode == 0, again.stdout + again.stderr
    reproduction = [r for r in runs("cell") if r["reproduces"] == original["id"]]
    assert len(reproduction) == 1 and reproduction[0]["metrics"] == {"result": 25.0}  # np re-imported
    assert reproduction[0]["code_hash"] == original["code_hash"]


def test_a_failed_reproduction_shows_its_error_and_points_to_the_notebook_run(store_home):
    body = "X = set(range(int(lr * 10)))  # no parameter: a set is not JSON"
    notebook = make_notebook(store_home, body + "\n", name="made.ipynb")
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("%%track --name uses-x --metrics total\ntotal = sum(X)"))
    nbformat.write(nb, notebook)
    assert cli("run", str(notebook), cwd=store_home).returncode == 0
    [cell] = runs("cell")
    again = cli("reproduce", cell["id"], "--check", cwd=store_home)
    assert again.returncode == 1
    assert "the reproduction failed: NameError: name 'X' is not defined" in again.stdout
    assert f"pykernel-ext reproduce {cell['parent_id'][:8]}" in again.stdout
    assert "note: input X is neither a recorded parameter nor notebook code" in again.stdout


def test_reproduce_reports_inputs_it_cannot_rebuild(shell, store_home):
    run_cell(shell, "import numpy as np\nX = np.ones(3)")
    run_cell(shell, "%%track\ntotal = X.sum()")
    [original] = runs("cell")
    again = cli("reproduce", original["id"], cwd=store_home)
    assert "input X (ndarray) was made by earlier cells" in again.stdout + again.stderr
