"""`pykernel-ext reproduce`: run a recorded run again from what the store kept, and say what differs.

A notebook run re-executes its stored notebook version with its parameters. A tracked cell (or script
block, or remote cell) re-executes its stored code closure with its parameters, in a fresh kernel.
"""
from __future__ import annotations

import builtins
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compare import compare_runs, runs_differ
from ..config import Settings
from ..errors import PykernelExtError
from ..tracking import open_store
from .runner import BatchOptions, BatchRunner


class ReproduceError(PykernelExtError):
    """A run that cannot be re-executed from what was recorded."""


@dataclass
class ReproduceReport:
    original: str
    reproduction: str
    status: str
    comparison: dict[str, Any]
    differences: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return self.status == "ok" and not self.differences


def reproduce(run_ref: str, *, tolerance: float = 1e-6, kernel: str | None = None,
              output_dir: Path | None = None, settings: Settings | None = None) -> ReproduceReport:
    """Re-execute a run, record the new run linked to it (`reproduces`), compare the two."""
    settings = settings or Settings.from_env()
    store = open_store(settings)
    original = store.get_run(run_ref)
    with tempfile.TemporaryDirectory(prefix="pykernel-ext-reproduce-") as scratch:
        if original["kind"] == "notebook":
            new_id, notes = _rerun_notebook(store, original, Path(scratch), kernel, output_dir, settings)
        else:
            new_id, notes = _rerun_code(original, Path(scratch), kernel, output_dir, settings)
    comparison = compare_runs(store, [original["id"], new_id])
    new_status = store.get_run(new_id)["status"]
    differences = runs_differ(comparison, tolerance)
    env = comparison["environment"]
    notes += [f"environment: {key} {old} -> {new}" for key, (old, new) in {**env["changed"], **env["packages_changed"]}.items()]
    return ReproduceReport(original["id"], new_id, new_status, comparison, differences, notes)


def _rerun_notebook(store, original: dict[str, Any], scratch: Path, kernel: str | None,
                    output_dir: Path | None, settings: Settings) -> tuple[str, list[str]]:
    notebook = original.get("notebook_file") or {}
    if not notebook.get("blob") or not store.blobs.exists(notebook["blob"]):
        raise ReproduceError(f"run {original['id'][:8]} has no stored notebook to re-execute")
    path = scratch / Path(notebook.get("path") or "notebook.ipynb").name
    path.write_bytes(store.blobs.read_bytes(notebook["blob"]))
    runner = BatchRunner(path, BatchOptions(kernel=kernel or notebook.get("kernel"), output_dir=output_dir,
                                            name=original.get("name")), settings)
    runner.label = notebook.get("path") or runner.label  # the reproduction is of the same notebook
    source_folder = settings.home / runner.label
    result = runner.run([original.get("params") or {}], reproduces=original["id"], cwd=source_folder.parent)[0]
    return result.run_id, []


def _rerun_code(original: dict[str, Any], scratch: Path, kernel: str | None, output_dir: Path | None,
                settings: Settings) -> tuple[str, list[str]]:
    code = original.get("code") or {}
    if not code.get("source"):
        raise ReproduceError(f"run {original['id'][:8]} recorded no code to re-execute")
    notes = _unrebuildable_inputs(original)
    path = scratch / "reproduce.ipynb"
    path.write_text(json.dumps(_code_notebook(original)), encoding="utf-8")
    runner = BatchRunner(path, BatchOptions(kernel=kernel, output_dir=output_dir, name=f"reproduce {original['name']}"),
                         settings)
    runner.label = original.get("notebook") or runner.label
    result = runner.run([{}], reproduces=original["id"], cwd=Path((original.get("cwd") or scratch)))[0]
    if not result.children:
        raise ReproduceError(f"the re-execution recorded no run ({result.error or 'no tracked cell ran'})")
    return result.children[-1], notes


def _code_notebook(original: dict[str, Any]) -> dict[str, Any]:
    """A notebook that rebuilds the run: parameters, the code closure, then the tracked code."""
    import nbformat

    code = original["code"]
    params = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in (original.get("params") or {}).items()))
    params.metadata["tags"] = ["parameters"]
    cells = [nbformat.v4.new_code_cell("%load_ext pykernel_ext"), params]
    # Dependencies first: the closure lists callers before callees, and classes may subclass each other.
    for entry in reversed(code.get("closure") or []):
        if entry.get("source"):
            cells.append(nbformat.v4.new_code_cell(entry["source"]))
    cells.append(nbformat.v4.new_code_cell(f"{_track_line(original)}\n{code['source']}"))
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def _track_line(original: dict[str, Any]) -> str:
    """The `%%track` line with the options the run was recorded with (absolute --data paths)."""
    options = original.get("options") or {}
    data_paths = [d["path"] for d in original.get("data") or [] if d.get("source") == "--data" and d.get("path")]
    line = f"%%track --name {json.dumps(original.get('name') or 'reproduction')}"
    if data_paths:
        line += " --data " + " ".join(json.dumps(p) for p in data_paths)
    if options.get("metrics"):
        line += " --metrics " + ",".join(options["metrics"])
    if options.get("param_names"):
        line += " --params " + ",".join(options["param_names"])
    if options.get("artifacts"):
        line += " --artifacts " + " ".join(json.dumps(a) for a in options["artifacts"])
    for key, value in (original.get("tags") or {}).items():
        line += " --tag " + json.dumps(f"{key}={value}")
    return line


def _unrebuildable_inputs(original: dict[str, Any]) -> list[str]:
    """Names the code read that nothing recorded can rebuild (values made by earlier notebook cells)."""
    code = original.get("code") or {}
    known = set(original.get("params") or {}) | {e["name"] for e in code.get("closure") or []} | set(dir(builtins))
    missing = [name for name in code.get("reads") or [] if name not in known]
    data = {d["name"]: d for d in original.get("data") or [] if d.get("source") == "namespace"}
    return [f"input {name} ({data[name]['kind']}) was made by earlier cells and cannot be rebuilt; "
            "reproduce the notebook run instead" if name in data else
            f"input {name} is neither a recorded parameter nor notebook code; the re-execution may fail on it"
            for name in missing]
