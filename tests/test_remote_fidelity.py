"""A `%%remote` cell behaves as if it had run in the notebook: what deep-learning notebooks actually do.

Real torch training on the embedded LocalCluster (real worker processes), driven through a real IPython shell.
Each scenario is also run locally first where that makes the comparison exact.
"""
from __future__ import annotations

import pytest

from conftest import run_cell
from conftest_remote import embedded_cluster, last_run, needs_gpu  # noqa: F401

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("embedded_cluster")

MODEL_CELL = """
import torch
from torch import nn

class MLP(nn.Module):
    def __init__(self, width=512):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(16, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        self.head = nn.Linear(width, 1)

    def forward(self, x):
        return self.head(self.body(x))

torch.manual_seed(0)
X = torch.randn(512, 16)
y = (X[:, :1] * 2 - X[:, 1:2]).tanh()
model = MLP()
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)

def evaluate(m):
    with torch.no_grad():
        return nn.functional.mse_loss(m(X), y).item()
"""

TRAIN_CELL = """%%remote
for step in range(15):
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(X), y)
    loss.backward()
    opt.step()
    sched.step()
"""


def _param_bytes(ns) -> int:
    return sum(p.numel() * p.element_size() for p in ns["model"].parameters())


def test_model_optimizer_and_scheduler_train_across_two_stateless_remote_cells(shell, store_home):
    assert run_cell(shell, MODEL_CELL).success
    ns = shell.user_ns
    assert _param_bytes(ns) > 1_000_000, "over the size that used to travel one value at a time"
    model, opt, sched = ns["model"], ns["opt"], ns["sched"]
    before = run_cell(shell, "before = evaluate(model)").success and ns["before"]
    first = run_cell(shell, TRAIN_CELL)
    assert first.success, first.error_in_exec
    after_one = ns["evaluate"](model)
    second = run_cell(shell, TRAIN_CELL)
    assert second.success, second.error_in_exec
    after_two = ns["evaluate"](model)
    assert before > after_one > after_two, f"loss falls from cell to cell: {before} {after_one} {after_two}"
    # The notebook's objects are the trained ones (updated in place), and stay linked.
    assert ns["model"] is model and ns["opt"] is opt and ns["sched"] is sched
    assert all(a is b for a, b in zip(opt.param_groups[0]["params"], model.parameters()))
    assert set(map(id, opt.state)) == set(map(id, model.parameters())), "Adam's moments are keyed by the model's parameters"
    assert int(opt.state[model.head.weight]["step"]) == 30
    assert sched.optimizer is opt and sched.last_epoch == 30
    assert opt.param_groups[0]["lr"] == pytest.approx(3e-3 * 0.5 ** 3)
    # The same training run locally from the same start gives the same model (same data, same seed).
    assert run_cell(shell, MODEL_CELL).success
    assert run_cell(shell, TRAIN_CELL.replace("%%remote\n", "")).success
    assert run_cell(shell, TRAIN_CELL.replace("%%remote\n", "")).success
    assert ns["evaluate"](ns["model"]) == pytest.approx(after_two, rel=1e-4)
    run = last_run(store_home)
    assert run["kind"] == "remote" and run["status"] == "ok"


def test_in_place_changes_to_lists_dicts_arrays_tensors_and_modules_come_back(shell, store_home):
    setup = ("import numpy as np, torch\nbag = [1]\nalias = bag\nholder = {'bag': bag}\nd = {'k': 0}\n"
             "arr = np.zeros(4)\nt = torch.zeros(3)\nbase = torch.arange(6.)\nview = base[1:3]\n"
             "lin = torch.nn.Linear(2, 2)\nimport dataclasses\n@dataclasses.dataclass\nclass Cfg:\n"
             "    lr: float = 0.1\ncfg = Cfg()\n")
    change = ("bag.append(2)\nd['k'] = 5\narr[1] = 7\nt.add_(1)\nview.mul_(10)\nlin.weight.data.fill_(0.5)\n"
              "lin.train(False)\ncfg.lr = 0.01\n")
    assert run_cell(shell, setup).success
    assert run_cell(shell, change).success
    local = _snapshot(shell.user_ns)
    assert run_cell(shell, setup).success
    result = run_cell(shell, "%%remote\n" + change)
    assert result.success, result.error_in_exec
    ns = shell.user_ns
    assert _snapshot(ns) == local
    assert ns["alias"] is ns["bag"] and ns["holder"]["bag"] is ns["bag"], "other references see the change too"
    assert ns["view"].untyped_storage().data_ptr() == ns["base"].untyped_storage().data_ptr(), "view and base linked"
    ns["view"].add_(1)
    assert ns["base"][1].item() == 11, "after the round trip the view still writes into its base"


