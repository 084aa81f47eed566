"""Notebook functions read the globals of the namespace they live in, wherever they arrive.

cloudpickle gives functions it pickles by value a globals dict of their own (a copy of what they read). A
function or class defined in the notebook and run in a session must read the session's namespace, and one defined
in a remote cell must read the notebook's once it comes home, as it would had it been defined there.
"""
from __future__ import annotations

import linecache
import types
from typing import Any

from ..capture.closure import class_functions

_CLOUDPICKLE_FILENAME = "<dynamic-code>"  # what cloudpickle names the code of every function it pickles by value


def adopt(values: dict[str, Any], namespace: dict[str, Any]) -> dict[str, Any]:
    """`values` with their notebook functions rebound to `namespace` (and notebook classes' methods, in place)."""
    adopted = {}
    for name, value in values.items():
        if _notebook_function(value) and value.__globals__ is not namespace:
            value = rebind(value, namespace)
        elif isinstance(value, type) and value.__module__ == "__main__":
            for attr, member in list(vars(value).items()):
                if _notebook_function(member) and member.__globals__ is not namespace:
                    setattr(value, attr, rebind(member, namespace))
        adopted[name] = value
    return adopted


def rebind(func: types.FunctionType, namespace: dict[str, Any]) -> types.FunctionType:
    """A copy of `func` whose globals are `namespace` (what it read is added where `namespace` lacks it)."""
    for key, value in func.__globals__.items():
        namespace.setdefault(key, value)
    rebound = types.FunctionType(func.__code__, namespace, func.__name__, func.__defaults__, func.__closure__)
    rebound.__kwdefaults__ = func.__kwdefaults__
    rebound.__dict__.update(func.__dict__)
    rebound.__qualname__ = func.__qualname__
    rebound.__annotations__ = func.__annotations__
    rebound.__doc__ = func.__doc__
    rebound.__module__ = func.__module__
    return rebound


def _notebook_function(value: Any) -> bool:
    return isinstance(value, types.FunctionType) and value.__module__ == "__main__"


def give_source(values: dict[str, Any], filename: str, text: str) -> None:
    """Functions and classes a remote cell defined come home through cloudpickle, which names their code
    `<dynamic-code>`: point it at the cell instead, registered in linecache under `filename` as IPython
    registers its cells (`text` as the worker compiled it, so line numbers match), so that their source is
    found like that of any notebook definition (a later run records it in its code closure)."""
    lines = text.splitlines(keepends=True)
    renamed = False
    for value in values.values():
        functions = [value] if _notebook_function(value) else (
            class_functions(value) if isinstance(value, type) and value.__module__ == "__main__" else [])
        for func in functions:
            if func.__code__.co_filename == _CLOUDPICKLE_FILENAME and _defined_at(func.__code__, lines):
                func.__code__ = _renamed(func.__code__, filename)
                renamed = True
    if renamed:
        # mtime None: linecache.checkcache keeps it, as it keeps IPython's cells
        linecache.cache[filename] = (len(text), None, lines, filename)


def _defined_at(code: types.CodeType, lines: list[str]) -> bool:
    """Whether the cell defines `code` where it says: a dataclass's generated `__init__` (compiled from a
    string) also comes home as `<dynamic-code>`, and must not be pointed at unrelated lines of the cell."""
    if not 0 < code.co_firstlineno <= len(lines):
        return False
    line = lines[code.co_firstlineno - 1].lstrip()
    if code.co_name == "<lambda>":
        return "lambda" in line
    return line.startswith("@") or line.split("(")[0].split() in (["def", code.co_name], ["async", "def", code.co_name])


def _renamed(code: types.CodeType, filename: str) -> types.CodeType:
    """`code` and the code objects nested in it (inner functions, comprehensions) with `filename`."""
    consts = tuple(_renamed(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)
