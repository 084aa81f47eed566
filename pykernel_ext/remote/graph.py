"""One object graph between the notebook and a worker, with identity kept.

Everything a cell reads travels as ONE pickle (cloudpickle, protocol 5): an optimizer and the model whose
parameters it holds, a view and its base, two names for one list arrive as they left. Big buffers (arrays, torch
storages, shared by every tensor viewing them) travel out of band, never copied into the pickle.

A `Mirror` remembers, on each side, the objects the two sides share, under a handle both agree on (the transfer
that first carried the object and its index in that pickle's memo). Later graphs name a shared object by its
handle: as a plain reference when it did not change since the last transfer, or with its new state, which the
receiver writes INTO its own object. That is how a remote cell's in-place changes (`opt.step()`, `bag.append`)
reach the notebook's objects, so that everything else holding them (the optimizer, a scheduler, another name)
sees the change, as it would have had the cell run locally.
"""
from __future__ import annotations

import collections
import copyreg
import io
import pickle
import sys
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable

from .torch_fixups import after_unpickle
from .fingerprint import fingerprint, is_ndarray, is_tensor, tensor_geometry, trackable

Handle = tuple  # (transfer id, memo index): the same on both sides

_PLAIN = frozenset({str, int, float, bool, type(None), bytes, complex, tuple})
_NEWOBJ = (copyreg.__newobj__, copyreg.__newobj_ex__)


class StaleHandles(LookupError):
    """The receiver no longer holds objects the sender referred to (the other side dropped them)."""

    def __init__(self, handles: list[Handle]) -> None:
        super().__init__(f"{len(handles)} shared object(s) are gone on the receiving side")
        self.handles = handles


@dataclass
class Packed:
    """A pickled graph: its header, its out-of-band buffers, and what the receiver must remember of it."""

    header: bytes
    buffers: list[Any] = field(default_factory=list)
    transfer: str = ""  # the sender's transfer id ("" when nothing is remembered)
    tracked: list[int] = field(default_factory=list)  # memo indices of the objects both sides now share

    @property
    def nbytes(self) -> int:
        return len(self.header) + sum(memoryview(b).nbytes for b in self.buffers)

    def __reduce__(self) -> tuple:
        # PickleBuffers: Dask (protocol 5 with a buffer callback) sends them as frames of their own, uncopied.
        return (Packed, (self.header, [pickle.PickleBuffer(b) for b in self.buffers], self.transfer, self.tracked))


