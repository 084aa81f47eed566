"""The `pykernel-ext runs` commands, run as real subprocesses against a real store."""
from __future__ import annotations

import json

from conftest import cli, run_cell


def test_empty_store_says_so(store_home):
    done = cli("runs", "list")
    assert done.returncode == 0 and "no runs recorded yet" in done.stdout
    assert json.loads(cli("runs", "list", "--json").stdout) == []


def test_list_show_and_diff(shell, store_home):
    run_cell(shell, "import numpy as np\nlr = 0.1\nX = np.zeros(4)")
    run_cell(shell, "%%track --name a --tag stage=dev\nloss = lr * 2")
    run_cell(shell, "lr = 0.2\nX[0] = 1")
    run_cell(shell, "%%track --name b\nloss = lr * 2 + X.sum()")
    listed = json.loads(cli("runs", "list", "--json").stdout)
    assert [r["name"] for r in listed] == ["b", "a"]
    assert set(listed[0]) >= {"id", "kind", "status", "params", "metrics", "started_at", "duration_s", "tags"}
    table = cli("runs", "list").stdout
    assert "NAME" in table and "lr=0.2" in table and listed[0]["id"][:8] in table
    assert [r["name"] for r in json.loads(cli("runs", "list", "--tag", "stage=dev", "--json").stdout)] == ["a"]
    assert len(json.loads(cli("runs", "list", "--limit", "1", "--json").stdout)) == 1

    shown = cli("runs", "show", listed[1]["id"][:6])
    assert shown.returncode == 0 and "loss = lr * 2" in shown.stdout and "lr=0.1" in shown.stdout
    diff = cli("runs", "diff", listed[1]["id"], listed[0]["id"])
    assert diff.returncode == 0
    assert "lr: 0.1 -> 0.2" in diff.stdout and "X:" in diff.stdout and "+loss = lr * 2 + X.sum()" in diff.stdout
    as_json = json.loads(cli("runs", "diff", listed[1]["id"], listed[0]["id"], "--json").stdout)
    assert as_json["params"]["different"] == ["lr"] and as_json["code"]["same"] is False


def test_bad_references_and_options_fail_clearly(store_home, shell):
    run_cell(shell, "%%track\nx = 1")
    missing = cli("runs", "show", "ffffffff")
    assert missing.returncode == 2 and "no run matches 'ffffffff'" in missing.stderr
    not_hex = cli("runs", "show", "../../etc")
    assert not_hex.returncode == 2 and "not a run id" in not_hex.stderr
    bad_status = cli("runs", "list", "--status", "weird")
    assert bad_status.returncode == 2 and "invalid choice" in bad_status.stderr
    bad_limit = cli("runs", "list", "--limit", "0")
    assert bad_limit.returncode == 2 and "at least 1" in bad_limit.stderr
