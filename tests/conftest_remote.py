"""Helpers for the remote tests (imported by tests/test_remote*.py; the shared fixtures are in conftest.py)."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pykernel_ext.store import RunStore


def gpu_available() -> bool:
    from pykernel_ext.gpu import gpu_status

    return gpu_status().available


needs_gpu = pytest.mark.skipif(not gpu_available(), reason="needs an NVIDIA GPU")


@pytest.fixture(scope="module")
def embedded_cluster():
    """The kernel's embedded LocalCluster, shared by a module's tests and closed at its end."""
    from pykernel_ext.remote import cluster

    cluster.close_all()
    yield cluster
    cluster.close_all()


def runs(home: Path) -> list[dict[str, Any]]:
    """Every run of the test's store, oldest first, in full."""
    with RunStore.open(home / ".pykernel_ext") as store:
        rows, _ = store.list_runs(limit=100, descending=False)
        return [store.get_run(r["id"]) for r in rows]


def last_run(home: Path) -> dict[str, Any]:
    found = runs(home)
    assert found, "no run was recorded"
    return found[-1]


class TimedStream:
    """Stands in for sys.stdout: records when each piece of text arrives."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        self.writes.append((time.time(), text))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    @property
    def text(self) -> str:
        return "".join(t for _, t in self.writes)

    def first_arrival(self, needle: str) -> float:
        seen = ""
        for when, text in self.writes:
            seen += text
            if needle in seen:
                return when
        raise AssertionError(f"{needle!r} never arrived; got {seen!r}")


def dask_processes(marker: str) -> list[int]:
    """Pids of live processes whose command line contains `marker` (for leak checks)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if marker in cmdline and proc.pid != os.getpid():
            found.append(proc.pid)
    return found


PYTHON = sys.executable