class Mirror:
    """The objects one side shares with the other, by handle, and their fingerprints at the last transfer.

    `weak_only` (sessions): only weakly referenceable objects are shared, and held weakly, so a mirror never keeps
    alive what the notebook or the session dropped. Otherwise (one remote cell) every mutable object is shared and
    held until the cell's results are applied. `track_changes`: fingerprint shared objects, so that changed ones
    are sent with their new state and unchanged ones as references.
    """

    def __init__(self, side: str, *, weak_only: bool, track_changes: bool) -> None:
        self.side = side
        self.weak_only = weak_only
        self.track_changes = track_changes
        self._objects: dict[Handle, Any] = {}  # handle -> weakref.ref, or the object itself
        self._handles: dict[int, Handle] = {}  # id(object) -> handle
        self._fingerprints: dict[Handle, Hashable] = {}
        self._geometry: dict[Handle, tuple] = {}  # tensors: where their data lived at the last transfer
        self._transfers = 0
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._objects)

    def next_transfer(self) -> str:
        with self._lock:
            self._transfers += 1
            return f"{self.side}{self._transfers}"

    # ---- lookup --------------------------------------------------------------------------------

    def handle_of(self, obj: Any) -> Handle | None:
        handle = self._handles.get(id(obj))
        if handle is None or self._resolve(handle) is not obj:
            return None
        return handle

    def get(self, handle: Handle) -> Any:
        obj = self._resolve(handle)
        if obj is _GONE:
            raise StaleHandles([handle])
        return obj

    def _resolve(self, handle: Handle) -> Any:
        entry = self._objects.get(handle, _GONE)
        if isinstance(entry, weakref.ref):
            obj = entry()
            return _GONE if obj is None else obj
        return entry

    def items(self) -> list[tuple[Handle, Any]]:
        with self._lock:
            handles = list(self._objects)
        found = []
        for handle in handles:
            obj = self._resolve(handle)
            if obj is not _GONE:
                found.append((handle, obj))
        return found

    def token(self, obj: Any) -> Hashable | None:
        """How a fingerprint names a shared object held by another (its own fingerprint covers its changes)."""
        handle = self.handle_of(obj)
        return None if handle is None else ("shared", handle)

    # ---- remembering ---------------------------------------------------------------------------

    def register(self, handle: Handle, obj: Any) -> None:
        with self._lock:
            old = self._handles.get(id(obj))
            if old is not None and self._resolve(old) is obj:
                return  # already shared under an older handle
            if self.weak_only:
                try:
                    ref = weakref.ref(obj, self._forget_callback(handle, id(obj)))
                except TypeError:
                    return
                self._objects[handle] = ref
            else:
                self._objects[handle] = obj
            self._handles[id(obj)] = handle

    def replace(self, handle: Handle, new: Any) -> None:
        with self._lock:
            old = self._resolve(handle)
            if old is not _GONE and self._handles.get(id(old)) == handle:
                del self._handles[id(old)]
            self._objects.pop(handle, None)
        self.register(handle, new)

    def forget(self, handles: Iterable[Handle]) -> None:
        with self._lock:
            for handle in handles:
                obj = self._resolve(handle)
                self._objects.pop(handle, None)
                self._fingerprints.pop(handle, None)
                self._geometry.pop(handle, None)
                if obj is not _GONE and self._handles.get(id(obj)) == handle:
                    del self._handles[id(obj)]

    def _forget_callback(self, handle: Handle, key: int) -> Any:
        def forget(_: Any) -> None:
            with self._lock:
                if self._handles.get(key) == handle:
                    del self._handles[key]
                self._objects.pop(handle, None)
                self._fingerprints.pop(handle, None)
                self._geometry.pop(handle, None)

        return forget

    # ---- changes -------------------------------------------------------------------------------

    def snapshot(self, handles: Iterable[Handle] | None = None) -> None:
        """Record the current fingerprints (of `handles`, or of every shared object): the state both sides share."""
        if not self.track_changes:
            return
        wanted = self.items() if handles is None else [(h, self._resolve(h)) for h in handles]
        for handle, obj in wanted:
            if obj is _GONE:
                continue
            self._fingerprints[handle] = fingerprint(obj, self.token)
            if is_tensor(obj):
                self._geometry[handle] = tensor_geometry(obj)

    def changed(self, handle: Handle, obj: Any) -> bool:
        if not self.track_changes:
            return False
        known = self._fingerprints.get(handle)
        return known is None or fingerprint(obj, self.token) != known

    def changed_objects(self) -> list[tuple[Handle, Any]]:
        """Shared objects whose fingerprint differs from the last transfer's: changed in place since."""
        return [(h, obj) for h, obj in self.items() if self.changed(h, obj)]

    def geometry(self, handle: Handle) -> tuple | None:
        return self._geometry.get(handle)


class _Gone:
    def __repr__(self) -> str:
        return "<gone>"


_GONE = _Gone()


# ---- packing ------------------------------------------------------------------------------------


def _pickler_base() -> type:
    import cloudpickle

    return cloudpickle.Pickler


class _Counter(io.RawIOBase):
    """A file that only counts what is written (measuring a graph without keeping its bytes)."""

    def __init__(self) -> None:
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        self.size += size
        return size


