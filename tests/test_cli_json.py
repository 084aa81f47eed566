"""The CLI's `--json` is JSON every parser accepts, also for a run whose loss blew up (NaN, infinity)."""
from __future__ import annotations

import json

import pytest

from conftest import cli, run_cell

DIVERGED = """%%track --name diverged
import math
import pykernel_ext

lr = 10.0
loss = 0.5
for step in range(4):
    pykernel_ext.log(loss=loss, grad_norm=loss * 1e308, step=step)
    loss = loss * 1e308 if step < 2 else float("nan")
"""


def strict(text: str):
    """json.loads refusing NaN, Infinity and -Infinity, as JSON.parse and jq do."""
    def refuse(name: str):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_diverged_run_prints_valid_json_with_null_for_non_finite_values(shell, store_home):
    run_cell(shell, DIVERGED)
    run_cell(shell, "%%track --name fine --metrics loss\nloss = 0.1")
    listed = strict(cli("runs", "list", "--json").stdout)
    diverged = next(r for r in listed if r["name"] == "diverged")
    assert diverged["metrics"] == {"loss": None, "grad_norm": None}

    shown = strict(cli("runs", "show", diverged["id"], "--json").stdout)
    assert shown["metrics"] == {"loss": None, "grad_norm": None}
    assert shown["metric_series"]["loss"]["values"] == [0.5, pytest.approx(0.5e308), None, None]
    assert shown["metric_series"]["grad_norm"]["values"][0] == pytest.approx(0.5e308)
    assert shown["metric_series"]["grad_norm"]["values"][1:] == [None, None, None]

    fine = next(r for r in listed if r["name"] == "fine")
    diff = strict(cli("runs", "diff", diverged["id"], fine["id"], "--json").stdout)
    assert diff["metrics"]["values"]["loss"] == [None, 0.1]

    table = cli("runs", "list").stdout  # the human view keeps saying what happened
    assert "loss=nan" in table or "loss=inf" in table
