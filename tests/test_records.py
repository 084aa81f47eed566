"""One typed run record end to end: the store's columns, the CLI's JSON, the server's payloads, the published
JSON Schema and the front end's generated types all come from `pykernel_ext.records`; each test here fails
when one side gains a field the others do not know."""
from __future__ import annotations

import json
import sqlite3

import pytest

from conftest import cli, run_cell

jsonschema = pytest.importorskip("jsonschema")


def validator(definition: str):
    from pykernel_ext.record_schema import json_schema

    schema = json_schema()
    schema = {**schema, "$ref": f"#/$defs/{definition}"}
    return jsonschema.Draft202012Validator(schema)


def unknown_keys(value: dict, definition: str) -> set[str]:
    from pykernel_ext.record_schema import json_schema

    known = set(json_schema()["$defs"][definition]["properties"])
    return set(value) - known


def test_the_generated_schema_and_typescript_files_are_current():
    from pykernel_ext.record_schema import main

    assert main(["--check"]) == 0, "run `python -m pykernel_ext.record_schema --write` and commit the result"


def test_a_field_added_on_one_side_only_is_caught(tmp_path, monkeypatch):
    from pykernel_ext import record_schema

    schema = record_schema.json_schema()
    schema["$defs"]["RunSummary"]["properties"]["new_field"] = {"type": "string"}
    drifted = record_schema.typescript(schema)
    assert "new_field" in drifted and drifted != record_schema.TS_FILE.read_text(), \
        "the TypeScript side differs as soon as the record does"
    stale = tmp_path / "records.generated.ts"
    stale.write_text(drifted)
    monkeypatch.setattr(record_schema, "TS_FILE", stale)
    assert record_schema.main(["--check"]) == 1


def test_the_runs_table_has_exactly_the_records_columns(store):
    from pykernel_ext.records import OWNER_COLUMNS, SUMMARY_COLUMNS

    with sqlite3.connect(store.db_path) as conn:
        table = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    assert table == {c.column for c in SUMMARY_COLUMNS.values()} | set(OWNER_COLUMNS)


def test_statuses_and_kinds_have_one_home():
    import pykernel_ext.cli as cli_module
    from pykernel_ext import records
    from pykernel_ext.store import search

    assert search.STATUSES is records.STATUSES and search.KINDS is records.KINDS
    parser = cli_module.build_parser() if hasattr(cli_module, "build_parser") else None
    if parser is not None:
        listing = parser._subparsers._group_actions[0].choices["runs"]._subparsers._group_actions[0].choices["list"]
        choices = {a.dest: a.choices for a in listing._actions if a.choices}
        assert tuple(choices["kind"]) == records.KINDS and tuple(choices["status"]) == records.STATUSES


def test_a_real_runs_json_is_a_valid_record_with_no_unknown_fields(shell, store_home):
    assert run_cell(shell, "import numpy as np\nx = np.arange(4)\nlr = 0.1\ndef f(v):\n    return v * lr").success
    assert run_cell(shell, "%%track --name rec --tag team=ml\ny = f(x)\nimport pykernel_ext\n"
                           "pykernel_ext.log(loss=float('nan'))\nprint('done')").success
    assert not run_cell(shell, "%%track --name broken\n1 / 0").success
    for run in json.loads(cli("runs", "list", "--json").stdout):
        errors = sorted(validator("RunSummary").iter_errors(run), key=str)
        assert not errors, [e.message for e in errors]
        assert unknown_keys(run, "RunSummary") == set()
        shown = json.loads(cli("runs", "show", run["id"], "--json").stdout)
        errors = sorted(validator("RunRecord").iter_errors(shown), key=str)
        assert not errors, (run["name"], [f"{list(e.path)}: {e.message}" for e in errors])
        assert unknown_keys(shown, "RunRecord") == set(), "a field the record does not declare"


def test_remote_session_and_notebook_runs_are_valid_records_too(shell, store_home, tmp_path):
    import nbformat

    from pykernel_ext.remote import cluster, session_kernel

    try:
        assert run_cell(shell, "import torch\nw = torch.zeros(3)").success
        assert run_cell(shell, "%%remote --name stateless\nw.add_(1)\nz = 2").success
        assert run_cell(shell, "%%remote --session records\nw2 = w * 2").success
    finally:
        session_kernel.close_all()
        cluster.close_all()
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("epochs = 2", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("%load_ext pykernel_ext"),
        nbformat.v4.new_code_cell("%%track\nloss = 1 / epochs"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = store_home / "tiny.ipynb"
    nbformat.write(notebook, path)
    assert cli("run", str(path), "-p", "epochs", "4").returncode == 0
    kinds = set()
    for run in json.loads(cli("runs", "list", "--json", "--limit", "100").stdout):
        shown = json.loads(cli("runs", "show", run["id"], "--json").stdout)
        kinds.add(shown["kind"])
        errors = sorted(validator("RunRecord").iter_errors(shown), key=str)
        assert not errors, (shown["kind"], [f"{list(e.path)}: {e.message}" for e in errors])
        assert unknown_keys(shown, "RunRecord") == set(), shown["kind"]
        for key in ("remote", "notebook_error", "code"):
            if isinstance(shown.get(key), dict):
                nested = {"remote": "RemoteDetails", "notebook_error": "NotebookError", "code": "CodeRecord"}[key]
                assert unknown_keys(shown[key], nested) == set(), key
    assert {"remote", "notebook"} <= kinds
