"""The run status in a cell's output, in a real kernel over ZMQ: the live widget shows the latest metrics
and links to the run; what stays in the notebook is a plain MIME bundle (the lab extension's type, HTML,
text) holding the final state, for a tracked cell and for a `--no-wait` remote cell that ends later."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

from kernel_helpers import execute
from pykernel_ext.widgets import LINK_ATTRIBUTE, RUN_MIME


@pytest.fixture
def kernel(store_home: Path):
    env = {**os.environ, "PYKERNEL_EXT_HOME": str(store_home), "JPY_SESSION_NAME": str(store_home / "nb.ipynb")}
    env.pop("PYKERNEL_EXT_SCHEDULER", None)
    manager, client = start_new_kernel(kernel_name="python3", env=env, cwd=str(store_home))
    try:
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=False)


def test_live_status_shows_latest_metrics_and_links_to_the_run(kernel):
    _, client = kernel
    execute(client, "%load_ext pykernel_ext\nimport pykernel_ext, time")
    cell = ('%%track --name "<b>bold</b> run"\n'
            "for step in range(5):\n    pykernel_ext.log(loss=1 / (step + 1), step=step)\n    time.sleep(0.6)")
    reply, outputs = execute(client, cell)
    assert reply["status"] == "ok"
    values = [o["content"]["data"]["state"]["value"] for o in outputs
              if o["msg_type"] in ("comm_open", "comm_msg") and "value" in o["content"]["data"].get("state", {})]
    live = [v for v in values if "pykernel-ext-live-status" in v]
    assert any("loss 0.5" in v or "loss 0.3333" in v or "loss 0.25" in v for v in live), live
    final = [o["content"]["data"] for o in outputs if o["msg_type"] == "display_data" and RUN_MIME in o["content"]["data"]]
    assert len(final) == 1, "the summary is one plain bundle, not a widget"
    snapshot = final[0][RUN_MIME]
    assert snapshot["status"] == "ok" and snapshot["metrics"] == {"loss": 0.2} and snapshot["duration_s"] > 2
    assert f'{LINK_ATTRIBUTE}="{snapshot["run_id"]}"' in live[-1]
    assert "<b>" not in final[0]["text/html"].replace('<b style="color:#2e7d32">ok</b>', "")  # user text is escaped
    assert "· ok ·" in final[0]["text/plain"] and "application/vnd.jupyter.widget-view+json" not in final[0]
    # The live widget's output is replaced before the widget closes: nothing in the saved notebook names a
    # widget whose state is gone.
    live_display = next(o["content"]["transient"]["display_id"] for o in outputs if o["msg_type"] == "display_data"
                        and "application/vnd.jupyter.widget-view+json" in o["content"]["data"])
    replaced = [o for o in outputs if o["msg_type"] == "update_display_data"
                and o["content"]["transient"]["display_id"] == live_display]
    assert replaced and replaced[-1]["content"]["data"] == {"text/plain": ""}


def test_a_no_wait_remote_cell_ends_with_its_final_state_in_the_output(kernel):
    _, client = kernel
    execute(client, "%load_ext pykernel_ext")
    reply, outputs = execute(client, "%%remote --no-wait --name slowjob\nimport time\ntime.sleep(2)\n"
                                     "print('trained', flush=True)\nanswer = 42", timeout=120)
    assert reply["status"] == "ok"
    shown = [o for o in outputs if o["msg_type"] == "display_data" and RUN_MIME in o["content"]["data"]]
    assert len(shown) == 1
    display_id = shown[0]["content"]["transient"]["display_id"]
    first = shown[0]["content"]["data"][RUN_MIME]
    assert first["job"]["name"] == "slowjob" and first["job"]["status"] in ("queued", "running")
    # The job ends after the cell: its display is updated in place (the lab extension also reads the store).
    output_display = next(o["content"]["transient"]["display_id"] for o in outputs if o["msg_type"] == "display_data"
                          and "application/vnd.jupyter.widget-view+json" in o["content"]["data"])
    final = printed = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and (final is None or printed is None):
        message = client.get_iopub_msg(timeout=90)
        if message["msg_type"] != "update_display_data":
            continue
        data, shown = message["content"]["data"], message["content"]["transient"]["display_id"]
        if shown == display_id and data[RUN_MIME]["job"]["status"] == "ok":
            final = data
        elif shown == output_display:
            printed = data  # the output widget gives way to plain text that saves with the notebook
    assert final is not None, "the job's display never reached its final state"
    assert printed == {"text/plain": "trained\n"}
    assert final[RUN_MIME]["status"] == "ok" and final[RUN_MIME]["run_id"] == first["run_id"]
    assert "ok" in final["text/plain"] and json.dumps(final)  # plain JSON: it saves with the notebook
    reply, outputs = execute(client, "_remote_job.result()['answer']")
    assert "42" in json.dumps([o["content"] for o in outputs])
