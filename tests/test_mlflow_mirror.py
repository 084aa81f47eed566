"""Mirroring (PYKERNEL_EXT_MLFLOW_URI): runs that end go to MLflow in the background through the outbox.

A real IPython shell mirrors its %%track cells to a tracking server that is first down, then up but
refusing (basic auth, wrong password), then accepting: nothing is lost, nothing is pushed twice.
`pykernel-ext run` mirrors a notebook run and its cells from the driver. Credentials never land anywhere.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import cli, run_cell
from conftest_mlflow import MlflowServer, by_local_id, experiment, free_port, mlflow_runs, mlflow_server, wait_for  # noqa: F401
from pykernel_ext.store import RunStore
from pykernel_ext.store.outbox import MlflowOutbox, pending_entries

ADMIN_PASSWORD = "right-Admin-pw-4821"
WRONG_PASSWORD = "wrong-pw-SECRET-1937"


def pending(home: Path) -> list:
    with RunStore.open(home / ".pykernel_ext") as store:
        return pending_entries(store)


def local_ids(home: Path) -> list[str]:
    with RunStore.open(home / ".pykernel_ext") as store:
        return list(store.run_parents())


@pytest.fixture
def mirror_env(monkeypatch):
    def configure(uri: str, experiment_name: str) -> None:
        monkeypatch.setenv("PYKERNEL_EXT_MLFLOW_URI", uri)
        monkeypatch.setenv("PYKERNEL_EXT_MLFLOW_EXPERIMENT", experiment_name)
        monkeypatch.setenv("PYKERNEL_EXT_MLFLOW_RETRY_MAX_S", "1")  # retry every second while the test waits
    return configure


def test_cells_mirror_through_a_down_then_refusing_then_working_server(shell, store_home, tmp_path, mirror_env,
                                                                       monkeypatch, experiment):
    port = free_port()  # nothing listens here yet: the server is down
    mirror_env(f"http://127.0.0.1:{port}", experiment)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", WRONG_PASSWORD)

    assert run_cell(shell, "lr = 0.1\nimport pykernel_ext").success
    for epochs in (2, 3):
        result = run_cell(shell, f"%%track --name fit-{epochs}\nfor step in range({epochs}):\n"
                                 f"    pykernel_ext.log(loss=lr / (step + 1), step=step)")
        assert result.success, "the cell ran and ended although MLflow is down"
    ours = local_ids(store_home)
    assert len(ours) == 2
    def each_tried_once():
        rows = pending(store_home)
        return rows if len(rows) == 2 and all(e.attempts >= 1 for e in rows) else None

    entries = wait_for(each_tried_once, what="a failed attempt per run")
    assert all("does not answer" in e.last_error for e in entries)
    status = cli("mlflow", "status")
    assert "2 waiting" in status.stdout and "does not answer" in status.stdout, status.stdout

    server = MlflowServer(tmp_path / "auth-server", port=port, app_name="basic-auth",
                          env={"MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
                               "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-key"})
    try:
        server.start()
        refused = wait_for(lambda: [e for e in pending(store_home) if e.last_error and "does not answer" not in e.last_error],
                           what="an attempt refused by the server")
        assert "401" in refused[0].last_error or "authenticat" in refused[0].last_error.lower(), refused[0].last_error
        status = cli("mlflow", "status", "--json")
        assert WRONG_PASSWORD not in status.stdout + status.stderr
        assert len(json.loads(status.stdout)["pending"]) == 2, "a refusing server leaves the runs in the outbox"

        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
        wait_for(lambda: not pending(store_home), what="the outbox to drain")
        assert run_cell(shell, "%%track --name after\nscore = lr * 2").success
        wait_for(lambda: len(local_ids(store_home)) == 3 and not pending(store_home), what="the new run to be pushed")

        from mlflow.tracking import MlflowClient

        runs = mlflow_runs(MlflowClient(server.uri), experiment)
        assert sorted(r.data.tags["pykernel_ext.run_id"] for r in runs) == sorted(local_ids(store_home)), \
            "exactly one MLflow run per pykernel-ext run"
        fit3 = next(r for r in runs if r.info.run_name == "fit-3")
        assert fit3.info.status == "FINISHED" and fit3.data.metrics["loss"] == pytest.approx(0.1 / 3)
        status = cli("mlflow", "status")
        assert "3 pushed" in status.stdout and "waiting" not in status.stdout, status.stdout
    finally:
        server.stop()
    for path in (store_home / ".pykernel_ext").rglob("*"):
        if path.is_file():
            assert WRONG_PASSWORD.encode() not in path.read_bytes() and ADMIN_PASSWORD.encode() not in path.read_bytes()


def make_notebook(folder: Path) -> Path:
    import nbformat

    params = nbformat.v4.new_code_cell("width = 4")
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%load_ext pykernel_ext\nimport pykernel_ext"), params,
        nbformat.v4.new_markdown_cell("Two tracked cells:"),
        nbformat.v4.new_code_cell("%%track --name prepare\nrows = list(range(width))"),
        nbformat.v4.new_code_cell("%%track --name fit\npykernel_ext.log(total=sum(rows))"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "sweep.ipynb")
    return folder / "sweep.ipynb"


def test_notebook_runs_are_mirrored_by_the_driver(store_home, mlflow_server, experiment):
    make_notebook(store_home)
    env = {"PYKERNEL_EXT_MLFLOW_URI": mlflow_server.uri, "PYKERNEL_EXT_MLFLOW_EXPERIMENT": experiment,
           "PYKERNEL_EXT_MLFLOW_EXIT_WAIT_S": "120"}
    done = cli("run", "sweep.ipynb", "--sweep", "width=3,5", env=env, cwd=store_home)
    assert done.returncode == 0, done.stdout + done.stderr
    # The driver waited at exit for its pushes: MLflow has everything now.
    with RunStore.open(store_home / ".pykernel_ext") as store:
        parents = store.run_parents()
    remote = by_local_id(mlflow_runs(mlflow_server.client(), experiment))
    assert set(remote) == set(parents) and len(parents) == 6, "2 notebook runs and their 4 cells, once each"
    for run_id, (parent_id, kind) in parents.items():
        if kind == "cell":
            assert remote[run_id].data.tags["mlflow.parentRunId"] == remote[parent_id].info.run_id
    assert not pending(store_home)


SCRIPT = """\
import pykernel_ext
with pykernel_ext.track(name="secretive", params={"lr": 0.1}):
    pykernel_ext.log(loss=0.5)
    print("trained")
