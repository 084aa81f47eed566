"""`pykernel-ext export`: real notebooks (nbformat) in, real scripts out, run with the real interpreter."""
from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import cli
from pykernel_ext import export
from pykernel_ext.capture.code import code_hash
from pykernel_ext.export_magics import remote_cell, string_literal, track_cell, translate_lines


def notebook(path: Path, *cells: str | tuple[str, list[str]], markdown: tuple[int, ...] = ()) -> Path:
    """Write a Python notebook; a cell is its source, or (source, tags)."""
    nb = nbformat.v4.new_notebook()
    for index, cell in enumerate(cells):
        source, tags = cell if isinstance(cell, tuple) else (cell, [])
        made = nbformat.v4.new_markdown_cell(source) if index in markdown else nbformat.v4.new_code_cell(source)
        if tags:
            made.metadata["tags"] = tags
        nb.cells.append(made)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def export_to(nb: Path, *extra: str, capsys=None) -> tuple[int, str, str]:
    status = export.main([str(nb), *extra])
    out, err = capsys.readouterr() if capsys else ("", "")
    return status, out, err


def run_script(script: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=script.parent, env={**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"})


def runs_by_name(kind: str | None = None) -> dict[str, dict]:
    listed = json.loads(cli("runs", "list", "--json", "--limit", "100", *(["--kind", kind] if kind else [])).stdout)
    return {run["name"]: run for run in listed}


PARAMETERS = """\
epochs = 20  # number of passes
lr: float = 1  # learning rate (annotated: 1 means 1.0)
# hidden layer sizes
layers = [8, 4]
options = {"dropout": 0.1}
debug = False
model = 'small'  # 100% readable
seed = None
data_dir = str(model) + "_data"
"""

SHOW_VALUES = ("import json\nprint('VALUES', json.dumps({k: [v, type(v).__name__] for k, v in dict(epochs=epochs, "
               "lr=lr, layers=layers, options=options, debug=debug, model=model, seed=seed, "
               "data_dir=data_dir).items()}))")


def values_printed(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("VALUES "))
    return {k: tuple(v) for k, v in json.loads(line[len("VALUES "):]).items()}


def test_the_parameters_cell_becomes_a_typed_command_line(store_home, capsys):
    nb = notebook(store_home / "params.ipynb", "import os", (PARAMETERS, ["parameters"]), SHOW_VALUES)
    assert export_to(nb, capsys=capsys)[0] == 0
    script = store_home / "params.py"

    helped = run_script(script, "--help")
    assert helped.returncode == 0
    text = " ".join(helped.stdout.split())
    for expected in ("--epochs INT number of passes (default: 20)", "--lr FLOAT learning rate",
                     "--layers LIST hidden layer sizes (default: [8, 4])", "--options DICT", "--debug BOOL",
                     "--model TEXT 100% readable (default: 'small')", "--seed VALUE", "--data-dir VALUE",
                     "-f FILE, --params-file FILE"):
        assert expected in text, expected

    assert values_printed(run_script(script)) == {
        "epochs": (20, "int"), "lr": (1, "int"), "layers": ([8, 4], "list"), "options": ({"dropout": 0.1}, "dict"),
        "debug": (False, "bool"), "model": ("small", "str"), "seed": (None, "NoneType"),
        "data_dir": ("small_data", "str")}, "no options: the notebook's own values"

    given = values_printed(run_script(script, "--epochs", "2", "--lr", "0.5", "--layers", "[1, 2, 3]", "--options",
                                      "dropout: 0.3", "--debug", "yes", "--model", "big", "--seed", "7",
                                      "--data_dir", "/data"))
    assert given == {"epochs": (2, "int"), "lr": (0.5, "float"), "layers": ([1, 2, 3], "list"),
                     "options": ({"dropout": 0.3}, "dict"), "debug": (True, "bool"), "model": ("big", "str"),
                     "seed": (7, "int"), "data_dir": ("/data", "str")}
    for word, value in (("true", True), ("0", False), ("No", False), ("1", True)):
        assert values_printed(run_script(script, "--debug", word))["debug"] == (value, "bool")
    assert values_printed(run_script(script, "--data-dir", "x"))["data_dir"] == ("x", "str")

    (store_home / "p.yaml").write_text("epochs: 5\nlr: 2\nmodel: from-file\n")
    from_file = values_printed(run_script(script, "-f", "p.yaml", "--model", "cli"))
    assert from_file["epochs"] == (5, "int") and from_file["lr"] == (2.0, "float")
    assert from_file["model"] == ("cli", "str"), "an option given wins over the file"

    for bad, message in ((["--debug", "maybe"], "is not a boolean"), (["--epochs", "2.5"], "invalid int value"),
                         (["--layers", "{}"], "is not a list"), (["--nope", "1"], "unrecognized arguments")):
        failed = run_script(script, *bad)
        assert failed.returncode == 2 and message in failed.stderr, failed.stderr
    (store_home / "bad.yaml").write_text("epoch: 5\n")
    failed = run_script(script, "-f", "bad.yaml")
    assert failed.returncode == 2 and "'epoch' is not a parameter" in failed.stderr and "epochs" in failed.stderr


def test_read_parameters_types_and_help():
    found = {p.name: p for p in export.read_parameters(PARAMETERS + "a, b = 1, 2\nx += 1\n")}
    assert list(found) == ["epochs", "lr", "layers", "options", "debug", "model", "seed", "data_dir"]
    assert [found[n].kind for n in found] == ["int", "float", "list", "dict", "bool", "str", "any", "any"]
    assert found["epochs"].help == "number of passes" and found["layers"].help == "hidden layer sizes"
    assert found["options"].help == "" and found["data_dir"].default == 'str(model) + "_data"'


def test_tracked_cells_record_what_the_notebook_records(store_home, capsys):
    """The same notebook through papermill and as an exported script: same runs, params and code hashes."""
    import papermill

    source = notebook(
        store_home / "train.ipynb",
        "# Training\nA small loop.",
        "%load_ext pykernel_ext\nimport pykernel_ext",
        ("epochs = 3  # number of passes\nlr = 0.1  # learning rate\nwidth = 4", ["parameters"]),
        "def step_loss(epoch):\n    return lr / (epoch + 1)",
        "!echo shell-says-hi\n%time warm = sum(range(10))\n%xmode Minimal\nwarm",
        "%%track --name train --metrics loss\nhistory = []\nfor epoch in range(epochs):\n    loss = step_loss(epoch)\n"
        "    history.append(loss)\n    pykernel_ext.log(loss=loss, step=epoch)\nloss",
        "%%track --name evaluate --params width\n# score the model\nscore = sum(history) * width\n"
        "print('score', score)",
        markdown=(0,),
    )
    status, _, err = export_to(source, capsys=capsys)
    assert status == 0 and "cell 5 (`!echo shell-says-hi`)" in err and "%xmode" in err

    papermill.execute_notebook(str(source), str(store_home / "out.ipynb"), parameters={"epochs": 2},
                               kernel_name="python3", cwd=str(store_home), progress_bar=False)
    in_notebook = runs_by_name()
    assert {run["kind"] for run in in_notebook.values()} == {"cell"} and set(in_notebook) == {"train", "evaluate"}
    done = run_script(store_home / "train.py", "--epochs", "2")
    assert done.returncode == 0, done.stderr
    assert "shell-says-hi" in done.stdout and "score" in done.stdout and "45" in done.stdout.splitlines()
    scripted_runs = json.loads(cli("runs", "list", "--json", "--kind", "script").stdout)
    [parent] = [run for run in scripted_runs if run["parent_id"] is None]
    in_script = {run["name"]: run for run in scripted_runs if run["parent_id"] == parent["id"]}
    assert set(in_script) == {"train", "evaluate"}
    # The script's own run is the notebook's: all its parameters, its code, its cells' metrics.
    from pykernel_ext.capture.notebook import notebook_code_text

    assert parent["name"] == "train" and parent["params"] == {"epochs": 2, "lr": 0.1, "width": 4}
    assert parent["code_hash"] == code_hash(notebook_code_text(json.loads(source.read_text())))
    assert parent["metrics"] == {"loss": 0.05} and parent["status"] == "ok"
    for name, scripted in in_script.items():
        cell = in_notebook[name]
        assert cell["status"] == scripted["status"] == "ok"
        assert scripted["params"] == cell["params"], name
        assert scripted["code_hash"] == cell["code_hash"], name
        assert scripted["metrics"] == cell["metrics"], name
    assert in_script["train"]["params"] == {"epochs": 2, "lr": 0.1}
    assert in_script["evaluate"]["params"]["width"] == 4


def test_track_blocks_hash_like_their_cells_in_awkward_cases(store_home, capsys):
    bodies = {
        "comments": "# before\nvalue = 1\n# after",
        "multiline_string": 'text = """\nflush left\n  indented\n"""\nsize = len(text)',
        "shell": "!echo inside-track\nfound = 2",
        "empty": "# nothing to run",
        "trailing": "value = 3\nvalue",
    }
    cells = [f"%%track --name {name} --tag kind=awkward\n{body}" for name, body in bodies.items()]
    source = notebook(store_home / "awkward.ipynb", "import pykernel_ext", *cells, "print('TEXT', repr(text))")
    status, _, err = export_to(source, capsys=capsys)
    assert status == 0
    assert "IPython lines in a %%track body were translated" in err
    script = (store_home / "awkward.py").read_text()
    assert "            value = 3\n            value\n" in script, "a tracked body keeps its trailing expression as is"
    done = run_script(store_home / "awkward.py")
    assert done.returncode == 0, done.stderr
    assert "TEXT '\\nflush left\\n  indented\\n'" in done.stdout, "multi-line strings keep their text"
    assert "inside-track" in done.stdout
    recorded = runs_by_name()
    for name, body in bodies.items():
        assert recorded[name]["code_hash"] == code_hash(body), name
        assert recorded[name]["tags"] == {"kind": "awkward"}


def test_magics_and_shell_lines_become_plain_python(store_home, capsys):
    source = notebook(
        store_home / "magics.ipynb",
        "%load_ext pykernel_ext\n%matplotlib inline\nname = 'world'\nfolder = 'sub'",
        "import os\nos.makedirs(folder, exist_ok=True)\n!echo hello {name} $name $$HOME",
        "lines = !printf 'a\\nb\\n'\nprint('LINES', lines)",
        "%cd {folder}\nprint('CWD', os.path.basename(os.getcwd()))\n%cd ..",
        "%env GREETING=hi there\n%env OTHER value\nprint('ENV', os.environ['GREETING'], os.environ['OTHER'])",
        "%timeit -n 1 -r 1 sum(range(5))\nresult = %time sum(range(4))\nprint('TIMED', result)\n!pip --version",
        "%%timeit -n 1 -r 2 base = 3\nbase * 2",
        "%%time\nx = 40\nx + 2",
        "%%capture\nprint('hidden?')",
        "%%bash\necho from-bash $((1 + 2))",
        "%%writefile notes.txt\nline one\nline 'two'\n",
        "for i in range(2):\n    !echo loop-{i}\nitems = [1, 2]\nitems",
        "silent = 5\nsilent;",
        "%pip install nothing-at-all",
        "%load_ext autoreload\n%autoreload 2\n%who\nlen?",
        ("raise SystemExit('skipped cell ran')", ["skip-export"]),
        "print('NOTES', open('notes.txt').read().splitlines())\ndisplay('DISPLAYED')",
        "if False:\n    get_ipython().run_line_magic('who', '')",
    )
    status, out, err = export_to(source, capsys=capsys)
    assert status == 0 and "wrote" in out
    warnings = [line for line in err.splitlines() if "warning:" in line]
    assert any("cell 14 (`%pip install nothing-at-all`)" in w and "install packages" in w for w in warnings)
    assert any("cell 15 (`%load_ext autoreload`)" in w and "%who" in w for w in warnings)
    assert any("cell 15" in w and "len?" in w for w in warnings)
    assert any("cell 18 (`if False:`)" in w and "get_ipython()" in w for w in warnings)
    assert len(warnings) == 4, warnings
    script = (store_home / "magics.py").read_text()
    assert "# %pip install nothing-at-all  # not exported" in script and "# %who  # not exported" in script
    executed = script[script.index('if __name__ == "__main__":'):]
    assert "left out (tagged skip-export)" in executed and "skipped cell ran" not in executed
    assert "import subprocess" in script and "import os" in script
    done = run_script(store_home / "magics.py")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"hello world world {os.environ['HOME']}\n" in out, "notebook names expand, $$ reaches the shell as $"
    assert "CompletedProcess" not in out, "a trailing shell line shows its output, not a value"
    assert "LINES ['a', 'b']" in out and "CWD sub" in out and "ENV hi there value" in out
    assert "TIMED 6" in out and "\n42\n" in out and "Wall time:" in out and "pip " in out
    assert "per loop (mean ± std. dev. of 1 run, 1 loop each)" in out
    assert "per loop (mean ± std. dev. of 2 runs, 1 loop each)" in out and "hidden?" in out and "from-bash 3" in out
    assert "loop-0" in out and "loop-1" in out and "[1, 2]" in out and "\n5\n" not in out
    assert "NOTES ['line one', \"line 'two'\"]" in out and "DISPLAYED" in out


def test_translate_lines_leaves_python_alone():
    python = "x = (1 +\n     % 2)\ntext = '''\n!not a command\n%not a magic\n'''\nratio = 5 % 3\nok = x != 2"
    assert translate_lines(python, set()).text == python
    assert not translate_lines(python, set()).changed
    shell = translate_lines("files = !ls {folder}\n!echo ${HOME} {undefined}", {"folder"})
    assert shell.lines == [
        'files = subprocess.run(f"ls {folder}", shell=True, check=True, capture_output=True, text=True)'
        ".stdout.splitlines()",
        "subprocess.run('echo ${HOME} {undefined}', shell=True, check=True)"]


def test_track_options_become_keyword_arguments():
    code = track_cell("--name run-{model} --params a,b --data {path} raw.csv --artifacts 'out/*.pt' --tag k=v",
                      "x = 1", {"model", "path"})
    assert code.lines == ['with pykernel_ext.track(name=f"run-{model}", param_names=[\'a\', \'b\'], '
                          'data=[f"{path}", \'raw.csv\'], artifacts=[\'out/*.pt\'], tags={\'k\': \'v\'}):',
                          "    x = 1"]
    bad = track_cell("--bogus", "x = 1", set())
    assert bad.problems and bad.problems[0].startswith("bad %%track options") and bad.lines[-1] == "# x = 1"


@pytest.mark.parametrize("body", [
    "s = \"it's\"\nt = 'say \"hi\"'\n",
    "path = 'C:\\\\new\\\\table'\nraw = r'\\d+\\n'\n",
    'doc = """triple"""\nother = \'\'\'single triple\'\'\'\n',
    'ends = "quote"',
    "ends_in_backslash = 1 \\\n    + 2\n",
    "s = 'tab\tand'\n",
    "unicode = 'héllo ✓'\n",
    "x = 1",
])
def test_remote_bodies_become_exact_string_literals(body):
    assert ast.literal_eval(string_literal(body)) == body
    assert ast.literal_eval(string_literal(body + "\r\x00")) == body + "\r\x00"
    code = remote_cell("--gpus 1 --memory 2GiB --push a,b --name fit --tag team=ml", body, set())
    call = ast.parse("\n".join(code.lines)).body[0].value
    assert ast.literal_eval(call.args[0]) == body
    keywords = {k.arg: ast.unparse(k.value) for k in call.keywords}
    assert keywords == {"gpus": "1", "memory": str(2 * 1024**3), "push": "['a', 'b']", "name": "'fit'",
                        "tags": "{'team': 'ml'}"}


def test_remote_numbers_given_as_notebook_variables_stay_expressions():
    # IPython expands `$gpus` and `{mem}` in a magic's line before the magic parses it; the script must
    # compute the same values from its own variables (its parameters), not give up on the cell.
    code = remote_cell("--gpus $gpus --memory={mem}GB --timeout 5 --session s --home-limit $keep", "x = 1",
                       {"gpus", "mem", "keep"})
    assert not code.problems
    call = ast.parse("\n".join(code.lines)).body[0].value
    keywords = {k.arg: ast.unparse(k.value) for k in call.keywords}
    assert keywords["gpus"] == "_export.remote_option('gpus', f'{gpus}')"
    assert keywords["memory"] == "_export.remote_option('memory', f'{mem}GB')"
    assert keywords["timeout"] == "5" and keywords["home_bytes"] == "_export.remote_option('home_limit', f'{keep}')"
    assert export.remote_option("gpus", 1) == 1.0 and export.remote_option("memory", "2GB") == 2_000_000_000
    assert export.remote_option("home_limit", 4096) == 4096
    unknown = remote_cell("--gpus $nope", "x = 1", {"gpus"})  # IPython leaves `$nope` as is: the magic fails
    assert unknown.problems and unknown.problems[0].startswith("bad %%remote options")


def test_remote_cells_run_on_the_embedded_cluster(store_home, capsys):
    source = notebook(
        store_home / "remote.ipynb",
        ("n = 3\nlimit = 120", ["parameters"]),
        '%%remote --name square --timeout $limit\nsquared = n * n\nprint("remote says", squared)',
        "%%remote --name later --no-wait --params n\ncubed = n ** 3",
        'later.result()\nprint("VALUES", squared, cubed, _remote_job is later)',
    )
    assert export_to(source, capsys=capsys)[0] == 0
    done = run_script(store_home / "remote.py", "--n", "5", timeout=180)
    assert done.returncode == 0, done.stderr
    assert "remote says 25" in done.stdout and "VALUES 25 125 True" in done.stdout
    recorded = runs_by_name()
    for name in ("square", "later"):
        assert recorded[name]["kind"] == "remote" and recorded[name]["status"] == "ok"
        assert recorded[name]["params"]["n"] == 5


def test_session_cells_export_to_the_python_api_with_the_same_semantics(store_home, capsys):
    import papermill

    source = notebook(
        store_home / "session.ipynb",
        "%load_ext pykernel_ext",
        ("n = 3", ["parameters"]),
        "%%remote --session s --name first\nimport torch\nacc = 0\nweights = torch.zeros(300_000)",
        "%%remote --session s --name second\nacc += n\nweights += n",
        "%remote_pull s weights",
        'print("VALUES", acc, float(weights.sum()))',
        "%remote_session close s",
    )
    assert export_to(source, capsys=capsys)[0] == 0
    script = (store_home / "session.py").read_text()
    assert "session='s'" in script and "pykernel_ext.remote.session('s').pull(['weights'], globals())" in script
    done = run_script(store_home / "session.py", "--n", "5", timeout=180)
    assert done.returncode == 0, done.stderr
    papermill.execute_notebook(str(source), str(store_home / "out.ipynb"), parameters={"n": 5},
                               kernel_name="python3", progress_bar=False, cwd=str(store_home))
    executed = json.loads((store_home / "out.ipynb").read_text())
    notebook_says = "".join(o.get("text", "") if isinstance(o.get("text"), str) else "".join(o.get("text", []))
                            for c in executed["cells"] for o in c.get("outputs", []) if o.get("name") == "stdout")
    expected = f"VALUES 5 {5.0 * 300_000}"
    assert expected in done.stdout and expected in notebook_says, "the script and the notebook agree"
    recorded = runs_by_name()
    assert recorded["second"]["tags"]["session"] == "s"


def test_bad_input_is_a_clear_error_and_writes_nothing(store_home, capsys):
    missing = export_to(store_home / "nope.ipynb", capsys=capsys)
    assert missing[0] == 2 and "does not exist" in missing[2]
    (store_home / "text.ipynb").write_text("this is { not json")
    not_json = export_to(store_home / "text.ipynb", capsys=capsys)
    assert not_json[0] == 2 and "not a notebook" in not_json[2]
    (store_home / "shape.ipynb").write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                                        "cells": [{"cell_type": "code", "source": 3}]}))
    invalid = export_to(store_home / "shape.ipynb", capsys=capsys)
    assert invalid[0] == 2 and "not a valid notebook" in invalid[2]
    r_nb = notebook(store_home / "r.ipynb", "x <- 1")
    r_nb.write_text(r_nb.read_text().replace('"language": "python"', '"language": "R"'))
    assert export_to(r_nb, capsys=capsys)[0] == 2
    same = notebook(store_home / "same.ipynb", "x = 1")
    refused = export_to(same, "-o", str(same), capsys=capsys)
    assert refused[0] == 2 and "refusing to write a script over a notebook" in refused[2]
    assert export_to(same, "-o", str(store_home / "other.ipynb"), capsys=capsys)[0] == 2
    assert export_to(same, "-o", str(store_home), capsys=capsys)[0] == 2
    assert same.read_text().startswith("{")
    assert sorted(p.name for p in store_home.iterdir() if p.suffix == ".py" or p.name.startswith(".")) == []


