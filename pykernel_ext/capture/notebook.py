"""A notebook's identity: its code as one text (what a notebook run and its exported script record), and
which notebook cell a kernel is running when the front end does not say (nbconvert, papermill).

JupyterLab tells the kernel its notebook (`JPY_SESSION_NAME`) and each cell's id (request metadata);
nbclient, which nbconvert and papermill drive kernels with, tells neither. Those execute the code cells in
order, so the kernel's input history is the notebook's code cells in order (papermill adds its injected
parameters cell): matching the history against a notebook's code cells finds both the notebook and the
running cell.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_NOTEBOOK_FILE = "PYKERNEL_EXT_NOTEBOOK_FILE"  # the notebook file a batch driver's kernel executes
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
_CELL_MARKER = "# %% ---- code cell {number}{tag}"
_CELL_MARKER_RE = re.compile(r"^# %% ---- code cell \d+( \[parameters\])?$", re.MULTILINE)
_DISCOVERY_MAX_FILES = 64
_DISCOVERY_MAX_BYTES = 20 * 1024 * 1024


def cell_source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def cell_tags(cell: dict[str, Any]) -> list[str]:
    return list((cell.get("metadata") or {}).get("tags") or [])


def notebook_code_text(notebook: dict[str, Any]) -> str:
    """The notebook's code: every code cell in order under a marker line (papermill's injected
    parameters cell left out). A notebook run's code hash is this text's; so is its exported script's."""
    parts = []
    number = 0
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code" or INJECTED_TAG in cell_tags(cell):
            continue
        number += 1
        tag = " [parameters]" if PARAMETERS_TAG in cell_tags(cell) else ""
        parts.append(_CELL_MARKER.format(number=number, tag=tag) + "\n" + cell_source(cell).rstrip() + "\n")
    return "".join(parts)


def split_notebook_code(text: str) -> list[tuple[str, bool]]:
    """`notebook_code_text` back into (cell source, is the parameters cell) pairs."""
    cells = []
    markers = list(_CELL_MARKER_RE.finditer(text))
    for index, marker in enumerate(markers):
        end = markers[index + 1].start() if index + 1 < len(markers) else len(text)
        cells.append((text[marker.end():end].strip("\n"), marker.group(1) is not None))
    return cells


# ---- which cell is running ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CellLocation:
    notebook: str  # the notebook file's path
    cell_id: str | None
    index: int  # 0-based position among all the notebook's cells


def locate_cell(history: list[str], hint: str | None, folder: str | os.PathLike | None) -> CellLocation | None:
    """The notebook cell being run, given the kernel's raw input history (the running cell last).

    `hint` is a notebook path the kernel was told; without one, the notebooks in `folder` (the kernel's
    working folder, where nbconvert and papermill start it by default) whose code cells match the whole
    history in order are the candidates, and only a single match counts.
    """
    entries = [_normal(h) for h in history if isinstance(h, str) and h.strip()]
    if not entries:
        return None
    if hint and os.path.isfile(hint):
        cells = _code_cells(Path(hint))
        index = _match_in_order(cells, entries) if cells else None
        if index is None and cells:
            index = _last_exact(cells, entries[-1])  # interactive use: cells run in any order
        return CellLocation(str(Path(hint).resolve()), cells[index][1], cells[index][2]) if index is not None else None
    found = []
    for path in _notebooks_in(folder):
        cells = _code_cells(path)
        index = _match_in_order(cells, entries) if cells else None
        if index is not None:
            found.append(CellLocation(str(path.resolve()), cells[index][1], cells[index][2]))
    found = _prefer_sources(found)
    return found[0] if len(found) == 1 else None


def _normal(source: str) -> str:
    return source.replace("\r\n", "\n").rstrip()


def _match_in_order(cells: list[tuple[str, str | None, int]], entries: list[str]) -> int | None:
    """The position of the last history entry when the history is the cells in order (an entry found in
    no cell may be papermill's injected parameters); None when the history does not fit."""
    position = -1
    matched = None
    for entry in entries:
        found = next((i for i in range(position + 1, len(cells)) if cells[i][0] == entry), None)
        if found is None:
            if entry.lstrip().startswith("# Parameters"):
                continue
            return None
        position = matched = found
    return matched if matched is not None and cells[matched][0] == entries[-1] else None


def _last_exact(cells: list[tuple[str, str | None, int]], entry: str) -> int | None:
    hits = [i for i, cell in enumerate(cells) if cell[0] == entry]
    return hits[-1] if hits else None


_parsed: dict[str, tuple[int, int, list[tuple[str, str | None, int]], dict[str, Any]]] = {}


def _code_cells(path: Path) -> list[tuple[str, str | None, int]]:
    """(normalized source, cell id, index) of the notebook's code cells, cached by size and mtime."""
    key = str(path.resolve())
    try:
        st = path.stat()
        if st.st_size > _DISCOVERY_MAX_BYTES:
            return []
        cached = _parsed.get(key)
        if cached and cached[:2] == (st.st_size, st.st_mtime_ns):
            return cached[2]
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    cells = [(_normal(cell_source(c)), c.get("id"), i) for i, c in enumerate(notebook.get("cells", []))
             if isinstance(c, dict) and c.get("cell_type") == "code"]
    _parsed[key] = (st.st_size, st.st_mtime_ns, cells, notebook.get("metadata") or {})
    return cells


def _notebooks_in(folder: str | os.PathLike | None) -> list[Path]:
    if not folder:
        return []
    try:
        found = sorted(p for p in Path(folder).glob("*.ipynb") if p.is_file())
    except OSError:
        return []
    return found[:_DISCOVERY_MAX_FILES]


def _prefer_sources(found: list[CellLocation]) -> list[CellLocation]:
    """Among matching notebooks, drop executed copies of another match: papermill's output names its input
    (`metadata.papermill.input_path`), nbconvert's is NAME.nbconvert.ipynb beside NAME.ipynb."""
    if len(found) < 2:
        return found
    paths = {Path(f.notebook) for f in found}
    kept = []
    for location in found:
        path = Path(location.notebook)
        metadata = (_parsed.get(str(path)) or (0, 0, [], {}))[3]
        source = (metadata.get("papermill") or {}).get("input_path")
        if source and (path.parent / source).resolve() in paths and (path.parent / source).resolve() != path:
            continue
        if path.name.endswith(".nbconvert.ipynb") and path.with_name(path.name[:-len(".nbconvert.ipynb")] + ".ipynb") in paths:
            continue
        kept.append(location)
    return kept