"""


def test_credentials_never_land_in_a_run_or_in_output(store_home, mlflow_server, experiment, tmp_path):
    secrets = {"MLFLOW_TRACKING_TOKEN": "tok-SECRET-0425", "MLFLOW_TRACKING_PASSWORD": "pw-SECRET-7731"}
    in_uri = "uri-SECRET-5519"
    uri = mlflow_server.uri.replace("http://", f"http://alice:{in_uri}@")
    env = {**secrets, "MLFLOW_TRACKING_USERNAME": "alice", "PYKERNEL_EXT_MLFLOW_URI": uri,
           "PYKERNEL_EXT_MLFLOW_EXPERIMENT": experiment, "PYKERNEL_EXT_MLFLOW_EXIT_WAIT_S": "120"}
    (store_home / "train.py").write_text(SCRIPT)
    import os

    script = subprocess.run([sys.executable, "train.py"], cwd=store_home, env={**os.environ, **env},
                            capture_output=True, text=True, timeout=300)
    assert script.returncode == 0, script.stderr
    (run_id,) = local_ids(store_home)
    closed = f"http://alice:{in_uri}@127.0.0.1:{free_port()}"
    commands = {"status": ("mlflow", "status"), "status-json": ("mlflow", "status", "--json"),
                "show": ("runs", "show", run_id, "--json"), "push": ("mlflow", "push", "--all"),
                "pull": ("mlflow", "pull"), "push-down": ("mlflow", "push", run_id, "--tracking-uri", closed)}
    done = {name: cli(*args, env=env) for name, args in commands.items()}
    assert "unchanged" in done["push"].stdout and done["push-down"].returncode == 1
    assert "does not answer" in done["push-down"].stdout
    assert f"to http://127.0.0.1:{mlflow_server.port} experiment" in done["status"].stdout, "shown without credentials"
    outputs = [script.stdout, script.stderr] + [d.stdout + d.stderr for d in done.values()]
    (remote,) = mlflow_runs(mlflow_server.client(), experiment)
    assert remote.data.tags["pykernel_ext.run_id"] == run_id
    everything = "\n".join(outputs)
    stored = [p for folder in (store_home, mlflow_server.artifacts) for p in folder.rglob("*") if p.is_file()]
    for secret in (*secrets.values(), in_uri):
        assert secret not in everything
        for path in stored + [mlflow_server.db_path]:
            assert secret.encode() not in path.read_bytes(), f"{secret} found in {path}"


def test_outbox_claims_keep_two_processes_from_pushing_one_run(store):
    store.begin_run({"id": "cd" * 16, "kind": "cell", "name": "n", "started_at": time.time()}, {})
    outbox = MlflowOutbox(store, "http://team:5000", "exp")
    outbox.enqueue(["cd" * 16])
    assert outbox.claim_due("host:1", lease_s=60) == ["cd" * 16]
    assert outbox.claim_due("host:2", lease_s=60) == [], "a live claim is not claimed again"
    assert outbox.claim(["cd" * 16], "host:2", lease_s=60) == ([], [])
    retry_at = outbox.mark_failed("cd" * 16, "ConnectionError: refused")
    assert retry_at > time.time() and outbox.claim_due("host:2", lease_s=60) == [], "not due before its backoff"
    later = outbox.mark_failed("cd" * 16, "ConnectionError: refused")
    assert later - time.time() > retry_at - time.time(), "the backoff grows"
    claimed, created = outbox.claim(["cd" * 16], "host:2", lease_s=-1)  # an expired lease: free for anyone
    assert claimed == ["cd" * 16] and created == []
    outbox.mark_pushed("cd" * 16, "f" * 32)
    assert outbox.pushed_mlflow_id("cd" * 16) == "f" * 32 and pending_entries(store) == []
    outbox.enqueue(["cd" * 16])
    (entry,) = pending_entries(store)
    assert entry.attempts == 0 and entry.mlflow_run_id == "f" * 32, "queued again, it remembers its MLflow run"


def test_mirroring_loads_nothing_until_a_run_ends(store_home):
    """%load_ext never imports mlflow or the mirror; with mirroring on, a run's end loads the mirror."""
    probe = textwrap.dedent("""\
        import sys
        from IPython.testing.globalipapp import get_ipython
        ip = get_ipython()
        ip.run_line_magic("load_ext", "pykernel_ext")
        print("LOADED", "mlflow" in sys.modules, "pykernel_ext.sync.mirror" in sys.modules)
        ip.run_cell("%%track\\nx = 1")
        print("ENDED", "pykernel_ext.sync.mirror" in sys.modules)
        """)
    import os

    def marks(env: dict) -> list[str]:
        done = subprocess.run([sys.executable, "-c", probe], cwd=store_home, capture_output=True, text=True,
                              timeout=120, env=env)
        assert done.returncode == 0, done.stderr
        return [line for line in done.stdout.splitlines() if line.startswith(("LOADED", "ENDED"))]

    plain = {k: v for k, v in os.environ.items() if not k.startswith("PYKERNEL_EXT_MLFLOW")}
    assert marks(plain) == ["LOADED False False", "ENDED False"]
    mirrored = {**plain, "PYKERNEL_EXT_MLFLOW_URI": f"http://127.0.0.1:{free_port()}", "PYKERNEL_EXT_MLFLOW_EXIT_WAIT_S": "0"}
    assert marks(mirrored) == ["LOADED False False", "ENDED True"]
