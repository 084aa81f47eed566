"""Browser tests: a real JupyterLab (subprocess, token auth) driven by Playwright with Debian's Chromium.

The Playwright specs live in tests/browser/; this module prepares a store (100,000 bulk runs, two real
tracked runs to compare, two to manage, and a real 4-run sweep made by `pykernel-ext run`), notebooks with
%%track and %%remote cells, starts `jupyter lab` with the extension from this checkout, runs
`npx playwright test` and asserts every spec passed.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
LABEXTENSION = REPO / "pykernel_ext" / "labextension"
MARKUP = "<img src=x onerror=alert(1)><b>bold</b>"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="needs Debian's chromium (`make browser-deps`, or apt-get install chromium)"),
    pytest.mark.skipif(shutil.which("npx") is None, reason="needs node and npm"),
]


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_server", REPO / "bench" / "bench_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _notebook(path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext pykernel_ext"),
        nbformat.v4.new_code_cell(f"name = {MARKUP!r}\nlr = 0.1"),
        nbformat.v4.new_code_cell('%%track --name "browser-run <s>struck</s>" --params name,lr\n'
                                  "score = len(name) * lr\nprint(name)"),
    ]
    nbformat.write(nb, path)


def _status_notebook(path: Path) -> None:
    """A tracked cell that logs while it runs, and a remote cell that ends after its cell did."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext pykernel_ext\nimport pykernel_ext, time"),
        nbformat.v4.new_code_cell("%%track --name live-train\nfor step in range(10):\n"
                                  "    pykernel_ext.log(loss=1 / (step + 1), step=step)\n    time.sleep(0.6)"),
        nbformat.v4.new_code_cell("%%remote --no-wait --name background-job\nimport time\ntime.sleep(2)\n"
                                  "print('background done')\nanswer = 42"),
    ]
    nbformat.write(nb, path)


def _sweep_notebook(path: Path) -> None:
    """A small notebook with a parameters cell and a %%track cell logging a loss curve and an accuracy."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = nbformat.v4.new_code_cell("lr = 0.1\nhidden = 8\nepochs = 6")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext pykernel_ext\nimport pykernel_ext, math"),
        parameters,
        nbformat.v4.new_code_cell("samples = bytes(range(256)) * int(hidden)  # data the run reads, hashed"),
        nbformat.v4.new_markdown_cell("Train a pretend model: the loss falls faster with a larger lr."),
        nbformat.v4.new_code_cell("%%track --name sweep-train --metrics accuracy --tag example=spirals\n"
                                  "size = len(samples)\n"
                                  "for epoch in range(epochs):\n"
                                  "    loss = math.exp(-lr * hidden * (epoch + 1) / 4)\n"
                                  "    pykernel_ext.log(loss=loss, step=epoch)\n"
                                  "accuracy = 1 - loss / 2"),
    ]
    nbformat.write(nb, path)


def _populate(home: Path) -> None:
    """100,000 bulk runs, then real runs (newer): two tracked runs that differ in lr and code, two to manage,
    and a 4-run sweep of a notebook through the real `pykernel-ext run`."""
    from pykernel_ext.store import RunStore

    with RunStore.open(home / ".pykernel_ext") as store:
        _bench_module().bulk_insert_runs(store, 100_000)
    env = {**os.environ, "PYKERNEL_EXT_HOME": str(home)}
    _sweep_notebook(home / "sweep.ipynb")
    subprocess.run([str(Path(sys.executable).parent / "pykernel-ext"), "run", "sweep.ipynb", "--sweep", "lr=0.1,0.4",
                    "--sweep", "hidden=4,16"], check=True, cwd=home, timeout=600, env=env, capture_output=True)
    script = (
        "import pykernel_ext\n"
        "from pykernel_ext.tracking import track\n"
        "for name, lr in (('cmp-a', 0.1), ('cmp-b', 0.2), ('manage-me', 0.3), ('delete-me', 0.4)):\n"
        "    with track(name=name, params={'lr': lr, 'batch': 32}, code=f'model = build()\\ntrain(model, lr={lr})\\n'):\n"
        "        for step in range(20):\n"
        "            pykernel_ext.log(loss=lr / (step + 1), step=step)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=home, timeout=120, env=env)


def _get(url: str, token: str | None = None) -> int:
    return _lab_module().http_status(url, token)


def _lab_module():
    spec = importlib.util.spec_from_file_location("jupyterlab_server", REPO / "bench" / "jupyterlab_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A real JupyterLab serving a temp root with the extension built in this checkout."""
    if not (LABEXTENSION / "package.json").exists():
        pytest.fail("the JupyterLab extension is not built: `pip install -e .` (or `npm run build`) builds it")
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    root.mkdir()
    _notebook(root / "demo.ipynb")
    _status_notebook(root / "status.ipynb")
    _populate(root)
    try:
        server = _lab_module().JupyterLab(root, tmp, LABEXTENSION)
        server.__enter__()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield {"url": server.url, "token": server.token, "root": root, "tmp": tmp}
    finally:
        server.__exit__()


@pytest.mark.timeout(600)  # the first test pays for the module's lab: 100,000 runs, a real sweep
def test_api_refuses_requests_without_the_token(lab):
    """A plain HTTP client against the real server: no token, no data; a wrong token neither."""
    api = f"{lab['url']}pykernel-ext/api/v1/"
    for endpoint in ("runs", "gpus", "compare?ids=a,b", "events", "runs/abc/artifacts/x"):
        assert _get(api + endpoint) == 403, endpoint
        assert _get(api + endpoint, token="wrong") == 403, endpoint
    assert _get(api + "runs?limit=1", lab["token"]) == 200


@pytest.mark.timeout(900)
def test_runs_panel_in_a_real_jupyterlab(lab):
    shots = Path(os.environ.get("PYKERNEL_EXT_SCREENSHOTS", lab["tmp"] / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    report = lab["tmp"] / "playwright.json"
    env = {**os.environ, "LAB_URL": lab["url"], "LAB_TOKEN": lab["token"], "CHROMIUM_PATH": CHROMIUM,
           "SCREENSHOT_DIR": str(shots), "PW_JSON_OUTPUT": str(report),
           "PW_OUTPUT_DIR": str(lab["tmp"] / "playwright-output")}
    result = subprocess.run(["npx", "playwright", "test", "-c", "tests/browser/playwright.config.ts"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    stats = json.loads(report.read_text())["stats"]
    assert stats["expected"] >= 14 and stats["unexpected"] == 0 and stats["skipped"] == 0, stats
    for shot in ("runs-panel", "compare", "sidebar-tree", "sidebar-columns", "compare-sweep", "compare-1000",
                 "run-manage", "cell-status"):
        assert (shots / f"{shot}.png").exists(), shot
