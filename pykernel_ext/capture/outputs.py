"""What a run produced: the names it assigned and the artifact files it matched."""
from __future__ import annotations

import glob
import os
import types
from pathlib import Path
from typing import Any

from .params import MISSING, json_like

# Hashing a produced model or array lets `runs diff` and `reproduce` compare results; beyond this
# size the hash would cost more than users expect after a cell ends.
OUTPUT_HASH_LIMIT_BYTES = 512 * 1024 * 1024


def describe_outputs(writes: tuple[str, ...] | list[str], namespace: dict[str, Any]) -> list[dict[str, Any]]:
    """For each assigned name still in the namespace: its type and a value or content hash."""
    from ..hashing import hash_value, is_data_value

    described = []
    for name in writes:
        if name.startswith("_") or name not in namespace:
            continue
        value = namespace[name]
        if isinstance(value, types.ModuleType):
            continue
        entry: dict[str, Any] = {"name": name, "type": _type_name(value)}
        plain = json_like(value)
        if plain is not MISSING:
            entry["value"] = plain
        elif is_data_value(value):
            size = _approx_nbytes(value)
            if size is not None and size > OUTPUT_HASH_LIMIT_BYTES:
                entry["error"] = f"not hashed: {size} bytes is over {OUTPUT_HASH_LIMIT_BYTES}"
            else:
                entry.update({k: v for k, v in hash_value(value).to_dict().items() if k != "kind"})
        described.append(entry)
    return described


def match_artifacts(patterns: list[str]) -> list[Path]:
    """Files matching the --artifacts globs (recursive `**` allowed), in a stable order."""
    found: dict[str, Path] = {}
    for pattern in patterns:
        for match in sorted(glob.glob(os.path.expanduser(pattern), recursive=True)):
            if os.path.isfile(match):
                found.setdefault(os.path.realpath(match), Path(match))
    return list(found.values())


def _type_name(value: Any) -> str:
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"


def _approx_nbytes(value: Any) -> int | None:
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if hasattr(value, "element_size") and hasattr(value, "nelement"):
        return value.element_size() * value.nelement()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    return None
