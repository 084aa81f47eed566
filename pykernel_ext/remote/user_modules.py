"""The user's own modules: files imported by the notebook that are not part of the Python installation (a
`mylib.py` beside the notebook, a project folder on sys.path). Workers of a separately started cluster cannot
import them, so their functions and classes travel with the cell, by value. Which modules those are is decided
once, by the code closure (`capture.closure.user_module_file`), for the record and for shipping alike."""
from __future__ import annotations

import sys

from ..capture.closure import user_module_file


def is_user_module(module: object) -> bool:
    """Whether `module` is the user's own: loaded from a .py file outside the Python installation."""
    if getattr(module, "__name__", "") == "__main__":
        return False
    try:
        return user_module_file(module) is not None  # type: ignore[arg-type]
    except (TypeError, ValueError, OSError):
        return False


_cache: dict[int, list[str]] = {}


def user_module_names() -> list[str]:
    """Top-level user modules loaded now (checked again only when the set of loaded modules changes)."""
    loaded = len(sys.modules)
    cached = _cache.get(loaded)
    if cached is not None and all(name in sys.modules for name in cached):
        return cached
    names = sorted({name.partition(".")[0] for name, module in list(sys.modules.items())
                    if module is not None and is_user_module(module)})
    names = [n for n in names if n in sys.modules]
    _cache.clear()
    _cache[loaded] = names
    return names
