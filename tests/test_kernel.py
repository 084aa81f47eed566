"""`%%track` in a real ipykernel driven over ZMQ, as JupyterLab drives it."""
from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

from conftest import cli, wait_for
from kernel_helpers import execute


@pytest.fixture
def kernel(store_home: Path):
    env = {**os.environ, "PYKERNEL_EXT_HOME": str(store_home), "JPY_SESSION_NAME": str(store_home / "nb.ipynb")}
    manager, client = start_new_kernel(kernel_name="python3", env=env, cwd=str(store_home))
    try:
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_tracked_cell_in_a_kernel_records_cell_id_notebook_and_shows_a_widget(kernel, store_home):
    _, client = kernel
    reply, _ = execute(client, "%load_ext pykernel_ext\nlr = 0.5")
    assert reply["status"] == "ok"
    reply, outputs = execute(client, "%%track --name k\nprint('hi')\ny = lr * 2", cell_id="cell-abc")
    assert reply["status"] == "ok"
    streams = "".join(o["content"]["text"] for o in outputs if o["msg_type"] == "stream")
    assert "hi" in streams
    displays = [o["content"]["data"] for o in outputs if o["msg_type"] == "display_data"]
    summary = [d for d in displays if "application/vnd.pykernel-ext.run+json" in d]
    assert summary, "the summary is the lab extension's run bundle in Jupyter (it survives saving)"
    assert summary[-1]["text/plain"].startswith("run ") and "· ok ·" in summary[-1]["text/plain"]
    listed = json.loads(cli("runs", "list", "--json").stdout)
    assert len(listed) == 1
    run = listed[0]
    assert run["cell_id"] == "cell-abc" and run["notebook"] == "nb.ipynb" and run["params"] == {"lr": 0.5}
    assert run["execution_count"] == 2


def test_failed_cell_fails_the_execute_reply_like_an_untracked_cell(kernel):
    _, client = kernel
    execute(client, "%load_ext pykernel_ext")
    reply, outputs = execute(client, "%%track\nraise ValueError('bad input')")
    assert reply["status"] == "error" and reply["ename"] == "ValueError"  # papermill and nbclient see the error
    errors = [o for o in outputs if o["msg_type"] == "error"]
    assert len(errors) == 1 and "bad input" in errors[0]["content"]["evalue"]


def test_killed_kernel_leaves_an_interrupted_run(kernel, store_home):
    manager, client = kernel
    execute(client, "%load_ext pykernel_ext")
    msg_id = client.execute("%%track --name long\nimport time\ntime.sleep(120)")
    wait_for(lambda: json.loads(cli("runs", "list", "--json").stdout or "[]"),
             lambda listed: listed and listed[0]["status"] == "running", timeout=60)
    manager.signal_kernel(signal.SIGKILL)  # as the OOM killer or a crash would: no chance to clean up
    wait_for(manager.is_alive, lambda alive: not alive)
    listed = json.loads(cli("runs", "list", "--json").stdout)
    assert msg_id and listed[0]["status"] == "interrupted"
    assert "ended before the run finished" in listed[0]["error_message"]


def test_live_status_widget_updates_while_the_cell_runs_then_closes(kernel):
    _, client = kernel
    execute(client, "%load_ext pykernel_ext")
    reply, outputs = execute(client, "%%track --name slow\nimport time\ntime.sleep(2.5)")
    assert reply["status"] == "ok"
    opened = [o for o in outputs if o["msg_type"] == "comm_open"
              and "pykernel-ext-live-status" in json.dumps(o["content"]["data"].get("state", {}))]
    assert len(opened) == 1, "the live status appears when the cell starts"
    comm_id = opened[0]["content"]["comm_id"]
    assert "running" in opened[0]["content"]["data"]["state"]["value"]
    updates = [o["content"]["data"]["state"]["value"] for o in outputs
               if o["msg_type"] == "comm_msg" and o["content"]["comm_id"] == comm_id
               and "value" in o["content"]["data"].get("state", {})]
    assert any(" 2 s" in u or " 1 s" in u for u in updates), updates  # elapsed time advances
    from pykernel_ext.gpu import gpu_status

    if gpu_status().available:  # the kernel inherits this process's CUDA_VISIBLE_DEVICES
        assert any(re.search(r"GPU\d+ \d+%", u) or "GPU: no reading" in u for u in updates), updates
    else:
        assert any("no GPU" in u for u in updates), updates  # none usable here: said plainly
    closed = [o for o in outputs if o["msg_type"] == "comm_close" and o["content"]["comm_id"] == comm_id]
    assert closed, "the live status goes away when the summary appears"
    last_display = [o for o in outputs if o["msg_type"] == "display_data"][-1]
    assert "· ok ·" in last_display["content"]["data"]["text/plain"]
