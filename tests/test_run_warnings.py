"""What used to be swallowed is now said: on the run (its warnings) or, when the run is already written and
the store refuses, in the log. And the hardware record follows CUDA_VISIBLE_DEVICES."""
from __future__ import annotations

import logging
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import run_cell, wait_for
from pykernel_ext.gpu import gpu_status
from pykernel_ext.store import RunStore

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def _runs(home: Path) -> list[dict]:
    with RunStore.open(home / ".pykernel_ext") as store:
        rows, _ = store.list_runs(descending=False)
        return [store.get_run(r["id"]) for r in rows]


def _repo_with_a_corrupt_index(folder: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=folder, check=True)
    (folder / "train.py").write_text("print(1)\n")
    subprocess.run(GIT + ["add", "train.py"], cwd=folder, check=True)
    subprocess.run(GIT + ["commit", "-qm", "init"], cwd=folder, check=True)
    (folder / ".git" / "index").write_bytes(b"not an index")  # `git status` now fails


class _GitQueueHeld:
    """Holds the (single, in-order) git capture thread, so a run's capture lands only after the run ends:
    the late path, deterministically."""

    def __enter__(self) -> "_GitQueueHeld":
        from pykernel_ext.capture.git import _get_executor

        self._release = threading.Event()
        _get_executor().submit(self._release.wait, 60)
        return self

    def release_and_drain(self, folder: Path) -> None:
        from pykernel_ext.capture.git import start_git_capture

        self._release.set()
        start_git_capture(str(folder)).result(timeout=60)  # queued after the run's: that one is done

    def __exit__(self, *exc: object) -> None:
        self._release.set()


def test_a_failed_git_capture_is_a_warning_on_the_run(shell, store_home):
    _repo_with_a_corrupt_index(store_home)
    with _GitQueueHeld() as held:
        run_cell(shell, "%%track\nloss = 0.25")
        assert _runs(store_home)[0].get("git") is None  # written before git answered
        held.release_and_drain(store_home)
    run = wait_for(lambda: _runs(store_home)[0], lambda r: r.get("git") is not None)
    assert "index" in run["git"]["error"]
    assert any(w.startswith("git state incomplete:") and "index" in w for w in run["warnings"])


def test_a_git_capture_done_before_the_end_warns_too(shell, store_home):
    from pykernel_ext.capture.git import start_git_capture

    _repo_with_a_corrupt_index(store_home)
    # The cell waits for git (queued after the run's own capture), so the capture is done at the run's end.
    run_cell(shell, f"%%track\nimport pykernel_ext.capture.git as g\ng.start_git_capture({str(store_home)!r}).result()")
    start_git_capture(str(store_home)).result(timeout=60)
    run = _runs(store_home)[0]
    assert "index" in run["git"]["error"] and any("git state incomplete" in w for w in run["warnings"])


def test_late_git_that_cannot_be_written_is_logged(shell, store_home, monkeypatch, caplog):
    subprocess.run(["git", "init", "-q"], cwd=store_home, check=True)
    monkeypatch.setenv("PYKERNEL_EXT_BUSY_TIMEOUT_MS", "100")  # read when the kernel's store opens below
    with _GitQueueHeld() as held:
        run_cell(shell, "%%track\nloss = 0.25")
        holder = sqlite3.connect(store_home / ".pykernel_ext" / "runs.sqlite", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the store when git lands
        try:
            with caplog.at_level(logging.WARNING, logger="pykernel_ext.tracking"):
                held.release_and_drain(store_home)
        finally:
            holder.execute("COMMIT")
            holder.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "pykernel_ext.tracking"]
    assert any("git state not recorded" in m and "locked" in m for m in messages), messages


def test_an_unknown_process_start_time_is_a_warning(shell, store_home, monkeypatch):
    # psutil cannot fail here for real (it reads /proc); the failure it reports elsewhere (a container
    # without /proc access) is reproduced at its source.
    import psutil

    from pykernel_ext import tracking

    def refuse(self):
        raise psutil.AccessDenied(self.pid)

    monkeypatch.setattr(psutil.Process, "create_time", refuse)
    monkeypatch.setattr(tracking, "_process_start", {})
    run_cell(shell, "%%track\nx = 1")
    run = _runs(store_home)[0]
    assert run["status"] == "ok"
    assert any("start time is unknown" in w and "pid is reused" in w for w in run["warnings"])


def test_hardware_gpu_entry_is_what_gpu_status_says_now(shell, store_home):
    run_cell(shell, "%%track\nx = 1")
    assert _runs(store_home)[0]["hardware"]["gpu"] == gpu_status().to_dict()


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_status().available, reason="needs an NVIDIA GPU")
def test_hardware_gpu_entry_follows_cuda_visible_devices(shell, store_home, monkeypatch):
    first_uuid = gpu_status().gpus[0]["uuid"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", first_uuid)
    run_cell(shell, "%%track\nx = 1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    run_cell(shell, "%%track\ny = 2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", first_uuid)
    run_cell(shell, "%%track\nz = 3")
    one, none, again = (r["hardware"]["gpu"] for r in _runs(store_home))
    assert one["available"] and [g["uuid"] for g in one["gpus"]] == [first_uuid]
    assert none["available"] is False and none["gpus"] == [] and "CUDA_VISIBLE_DEVICES" in none["reason"]
    assert again == one
