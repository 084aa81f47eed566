"""Notebook parameters for batch runs: what the notebook defines, values typed like its defaults, sweeps.

Typing follows papermill's own inspection of the `parameters` cell: `-p epochs 3` is an int when the
default is an int; lists and dicts parse as YAML (a superset of JSON).
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from ..errors import PykernelExtError


class ParameterError(PykernelExtError):
    """A parameter, parameter file or sweep the notebook cannot take."""


_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def notebook_parameters(notebook: Path) -> dict[str, dict[str, Any]]:
    """The `parameters` cell's names with their type name, default (source text) and help."""
    import papermill

    try:
        found = papermill.inspect_notebook(str(notebook))
    except Exception as exc:  # noqa: BLE001 - papermill raises several kinds for unreadable notebooks
        raise ParameterError(f"cannot read the parameters of {notebook}: {exc}") from None
    return {name: {"type": _type_of(info), "default": info.get("default"), "help": info.get("help") or ""}
            for name, info in found.items()}


def _type_of(info: dict[str, Any]) -> str:
    """papermill's type (from an annotation), else the type of the literal default (`epochs = 20`: int)."""
    import ast

    annotated = info.get("inferred_type_name")
    if annotated and annotated != "None":
        return annotated
    try:
        value = ast.literal_eval(info.get("default") or "None")
    except (ValueError, SyntaxError):
        return "None"
    kind = type(value).__name__
    return kind if kind in ("int", "float", "bool", "str", "list", "dict") else "None"


def coerce(name: str, raw: Any, spec: dict[str, dict[str, Any]]) -> Any:
    """`raw` typed like the notebook's default for `name` (strings from the command line)."""
    if not isinstance(raw, str):
        return raw  # from a YAML file or -y: already typed
    wanted = spec.get(name, {}).get("type", "None")
    default = spec.get(name, {}).get("default")
    try:
        if wanted == "int":
            return int(raw)
        if wanted == "float":
            return float(raw)
        if wanted == "bool":
            return _parse_bool(raw)
        if wanted == "str":
            return raw
        value = _yaml(raw)
    except ValueError as exc:
        raise ParameterError(f"parameter {name} takes a {wanted} (the notebook's default is {default}); "
                             f"got {raw!r}: {exc}") from None
    if wanted in ("list", "dict") and type(value).__name__ != wanted:
        raise ParameterError(f"parameter {name} takes a {wanted} (default {default}); {raw!r} is a "
                             f"{type(value).__name__}")
    return value


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("use true/false, yes/no or 1/0")


def _yaml(raw: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc).splitlines()[0]) from None


def collect_parameters(spec: dict[str, dict[str, Any]], pairs: list[tuple[str, str]] | None = None,
                       yaml_texts: list[str] | None = None, files: list[str] | None = None) -> dict[str, Any]:
    """Merge -f files, -y YAML strings and -p pairs (later wins), typed and checked against the notebook."""
    merged: dict[str, Any] = {}
    for path in files or []:
        merged.update(_mapping(Path(path).read_text(encoding="utf-8") if Path(path).is_file() else
                               _missing_file(path), f"parameters file {path}"))
    for text in yaml_texts or []:
        merged.update(_mapping(text, "-y"))
    for name, raw in pairs or []:
        merged[name] = raw
    check_names(merged, spec)
    return {name: coerce(name, value, spec) for name, value in merged.items()}


def _missing_file(path: str) -> str:
    raise ParameterError(f"parameters file {path} does not exist")


def _mapping(text: str, origin: str) -> dict[str, Any]:
    try:
        value = _yaml(text)
    except ValueError as exc:
        raise ParameterError(f"{origin} is not valid YAML: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ParameterError(f"{origin} must be a mapping of parameter names to values")
    return value


def check_names(values: dict[str, Any], spec: dict[str, dict[str, Any]]) -> None:
    unknown = sorted(set(values) - set(spec))
    if unknown:
        defined = ", ".join(f"{n} ({s['type']}, default {s['default']})" for n, s in spec.items()) or \
            "none (tag a cell `parameters` to define some)"
        raise ParameterError(f"the notebook defines no parameter {', '.join(unknown)}; it defines: {defined}")


def parse_sweep(text: str, spec: dict[str, dict[str, Any]]) -> tuple[str, list[Any]]:
    """`lr=0.1,0.01` (or `layers=[64,32],[128]`) into (name, typed values)."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or not name or not values.strip():
        raise ParameterError(f"--sweep {text!r} is malformed: write NAME=V1,V2,... (e.g. lr=0.1,0.01)")
    check_names({name: None}, spec)
    try:
        items = _yaml(f"[{values}]")
    except ValueError as exc:
        raise ParameterError(f"--sweep {text!r}: cannot split the values ({exc})") from None
    if not isinstance(items, list) or not items or any(i is None for i in items):
        raise ParameterError(f"--sweep {text!r}: give at least one value, with no empty ones")
    typed = [coerce(name, v if spec[name]["type"] in ("list", "dict") else _as_text(v), spec) for v in items]
    return name, typed


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def expand_sweep(base: dict[str, Any], sweeps: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """The cross product of the sweep values over the base parameters (one set when no sweep)."""
    names = [name for name, _ in sweeps]
    if len(set(names)) != len(names):
        raise ParameterError(f"--sweep names a parameter twice: {', '.join(names)}")
    if not sweeps:
        return [dict(base)]
    return [{**base, **dict(zip(names, combo))} for combo in itertools.product(*(v for _, v in sweeps))]