def test_output_path_and_syntax_errors(store_home, capsys):
    source = notebook(store_home / "nb.ipynb", "x = 1", "def broken(:\n    pass", "print('after', x)")
    status, out, err = export_to(source, capsys=capsys)
    assert status == 0 and (store_home / "nb.py").is_file() and "nb.py" in out
    assert "cell 2 (`def broken(:`): syntax error in line 1" in err
    nested = store_home / "deep" / "er" / "job.py"
    assert export_to(source, "-o", str(nested), capsys=capsys)[0] == 0 and nested.is_file()
    nested.write_text("old")
    assert export_to(source, "-o", str(nested), capsys=capsys)[0] == 0 and "after" in nested.read_text()
    done = run_script(nested)
    assert done.returncode == 0 and "after 1" in done.stdout
    assert "# NOT EXPORTED (syntax error in line 1: invalid syntax):\n        # def broken(:" in nested.read_text()


def test_register_cli_adds_the_export_command(store_home, capsys):
    parser = argparse.ArgumentParser(prog="pykernel-ext")
    export.register_cli(parser.add_subparsers())
    args = parser.parse_args(["export", str(notebook(store_home / "a.ipynb", "1 + 1")), "-o", "b/c.py"])
    assert args.handler(args) == 0 and (store_home / "b" / "c.py").is_file()
    wired = cli("export", str(store_home / "a.ipynb"), "-o", str(store_home / "d.py"))
    assert wired.returncode == 0, wired.stderr  # `pykernel-ext export` is a command of the CLI
    assert (store_home / "d.py").is_file()


