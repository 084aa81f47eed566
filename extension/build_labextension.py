"""Build function for hatch-jupyter-builder: npm ci + npm run build:prod, only when the front end changed.

hatch-jupyter-builder's own `npm_builder` always runs `npm install`, which may rewrite package-lock.json;
this one installs exactly the committed lock with `npm ci` (only when node_modules is older than the lock)
and skips everything when `pykernel_ext/labextension` is newer than every front-end source, so a wheel
built from an sdist that carries the built extension needs no node at all.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger("pykernel-ext.build")

SOURCES = ("extension/src", "extension/style", "package.json", "package-lock.json", "tsconfig.json")


def _newest_mtime(paths: list[Path]) -> float:
    newest = 0.0
    for path in paths:
        if path.is_dir():
            newest = max([newest, *(p.stat().st_mtime for p in path.rglob("*") if p.is_file())])
        elif path.exists():
            newest = max(newest, path.stat().st_mtime)
    return newest


def is_fresh(root: Path, build_dir: str) -> bool:
    """Whether the built extension is newer than every source it is built from."""
    marker = root / build_dir / "package.json"
    return marker.exists() and marker.stat().st_mtime >= _newest_mtime([root / s for s in SOURCES])


def _run(command: list[str], root: Path) -> None:
    log.info("pykernel-ext: %s", " ".join(command))
    env = dict(os.environ)
    # `jupyter-builder` is installed beside the Python running this build (an isolated build env or the
    # venv): put it on PATH even when that env's bin folder is not.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    subprocess.run(command, cwd=root, env=env, check=True)


def build(target_name: str, version: str, build_dir: str = "pykernel_ext/labextension", npm: str = "npm",
          force: bool = False) -> None:
    """hatch-jupyter-builder `build-function`: (re)build the prebuilt JupyterLab extension if needed."""
    root = Path.cwd()
    if os.environ.get("HATCH_JUPYTER_BUILDER_SKIP_NPM") == "1":
        log.info("pykernel-ext: skipping the front-end build (HATCH_JUPYTER_BUILDER_SKIP_NPM=1)")
        return
    _generate_record_types(root)
    if not force and is_fresh(root, build_dir):
        log.info("pykernel-ext: %s is up to date", build_dir)
        return
    npm_path = shutil.which(npm)
    if npm_path is None:
        raise RuntimeError("building pykernel-ext's JupyterLab extension needs node and npm "
                           "(https://nodejs.org, or `apt-get install nodejs npm`); or install a built wheel")
    lock = root / "package-lock.json"
    installed = root / "node_modules" / ".package-lock.json"  # npm writes it after every install
    if not installed.exists() or (lock.exists() and installed.stat().st_mtime < lock.stat().st_mtime):
        _run([npm_path, "ci" if lock.exists() else "install", "--no-audit", "--no-fund"], root)
    _run([npm_path, "run", "build:prod" if version == "standard" else "build"], root)


def _generate_record_types(root: Path) -> None:
    """The run record's JSON Schema and the front end's types, generated from pykernel_ext/records.py (only
    written when they changed; stdlib only, so it runs in an isolated build environment too)."""
    subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                    "from pykernel_ext.record_schema import main; sys.exit(main(['--write']))", str(root)],
                   cwd=root, check=True)
