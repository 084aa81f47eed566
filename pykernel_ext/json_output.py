"""JSON that every parser accepts: a diverged run's NaN or infinite metric becomes null.

Python's `json` writes `NaN` and `Infinity` by default, which is not JSON: `JSON.parse` refuses it and jq
turns it into 1.797e308, exactly when a user inspects a run that blew up. The CLI's `--json` and the
server both send null instead (README, "Machine-readable output").
"""
from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """`value` with every NaN or infinite float (in dicts, lists and tuples) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def dumps(value: Any, **options: Any) -> str:
    """Strict JSON text (`allow_nan=False`); objects json does not know are written as their str()."""
    options.setdefault("default", str)
    try:
        return json.dumps(value, allow_nan=False, **options)
    except ValueError:  # a non-finite float somewhere: rare, so only then walk the whole value
        return json.dumps(finite(value), allow_nan=False, **options)
