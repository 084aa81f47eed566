"""The front end's unit tests (vitest: api.ts, model.ts, format.ts) and its install state, run from pytest so
`make test` covers them."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.skipif(shutil.which("npx") is None, reason="needs node and npm")
def test_frontend_unit_tests(tmp_path: Path) -> None:
    if not (REPO / "node_modules" / "vitest").exists():
        pytest.fail("front-end packages are not installed: `npm ci` (pip install -e . runs it)")
    report = tmp_path / "vitest.json"
    result = subprocess.run(["npx", "vitest", "run", "--dir", "extension/test", "--reporter=json",
                             f"--outputFile={report}"], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    summary = json.loads(report.read_text())
    assert summary["numFailedTests"] == 0 and summary["numPassedTests"] >= 60, summary["numTotalTests"]


def test_installed_extensions_are_enabled() -> None:
    """After `pip install` the server extension is enabled and the prebuilt lab extension is found, with no
    further step (run against this environment's Jupyter)."""
    server = subprocess.run([sys.executable, "-m", "jupyter", "server", "extension", "list"], capture_output=True,
                            text=True, timeout=120)
    listing = ANSI.sub("", server.stdout + server.stderr)
    assert "pykernel_ext enabled" in listing, f"reinstall (pip install -e .): {listing[-2000:]}"
    lab = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True,
                         timeout=120)
    listing = ANSI.sub("", lab.stdout + lab.stderr)
    assert re.search(r"pykernel-ext v\S+ enabled", listing), f"reinstall (pip install -e .): {listing[-2000:]}"
    # Semver ranges on the JupyterLab packages: compatible with the JupyterLab installed, whatever 4.x it is.
    assert re.search(r"pykernel-ext v\S+ enabled\s+OK", listing), listing[-2000:]
    assert "not compatible" not in listing, listing[-2000:]
