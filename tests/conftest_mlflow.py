"""A real `mlflow server` for the MLflow sync tests (imported by tests/test_mlflow*.py).

The server runs in its own process group on a free local port, with a SQLite backend and an artifact
folder under a temporary directory; `stop()` ends that group, so nothing outlives the tests.
"""
from __future__ import annotations

import atexit
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Iterator

import pytest

# MLflow 3 reports usage to its makers by default; tests run offline and must not try.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

START_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """`mlflow server` with `--backend-store-uri sqlite:///...` and `--artifacts-destination` under `root`."""

    def __init__(self, root: Path, port: int | None = None, app_name: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.root = Path(root)
        self.port = port or free_port()
        self.port_was_chosen = port is None
        self.app_name = app_name
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.log = self.root / f"mlflow-server-{self.port}.log"

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    def start(self) -> "MlflowServer":
        """Start and wait until it answers. A port taken meanwhile (free_port is only a guess) gets another."""
        for attempt in range(3):
            self._spawn()
            try:
                healthy = self._wait_healthy()
            except BaseException:
                self.stop()  # never leave a server (and its job runner's processes) behind
                raise
            if healthy:
                return self
            if not self.port_was_chosen or attempt == 2:
                break
            self.port = free_port()
        raise RuntimeError(f"mlflow server did not start on port {self.port}: {self.log_tail()}")

    def _spawn(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
                   "--backend-store-uri", f"sqlite:///{self.db_path}", "--artifacts-destination", str(self.artifacts),
                   "--workers", "2"]
        if self.app_name:
            command += ["--app-name", self.app_name]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(command, cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, **self.env}, start_new_session=True)

    def _wait_healthy(self) -> bool:
        """True once our server answers /health; False if it exited (e.g. its port was taken)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                return False
            with contextlib.suppress(OSError, http.client.HTTPException):  # not up yet, or not an HTTP server
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200 and response.read().strip() == b"OK":
                        return True
            time.sleep(0.2)
        self.stop()
        return False

    def stop(self) -> None:
        """End the server's process group (the CLI, uvicorn workers, the job runner); wait until they are gone."""
        if self.proc is None or self.proc.poll() is not None and not _group_alive(self.proc.pid):
            return
        for sig, wait_s in ((signal.SIGTERM, 3), (signal.SIGKILL, 10)):  # a test server keeps nothing worth waiting for
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and _group_alive(self.proc.pid):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=0.2)
            if not _group_alive(self.proc.pid):
                return

    def log_tail(self, limit: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-limit:]
        return ""

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_shared: list[MlflowServer] = []


@pytest.fixture(scope="session")
def mlflow_server() -> Iterator[MlflowServer]:
    """One plain server shared by every test module that needs one (each test uses its own experiment).

    The modules import this fixture, so pytest may set it up once per module: the server itself is
    started once per process and stopped at the session's end (or at exit, whichever comes first)."""
    if not _shared:
        server = MlflowServer(Path(tempfile.mkdtemp(prefix="pykernel-ext-mlflow-")))
        atexit.register(server.stop)
        _shared.append(server.start())
    yield _shared[0]
    _shared[0].stop()


@pytest.fixture
def experiment() -> str:
    """A fresh experiment name, so tests sharing a server never see each other's runs."""
    return f"test-{uuid.uuid4().hex[:10]}"


def mlflow_runs(client, experiment: str) -> list:
    """Every active MLflow run of an experiment, oldest first ([] when it does not exist)."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return sorted(client.search_runs([exp.experiment_id], max_results=1000), key=lambda r: r.info.start_time)


def by_local_id(runs: list) -> dict[str, object]:
    return {r.data.tags["pykernel_ext.run_id"]: r for r in runs}


def wait_for(condition, timeout: float = 120.0, interval: float = 0.2, what: str = "the condition"):
    """Poll until `condition()` is truthy; returns its value, or fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def push_here(home: Path, uri: str, experiment_name: str, run_ids: list[str] | None = None) -> list:
    """The same push in this process (what the command runs, without starting Python and mlflow again)."""
    from pykernel_ext.store import RunStore
    from pykernel_ext.sync.push import Pusher
    from pykernel_ext.sync.target import MlflowTarget

    with RunStore.open(home / ".pykernel_ext") as store:
        ids = run_ids if run_ids is not None else [r for r, (_, kind) in store.run_parents().items() if kind != "mlflow"]
        results = Pusher(store, MlflowTarget(uri, experiment_name)).push(ids)
    assert all(r.action != "failed" for r in results), [r.message for r in results]
    return results
