"""The Python API in a real script, and %%track inside a real papermill execution."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings

import pytest

from conftest import cli, wait_for
from pykernel_ext.capture.code import code_hash

BODY = """\
for step in range(3):
    loss = lr / (step + 1)
    pykernel_ext.log(loss=loss, step=step)
print("done", loss)
"""


def test_script_track_block_records_its_own_source_and_metrics(store_home):
    script = store_home / "train.py"
    script.write_text("import pykernel_ext\nlr = 0.3\n\nwith pykernel_ext.track(name='script', params={'lr': lr}):\n"
                      + textwrap.indent(BODY, "    ") + "\nprint('after')\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=store_home, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "done" in done.stdout and "after" in done.stdout
    run = json.loads(cli("runs", "show", json.loads(cli("runs", "list", "--json").stdout)[0]["id"], "--json").stdout)
    assert run["kind"] == "script" and run["status"] == "ok" and run["params"] == {"lr": 0.3}
    assert run["code"]["source"] == BODY
    assert run["code_hash"] == code_hash(BODY)  # the same body in a %%track cell hashes the same
    assert run["metric_series"]["loss"]["values"] == pytest.approx([0.3, 0.15, 0.1])
    assert run["logs_text"]["stdout"] == "done 0.09999999999999999\n"
    assert run["notebook"] == "train.py"


def test_script_exception_propagates_and_nested_runs_link_to_parent(store_home):
    script = store_home / "fail.py"
    script.write_text("import pykernel_ext\nwith pykernel_ext.track(name='outer'):\n"
                      "    with pykernel_ext.track(name='inner'):\n        pass\n    raise RuntimeError('broken data')\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=store_home, timeout=120)
    assert done.returncode == 1 and "RuntimeError: broken data" in done.stderr
    runs = {r["name"]: r for r in json.loads(cli("runs", "list", "--json").stdout)}
    assert runs["outer"]["status"] == "failed" and runs["outer"]["error_message"] == "broken data"
    assert runs["inner"]["status"] == "ok" and runs["inner"]["parent_id"] == runs["outer"]["id"]


def test_a_failing_track_block_shows_only_the_users_frames(store_home):
    script = store_home / "boom.py"
    script.write_text("import pykernel_ext\n\ndef train():\n    raise ValueError('diverged')\n\n"
                      "with pykernel_ext.track(name='t'):\n    train()\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=store_home, timeout=120)
    assert done.returncode == 1 and "ValueError: diverged" in done.stderr
    assert "pykernel_ext" not in done.stderr.replace("import pykernel_ext", "").replace("pykernel_ext.track", "")
    assert "contextlib" not in done.stderr and "yield run" not in done.stderr
    frames = [line for line in done.stderr.splitlines() if line.strip().startswith("File ")]
    assert len(frames) == 2  # the `with` block's line and train(): nothing of ours


def test_log_outside_a_run_warns(store_home):
    import pykernel_ext

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pykernel_ext.log(loss=1.0)
    assert any("outside a tracked run" in str(w.message) for w in caught)


def test_track_cell_inside_papermill_records_injected_parameters(store_home):
    import nbformat
    import papermill

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("epochs = 1\nmodel = 'small'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext pykernel_ext"),
        params,
        nbformat.v4.new_code_cell("%%track --name pm\nresult = epochs * 10"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source = store_home / "pm.ipynb"
    nbformat.write(nb, source)
    papermill.execute_notebook(str(source), str(store_home / "out.ipynb"), parameters={"epochs": 4, "model": "big"},
                               kernel_name="python3", cwd=str(store_home), progress_bar=False)
    runs = json.loads(cli("runs", "list", "--json").stdout)
    assert len(runs) == 1 and runs[0]["status"] == "ok"
    assert runs[0]["params"] == {"epochs": 4}  # what the cell reads; `model` is the notebook run's parameter
    shown = json.loads(cli("runs", "show", runs[0]["id"], "--json").stdout)
    assert shown["outputs"][0] == {"name": "result", "type": "int", "value": 40}


def test_track_block_source_keeps_its_comments_but_not_the_code_after(tmp_path):
    from pykernel_ext.capture.code import with_block_source

    script = tmp_path / "s.py"
    script.write_text("import pykernel_ext\nwith pykernel_ext.track(\n        name='c') as run:\n\n"
                      "    # leading comment\n    y = 1\n\n    # trailing comment\n# module comment\nz = 2\n")
    assert with_block_source(str(script), 2) == "# leading comment\ny = 1\n\n# trailing comment\n"
    assert code_hash(with_block_source(str(script), 2)) == code_hash("# leading comment\ny = 1\n\n# trailing comment")


def test_metrics_and_output_are_flushed_while_the_run_is_still_running(store_home, monkeypatch):
    import pykernel_ext
    from pykernel_ext import live_flush
    from pykernel_ext.store import RunStore

    monkeypatch.setattr(live_flush, "FLUSH_SECONDS", 0.05)
    with pykernel_ext.track(name="live", code="pass") as run:
        run.log(loss=1.0)
        run.log(loss=0.5)
        print("epoch 1 done")
        with RunStore.open(store_home / ".pykernel_ext") as store:
            seen = wait_for(lambda: _live_view(store, run.id),
                            lambda v: v[0]["metric_series"].get("loss", {}).get("values") == [1.0, 0.5]
                            and "epoch 1 done" in v[1].get("stdout", ""))
        assert seen[0]["status"] == "running" and seen[0]["metrics"] == {"loss": 0.5}
    with RunStore.open(store_home / ".pykernel_ext") as store:
        final = store.get_run(run.id)
        assert store.live_logs(run.id) == {}  # the whole log is one blob now, the chunks are gone
        stdout = store.blobs.read_text(final["logs"]["stdout_blob"])
    assert final["status"] == "ok" and final["metric_series"]["loss"]["values"] == [1.0, 0.5]  # no duplicates
    assert stdout == "epoch 1 done\n"


def _live_view(store, run_id: str):
    return store.get_run(run_id), store.live_logs(run_id)

