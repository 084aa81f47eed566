"""Data a run reads: in-memory values (arrays, tensors, models, frames, bytes, datasets and data loaders)
and files or folders (named with --data, or by a string parameter).

Relative paths are taken from the run's working folder (the kernel's, which for a notebook run is the
notebook's folder), never from wherever a command happened to be started; a file's entry is named by
its path relative to that folder (absolute when outside it), so the same file read as `data.csv` in one
run and as `/abs/folder/data.csv` in another is the same input.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# A string parameter naming a folder is hashed only when the folder is this small; a bigger one
# (say a dataset root given as "data/") is hashed when the user names it with --data.
AUTO_FOLDER_FILE_LIMIT = 5_000
_NEVER_AUTO = {"", ".", "..", "/", "~"}


def hash_inputs(reads: tuple[str, ...] | list[str], namespace: dict[str, Any], params: dict[str, Any],
                data_paths: list[str], cwd: str | None = None) -> list[dict[str, Any]]:
    """One entry per input: name, source (namespace | --data | param NAME), kind, hash, size, detail, error
    (and path, for files)."""
    from ..hashing import hash_value, is_data_value
    from .datasets import hash_dataset, is_dataset_value

    base = cwd or os.getcwd()
    entries: list[dict[str, Any]] = []
    for name in dict.fromkeys(reads):
        value = namespace.get(name)
        if name.startswith("_") or value is None:
            continue
        if is_data_value(value):
            entries.append({"name": name, "source": "namespace", **hash_value(value).to_dict()})
        elif is_dataset_value(value):
            entries.append({"name": name, "source": "namespace", **hash_dataset(value, base)})
    named = [(p, "--data") for p in data_paths]
    named += [(v, f"param {k}") for k, v in params.items() if names_path(v, base)]
    seen: set[str] = set()
    for path, source in named:
        absolute = resolve(path, base)
        key = os.path.realpath(absolute)
        if key in seen:
            continue
        seen.add(key)
        entries.append(_hash_file_input(absolute, source, base, auto=source != "--data"))
    return entries


def resolve(path: str, base: str) -> str:
    """`path` as an absolute path, relative ones taken from `base`."""
    expanded = os.path.expanduser(path)
    return os.path.normpath(expanded if os.path.isabs(expanded) else os.path.join(base, expanded))


def input_name(absolute: str, base: str) -> str:
    """How a file input is named: relative to the run's folder when inside it, else absolute."""
    try:
        return Path(absolute).relative_to(Path(base).resolve()).as_posix()
    except ValueError:
        try:
            return Path(os.path.realpath(absolute)).relative_to(Path(base).resolve()).as_posix()
        except ValueError:
            return Path(absolute).as_posix()


def names_path(value: Any, base: str) -> bool:
    return (isinstance(value, str) and value.strip() not in _NEVER_AUTO and len(value) < 4096
            and "\n" not in value and os.path.exists(resolve(value, base)))


def _hash_file_input(absolute: str, source: str, base: str, auto: bool) -> dict[str, Any]:
    from ..hashing import hash_path

    entry: dict[str, Any] = {"name": input_name(absolute, base), "source": source, "path": absolute}
    if auto and os.path.isdir(absolute) and not small_folder(absolute, AUTO_FOLDER_FILE_LIMIT):
        return {**entry, "kind": "folder", "hash": None,
                "error": f"folder holds over {AUTO_FOLDER_FILE_LIMIT} files; name it with --data to hash it"}
    try:
        return {**entry, **hash_path(absolute).to_dict(), "error": None}
    except OSError as exc:
        return {**entry, "kind": "path", "hash": None, "error": f"{type(exc).__name__}: {exc}"}


def small_folder(root: str | os.PathLike, limit: int) -> bool:
    """Whether the folder holds at most `limit` entries (counted without reading any file)."""
    count = 0
    stack = [Path(root)]
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
