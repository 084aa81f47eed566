"""Parameters of a run: the parameter-like values its code reads, and those named explicitly.

One rule for every entry point: a cell or block run records the parameters its code (with its closure)
reads, plus those named with `--params` or `params=`; a notebook run and an exported script's run record
all the notebook's parameters, as the parent of their cell runs.

A parameter is a JSON-like value (numbers, strings, bools, None, small lists and dicts). A structured
config (a dataclass, a pydantic or attrs model, a namespace, an OmegaConf config) is recorded field by
field under dotted names (`cfg.lr`, `cfg.model.hidden`), never as its repr; data (arrays, tensors,
frames, datasets) is hashed as data instead.
"""
from __future__ import annotations

import dataclasses
import enum
import json
import math
import types
from pathlib import PurePath
from typing import Any

_MAX_ITEMS = 64
_MAX_DEPTH = 3
_MAX_STRING = 2_000
_MAX_JSON = 8_192
_MAX_CONFIG_DEPTH = 6
_MAX_CONFIG_FIELDS = 256

MISSING = object()  # json_like() result for values that are not parameter-like


def json_like(value: Any) -> Any:
    """`value` as plain JSON data when it is a parameter-sized JSON-like value, else `MISSING`.

    Numbers, strings, bools, None, and small lists/tuples/dicts of those. numpy scalars count as numbers,
    paths as their text, enum members as their value.
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


def _convert(value: Any, depth: int) -> Any:
    if value is None or (isinstance(value, (bool, int, str)) and not isinstance(value, enum.Enum)):
        if isinstance(value, str) and len(value) > _MAX_STRING:
            return MISSING
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return _convert(value.value, depth)
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
    """The parameters among `names` in `namespace` (private names skipped): JSON-like values as they
    are, structured configs flattened to dotted names."""
    found: dict[str, Any] = {}
    for name in names:
        if name.startswith("_") or name not in namespace:
            continue
        found.update(parameter_values(name, namespace[name]))
    return found


def parameter_values(name: str, value: Any) -> dict[str, Any]:
    """`{name: value}` for a JSON-like value, the flattened fields of a config, else nothing."""
    if isinstance(value, (types.ModuleType, types.FunctionType, type)):
        return {}
    plain = json_like(value)
    if plain is not MISSING:
        return {name: plain}
    fields = config_fields(value)
    if fields is None and isinstance(value, dict) and all(isinstance(k, str) for k in value):
        fields = value  # a dict config too big or deep for one value: field by field
    if fields is None:
        return {}
    flat: dict[str, Any] = {}
    _flatten(name, fields, flat, 1)
    return flat


def _flatten(prefix: str, fields: dict[str, Any], out: dict[str, Any], depth: int) -> None:
    for key, value in fields.items():
        if len(out) >= _MAX_CONFIG_FIELDS:
            return
        name = f"{prefix}.{key}"
        plain = json_like(value)
        if plain is not MISSING:
            out[name] = plain
            continue
        inner = config_fields(value)
        if inner is None and isinstance(value, dict) and all(isinstance(k, str) for k in value):
            inner = value
        if inner is not None and depth < _MAX_CONFIG_DEPTH:
            _flatten(name, inner, out, depth + 1)


def config_fields(value: Any) -> dict[str, Any] | None:
    """The fields of a structured config object, or None when `value` is not one."""
    cls = type(value)
    try:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        model_fields = getattr(cls, "model_fields", None)  # pydantic 2
        if isinstance(model_fields, dict) and callable(getattr(value, "model_dump", None)):
            return {name: getattr(value, name) for name in model_fields}
        legacy_fields = getattr(cls, "__fields__", None)  # pydantic 1
        if isinstance(legacy_fields, dict) and callable(getattr(value, "dict", None)):
            return {name: getattr(value, name) for name in legacy_fields}
        attrs_fields = getattr(cls, "__attrs_attrs__", None)
        if attrs_fields is not None:
            return {a.name: getattr(value, a.name) for a in attrs_fields}
        if isinstance(value, types.SimpleNamespace) or (cls.__name__ == "Namespace" and cls.__module__ == "argparse"):
            return dict(vars(value))
        if cls.__module__.startswith("omegaconf"):
            from omegaconf import OmegaConf

            container = OmegaConf.to_container(value, resolve=True)
            return container if isinstance(container, dict) else None
    except Exception:  # noqa: BLE001 - a config whose fields cannot be read is not recorded as one
        return None
    return None


def explicit_params(names: list[str], namespace: dict[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """What `--params a,b` records: (parameters, names holding data to hash instead, names not defined).

    A value neither JSON-like, nor a config, nor data is recorded as its repr, clipped: the user asked."""
    from .datasets import is_dataset_value
    from ..hashing import is_data_value

    params: dict[str, Any] = {}
    data: list[str] = []
    missing: list[str] = []
    for name in names:
        if name not in namespace:
            missing.append(name)
            continue
        value = namespace[name]
        if is_data_value(value) or is_dataset_value(value):
            data.append(name)
            continue
        found = parameter_values(name, value)
        params.update(found or {name: repr(value)[:200]})
    return params, data, missing