def _make_pickler(file: Any, mirror: Mirror | None, measure: bool, explore: bool = False) -> Any:
    base = _pickler_base()

    class GraphPickler(base):  # type: ignore[misc, valid-type]
        """cloudpickle, plus: torch storages out of band and shared once; shared objects by handle."""

        def __init__(self) -> None:
            self.buffers: list[Any] = []
            self.buffer_bytes = 0
            super().__init__(file, protocol=5, buffer_callback=self._buffer)
            self.mirror = mirror
            self.measure = measure
            self.storages: dict[int, int] = {}
            self.emitted: set[Handle] = set()
            self.updated: list[tuple[Handle, Any]] = []
            self.by_value: set[int] = set()
            self.temporaries: list[Any] = []  # alive until the dump ends (their ids must stay unique)
            self.explore = explore  # walk into shared objects too, collecting the changed ones
            self.found: dict[Handle, Any] = {}

        def _buffer(self, buffer: pickle.PickleBuffer) -> bool:
            raw = buffer.raw()
            self.buffer_bytes += raw.nbytes
            if not self.measure:
                self.buffers.append(raw)
            return False

        def persistent_id(self, obj: Any) -> Any:  # noqa: C901 - one dispatch, in order of frequency
            if type(obj) in _PLAIN:
                return None
            if _is_storage(obj):
                return self._storage(obj)
            if self.mirror is None or id(obj) in self.by_value:
                return None
            handle = self.mirror.handle_of(obj)
            if handle is None:
                return None
            if self.explore:
                if handle not in self.emitted:
                    self.emitted.add(handle)
                    if self.mirror.changed(handle, obj):
                        self.found[handle] = obj
                return None
            if handle in self.emitted:
                return ("ref", handle)
            self.emitted.add(handle)
            if not self.mirror.changed(handle, obj):
                return ("ref", handle)
            self.updated.append((handle, obj))
            return self._update(handle, obj)

        def _update(self, handle: Handle, obj: Any) -> tuple:
            if is_tensor(obj):
                plain = obj.detach()
                self.temporaries.append(plain)
                grad = obj.grad if obj.is_leaf else None
                in_place = self.mirror.geometry(handle) == tensor_geometry(obj)
                return ("update", handle, "tensor", plain, obj.requires_grad, grad, in_place)
            kind = _update_kind(obj)
            if kind != "state":
                self.by_value.add(id(obj))  # the object itself, by value, inside its update
                return ("update", handle, kind, obj)
            reduced = obj.__reduce_ex__(5)
            state = reduced[2] if len(reduced) > 2 else None
            listitems = list(reduced[3]) if len(reduced) > 3 and reduced[3] is not None else None
            dictitems = list(reduced[4]) if len(reduced) > 4 and reduced[4] is not None else None
            self.temporaries.append((state, listitems, dictitems))
            return ("update", handle, "state", type(obj), state, listitems, dictitems)

        def _storage(self, storage: Any) -> tuple:
            import torch

            if isinstance(storage, torch.storage.TypedStorage):
                untyped, dtype = storage._untyped_storage, storage.dtype
            else:
                untyped, dtype = storage, None
            device = untyped.device.type
            key = untyped._cdata
            if key in self.storages:
                return ("s", self.storages[key], dtype, device, None)
            self.storages[key] = index = len(self.storages)
            nbytes = untyped.nbytes()
            if self.measure or not nbytes:
                self.buffer_bytes += nbytes
                return ("s", index, dtype, device, nbytes if self.measure else b"")
            host = untyped if device == "cpu" else untyped.cpu()
            data = torch.empty(0, dtype=torch.uint8).set_(host).numpy()
            self.temporaries.append(data)
            return ("s", index, dtype, device, pickle.PickleBuffer(data))

    return GraphPickler()


def _update_kind(obj: Any) -> str:
    """How a changed shared object's new state is written into the receiver's object."""
    if is_ndarray(obj):
        return "array"
    for kind in (set, bytearray, collections.deque):
        if isinstance(obj, kind):
            return kind.__name__
    try:
        reduced = obj.__reduce_ex__(5)
    except Exception:  # noqa: BLE001 - the by-value pickling will report why
        return "replace"
    if not isinstance(reduced, tuple) or (len(reduced) > 5 and reduced[5] is not None):
        return "replace"
    func, args = reduced[0], reduced[1]
    if func in _NEWOBJ and args and args[0] is type(obj):
        return "state"
    if func is type(obj) and isinstance(obj, (list, dict)):
        return "state"  # OrderedDict, defaultdict, Counter: rebuilt from their items
    return "replace"


