"""Notebook parameters for batch runs: values given on the command line, parameter files, sweeps.

What a parameter is comes from one parser, `capture.parameters_cell` (shared with `export`). Values
follow papermill: `-p` text is typed like the notebook's default (`-p epochs 3` is an int when the
default is `epochs = 20`); a value that cannot take that type, or that comes typed already (`-y`, `-f`
YAML or JSON), is passed as given, with a note when its type differs from the default's.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from ..capture.parameters_cell import Parameter, literal_defaults, parameters_cell, read_parameters
from ..errors import PykernelExtError

__all__ = ["Parameter", "ParameterError", "collect_parameters", "expand_sweep", "literal_defaults",
           "notebook_parameters", "parameters_cell", "parse_sweep", "read_parameters"]


class ParameterError(PykernelExtError):
    """A parameter, parameter file or sweep the notebook cannot take."""


def notebook_parameters(notebook: Path | dict[str, Any]) -> dict[str, Parameter]:
    """The parameters of a notebook (a path or its parsed JSON), by name."""
    from ..capture import parameters_cell as cells

    try:
        return cells.notebook_parameters(notebook)
    except ValueError as exc:
        raise ParameterError(str(exc)) from None


# ---- values given -------------------------------------------------------------------------------------

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def coerce(name: str, raw: Any, spec: dict[str, Parameter], notes: list[str] | None = None,
           typed_text: bool = True) -> Any:
    """A value for `name`: `-p` text typed like the default; anything else, or text that cannot take the
    default's type, passed as given (with a note, as papermill passes it)."""
    parameter = spec.get(name)
    wanted = parameter.kind if parameter else "any"
    if not isinstance(raw, str) or not typed_text:
        if parameter and not _fits(raw, wanted):
            _note(notes, f"parameter {name}: {raw!r} is {_a(type(raw).__name__)}, not {_a(wanted)} like its default "
                         f"{parameter.default}; passed as given")
        return raw
    try:
        value = _typed(raw, wanted)
    except ValueError as exc:
        _note(notes, f"parameter {name}: {raw!r} is not {_a(wanted)} like its default {parameter.default} "
                     f"({exc}); passed as the string {raw!r}")
        return raw
    if wanted in ("list", "dict") and not _fits(value, wanted):
        _note(notes, f"parameter {name}: {raw!r} is {_a(type(value).__name__)}, not {_a(wanted)} like its default "
                     f"{parameter.default}; passed as given")
    return value


def _a(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


def _typed(raw: str, wanted: str) -> Any:
    if wanted == "int":
        return int(raw)
    if wanted == "float":
        return float(raw)
    if wanted == "bool":
        return _parse_bool(raw)
    if wanted == "str":
        return raw
    return _yaml(raw)


def _fits(value: Any, wanted: str) -> bool:
    kinds = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "list": (list, tuple),
             "dict": (dict,)}
    if wanted == "any" or value is None:
        return True
    if wanted in ("int", "float") and isinstance(value, bool):
        return False
    return isinstance(value, kinds[wanted])


def _note(notes: list[str] | None, message: str) -> None:
    if notes is not None:
        notes.append(message)


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


def collect_parameters(spec: dict[str, Parameter], pairs: list[tuple[str, str]] | None = None,
                       yaml_texts: list[str] | None = None, files: list[str] | None = None,
                       notes: list[str] | None = None) -> dict[str, Any]:
    """Merge -f files, -y YAML strings and -p pairs (later wins), checked against the notebook.

    `notes` collects what the user should hear (a value passed with a type other than its default's)."""
    merged: dict[str, tuple[Any, bool]] = {}
    for path in files or []:
        text = Path(path).read_text(encoding="utf-8") if Path(path).is_file() else _missing_file(path)
        merged.update({k: (v, False) for k, v in _mapping(text, f"parameters file {path}").items()})
    for text in yaml_texts or []:
        merged.update({k: (v, False) for k, v in _mapping(text, "-y").items()})
    for name, raw in pairs or []:
        merged[name] = (raw, True)
    check_names(merged, spec)
    return {name: coerce(name, value, spec, notes, typed_text) for name, (value, typed_text) in merged.items()}


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


def check_names(values: dict[str, Any], spec: dict[str, Parameter]) -> None:
    unknown = sorted(set(values) - set(spec))
    if unknown:
        defined = ", ".join(f"{n} ({p.kind}, default {p.default})" for n, p in spec.items()) or \
            "none (tag a cell `parameters` to define some)"
        raise ParameterError(f"the notebook defines no parameter {', '.join(unknown)}; it defines: {defined}")


def parse_sweep(text: str, spec: dict[str, Parameter], notes: list[str] | None = None) -> tuple[str, list[Any]]:
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
    structured = spec[name].kind in ("list", "dict", "any")
    typed = [coerce(name, v if structured else _as_text(v), spec, notes) for v in items]
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
