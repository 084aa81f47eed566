"""The data a dataset or data loader holds, as one content hash.

A `TensorDataset`, a user `Dataset` keeping tensors, arrays or frames, a `Subset` or `ConcatDataset` of
those, a `DataLoader` over any of them, a dataset that reads files (its paths: `root`, `files`,
`samples`...), and a Hugging Face `datasets.Dataset` (by its fingerprint). The tensors and arrays are
hashed with `hashing.hash_value`, the files with `hashing.hash_path` (both cached); nothing is imported.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

_DATASET_CLASSES = {"torch": {"Dataset", "IterableDataset", "DataLoader"},
                    "datasets": {"Dataset", "IterableDataset", "DatasetDict"}}
MAX_DEPTH = 4
MAX_FILES = 5_000
MAX_LIST_ITEMS = 100_000
_SHOWN_PARTS = 4


def is_dataset_value(obj: object) -> bool:
    """A torch Dataset or DataLoader, or a Hugging Face dataset (matched by class name along the MRO)."""
    for cls in type(obj).__mro__:
        names = _DATASET_CLASSES.get(str(getattr(cls, "__module__", "")).partition(".")[0])
        if names is not None and cls.__name__ in names:
            return True
    return False


def hash_dataset(obj: object, base: str | None = None) -> dict[str, Any]:
    """{kind, hash, size, detail, error} for a dataset or loader; `base` resolves relative file paths."""
    from ..hashing import hash_bytes

    kind = "dataloader" if _is(obj, "DataLoader") else "dataset"
    walk = _Walk(base or os.getcwd())
    walk.visit("dataset" if kind == "dataloader" else "", getattr(obj, "dataset", None) if kind == "dataloader" else obj, 0)
    shown = ", ".join(walk.described[:_SHOWN_PARTS]) + (
        f" (+{len(walk.described) - _SHOWN_PARTS} more)" if len(walk.described) > _SHOWN_PARTS else "")
    inner = getattr(obj, "dataset", obj) if kind == "dataloader" else obj
    detail = f"{type(obj).__name__}" + (f" over {type(inner).__name__}" if inner is not obj else "") + (
        f": {shown}" if shown else "")
    if walk.errors:
        return {"kind": kind, "hash": None, "size": walk.size, "detail": detail, "error": "; ".join(walk.errors[:3])}
    if not walk.parts:
        return {"kind": kind, "hash": None, "size": 0, "detail": detail,
                "error": "holds no tensors, arrays or files to hash (it may load its data lazily); name its files "
                         "with --data"}
    text = "".join(f"{label}\0{digest}\n" for label, digest in walk.parts)
    return {"kind": kind, "hash": hash_bytes(b"pykernel-ext dataset v1\n" + text.encode()), "size": walk.size,
            "detail": detail, "error": None}


def _is(obj: object, *names: str) -> bool:
    return any(cls.__name__ in names for cls in type(obj).__mro__
               if str(getattr(cls, "__module__", "")).partition(".")[0] in _DATASET_CLASSES)


@dataclass
class _Walk:
    base: str
    parts: list[tuple[str, str]] = field(default_factory=list)  # (where, digest), in a stable order
    described: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    size: int = 0
    files: int = 0
    _seen: set[int] = field(default_factory=set)

    def visit(self, label: str, obj: Any, depth: int) -> None:
        from ..hashing import is_data_value

        if obj is None or (callable(obj) and not is_dataset_value(obj)) or id(obj) in self._seen:
            return
        self._seen.add(id(obj))
        if is_data_value(obj):
            self._value(label, obj)
        elif isinstance(obj, (str, PurePath)):
            self._maybe_path(label, str(obj))
        elif isinstance(obj, (list, tuple)):
            self._sequence(label, obj, depth)
        elif isinstance(obj, dict):
            for key in sorted(obj, key=str):
                self.visit(f"{label}[{key!r}]", obj[key], depth + 1)
        elif _is(obj, "Dataset") and type(obj).__module__.startswith("datasets") and getattr(obj, "_fingerprint", None):
            self.parts.append((label, f"fingerprint {obj._fingerprint}"))
            self.described.append(f"{label or 'dataset'} fingerprint {obj._fingerprint[:12]}")
        elif depth < MAX_DEPTH and hasattr(obj, "__dict__") and (depth == 0 or is_dataset_value(obj)):
            for key, value in sorted(vars(obj).items()):
                if not key.startswith("__"):
                    self.visit(f"{label}.{key}" if label else key, value, depth + 1)

    def _value(self, label: str, obj: Any) -> None:
        from ..hashing import hash_value

        hashed = hash_value(obj)
        if hashed.hash is None:
            self.errors.append(f"{label}: {hashed.error}")
            return
        self.parts.append((label, hashed.hash))
        self.size += hashed.size or 0
        self.described.append(f"{label} {hashed.detail}".strip())

    def _sequence(self, label: str, items: list | tuple, depth: int) -> None:
        if not items:
            return
        if len(items) > MAX_LIST_ITEMS:
            self.errors.append(f"{label}: {len(items)} items is more than {MAX_LIST_ITEMS} to walk; name its files "
                               "with --data")
            return
        plain_numbers = all(isinstance(i, (int, float, bool)) for i in items)  # indices, labels
        plain_text = all(isinstance(i, str) for i in items) and not any(  # a vocabulary, not file names
            self._names_path(i) for i in items[:16])
        if plain_numbers or plain_text:
            from ..hashing import hash_bytes

            self.parts.append((label, hash_bytes(repr(list(items)).encode())))
            self.described.append(f"{label} [{len(items)} {'numbers' if plain_numbers else 'strings'}]")
            return
        for index, item in enumerate(items):
            self.visit(f"{label}[{index}]", item, depth + 1)
            if self.errors:
                return

    def _names_path(self, text: str) -> str | None:
        if not text.strip() or len(text) > 4096 or "\n" in text:
            return None
        path = text if os.path.isabs(text) else os.path.join(self.base, text)
        return path if os.path.exists(path) else None

    def _maybe_path(self, label: str, text: str) -> None:
        from ..hashing import hash_path
        from .inputs import AUTO_FOLDER_FILE_LIMIT, small_folder

        path = self._names_path(text)
        if path is None:
            return
        if os.path.isdir(path) and not small_folder(path, AUTO_FOLDER_FILE_LIMIT):
            self.errors.append(f"{label}: folder {text} holds over {AUTO_FOLDER_FILE_LIMIT} files; name it with --data "
                               "to hash it")
            return
        self.files += 1
        if self.files > MAX_FILES:
            if not any("files" in e for e in self.errors):
                self.errors.append(f"refers to more than {MAX_FILES} files; name them with --data to hash them")
            return
        try:
            hashed = hash_path(path)
        except OSError as exc:
            self.errors.append(f"{label}: {text}: {exc}")
            return
        self.parts.append((label, hashed.hash))
        self.size += hashed.size
        if self.files <= _SHOWN_PARTS:
            self.described.append(f"{label} {text} ({hashed.kind})")