def test_stacked_magics_and_untracked_notebooks_export_as_runs(store_home, capsys):
    source = notebook(
        store_home / "plain.ipynb",
        ("# Parameters: papermill overrides these\nlr = 0.5\nsteps = 2", ["parameters"]),
        "!pip list --disable-pip-version-check\nimport pykernel_ext",
        "%%track --name timed\n%%time\nz = lr * steps\nz",
        "print('Z', z)",
    )
    status, _, err = export_to(source, capsys=capsys)
    assert status == 0 and "warning" not in err, err
    script = (store_home / "plain.py").read_text()
    assert "--lr FLOAT" in " ".join(run_script(store_home / "plain.py", "--help").stdout.split())
    assert "Parameters: papermill" not in run_script(store_home / "plain.py", "--help").stdout  # a heading, no help
    assert "with _export.timed():  # %%time" in script and "subprocess.run('pip list" in script
    done = run_script(store_home / "plain.py", "--steps", "3")
    assert done.returncode == 0, done.stderr
    assert "Z 1.5" in done.stdout and "Wall time:" in done.stdout and "Package" in done.stdout
    runs = json.loads(cli("runs", "list", "--json").stdout)
    [parent] = [r for r in runs if r["parent_id"] is None]
    [timed] = [r for r in runs if r["parent_id"] == parent["id"]]
    assert parent["kind"] == "script" and parent["params"] == {"lr": 0.5, "steps": 3}
    assert timed["params"] == {"lr": 0.5, "steps": 3} and timed["code_hash"] == code_hash("%%time\nz = lr * steps\nz")