def pack(root: Any, mirror: Mirror | None = None) -> Packed:
    """Pickle `root` as one graph; with a mirror, shared objects travel as handles and new ones become shared."""
    out = io.BytesIO()
    with user_modules_by_value():
        pickler = _make_pickler(out, mirror, measure=False)
        pickler.dump(root)
    packed = Packed(out.getvalue(), pickler.buffers)
    if mirror is not None:
        packed.transfer = mirror.next_transfer()
        temporary = {id(t) for t in pickler.temporaries}
        new: list[Handle] = []
        for index, obj in sorted(pickler.memo.copy().values(), key=lambda entry: entry[0]):
            if id(obj) in temporary or not trackable(obj, mirror.weak_only) or mirror.handle_of(obj) is not None:
                continue
            handle = (packed.transfer, index)
            mirror.register(handle, obj)
            if mirror.handle_of(obj) == handle:
                packed.tracked.append(index)
                new.append(handle)
        mirror.snapshot(new + [h for h, _ in pickler.updated])
    return packed


def measure(root: Any, mirror: Mirror | None = None) -> int:
    """Bytes `root` would take as a graph (shared, unchanged objects cost nothing); nothing is copied."""
    counter = _Counter()
    with user_modules_by_value():
        pickler = _make_pickler(counter, mirror, measure=True)
        pickler.dump(root)
    return counter.size + pickler.buffer_bytes


def changed_within(root: Any, mirror: Mirror) -> list[Any]:
    """The shared objects reachable from `root` that changed since the last transfer (a reference to an
    unchanged model would not carry its trained parameters: they must travel as updates of their own)."""
    with user_modules_by_value():
        pickler = _make_pickler(_Counter(), mirror, measure=True, explore=True)
        pickler.dump(root)
    return list(pickler.found.values())


class _GraphUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, buffers: list[Any], mirror: Mirror | None, cuda: bool) -> None:
        super().__init__(file, buffers=buffers)
        self.mirror = mirror
        self.cuda = cuda
        self.storages: dict[int, Any] = {}
        self.updated: list[Handle] = []
        self.replaced: list[tuple[Any, Any]] = []  # (old, new): shared objects that could not be updated in place
        self.stale: list[Handle] = []

    def persistent_load(self, pid: Any) -> Any:
        tag = pid[0]
        if tag == "s":
            return self._storage(*pid[1:])
        if self.mirror is None:
            raise pickle.UnpicklingError("a graph refers to shared objects, but no mirror was given")
        if tag == "ref":
            try:
                return self.mirror.get(pid[1])
            except StaleHandles:
                self.stale.append(pid[1])
                return None
        if tag == "update":
            return self._update(pid[1], pid[2], pid[3:])
        raise pickle.UnpicklingError(f"unknown persistent id {tag!r}")

    def _storage(self, index: int, dtype: Any, device: str, data: Any) -> Any:
        import torch

        untyped = self.storages.get(index)
        if untyped is None:
            if isinstance(data, int) or data is None or not memoryview(data).nbytes:
                untyped = torch.UntypedStorage(0)
            else:
                untyped = torch.frombuffer(_writable(data), dtype=torch.uint8).untyped_storage()
            if device == "cuda" and self.cuda:
                untyped = untyped.cuda()
            self.storages[index] = untyped
        if dtype is None:
            return untyped
        return torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)

    def _update(self, handle: Handle, kind: str, payload: tuple) -> Any:
        try:
            target = self.mirror.get(handle)  # type: ignore[union-attr]
        except StaleHandles:
            target = _GONE
        result = _apply_update(target, kind, payload)
        if result is not target:
            if target is not _GONE:
                self.replaced.append((target, result))
            self.mirror.replace(handle, result)  # type: ignore[union-attr]
        self.updated.append(handle)
        return result


def unpack(packed: Packed, mirror: Mirror | None = None, *, cuda: bool = False) -> tuple[Any, "Unpacked"]:
    """Rebuild a graph; references resolve to this side's objects, updates are written into them.

    `cuda`: tensors that were on a GPU go back to one (else they land on the CPU, the whole graph alike).
    Raises StaleHandles when the graph refers to objects this side no longer holds.
    """
    buffers = [_writable(b) for b in packed.buffers]
    unpickler = _GraphUnpickler(io.BytesIO(packed.header), buffers, mirror, cuda)
    root = unpickler.load()
    if unpickler.stale:
        raise StaleHandles(unpickler.stale)
    memo = unpickler.memo.copy()
    after_unpickle(memo.values())
    if mirror is not None and packed.transfer:
        new = []
        for index in packed.tracked:
            handle = (packed.transfer, index)
            mirror.register(handle, memo[index])
            new.append(handle)
        mirror.snapshot(new + unpickler.updated)
    return root, Unpacked(unpickler.updated, unpickler.replaced)


