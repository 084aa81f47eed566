"""Nothing lost when a kernel dies mid-cell: a run's output and metrics reach the store while it runs.

The main case is the real thing: a training loop in a `%%track` cell of a real ipykernel, SIGKILLed (as the
OOM killer would) after it printed and logged; the CLI and the Jupyter server then show the run
`interrupted`, with its reason, its first lines of output and its metric points.
"""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

from conftest import cli, wait_for
from kernel_helpers import execute, send
from pykernel_ext.store import RunStore

TRAINING_CELL = """%%track --name train
import sys, time
import pykernel_ext

for epoch in range(3):
    loss = 1.0 / (epoch + 1)
    print(f"epoch {epoch} loss {loss:.3f}")
    print(f"slow batch in epoch {epoch}", file=sys.stderr)
    pykernel_ext.log(loss=loss, step=epoch)
while True:  # the step that never ends: a hung data loader, a kernel about to be OOM-killed
    time.sleep(0.05)
"""


@pytest.fixture
def kernel(store_home: Path):
    env = {**os.environ, "PYKERNEL_EXT_HOME": str(store_home), "JPY_SESSION_NAME": str(store_home / "train.ipynb")}
    manager, client = start_new_kernel(kernel_name="python3", env=env, cwd=str(store_home))
    try:
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _live_state(home: Path) -> tuple[list[dict], dict, dict]:
    """(runs, live log chunks, metric series) of the newest run, read as any other process would."""
    with RunStore.open(home / ".pykernel_ext") as store:
        rows, _ = store.list_runs()
        if not rows:
            return rows, {}, {}
        return rows, store.live_logs(rows[0]["id"]), store.metric_series(rows[0]["id"])


def test_kernel_killed_mid_cell_keeps_its_output_and_metrics(kernel, store_home):
    manager, client = kernel
    reply, _ = execute(client, "%load_ext pykernel_ext")
    assert reply["status"] == "ok"
    send(client, TRAINING_CELL)
    rows, live, series = wait_for(
        lambda: _live_state(store_home),
        lambda s: "epoch 2" in s[1].get("stdout", "") and len(s[2].get("loss", {}).get("values", [])) == 3)
    assert rows[0]["status"] == "running" and "slow batch in epoch 0" in live["stderr"]

    manager.signal_kernel(signal.SIGKILL)  # no chance to clean up, as with the OOM killer
    wait_for(manager.is_alive, lambda alive: not alive)

    shown = cli("runs", "show", rows[0]["id"][:8], "--json")
    assert shown.returncode == 0, shown.stderr
    run = json.loads(shown.stdout)
    assert run["status"] == "interrupted" and run["error_type"] == "ProcessEnded"
    assert "ended before the run finished" in run["error_message"]
    assert run["error"]["type"] == "ProcessEnded"
    assert run["logs_text"]["stdout"] == "epoch 0 loss 1.000\nepoch 1 loss 0.500\nepoch 2 loss 0.333\n"
    assert run["logs_text"]["stderr"].splitlines() == [f"slow batch in epoch {e}" for e in range(3)]
    assert run["logs"]["partial"] is True
    assert any("last live flush" in w for w in run["warnings"])
    assert run["metric_series"]["loss"]["steps"] == [0, 1, 2]
    assert run["metric_series"]["loss"]["values"] == pytest.approx([1.0, 0.5, 1 / 3])
    assert run["metrics"] == {"loss": pytest.approx(1 / 3)}

    text = cli("runs", "show", rows[0]["id"][:8], "--logs").stdout
    assert "interrupted" in text and "error ProcessEnded" in text
    assert "--- stdout ---\nepoch 0 loss 1.000" in text and "slow batch in epoch 2" in text
    with RunStore.open(store_home / ".pykernel_ext") as store:
        assert store.live_logs(run["id"]) == {}  # made into the run's log blobs, not kept twice


async def test_the_sidebar_reads_a_killed_runs_logs_from_the_server(kernel, store_home, jp_fetch,
                                                                    http_server_client, jp_base_url, jp_auth_header):
    manager, client = kernel
    execute(client, "%load_ext pykernel_ext")
    send(client, TRAINING_CELL)
    rows, _, _ = wait_for(lambda: _live_state(store_home),
                          lambda s: "epoch 1" in s[1].get("stdout", "") and "loss" in s[2])
    manager.signal_kernel(signal.SIGKILL)
    wait_for(manager.is_alive, lambda alive: not alive)

    # The server was already open when the kernel died: the sidebar learns of the death from the push
    # channel, whose poller reconciles the store.
    api = "pykernel-ext/api/v1"
    interrupted = f'"id":"{rows[0]["id"]}"'
    await _read_events(http_server_client, f"{jp_base_url}{api}/events?topics=runs", jp_auth_header,
                       lambda text: interrupted in text and '"status":"interrupted"' in text)
    run = json.loads((await jp_fetch(api, "runs", rows[0]["id"])).body)
    assert run["status"] == "interrupted" and "ended before the run finished" in run["error_message"]
    assert run["logs_text"]["stdout"].startswith("epoch 0 loss 1.000\nepoch 1 loss 0.500\n")
    assert run["metric_series"]["loss"]["values"][:2] == [1.0, 0.5]
    download = await jp_fetch(api, "runs", rows[0]["id"], "logs", "stderr")
    assert download.body.decode().startswith("slow batch in epoch 0\nslow batch in epoch 1\n")


