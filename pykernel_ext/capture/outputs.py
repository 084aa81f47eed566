"""What a run produced: the names it assigned, and the artifact files it wrote (a file its --artifacts
globs match but that did not change while it ran is another run's, and is not recorded as this one's)."""
from __future__ import annotations

import glob
import os
import types
from dataclasses import dataclass
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


def match_artifacts(patterns: list[str], cwd: str | None = None) -> list[Path]:
    """Files matching the --artifacts globs (recursive `**` allowed; relative to `cwd`), in a stable order."""
    found: dict[str, Path] = {}
    for pattern in patterns:
        for match in _glob(pattern, cwd):
            found.setdefault(os.path.realpath(match), Path(match))
    return list(found.values())


def _glob(pattern: str, cwd: str | None) -> list[str]:
    expanded = os.path.expanduser(pattern)
    if cwd and not os.path.isabs(expanded):
        matches = glob.glob(expanded, root_dir=cwd, recursive=True)
        return [os.path.join(cwd, m) for m in sorted(matches) if os.path.isfile(os.path.join(cwd, m))]
    return [m for m in sorted(glob.glob(expanded, recursive=True)) if os.path.isfile(m)]


FileState = tuple[int, int, int]  # size, mtime_ns, inode


@dataclass
class ArtifactSelection:
    """The files a run's --artifacts globs match at its end, split by whether the run wrote them."""

    written: list[Path]  # created or changed while the run ran: this run's artifacts
    unchanged: list[Path]  # matched, but as they were before the run started: another run's
    unmatched: list[str]  # globs that matched no file at all


def snapshot_artifacts(patterns: list[str], cwd: str | None = None) -> dict[str, FileState]:
    """The state of the files the globs match before a run starts (a run records only what it wrote)."""
    states: dict[str, FileState] = {}
    for path in match_artifacts(patterns, cwd):
        state = _state(path)
        if state is not None:
            states[os.path.realpath(path)] = state
    return states


def select_artifacts(patterns: list[str], before: dict[str, FileState], cwd: str | None = None) -> ArtifactSelection:
    written, unchanged = [], []
    for path in match_artifacts(patterns, cwd):
        previous = before.get(os.path.realpath(path))
        (unchanged if previous is not None and previous == _state(path) else written).append(path)
    unmatched = [p for p in patterns if not _glob(p, cwd)]
    return ArtifactSelection(written, unchanged, unmatched)


def _state(path: Path) -> FileState | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


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
