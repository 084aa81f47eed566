"""Notebook functions read the globals of the namespace they live in, wherever they arrive.

cloudpickle gives functions it pickles by value a globals dict of their own (a copy of what they read). A
function or class defined in the notebook and run in a session must read the session's namespace, and one defined
in a remote cell must read the notebook's once it comes home, as it would had it been defined there.
"""
from __future__ import annotations

import types
from typing import Any


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