class _Enough(Exception):
    pass


async def _read_events(http_server_client, url: str, headers: dict, until, timeout: float = 60.0) -> str:
    """The push channel's text until `until(text)` holds (then the connection is closed)."""
    chunks: list[bytes] = []

    def on_chunk(chunk: bytes) -> None:
        chunks.append(chunk)
        if until(b"".join(chunks).decode()):
            raise _Enough

    try:
        await http_server_client.fetch(url, headers=headers, streaming_callback=on_chunk, request_timeout=timeout)
    except Exception:
        if not until(b"".join(chunks).decode()):
            raise
    return b"".join(chunks).decode()


def test_a_burst_of_output_is_flushed_before_the_interval(store_home, monkeypatch):
    import pykernel_ext
    from pykernel_ext import live_flush

    monkeypatch.setattr(live_flush, "FLUSH_SECONDS", 3600.0)  # only the size threshold can flush
    line = "x" * 99 + "\n"
    with pykernel_ext.track(name="chatty", code="pass") as run, RunStore.open(store_home / ".pykernel_ext") as store:
        for _ in range(700):  # 70,000 characters: past the 64 KiB threshold
            sys.stdout.write(line)
        live = wait_for(lambda: store.live_logs(run.id), lambda logs: len(logs.get("stdout", "")) >= 64 * 1024)
        assert set(live["stdout"]) == {"x", "\n"}
    with RunStore.open(store_home / ".pykernel_ext") as store:
        final = store.get_run(run.id)
        assert store.blobs.read_text(final["logs"]["stdout_blob"]) == line * 700 and store.live_logs(run.id) == {}


def test_a_burst_of_metric_points_is_flushed_before_the_interval(store_home, monkeypatch):
    import pykernel_ext
    from pykernel_ext import live_flush, tracking

    monkeypatch.setattr(live_flush, "FLUSH_SECONDS", 3600.0)
    with pykernel_ext.track(name="many steps", code="pass") as run, RunStore.open(store_home / ".pykernel_ext") as store:
        for step in range(tracking.METRIC_FLUSH_ROWS):
            pykernel_ext.log(loss=1.0 / (step + 1))
        series = wait_for(lambda: store.metric_series(run.id), lambda s: "loss" in s)
        assert series["loss"]["steps"][:3] == [0, 1, 2]
    with RunStore.open(store_home / ".pykernel_ext") as store:
        steps = store.metric_series(run.id)["loss"]["steps"]
    assert steps == list(range(tracking.METRIC_FLUSH_ROWS))  # every point once


def test_a_failed_live_flush_is_a_warning_and_the_end_writes_everything(store_home, monkeypatch):
    import sqlite3

    import pykernel_ext
    from pykernel_ext import live_flush

    monkeypatch.setattr(live_flush, "FLUSH_SECONDS", 0.05)
    monkeypatch.setenv("PYKERNEL_EXT_BUSY_TIMEOUT_MS", "100")
    with pykernel_ext.track(name="locked out", code="pass") as run:
        # Another process holds the store longer than the busy timeout.
        holder = sqlite3.connect(store_home / ".pykernel_ext" / "runs.sqlite", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        pykernel_ext.log(loss=0.5)
        print("still running")
        wait_for(lambda: list(run.warnings), lambda w: any("live flush failed" in m for m in w))
        holder.execute("COMMIT")
        holder.close()
    with RunStore.open(store_home / ".pykernel_ext") as store:
        final = store.get_run(run.id)
        assert final["status"] == "ok" and final["metric_series"]["loss"]["values"] == [0.5]  # kept, not lost
        assert store.blobs.read_text(final["logs"]["stdout_blob"]) == "still running\n"
    assert sum("live flush failed" in w for w in final["warnings"]) == 1


REMOTE_TRAINING_CELL = """%%remote --name remote-train
import time
import pykernel_ext

for epoch in range(3):
    print(f"remote epoch {epoch}", flush=True)
    pykernel_ext.log(loss=1.0 / (epoch + 1), step=epoch)
while True:
    time.sleep(0.05)
"""


def test_kernel_killed_during_a_remote_cell_keeps_its_remote_output_and_metrics(kernel, store_home):
    manager, client = kernel
    reply, _ = execute(client, "%load_ext pykernel_ext")
    assert reply["status"] == "ok"
    send(client, REMOTE_TRAINING_CELL)
    rows, live, series = wait_for(
        lambda: _live_state(store_home),
        lambda s: "remote epoch 2" in s[1].get("stdout", "") and len(s[2].get("loss", {}).get("values", [])) == 3,
        timeout=120)
    assert rows[0]["kind"] == "remote" and rows[0]["status"] == "running"
    manager.signal_kernel(signal.SIGKILL)
    wait_for(manager.is_alive, lambda alive: not alive)
    run = json.loads(cli("runs", "show", rows[0]["id"][:8], "--json").stdout)
    assert run["status"] == "interrupted" and run["logs"]["partial"] is True
    assert run["logs_text"]["stdout"] == "remote epoch 0\nremote epoch 1\nremote epoch 2\n"
    assert run["metric_series"]["loss"]["values"] == pytest.approx([1.0, 0.5, 1 / 3])
