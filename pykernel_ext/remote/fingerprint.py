"""What counts as "changed" for objects shipped between the notebook and a worker.

Each object a graph shares with the other side gets a fingerprint when it is sent or received; after a cell, an
object whose fingerprint differs was changed in place. Fingerprints are shallow: an object's own state with the
other shared objects it holds as tokens (each of those has a fingerprint of its own), so a model whose weights
changed is told by its tensors, not by re-reading the model. Tensors cost microseconds (torch's version counter,
storage and a byte sample: see `hashing.tensor_state`); arrays are hashed in full (numpy has no version counter).
"""
from __future__ import annotations

import io
import pickle
import types
from typing import Any, Callable, Hashable

from ..hashing import hash_bytes, tensor_state

# Immutable, or rebuilt from their parts each time: never "changed in place", never shared by handle.
_NEVER_TRACKED = (str, bytes, int, float, complex, bool, type(None), tuple, frozenset, range, slice,
                  types.BuiltinFunctionType, types.MethodType, types.CodeType, types.CellType, type(Ellipsis),
                  type(NotImplemented), memoryview, pickle.PickleBuffer)
# Shared by handle but never "changed": a notebook class or function that went to a worker comes back as the
# notebook's own object. (Sent back by value, cloudpickle would re-apply a copy of its methods to the notebook's
# class, with a snapshot of the notebook's globals instead of the live ones.)
_CODE = (type, types.FunctionType, types.ModuleType)
_IMMUTABLE_NAMES = {("torch", "dtype"), ("torch", "device"), ("torch", "layout"), ("torch", "memory_format"),
                    ("numpy", "dtype")}


def is_tensor(obj: Any) -> bool:
    torch = _torch()
    return torch is not None and isinstance(obj, torch.Tensor)


def is_ndarray(obj: Any) -> bool:
    cls = type(obj)
    return any(c.__name__ == "ndarray" and c.__module__ == "numpy" for c in cls.__mro__)


def trackable(obj: Any, weak_only: bool) -> bool:
    """Whether `obj` keeps its identity across transfers (and so can be changed in place).

    `weak_only` (remote sessions, whose shared objects live across cells): only objects that can be referenced
    weakly, so that sharing never keeps alive an object both sides have dropped. Lists, dicts and sets then travel
    by value, and the objects they hold (tensors, modules) keep their identity.
    """
    if isinstance(obj, _NEVER_TRACKED) or _is_storage(obj):
        return False
    cls = type(obj)
    if (cls.__module__.partition(".")[0], cls.__name__) in _IMMUTABLE_NAMES:
        return False
    if weak_only:
        return cls.__weakrefoffset__ != 0
    return True


def fingerprint(obj: Any, token_of: Callable[[Any], Hashable | None]) -> Hashable:
    """A value that changes when `obj` is changed in place. `token_of(x)` names the shared objects `obj` holds."""
    if isinstance(obj, _CODE):
        return ("code",)
    if is_tensor(obj):
        return _tensor_fingerprint(obj)
    if is_ndarray(obj):
        return _array_fingerprint(obj)
    return _shallow_fingerprint(obj, token_of)


def tensor_geometry(t: Any) -> tuple:
    """Where a tensor's data lives: same geometry after a cell means it was changed in place (not rebound)."""
    try:
        return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), str(t.dtype),
                str(t.device))
    except Exception:  # noqa: BLE001 - tensors without storage (sparse, meta)
        return (id(t),)


def _tensor_fingerprint(t: Any) -> Hashable:
    grad = t.grad if t.is_leaf else None
    return ("tensor", tensor_geometry(t), tensor_state(t), t.requires_grad, id(grad) if grad is not None else None)


def _array_fingerprint(a: Any) -> Hashable:
    geometry = (a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str)
    if a.dtype.hasobject:
        return ("array", geometry, id(a))  # holds Python objects: each is tracked on its own
    data = a if a.flags.c_contiguous else a.copy()
    return ("array", geometry, hash_bytes(memoryview(data.reshape(-1).view("u1"))))


class _ShallowPickler(pickle.Pickler):
    def __init__(self, file: Any, root: Any, token_of: Callable[[Any], Hashable | None]) -> None:
        super().__init__(file, protocol=5, buffer_callback=self._buffer)
        self._root = root
        self._token_of = token_of
        self.buffer_digests: list[str] = []

    def persistent_id(self, obj: Any) -> Any:
        if obj is self._root or isinstance(obj, (str, int, float, bool, type(None))):
            return None
        if _is_storage(obj):
            return ("storage", id(obj))  # the tensors holding it are fingerprinted on their own
        return self._token_of(obj)

    def _buffer(self, buffer: pickle.PickleBuffer) -> bool:
        self.buffer_digests.append(hash_bytes(buffer.raw()))
        return False

    def reducer_override(self, obj: Any) -> Any:
        if obj is _function_token:
            return NotImplemented
        if isinstance(obj, (types.FunctionType, type)):
            # A function or class held as state (a notebook class, a lambda): its identity is what matters here,
            # and plain pickle could not name one defined in a notebook.
            return (_function_token, (obj.__module__, obj.__qualname__, id(obj)))
        return NotImplemented


def _function_token(*_: Any) -> None:  # pragma: no cover - only named in fingerprints, never unpickled
    return None


def _shallow_fingerprint(obj: Any, token_of: Callable[[Any], Hashable | None]) -> Hashable:
    out = io.BytesIO()
    pickler = _ShallowPickler(out, obj, token_of)
    try:
        pickler.dump(obj)
    except Exception:  # noqa: BLE001 - what cannot be pickled cannot travel either: identity is all we can tell
        return ("unpicklable", id(obj))
    return ("object", hash_bytes(out.getbuffer()), tuple(pickler.buffer_digests))


def _is_storage(obj: Any) -> bool:
    torch = _torch()
    return torch is not None and isinstance(obj, (torch.storage.TypedStorage, torch.UntypedStorage))


def _torch() -> Any:
    import sys

    return sys.modules.get("torch")


class _DeepPickler(_ShallowPickler):
    """Pickles a whole value, tensors as tokens of their state (never their data), arrays by content digest."""

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, (str, int, float, bool, type(None))):
            return None
        if _is_storage(obj):
            return ("storage", obj._cdata if hasattr(obj, "_cdata") else id(obj))
        if is_tensor(obj):
            return ("tensor", tensor_geometry(obj), obj._version, obj.requires_grad)
        return None


def deep_fingerprint(value: Any) -> Hashable:
    """A value that changes when anything reachable from `value` changes (in place or rebound), cheap enough
    to take after every session cell: tensors by torch's version counter and where their data lives (not read;
    `.data` writes to a tensor that stays in the session are not seen), arrays by content."""
    if isinstance(value, (str, int, float, bool, type(None), bytes)):
        return ("plain", type(value).__name__, value)
    if isinstance(value, _CODE):
        return ("code", id(value))
    out = io.BytesIO()
    pickler = _DeepPickler(out, None, lambda _: None)
    try:
        pickler.dump(value)
    except Exception:  # noqa: BLE001 - cannot travel; identity is all there is to compare
        return ("unpicklable", id(value))
    return ("deep", hash_bytes(out.getbuffer()), tuple(pickler.buffer_digests))
