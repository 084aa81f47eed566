"""`pykernel-ext reproduce`: run a recorded run again from what the store kept, and say what differs.

A notebook run re-executes its stored notebook version with its parameters, in the folder it ran in. An
exported script's run re-executes the notebook code it recorded, as a notebook. A tracked cell (or
script block, or remote cell) re-executes its stored code with its imports, its closure (notebook
functions and classes; the recorded version of the user's own modules) and its parameters, in a fresh
kernel in the folder it ran in.

A reproduction matches when it ends as the original did (a failure that fails again with the same error
is reproduced) and nothing compared differs.
"""
from __future__ import annotations

import builtins
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..capture.notebook import split_notebook_code
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
    original_status: str = "ok"
    error: str | None = None  # the reproduction's error, when it failed
    parent_notebook_run: str | None = None  # where a failing cell reproduction should be tried instead

    @property
    def same(self) -> bool:
        return self.status == self.original_status and not self.differences


def reproduce(run_ref: str, *, tolerance: float = 1e-6, kernel: str | None = None,
              output_dir: Path | None = None, settings: Settings | None = None) -> ReproduceReport:
    """Re-execute a run, record the new run linked to it (`reproduces`), compare the two."""
    settings = settings or Settings.from_env()
    store = open_store(settings)
    original = store.get_run(run_ref)
    with tempfile.TemporaryDirectory(prefix="pykernel-ext-reproduce-") as scratch:
        if original["kind"] == "notebook":
            new_id, notes = _rerun_notebook(store, original, Path(scratch), kernel, output_dir, settings)
        elif split_notebook_code((original.get("code") or {}).get("source") or ""):
            new_id, notes = _rerun_notebook_code(original, Path(scratch), kernel, output_dir, settings)
        else:
            new_id, notes = _rerun_code(store, original, Path(scratch), kernel, output_dir, settings)
    comparison = compare_runs(store, [original["id"], new_id])
    reproduction = store.get_run(new_id)
    differences = runs_differ(comparison, tolerance)
    if original["status"] != "ok" and reproduction["status"] == original["status"] and \
            _failure(reproduction) != _failure(original):
        differences.append(f"it failed differently: {_failure(original)} -> {_failure(reproduction)}")
    env = comparison["environment"]
    notes += [f"environment: {key} {old} -> {new}" for key, (old, new) in {**env["changed"], **env["packages_changed"]}.items()]
    error = None
    if reproduction["status"] != "ok":
        error = f"{reproduction.get('error_type')}: {reproduction.get('error_message')}"
    return ReproduceReport(original["id"], new_id, reproduction["status"], comparison, differences, notes,
                           original_status=original["status"], error=error,
                           parent_notebook_run=_parent_notebook_run(store, original))


def _failure(run: dict[str, Any]) -> str:
    """What a failure was: for a notebook run, the failing cell and its error."""
    error = run.get("notebook_error")
    if error:
        return f"cell {error.get('cell_number')}: {error.get('ename')}"
    return str(run.get("error_type"))


def _parent_notebook_run(store, original: dict[str, Any]) -> str | None:
    parent_id = original.get("parent_id")
    if not parent_id or original["kind"] == "notebook":
        return None
    try:
        parent = store.get_run(parent_id)
    except PykernelExtError:
        return None
    return parent["id"] if parent["kind"] == "notebook" or split_notebook_code(
        (parent.get("code") or {}).get("source") or "") else None


def _rerun_notebook(store, original: dict[str, Any], scratch: Path, kernel: str | None,
                    output_dir: Path | None, settings: Settings) -> tuple[str, list[str]]:
    notebook = original.get("notebook_file") or {}
    if not notebook.get("blob") or not store.blobs.exists(notebook["blob"]):
        raise ReproduceError(f"run {original['id'][:8]} has no stored notebook to re-execute")
    path = scratch / Path(notebook.get("path") or "notebook.ipynb").name
    path.write_bytes(store.blobs.read_bytes(notebook["blob"]))
    runner = BatchRunner(path, BatchOptions(kernel=kernel or notebook.get("kernel"), output_dir=output_dir,
                                            name=original.get("name"), timeout=notebook.get("timeout")), settings)
    runner.label = notebook.get("path") or runner.label  # the reproduction is of the same notebook
    folder = _run_folder(original, (settings.home / runner.label).parent)
    result = runner.run([original.get("params") or {}], reproduces=original["id"], cwd=folder)[0]
    return result.run_id, []


def _run_folder(original: dict[str, Any], fallback: Path) -> Path:
    """Where the original's code ran (its relative paths are from there), when that folder still exists."""
    recorded = original.get("cwd")
    return Path(recorded) if recorded and Path(recorded).is_dir() else fallback


