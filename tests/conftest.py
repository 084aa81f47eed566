"""Shared fixtures: a private store per test, and a real IPython shell with the extension loaded."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Kernels started by tests find `pykernel-ext` (examples run `!pykernel-ext ...`) however pytest was started.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

# jp_fetch, jp_serverapp, ... for the server extension's tests (the plugin has no entry point of its own).
pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def store_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh PYKERNEL_EXT_HOME (and working folder) so every test has its own store."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("PYKERNEL_EXT_HOME", str(home))
    monkeypatch.chdir(home)
    for name in ("PYKERNEL_EXT_NOTEBOOK", "PYKERNEL_EXT_PARENT_RUN", "PYKERNEL_EXT_PARAMS", "JPY_SESSION_NAME"):
        monkeypatch.delenv(name, raising=False)
    return home


# The server extension's tests: the Jupyter root is the folder holding the store, as with `jupyter lab` started
# in a project folder (a test module with another layout overrides both).
@pytest.fixture
def jp_root_dir(store_home: Path) -> Path:
    return store_home


@pytest.fixture
def jp_server_config(store_home: Path) -> dict:  # store_home first: it and jp_home_dir share a name
    return {"ServerApp": {"jpserver_extensions": {"pykernel_ext": True}}}


@pytest.fixture
def store(store_home: Path):
    from pykernel_ext.store import RunStore

    with RunStore.open(store_home / ".pykernel_ext") as opened:
        yield opened


@pytest.fixture
def shell(store_home: Path):
    """The real IPython InteractiveShell, extension loaded, namespace emptied between tests."""
    from IPython.testing.globalipapp import get_ipython

    ip = get_ipython()  # starts the shared test shell on first use
    ip.reset(new_session=False)
    ip.run_line_magic("load_ext", "pykernel_ext")
    yield ip
    ip.reset(new_session=False)


def run_cell(ip, source: str):
    """Run a cell in the shell and return IPython's ExecutionResult."""
    return ip.run_cell(source, store_history=True)


def cli(*args: str, env: dict | None = None, cwd: str | os.PathLike | None = None):
    """Run the real `pykernel-ext` command in a subprocess; returns CompletedProcess."""
    import subprocess

    return subprocess.run([sys.executable, "-m", "pykernel_ext.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=120)


def wait_for(read, done, timeout: float = 30.0, interval: float = 0.02):
    """Poll `read()` until `done(value)` holds and return that value; fail naming the last value after
    `timeout` seconds. The way tests wait on another thread or process: never a fixed sleep."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s; last value: {value!r}")
        time.sleep(interval)
