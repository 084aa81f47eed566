"""Data a run reads: in-memory values (arrays, tensors, models, frames, bytes) and files or folders."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# A string parameter naming a folder is hashed only when the folder is this small; a bigger one
# (say a dataset root given as "data/") is hashed when the user names it with --data.
AUTO_FOLDER_FILE_LIMIT = 5_000
_NEVER_AUTO = {"", ".", "..", "/", "~"}


def hash_inputs(reads: tuple[str, ...] | list[str], namespace: dict[str, Any], params: dict[str, Any],
                data_paths: list[str]) -> list[dict[str, Any]]:
    """One entry per input: name, source (namespace | --data | param), kind, hash, size, detail, error."""
    from ..hashing import hash_value, is_data_value

    entries: list[dict[str, Any]] = []
    for name in reads:
        value = namespace.get(name)
        if name.startswith("_") or value is None or not is_data_value(value):
            continue
        hashed = hash_value(value).to_dict()
        entries.append({"name": name, "source": "namespace", **hashed})
    named = [(p, "--data") for p in data_paths]
    named += [(v, f"param {k}") for k, v in params.items() if _names_path(v)]
    seen: set[str] = set()
    for path, source in named:
        key = os.path.realpath(path)
        if key in seen:
            continue
        seen.add(key)
        entries.append(_hash_file_input(path, source, auto=source != "--data"))
    return entries


def _names_path(value: Any) -> bool:
    return isinstance(value, str) and value.strip() not in _NEVER_AUTO and len(value) < 4096 and os.path.exists(value)


def _hash_file_input(path: str, source: str, auto: bool) -> dict[str, Any]:
    from ..hashing import hash_path

    entry: dict[str, Any] = {"name": path, "source": source, "path": os.path.abspath(path)}
    if auto and os.path.isdir(path) and not _small_folder(Path(path), AUTO_FOLDER_FILE_LIMIT):
        return {**entry, "kind": "folder", "hash": None,
                "error": f"folder holds over {AUTO_FOLDER_FILE_LIMIT} files; name it with --data to hash it"}
    try:
        return {**entry, **hash_path(path).to_dict(), "error": None}
    except OSError as exc:
        return {**entry, "kind": "path", "hash": None, "error": f"{type(exc).__name__}: {exc}"}


def _small_folder(root: Path, limit: int) -> bool:
    count = 0
    stack = [root]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    count += 1
                    if count > limit:
                        return False
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
        except OSError:
            continue
    return True