def _snapshot(ns) -> dict:
    return {"bag": list(ns["bag"]), "d": dict(ns["d"]), "arr": ns["arr"].tolist(), "t": ns["t"].tolist(),
            "base": ns["base"].tolist(), "lin": ns["lin"].weight.tolist(), "training": ns["lin"].training,
            "cfg": ns["cfg"].lr}


def test_tutorial_style_data_updates_and_a_notebook_class_stay_live(shell, store_home):
    # makemore-style training: parameters updated through `.data`, which torch's version counter does not see.
    cells = ["import torch\ng = torch.Generator().manual_seed(1)\nC = torch.randn((27, 10), generator=g)\n"
             "W = torch.randn((10, 27), generator=g)\nparams = [C, W]\nfor p in params:\n    p.requires_grad = True\n"
             "SCALE = 1.0\nclass Scaler:\n    def apply(self, v):\n        return v * SCALE\n",
             "%%remote\nfor _ in range(3):\n    logits = C[torch.arange(27)] @ W\n"
             "    loss = torch.nn.functional.cross_entropy(logits, torch.arange(27))\n"
             "    for p in params:\n        p.grad = None\n    loss.backward()\n"
             "    for p in params:\n        p.data += -0.5 * p.grad\nscaled = Scaler().apply(2)"]
    assert run_cell(shell, cells[0]).success
    start = shell.user_ns["C"].clone()
    result = run_cell(shell, cells[1])
    assert result.success, result.error_in_exec
    ns = shell.user_ns
    assert not torch.equal(ns["C"], start), "updates made through .data come back"
    assert ns["params"][0] is ns["C"] and ns["params"][1] is ns["W"]
    assert ns["scaled"] == 2.0
    run_cell(shell, "SCALE = 3.0\nlocal = Scaler().apply(2)")
    assert ns["local"] == 6.0, "the notebook's class still reads the notebook's globals after its round trip"


def test_pull_narrows_what_comes_back_and_names_what_stayed(shell, store_home, capsys):
    assert run_cell(shell, "import torch\na = torch.zeros(2)\nb = torch.zeros(2)").success
    result = run_cell(shell, "%%remote --pull c\na.add_(1)\nb.add_(1)\nc = 5")
    assert result.success, result.error_in_exec
    ns = shell.user_ns
    assert ns["c"] == 5 and ns["a"].sum() == 0 and ns["b"].sum() == 0
    err = capsys.readouterr().err
    assert "changed on the worker but not pulled, so unchanged here: a, b" in err


def test_a_value_that_cannot_come_back_is_named_once_and_the_rest_arrives(shell, store_home, capsys):
    result = run_cell(shell, "%%remote\nimport threading\nlock = threading.Lock()\ngen = (i for i in range(3))\n"
                             "ok = [1, 2]")
    assert result.success, result.error_in_exec
    ns = shell.user_ns
    assert ns["ok"] == [1, 2] and "lock" not in ns and "gen" not in ns
    err = capsys.readouterr().err
    assert "'lock' was not brought back" in err and "'gen' was not brought back" in err
    assert "lock" in str(last_run(store_home)["remote"]["notes"])


def test_a_dataloader_with_worker_processes_runs_in_a_remote_cell(shell, store_home):
    result = run_cell(shell, "%%remote\nimport torch\nfrom torch.utils.data import DataLoader, TensorDataset\n"
                             "ds = TensorDataset(torch.arange(64.).reshape(32, 2))\n"
                             "loader = DataLoader(ds, batch_size=8, num_workers=2)\n"
                             "total = sum(batch[0].sum().item() for batch in loader)")
    assert result.success, result.error_in_exec
    assert shell.user_ns["total"] == sum(range(64))


@needs_gpu
@pytest.mark.gpu
def test_cuda_results_come_home_on_the_cpu_as_one_graph(shell, store_home, monkeypatch):
    import pykernel_ext.remote as remote_pkg

    monkeypatch.setattr(remote_pkg, "_local_cuda", lambda: False)  # a notebook without a GPU
    assert run_cell(shell, MODEL_CELL).success
    result = run_cell(shell, "%%remote --gpus 1\nmodel.cuda()\nopt.state.clear()\n" + TRAIN_CELL.split("\n", 1)[1]
                      + "dev = str(next(model.parameters()).device)")
    assert result.success, result.error_in_exec
    ns = shell.user_ns
    assert ns["dev"].startswith("cuda")
    assert all(p.device.type == "cpu" for p in ns["model"].parameters())
    assert all(v.device.type == "cpu" for s in ns["opt"].state.values() for v in s.values() if torch.is_tensor(v))
    assert all(a is b for a, b in zip(ns["opt"].param_groups[0]["params"], ns["model"].parameters()))