def _rerun_notebook_code(original: dict[str, Any], scratch: Path, kernel: str | None, output_dir: Path | None,
                         settings: Settings) -> tuple[str, list[str]]:
    """An exported script's run: the notebook code it recorded, run as that notebook with its parameters."""
    import nbformat

    cells = []
    for source, is_parameters in split_notebook_code(original["code"]["source"]):
        cell = nbformat.v4.new_code_cell(source)
        if is_parameters:
            cell.metadata["tags"] = ["parameters"]
        cells.append(cell)
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = scratch / f"{Path(original.get('notebook') or 'script').stem}.ipynb"
    nbformat.write(notebook, path)
    runner = BatchRunner(path, BatchOptions(kernel=kernel, output_dir=output_dir, name=original.get("name")), settings)
    given = {k: v for k, v in (original.get("params") or {}).items() if k in runner.parameters}
    result = runner.run([given], reproduces=original["id"], cwd=_run_folder(original, scratch))[0]
    return result.run_id, ["an exported script's run is reproduced by running the notebook code it recorded"]


def _rerun_code(store, original: dict[str, Any], scratch: Path, kernel: str | None, output_dir: Path | None,
                settings: Settings) -> tuple[str, list[str]]:
    code = original.get("code") or {}
    if not code.get("source"):
        raise ReproduceError(f"run {original['id'][:8]} recorded no code to re-execute")
    notes = _unrebuildable_inputs(original)
    modules = _restore_modules(store, code, scratch / "modules")
    path = scratch / "reproduce.ipynb"
    path.write_text(json.dumps(_code_notebook(original, scratch / "modules" if modules else None)), encoding="utf-8")
    runner = BatchRunner(path, BatchOptions(kernel=kernel, output_dir=output_dir, name=f"reproduce {original['name']}"),
                         settings)
    runner.label = original.get("notebook") or runner.label
    result = runner.run([{}], reproduces=original["id"], cwd=_run_folder(original, scratch))[0]
    if not result.children:
        raise ReproduceError(f"the re-execution recorded no run: {result.error or 'no tracked cell ran'}")
    return result.children[-1], notes


def _restore_modules(store, code: dict[str, Any], folder: Path) -> list[str]:
    """Write the recorded source of the user's top-level modules, so the re-execution imports the
    version that ran (a package's modules are imported from where they are)."""
    restored = []
    for entry in code.get("closure") or []:
        name, blob = entry.get("name") or "", entry.get("blob")
        if entry.get("kind") != "module" or "." in name or not blob or not store.blobs.exists(blob):
            continue
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.py").write_text(store.blobs.read_text(blob), encoding="utf-8")
        restored.append(name)
    return restored


def _code_notebook(original: dict[str, Any], modules: Path | None) -> dict[str, Any]:
    """A notebook that rebuilds the run: imports, parameters, the code closure, then the tracked code."""
    import nbformat

    code = original["code"]
    params = {k: v for k, v in (original.get("params") or {}).items() if k.isidentifier()}
    params_cell = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in params.items()))
    params_cell.metadata["tags"] = ["parameters"]
    setup = ["%load_ext pykernel_ext"]
    if modules is not None:  # the recorded version of the user's modules comes first on the path
        setup += ["import sys", f"sys.path.insert(0, {str(modules)!r})"]
    cells = [nbformat.v4.new_code_cell("\n".join(setup + list(code.get("imports") or []))), params_cell]
    # Dependencies first: the closure lists callers before callees, and classes may subclass each other.
    for entry in reversed(code.get("closure") or []):
        if entry.get("source") and entry.get("kind") != "module":
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
    imported = {_bound_name(statement) for statement in code.get("imports") or []}
    known = ({k for k in original.get("params") or {} if k.isidentifier()} | imported | set(dir(builtins))
             | {e["name"] for e in code.get("closure") or [] if e.get("kind") != "module"} | {"pykernel_ext"})
    missing = [name for name in code.get("reads") or [] if name not in known]
    data = {d["name"]: d for d in original.get("data") or [] if d.get("source") == "namespace"}
    configs = {k.split(".", 1)[0] for k in original.get("params") or {} if "." in k}
    return [f"input {name} ({data[name]['kind']}) was made by earlier cells and cannot be rebuilt; "
            "reproduce the notebook run instead" if name in data else
            f"input {name} (a config recorded field by field) was made by earlier cells and cannot be rebuilt; "
            "reproduce the notebook run instead" if name in configs else
            f"input {name} is neither a recorded parameter nor notebook code; the re-execution may fail on it"
            for name in missing]


def _bound_name(statement: str) -> str:
    """The name an import statement binds (`import numpy as np` -> np, `import torch` -> torch)."""
    words = statement.split()
    if "as" in words:
        return words[-1]
    if words[0] == "from":
        return words[-1]
    return words[1].split(".")[0]