@dataclass
class Unpacked:
    """What an unpacked graph did to this side's objects."""

    updated: list[Handle]
    replaced: list[tuple[Any, Any]]  # (old, new) for shared objects that had to be replaced, not updated


# ---- writing a new state into an existing object -------------------------------------------------


def _apply_update(target: Any, kind: str, payload: tuple) -> Any:
    if kind == "tensor":
        new, requires_grad, grad, in_place = payload
        return new if target is _GONE else _update_tensor(target, new, requires_grad, grad, in_place)
    if kind == "state":
        cls, state, listitems, dictitems = payload
        if target is _GONE or type(target) is not cls:
            target = cls.__new__(cls)
        _set_state(target, state, listitems, dictitems)
        return target
    (new,) = payload
    if target is _GONE or type(target) is not type(new):
        return new
    if kind == "array":
        if target.shape == new.shape and target.dtype == new.dtype and target.flags.writeable:
            target[...] = new
            return target
        return new
    if kind in ("set", "deque"):
        target.clear()
        target.update(new) if kind == "set" else target.extend(new)
        return target
    if kind == "bytearray":
        target[:] = new
        return target
    return new  # "replace": an object whose pickling we cannot write into another


def _update_tensor(target: Any, new: Any, requires_grad: bool, grad: Any, in_place: bool) -> Any:
    import torch

    with torch.no_grad():
        same = target.shape == new.shape and target.dtype == new.dtype and target.device == new.device
        if in_place and same:
            target.copy_(new)  # changed in place there: in place here too, so views of it see the change
        else:
            target.data = new  # rebound there (moved, resized): the object stays, so everything holding it follows
    if target.is_leaf:
        if target.requires_grad != requires_grad:
            target.requires_grad_(requires_grad)
        try:
            target.grad = grad
        except (RuntimeError, TypeError):
            target.grad = None  # a gradient that no longer fits the (resized) tensor
    return target


def _set_state(target: Any, state: Any, listitems: list | None, dictitems: list | None) -> None:
    if isinstance(target, list):
        target[:] = listitems or []
    if isinstance(target, dict):
        target.clear()
        target.update(dictitems or [])
    setstate = getattr(type(target), "__setstate__", None)
    if setstate is not None:
        if state is not None:
            target.__setstate__(state)
        return
    dict_state, slot_state = state if (isinstance(state, tuple) and len(state) == 2) else (state, None)
    if dict_state is not None or (hasattr(target, "__dict__") and not isinstance(target, (list, dict))):
        if type(target).__getstate__ is object.__getstate__:
            target.__dict__.clear()  # the cell deleted attributes: gone here too
        target.__dict__.update(dict_state or {})
    for name, value in (slot_state or {}).items():
        object.__setattr__(target, name, value)


# ---- helpers ------------------------------------------------------------------------------------


def _writable(buffer: Any) -> Any:
    # numpy arrays and torch tensors built on a read-only buffer would be read-only in the cell.
    view = memoryview(buffer)
    return bytearray(view) if view.readonly else buffer


def _is_storage(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, (torch.storage.TypedStorage, torch.UntypedStorage))


# ---- the notebook's own modules travel by value ---------------------------------------------------

_by_value_lock = threading.Lock()


class user_modules_by_value:
    """While packing: functions and classes of the user's own modules (files outside the Python installation,
    such as `mylib.py` beside the notebook) are pickled by value, so workers that cannot import them still can
    run them."""

    def __enter__(self) -> "user_modules_by_value":
        import cloudpickle

        from .user_modules import user_module_names

        registered = cloudpickle.list_registry_pickle_by_value()
        self.names = [n for n in user_module_names() if n not in registered]
        _by_value_lock.acquire()
        for name in self.names:
            cloudpickle.register_pickle_by_value(sys.modules[name])
        return self

    def __exit__(self, *exc: Any) -> None:
        import cloudpickle

        try:
            for name in self.names:
                try:
                    cloudpickle.unregister_pickle_by_value(sys.modules[name])
                except (ValueError, KeyError):
                    pass
        finally:
            _by_value_lock.release()
