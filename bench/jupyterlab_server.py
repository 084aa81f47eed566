"""A real JupyterLab for the browser tests and benchmarks: this checkout's built extension only, token auth,
isolated config, settings and workspaces, no kernel-selection dialog and no news toast.

    with JupyterLab(root, tmp, labextension) as lab:
        lab.url, lab.token
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

TOKEN = "browser-test-token"
START_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str, token: str | None = None) -> int:
    """The status of a GET (0 while nothing listens)."""
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


class JupyterLab:
    """`jupyter lab` serving `root` (also the store's home) with the extension built at `labextension`."""

    def __init__(self, root: Path, tmp: Path, labextension: Path, token: str = TOKEN) -> None:
        self.root, self.tmp, self.labextension, self.token = Path(root), Path(tmp), Path(labextension), token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen | None = None
        self._log = None

    def _configure(self) -> dict[str, str]:
        # Only this checkout's build, whatever else is installed: an extra labextensions path wins.
        extra = self.tmp / "labextensions"
        extra.mkdir(exist_ok=True)
        link = extra / "pykernel-ext"
        if not link.exists():
            link.symlink_to(self.labextension, target_is_directory=True)
        config = self.tmp / "config"
        config.mkdir(exist_ok=True)
        (config / "jupyter_server_config.json").write_text(json.dumps({
            "ServerApp": {"jpserver_extensions": {"pykernel_ext": True}},
            "LabServerApp": {"extra_labextensions_path": [str(extra)]},
            "LabApp": {"news_url": None},
        }))
        # Start a notebook's kernel without asking, and no news toast over the panel.
        settings = self.tmp / "settings" / "@jupyterlab"
        (settings / "notebook-extension").mkdir(parents=True, exist_ok=True)
        (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text('{"autoStartDefaultKernel": true}')
        (settings / "apputils-extension").mkdir(exist_ok=True)
        (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
            '{"fetchNews": "false", "checkForUpdates": false}')
        return {**os.environ, "PYKERNEL_EXT_HOME": str(self.root), "JUPYTER_CONFIG_DIR": str(config),
                "JUPYTER_RUNTIME_DIR": str(self.tmp / "runtime"), "IPYTHONDIR": str(self.tmp / "ipython"),
                "JUPYTERLAB_SETTINGS_DIR": str(self.tmp / "settings"),
                "JUPYTERLAB_WORKSPACES_DIR": str(self.tmp / "workspaces")}

    def __enter__(self) -> "JupyterLab":
        env = self._configure()
        command = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={self.port}",
                   "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
                   f"--ServerApp.root_dir={self.root}"]
        if os.geteuid() == 0:
            command.append("--allow-root")
        self._log = open(self.tmp / "lab.log", "wb")
        self.proc = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.root)
        deadline = time.time() + START_TIMEOUT_S
        while http_status(f"{self.url}api/status", self.token) != 200:
            if self.proc.poll() is not None or time.time() > deadline:
                self.__exit__()
                raise RuntimeError(f"jupyter lab did not start: {(self.tmp / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.3)  # polling a starting server, bounded by the deadline above
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log:
            self._log.close()
            self._log = None
