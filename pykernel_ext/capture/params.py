"""Parameters of a run: JSON-like values a cell reads, plus named and papermill parameters."""
from __future__ import annotations

import ast
import json
import math
import os
from pathlib import Path
from typing import Any

ENV_PARAMS = "PYKERNEL_EXT_PARAMS"  # JSON object set by `pykernel-ext run` for the kernels it starts
PARAMETER_TAGS = ("parameters", "injected-parameters")

_MAX_ITEMS = 64
_MAX_DEPTH = 3
_MAX_STRING = 2_000
_MAX_JSON = 8_192

MISSING = object()  # json_like() result for values that are not parameter-like


def json_like(value: Any) -> Any:
    """`value` as plain JSON data when it is a parameter-sized JSON-like value, else `MISSING`.

    Numbers, strings, bools, None, and small lists/tuples/dicts of those. numpy scalars count as numbers.
    """
    converted = _convert(value, 0)
    if converted is MISSING:
        return MISSING
    try:
        if len(json.dumps(converted)) > _MAX_JSON:
            return MISSING
    except (TypeError, ValueError):
        return MISSING
    return converted


def is_json_like(value: Any) -> bool:
    return json_like(value) is not MISSING


def _convert(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        if isinstance(value, str) and len(value) > _MAX_STRING:
            return MISSING
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    kind = type(value).__module__
    if kind == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return _convert(value.item(), depth)
    if depth >= _MAX_DEPTH:
        return MISSING
    if isinstance(value, (list, tuple)) and len(value) <= _MAX_ITEMS:
        items = [_convert(v, depth + 1) for v in value]
        return MISSING if any(i is MISSING for i in items) else items
    if isinstance(value, dict) and len(value) <= _MAX_ITEMS and all(isinstance(k, str) for k in value):
        items = {k: _convert(v, depth + 1) for k, v in value.items()}
        return MISSING if any(i is MISSING for i in items.values()) else items
    return MISSING


def params_from_namespace(names: list[str] | tuple[str, ...], namespace: dict[str, Any]) -> dict[str, Any]:
    """The JSON-like values among `names` in `namespace`, skipping private and shell names."""
    found: dict[str, Any] = {}
    for name in names:
        if name.startswith("_") or name not in namespace:
            continue
        value = json_like(namespace[name])
        if value is not MISSING:
            found[name] = value
    return found


def params_from_environment() -> dict[str, Any]:
    """Parameters a `pykernel-ext run` driver handed to this kernel."""
    raw = os.environ.get(ENV_PARAMS)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


_notebook_cache: dict[str, tuple[int, tuple[str, ...]]] = {}


def papermill_parameter_names(notebook_path: str | os.PathLike | None) -> tuple[str, ...]:
    """Names assigned in the notebook's `parameters` / `injected-parameters` cells (cached by mtime)."""
    if not notebook_path:
        return ()
    path = Path(notebook_path)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return ()
    cached = _notebook_cache.get(str(path))
    if cached and cached[0] == mtime:
        return cached[1]
    names = _parameter_names_in(path)
    _notebook_cache[str(path)] = (mtime, names)
    return names


def _parameter_names_in(path: Path) -> tuple[str, ...]:
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    names: dict[str, None] = {}
    for cell in notebook.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("cell_type") != "code" or not any(t in PARAMETER_TAGS for t in tags):
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        names.update(dict.fromkeys(_assigned_names(source)))
    return tuple(names)


_INJECTED_MARKER = "# Parameters"  # the first line papermill's Python translator writes


def injected_parameter_names(history: list[str] | None) -> tuple[str, ...]:
    """Names assigned by a papermill-injected parameters cell found in the kernel's input history.

    Works when the kernel does not know its notebook's path (a plain `papermill` run).
    """
    names: dict[str, None] = {}
    for source in history or ():
        if isinstance(source, str) and source.lstrip().startswith(_INJECTED_MARKER):
            names.update(dict.fromkeys(_assigned_names(source)))
    return tuple(names)


def _assigned_names(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        found += [t.id for t in targets if isinstance(t, ast.Name)]
    return found
