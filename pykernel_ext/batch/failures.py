"""Which cell a failed notebook execution stopped at, read from the executed notebook as papermill left it.

papermill's `PapermillExecutionError.cell_index` counts cells before it inserts its two error-marker
cells (and after its injected-parameters cell), so indexing the saved notebook with it quotes a
neighbour. The saved notebook says it exactly: the failing cell follows papermill's anchor cell. A cell
that timed out or killed its kernel gets no marker; it is the last cell papermill started. A cell
number is counted from 1 among the cells of the notebook as the user wrote it (papermill's own cells
left out), the way Jupyter users count them.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ERROR_MARKER_TAG = "papermill-error-cell-tag"
INJECTED_TAG = "injected-parameters"
_ANCHOR = 'id="papermill-error-cell"'
_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit|Warning)): ?(.*)$")


def read_executed(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def marked_error_cell(notebook: dict[str, Any] | None) -> int | None:
    """The index of the cell papermill marked as failed: the one right after its anchor cell."""
    cells = (notebook or {}).get("cells", [])
    for index, cell in enumerate(cells[:-1]):
        if ERROR_MARKER_TAG in _tags(cell) and _ANCHOR in _source(cell):
            return index + 1
    return None


def last_started_cell(notebook: dict[str, Any] | None) -> int | None:
    """The last code cell papermill started (it saves the notebook as each cell starts and ends)."""
    found = None
    for index, cell in enumerate((notebook or {}).get("cells", [])):
        if cell.get("cell_type") == "code" and (cell.get("metadata", {}).get("papermill") or {}).get("start_time"):
            found = index
    return found


def cell_facts(notebook: dict[str, Any] | None, index: int | None) -> dict[str, Any]:
    """The cell's number (from 1, papermill's cells not counted), id, source and execution count."""
    cells = (notebook or {}).get("cells", [])
    if index is None or not 0 <= index < len(cells):
        return {"cell_index": index, "cell_number": None, "cell_id": None, "cell_source": None, "execution_count": None}
    cell = cells[index]
    own = [i for i, c in enumerate(cells) if not ({ERROR_MARKER_TAG, INJECTED_TAG} & set(_tags(c)))]
    number = own.index(index) + 1 if index in own else None
    return {"cell_index": index, "cell_number": number, "cell_id": cell.get("id"), "cell_source": _source(cell),
            "execution_count": cell.get("execution_count")}


def error_from_outputs(notebook: dict[str, Any] | None, index: int | None) -> tuple[str, str] | None:
    """(ename, evalue) a cell printed without an error output: IPython shows a UsageError (a bad magic)
    on stderr only, and papermill then reports an empty `CellExecutionError`."""
    cells = (notebook or {}).get("cells", [])
    if index is None or not 0 <= index < len(cells):
        return None
    for output in reversed(cells[index].get("outputs") or []):
        if output.get("output_type") == "error":
            return output.get("ename", ""), output.get("evalue", "")
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            text = output.get("text", "")
            for line in reversed(("".join(text) if isinstance(text, list) else text).strip().splitlines()):
                match = _ERROR_LINE.match(line.strip())
                if match:
                    return match.group(1), match.group(2)
    return None


def _tags(cell: dict[str, Any]) -> list[str]:
    return list((cell.get("metadata") or {}).get("tags") or [])


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)
