"""`%%remote` in a real ipykernel over ZMQ, as JupyterLab drives it: live stream messages on iopub, figures
as display_data, and the kernel's interrupt stopping the remote code."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

from kernel_helpers import collect, send


@pytest.fixture
def kernel(store_home: Path):
    env = {**os.environ, "PYKERNEL_EXT_HOME": str(store_home)}
    env.pop("PYKERNEL_EXT_SCHEDULER", None)
    manager, client = start_new_kernel(kernel_name="python3", env=env, cwd=str(store_home))
    try:
        yield manager, client
    finally:
        children = _children(manager)
        client.stop_channels()
        manager.shutdown_kernel(now=False)  # a clean exit closes the kernel's embedded cluster
        _wait_gone(children)


def _children(manager) -> list:
    import psutil

    try:
        return psutil.Process(manager.provisioner.process.pid).children(recursive=True)
    except Exception:  # noqa: BLE001
        return []


def _wait_gone(processes: list, timeout: float = 20) -> None:
    import psutil

    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for proc in alive:  # only the kernel's own children, by pid
        proc.kill()
    assert not alive, f"the kernel left processes behind: {[p.pid for p in alive]}"


def test_remote_output_streams_live_on_iopub_and_figures_arrive_as_display_data(kernel):
    _, client = kernel
    reply, _ = collect(client, send(client, "%load_ext pykernel_ext\nbase = 10"))
    assert reply["status"] == "ok"
    cell = ("%%remote\nimport time\nfor i in range(3):\n    print('tick', i, time.time())\n    time.sleep(0.5)\n"
            "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()\nresult = base * 3")
    reply, outputs = collect(client, send(client, cell))
    assert reply["status"] == "ok", reply
    streams = [(t, m["content"]["text"]) for t, m in outputs if m["msg_type"] == "stream"]
    arrived = {int(text.split()[1]): t for t, text in streams if text.startswith("tick")}
    printed = {int(text.split()[1]): float(text.split()[2]) for _, text in streams if text.startswith("tick")}
    # Causal, not a speed limit: each tick reached iopub before the worker printed the next one.
    assert arrived[0] < printed[1] and arrived[1] < printed[2], (arrived, printed)
    displays = [m["content"]["data"] for _, m in outputs if m["msg_type"] == "display_data"]
    assert any("image/png" in d for d in displays), "the figure came back as an image"
    assert any("· ok ·" in d.get("text/plain", "") for d in displays), "the run summary widget is shown"
    reply, outputs = collect(client, send(client, "print(result)"))
    assert "30" in "".join(m["content"].get("text", "") for _, m in outputs)


def test_interrupting_the_kernel_stops_the_remote_cell(kernel):
    manager, client = kernel
    collect(client, send(client, "%load_ext pykernel_ext"))
    interrupted_at: list[float] = []

    def interrupt_once_running(message: dict) -> None:
        if message["msg_type"] == "stream" and "running" in message["content"]["text"] and not interrupted_at:
            interrupted_at.append(time.time())
            manager.interrupt_kernel()

    cell = "%%remote\nimport time\nprint('running', flush=True)\nfor i in range(600):\n    time.sleep(0.025)\ndone = 1"
    reply, _ = collect(client, send(client, cell), on_message=interrupt_once_running)
    assert interrupted_at, "the cell never reported running"
    assert time.time() - interrupted_at[0] < 15, "stopped, not run to its end (15 s)"
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    reply, outputs = collect(client, send(client, "print('done' in dir())"))
    assert "False" in "".join(m["content"].get("text", "") for _, m in outputs)
    reply, outputs = collect(client, send(client, "%%remote\nafter = 1\nprint('worker still usable')"))
    assert reply["status"] == "ok"
    assert "worker still usable" in "".join(m["content"].get("text", "") for _, m in outputs)
