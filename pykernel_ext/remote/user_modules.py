"""The user's own modules: files imported by the notebook that are not part of the Python installation (a
`mylib.py` beside the notebook, a project folder on sys.path). Workers of a separately started cluster cannot
import them, so their functions and classes travel with the cell, by value."""
from __future__ import annotations

import os
import site
import sys
import sysconfig
from functools import lru_cache

_OURS = ("pykernel_ext",)


@lru_cache(maxsize=1)
def _installation_roots() -> tuple[str, ...]:
    paths = set(sysconfig.get_paths().values()) | {sys.prefix, sys.base_prefix, sys.exec_prefix}
    try:
        paths |= set(site.getsitepackages()) | {site.getusersitepackages()}
    except AttributeError:  # a virtualenv's old site module
        pass
    return tuple(sorted({os.path.realpath(p) + os.sep for p in paths if p}))


def is_user_module(module: object) -> bool:
    """Whether `module` is the user's own: loaded from a .py file outside the Python installation."""
    name = getattr(module, "__name__", "") or ""
    if name == "__main__" or name.partition(".")[0] in _OURS:
        return False
    path = getattr(module, "__file__", None)
    if not path or not str(path).endswith(".py") or not os.path.isabs(path):
        return False  # built-in, extension or namespace modules; torch.ops names a relative pseudo-file
    real = os.path.realpath(path)
    return not real.startswith(_installation_roots())


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
