"""Remote sessions: a namespace that lives on one worker across cells (the embedded LocalCluster, real worker
processes, a real IPython shell). The GPU case is marked `gpu`."""
from __future__ import annotations

import _thread
import os
import subprocess
import sys
import threading
import time

import pytest
from IPython.core.error import UsageError

from conftest import run_cell
from conftest_remote import embedded_cluster, last_run, needs_gpu, runs  # noqa: F401

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("embedded_cluster")

SETUP = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(8, 512), nn.Tanh(), nn.Linear(512, 512), nn.Tanh(), nn.Linear(512, 1))

    def forward(self, x):
        return self.layers(x)

torch.manual_seed(0)
X = torch.randn(256, 8)
y = X[:, :1].sin()
model = Net()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
history = []
"""

TRAIN = """%%remote --session {name}
for _ in range(10):
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(X), y)
    loss.backward()
    opt.step()
history.append(loss.item())
sched.step()
last = history[-1]
"""


@pytest.fixture
def session_name(request):
    """A session name unique to the test; whatever is left open is closed at the end."""
    from pykernel_ext.remote import session_kernel as session_module

    name = request.node.name.replace("[", "-").replace("]", "")[:40]
    yield name
    session_module.forget(name)


def wait_until(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def test_training_across_session_cells_keeps_the_model_there_and_pull_links_it_home(shell, store_home,
                                                                                    session_name, capsys):
    assert run_cell(shell, SETUP).success
    ns = shell.user_ns
    model, opt, sched = ns["model"], ns["opt"], ns["sched"]
    assert sum(p.numel() * 4 for p in model.parameters()) > 1_000_000
    start = ns["model"].layers[0].weight.detach().clone()
    for _ in range(2):
        result = run_cell(shell, TRAIN.format(name=session_name))
        assert result.success, result.error_in_exec
    history = ns["history"]
    assert len(history) == 2 and history[1] < history[0], "loss falls from cell to cell; the list came home"
    assert ns["last"] == history[-1]
    assert torch.equal(model.layers[0].weight, start), "the big model stays in the session until pulled"
    err = capsys.readouterr().err
    assert f"kept in session {session_name!r}" in err and "model" in err and f"%remote_pull {session_name}" in err
    first, second = runs(store_home)[-2:]
    assert first["remote"]["session"] == second["remote"]["session"] == session_name
    assert second["remote"]["previous_run"] == first["id"]
    assert second["remote"]["sent_bytes"] < 10_000 < first["remote"]["sent_bytes"], \
        "the second cell sends nothing big: the model and data are already there"
    assert second["tags"]["session"] == session_name
    # Pull in two steps: the optimizer still holds the model's parameters, all notebook objects updated in place.
    run_cell(shell, f"%remote_pull {session_name} model")
    run_cell(shell, f"%remote_pull {session_name} opt sched")
    assert ns["model"] is model and ns["opt"] is opt and ns["sched"] is sched
    assert not torch.equal(model.layers[0].weight, start)
    assert all(a is b for a, b in zip(opt.param_groups[0]["params"], model.parameters()))
    assert int(opt.state[model.layers[4].weight]["step"]) == 20 and sched.last_epoch == 2
    with torch.no_grad():
        home_loss = torch.nn.functional.mse_loss(model(ns["X"]), ns["y"]).item()
    assert home_loss < history[0]


def test_values_travel_only_when_they_changed(shell, store_home, session_name):
    assert run_cell(shell, "import torch\nbig = torch.ones(5_000_000)\nscale = 2.0").success
    cell = f"%%remote --session {session_name}\ntotal = float(big.sum() * scale)"
    for _ in range(2):
        assert run_cell(shell, cell).success
    sent = [r["remote"]["sent_bytes"] for r in runs(store_home)[-2:]]
    assert sent[0] > 20_000_000 and sent[1] == 0, f"unchanged values are not sent again: {sent}"
    assert run_cell(shell, "big.mul_(3)").success  # changed in place in the notebook: sent again
    assert run_cell(shell, cell).success
    assert shell.user_ns["total"] == 30_000_000.0
    assert run_cell(shell, "scale = 1.0").success
    assert run_cell(shell, cell).success
    assert shell.user_ns["total"] == 15_000_000.0
    assert runs(store_home)[-1]["remote"]["sent_bytes"] < 10_000, "only the changed scalar travelled"


def test_notebook_functions_used_in_a_session_stay_the_notebooks_own(shell, store_home, session_name):
    # A function only read by session cells must not come home as a copy: the copy has no source file,
    # so every later run that calls it would record "source not available".
    helpers = ("import torch\n\ndef train_step(w, lr):\n    w -= lr * w\n    return float(w.sum())\n\n"
               "def score(w):\n    return float(w.abs().sum())\n\nw = torch.ones(4)\nlr = 0.5")
    assert run_cell(shell, helpers).success
    ns = shell.user_ns
    train_step, score = ns["train_step"], ns["score"]
    for _ in range(2):
        assert run_cell(shell, f"%%remote --session {session_name}\nloss = train_step(w, lr)").success
    assert run_cell(shell, f"%%remote --session {session_name}\nloss = train_step(w, lr)\nfinal = score(w)").success
    assert ns["train_step"] is train_step and ns["score"] is score
    session_runs = runs(store_home)[-3:]
    for run in session_runs:
        sources = {e["name"]: e["source"] for e in run["code"]["closure"]}
        assert sources["train_step"] and sources["train_step"].startswith("def train_step(w, lr):"), run["code"]
    assert run_cell(shell, "%%track\ncheck = score(w)").success
    [entry] = last_run(store_home)["code"]["closure"]
    assert entry["name"] == "score" and entry["source"].startswith("def score(w):")


def test_state_lives_in_the_session_and_small_results_come_home(shell, store_home, session_name):
    assert run_cell(shell, f"%%remote --session {session_name}\ncounter = 0\nimport torch\nacts = torch.zeros(1_000_000)").success
    assert run_cell(shell, f"%%remote --session {session_name}\ncounter += 1\nacts += 1").success
    ns = shell.user_ns
    assert ns["counter"] == 1 and "acts" not in ns, "small values come home, big ones stay"
    assert run_cell(shell, f"%%remote --session {session_name} --home-limit 10MB\nacts2 = acts * 2").success
    assert float(ns["acts2"][0]) == 2.0, "--home-limit raises the size that comes home"
    assert run_cell(shell, f"%%remote --session {session_name} --pull acts\npass").success
    assert float(ns["acts"].sum()) == 1_000_000.0


def test_session_listing_close_and_a_fresh_start(shell, store_home, session_name, capsys):
    assert run_cell(shell, f"%%remote --session {session_name}\nimport numpy as np\ndata = np.zeros(250_000)").success
    capsys.readouterr()
    assert run_cell(shell, "%remote_session").success
    listing = capsys.readouterr().out
    assert f"{session_name}: open" in listing and "data" in listing and "ndarray" in listing and "2.0 MB" in listing
    assert "idle" in listing and "cells" in listing
    assert run_cell(shell, f"%remote_session close {session_name}").success
    assert "closed" in capsys.readouterr().out
    result = run_cell(shell, f"%%remote --session {session_name}\nprint(len(data))")
    assert result.error_in_exec is not None and result.error_in_exec.ename == "NameError", "a new, empty session"


def test_interrupting_a_session_cell_keeps_the_session(shell, store_home, session_name):
    assert run_cell(shell, f"%%remote --session {session_name}\nkept = 41").success
    threading.Timer(1.5, _thread.interrupt_main).start()
    result = run_cell(shell, f"%%remote --session {session_name}\nimport time\nfor i in range(600):\n    time.sleep(0.05)")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert last_run(store_home)["status"] == "interrupted"
    result = run_cell(shell, f"%%remote --session {session_name}\nkept += 1")
    assert result.success, result.error_in_exec
    assert shell.user_ns["kept"] == 42


def test_a_dataloader_with_workers_runs_in_a_session(shell, store_home, session_name):
    result = run_cell(shell, f"%%remote --session {session_name}\nimport torch\n"
                             "from torch.utils.data import DataLoader, TensorDataset\n"
                             "loader = DataLoader(TensorDataset(torch.ones(40, 3)), batch_size=5, num_workers=2)\n"
                             "seen = sum(len(b[0]) for b in loader)")
    assert result.success, result.error_in_exec
    assert shell.user_ns["seen"] == 40


def test_the_python_api_has_the_same_session_semantics(shell, store_home, session_name):
    from pykernel_ext.remote import remote, session

    ns = {"torch": torch, "w": torch.zeros(3)}
    s = session(session_name)
    assert remote("w.add_(1)\nn = 5", ns, session=session_name)["n"] == 5
    assert float(ns["w"].sum()) == 3.0, "a small value changed in the session comes home"
    ns["w"] = torch.full((3,), 10.0)
    s.push(["w"], ns)
    s.run("m = float(w.sum())", ns)
    assert ns["m"] == 30.0
    assert s.pull("w", ns)["w"].sum() == 30.0 and ns["w"].sum() == 30.0
    assert "w" in s.info()["variables"]
    s.close()
    with pytest.raises(Exception, match="gone"):
        s.ensure_open()


def test_a_session_name_held_by_another_kernel_is_refused(shell, store_home, session_name):
    from pykernel_ext.remote.cluster import get_executor

    assert run_cell(shell, f"%%remote --session {session_name}\nx = 1").success
    address = get_executor().address
    other = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom pykernel_ext.remote import session\n"
                               f"try:\n    session({session_name!r}, scheduler={address!r})\n"
                               "except Exception as exc:\n    print(type(exc).__name__, exc)\n    sys.exit(3)"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYKERNEL_EXT_HOME": str(store_home)})
    assert other.returncode == 3, other.stdout + other.stderr
    assert "SessionInUse" in other.stdout and "in use by another kernel" in other.stdout
    assert f"pid {os.getpid()}" in other.stdout, "the message says which kernel holds it"


def test_a_session_whose_worker_dies_fails_its_cell_and_says_so_after(shell, store_home, session_name):
    from pykernel_ext.remote.session_kernel import SESSIONS

    assert run_cell(shell, f"%%remote --session {session_name}\nimport os\npid = os.getpid()\nstate = 'lost soon'").success
    pid = shell.user_ns["pid"]
    threading.Timer(1.0, os.kill, (pid, 9)).start()
    result = run_cell(shell, f"%%remote --session {session_name}\nimport time\ntime.sleep(60)")
    assert type(result.error_in_exec).__name__ == "WorkerDied"
    assert "variables are gone" in str(result.error_in_exec)
    assert last_run(store_home)["status"] == "failed"
    result = run_cell(shell, f"%%remote --session {session_name}\nprint(state)")
    assert isinstance(result.error_in_exec, UsageError)
    assert "is gone" in str(result.error_in_exec) and "died" in str(result.error_in_exec)
    assert SESSIONS[session_name].state == "lost"
    # The embedded cluster's nanny restarts the worker: a new session of that name starts after closing it.
    run_cell(shell, f"%remote_session close {session_name}")
    wait_until(lambda: run_cell(shell, f"%%remote --session {session_name}\nback = 1").success, 60,
               "a new session after the worker restarted")


def test_an_idle_session_is_closed_with_a_note(shell, store_home, monkeypatch, session_name, capfd):
    from pykernel_ext.remote.session_kernel import SESSIONS

    monkeypatch.setenv("PYKERNEL_EXT_SESSION_IDLE", "1.5")
    assert run_cell(shell, f"%%remote --session {session_name}\nv = 1").success
    wait_until(lambda: SESSIONS[session_name].state != "open", 30, "the idle session closing")
    assert "idle" in SESSIONS[session_name].reason
    wait_until(lambda: "ended" in capfd.readouterr().err or True, 1)
    result = run_cell(shell, f"%%remote --session {session_name}\nprint(v)")
    assert isinstance(result.error_in_exec, UsageError) and "idle" in str(result.error_in_exec)


@needs_gpu
@pytest.mark.gpu
def test_a_session_keeps_tensors_on_the_gpu_and_frees_them_on_close(shell, store_home, session_name):
    from pykernel_ext.remote.session_kernel import SESSIONS

    cell = f"%%remote --session {session_name} --gpus 1\n"
    assert run_cell(shell, cell + "import torch\nbig = torch.ones(64, 1024, 1024, device='cuda')\n"
                                  "ptr = big.data_ptr()").success
    assert run_cell(shell, cell + "same = big.data_ptr() == ptr and big.is_cuda\n"
                                  "used = torch.cuda.memory_allocated()").success
    assert shell.user_ns["same"] is True and shell.user_ns["used"] >= 256 * 1024 * 1024
    info = SESSIONS[session_name].info()
    assert info["gpu_memory_bytes"] >= 256 * 1024 * 1024
    worker = SESSIONS[session_name].address
    run_cell(shell, f"%remote_session close {session_name}")
    from pykernel_ext.remote.cluster import get_executor

    def freed() -> bool:
        return get_executor().client.run(_allocated, workers=[worker])[worker] < 1024 * 1024

    wait_until(freed, 30, "GPU memory freed after close")


def _allocated() -> int:
    import torch

    return int(torch.cuda.memory_allocated())
