"""Content hashes of files, folders and in-memory values (arrays, tensors, models, frames), with a stat-keyed cache.

Files hash with blake3, multi-threaded for big inputs. A file whose (path, size, mtime_ns, inode) is unchanged is
never read again: `HashCache` remembers its digest in memory and, optionally, in a small SQLite file shared by
processes (DVC's state cache, with a faster hash than its md5). numpy, torch and pandas are never imported here
unless the value being hashed already is one of theirs.
"""
from __future__ import annotations

import errno
import logging
import os
import sqlite3
import stat as stat_mod
import threading
import time
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import blake3

from .config import Settings

log = logging.getLogger(__name__)

SKIP_NAMES = frozenset({".git", "__pycache__", ".ipynb_checkpoints", ".pykernel_ext"})
CACHE_FILENAME = "hash_cache.sqlite"
# Below ~1 MiB, spinning up blake3's thread pool costs more than it saves (measured: 64 KiB is 2.7x slower).
_MT_MIN_BYTES = 1 << 20
_CHUNK_BYTES = 16 << 20
# Timestamps are coarse (a kernel tick; 1-2 s on FAT, HFS+, some network file systems): a file rewritten with the
# same size within one tick of being hashed would keep its stale digest. Like git's "racily clean" rule, a file
# modified this recently is hashed but not cached.
_RACY_NS = 2_000_000_000
# update_mmap is ~2.5x faster on a cached file, but if another process truncates the file while it is mapped (a
# training loop re-saving a checkpoint with open(..., "wb")) the kernel process dies of SIGBUS. Reads are safe and
# still several GB/s. Flip only where files never shrink under you.
USE_MMAP = False
_threads = blake3.blake3.AUTO  # set to 1 in forked children: rayon's thread pool does not survive fork()


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """blake3 hex digest (64 characters) of a bytes-like object."""
    view = memoryview(data)
    # blake3 accepts only unsigned-byte buffers; cast keeps C-contiguous ones zero-copy.
    view = view.cast("B") if view.c_contiguous else memoryview(view.tobytes())
    return _hasher(view.nbytes).update(view).hexdigest()


def _hasher(nbytes: int) -> blake3.blake3:
    return blake3.blake3(max_threads=_threads if nbytes >= _MT_MIN_BYTES else 1)


@dataclass(frozen=True)
class PathHash:
    """Content hash of a file or folder; `size` is total bytes, `files` the regular-file count."""

    hash: str
    kind: str  # "file" | "folder"
    size: int
    files: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ValueHash:
    """Content hash of an in-memory value; `hash` is None (and `error` says why) when it cannot be hashed."""

    hash: str | None
    kind: str
    size: int | None
    detail: str  # e.g. "float32[1000, 3]"
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------------------- cache
_Entry = tuple[int, int, int, str]  # size, mtime_ns, inode, digest
_caches: weakref.WeakSet[HashCache] = weakref.WeakSet()
_fork_orphans: list[sqlite3.Connection] = []
_SQL_GET = "SELECT size, mtime_ns, inode, digest FROM hash_cache_v1 WHERE path = ?"
_SQL_PUT = "INSERT OR REPLACE INTO hash_cache_v1 VALUES (?, ?, ?, ?, ?)"


class HashCache:
    """Digests keyed by (absolute path, size, st_mtime_ns, st_ino), in memory and optionally in SQLite.

    `db_path=None` keeps everything in memory. With a path the cache is shared through a SQLite file (WAL, busy
    timeout, created on first write) so every process reuses what any of them hashed; when it cannot be opened or
    written the cache carries on in memory, because a cache must never make hashing fail. Thread-safe: the dict's
    single operations are atomic and the connection has its own lock.
    """

    _MAX_MEMORY_ENTRIES = 200_000  # ~70 MB; beyond that the dict is dropped and refilled from SQLite on demand

    def __init__(self, db_path: Path | str | None = None) -> None:
        self.db_path = Path(db_path) if db_path is not None else None
        self._memory: dict[str, _Entry] = {}
        self._persist = self.db_path is not None
        self._conn: sqlite3.Connection | None = None
        self._db_lock = threading.Lock()
        _caches.add(self)

    def get(self, path: str | os.PathLike[str], st: os.stat_result) -> str | None:
        """The cached digest of `path` if its stat still matches, else None."""
        key, want = os.path.abspath(path), (st.st_size, st.st_mtime_ns, st.st_ino)
        entry = self._memory.get(key)
        if entry is not None and entry[:3] == want:
            return entry[3]
        if not self._persist:
            return None
        # Another process may have hashed the current version since.
        row = self._with_db(False, lambda conn: conn.execute(_SQL_GET, (key,)).fetchone())
        if row is None or (row[0], row[1], int(row[2])) != want:
            return None
        self._remember(key, (*want, row[3]))
        return row[3]

    def put(self, path: str | os.PathLike[str], st: os.stat_result, digest: str) -> None:
        """Remember `digest` for `path` as it was when stat'ed as `st`."""
        self.put_many([(path, st, digest)])

    def put_many(self, items: Iterable[tuple[str | os.PathLike[str], os.stat_result, str]]) -> None:
        """`put` for many files in one SQLite transaction (a folder of 100k files would otherwise take 100k)."""
        # The inode goes to SQLite as text: some file systems (overlayfs, NFS) exceed SQLite's signed 64 bits.
        rows = [(os.path.abspath(p), st.st_size, st.st_mtime_ns, str(st.st_ino), d) for p, st, d in items]
        for key, size, mtime_ns, ino, digest in rows:
            self._remember(key, (size, mtime_ns, int(ino), digest))
        if self._persist and rows:
            self._with_db(True, lambda conn: conn.executemany(_SQL_PUT, rows))

    def _remember(self, key: str, entry: _Entry) -> None:
        if len(self._memory) >= self._MAX_MEMORY_ENTRIES:
            self._memory.clear()
        self._memory[key] = entry

    def _with_db(self, create: bool, action: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._db_lock:
            conn = self._conn or self._connect(create)
            if conn is None:
                return None
            try:
                with conn:  # one short transaction
                    return action(conn)
            except sqlite3.Error as exc:
                self._db_failed(exc)
                return None

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if not self._persist or self.db_path is None or (not create and not self.db_path.exists()):
            return None
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.db_path, timeout=2.0, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 2000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # losing the last writes on power loss costs a re-hash
            conn.execute(
                "CREATE TABLE IF NOT EXISTS hash_cache_v1 (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                "mtime_ns INTEGER NOT NULL, inode TEXT NOT NULL, digest TEXT NOT NULL) WITHOUT ROWID"
            )
        except (OSError, sqlite3.Error) as exc:
            self._db_failed(exc)
            return None
        self._conn = conn
        return conn

    def _db_failed(self, exc: Exception) -> None:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in (5, 6):  # SQLITE_BUSY/LOCKED: skip this write, keep going
            log.debug("hash cache %s busy, not persisted this time: %s", self.db_path, exc)
            return
        log.warning("hash cache %s unusable (%s); caching in memory only", self.db_path, exc)
        self._persist = False

    def _reset_after_fork(self) -> None:
        # A connection must not be used, nor even closed, in a forked child: closing it could checkpoint and delete
        # the WAL the parent is still using. Keep it referenced and open a fresh one on demand.
        self._db_lock = threading.Lock()
        if self._conn is not None:
            _fork_orphans.append(self._conn)
            self._conn = None


_default: HashCache | None = None
_default_lock = threading.Lock()


def default_cache() -> HashCache:
    """The process-wide cache, persisted at `<store_dir>/hash_cache.sqlite` (resolved once, on first use).

    The folder is created on the first write; if that fails the cache stays in memory.
    """
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                try:
                    db_path: Path | None = Settings.from_env().store_dir / CACHE_FILENAME
                except Exception as exc:  # e.g. a malformed environment variable: hashing must still work
                    log.warning("hash cache kept in memory: settings unavailable (%s)", exc)
                    db_path = None
                _default = HashCache(db_path)
    return _default


def _after_fork_in_child() -> None:
    global _threads, _default_lock
    _threads = 1
    _default_lock = threading.Lock()
    for cache in list(_caches):
        cache._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# ---------------------------------------------------------------------------------------------------------- paths
def hash_path(path: str | os.PathLike[str], cache: HashCache | None = None) -> PathHash:
    """Content hash of a file (blake3 of its bytes) or a folder (Merkle hash of its tree).

    Folders skip `SKIP_NAMES`, empty sub-folders, sockets and pipes. Symlinks inside a folder are hashed as their
    target path, never followed: following could leave the folder, loop, or count a file twice; the link is what
    the folder holds. `path` itself is followed if it is a link, since that is what the caller named.
    Raises FileNotFoundError if `path` does not exist. Uses `default_cache()` when `cache` is None.
    """
    cache = cache if cache is not None else default_cache()
    full = os.path.abspath(os.fsdecode(os.fspath(path)))
    try:
        st = os.stat(full)
    except FileNotFoundError:
        why = "a broken symlink" if os.path.islink(full) else "no such file or folder"
        raise FileNotFoundError(errno.ENOENT, f"cannot hash: {why}", full) from None
    pending: list[tuple[str, os.stat_result, str]] = []  # digests to cache, written in batches
    try:
        if stat_mod.S_ISREG(st.st_mode):
            return PathHash(_hash_file(full, st, cache, pending), "file", st.st_size, 1)
        if stat_mod.S_ISDIR(st.st_mode):
            digest, size, files, _ = _hash_folder(full, cache, pending)
            return PathHash(digest, "folder", size, files)
    finally:
        cache.put_many(pending)  # also keeps the work done so far when a big folder is interrupted
    raise OSError(errno.EINVAL, "cannot hash: not a regular file or folder", full)


def _hash_file(path: str, st: os.stat_result, cache: HashCache, pending: list) -> str:
    digest = cache.get(path, st)
    if digest is None:
        digest = _read_digest(path, st.st_size)
        after = os.stat(path)
        # Cache only what provably did not change while we read it, and was not written too recently.
        if (after.st_size, after.st_mtime_ns, after.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino):
            if after.st_mtime_ns < time.time_ns() - _RACY_NS:
                pending.append((path, after, digest))
    return digest


def _read_digest(path: str, size: int) -> str:
    if size < _MT_MIN_BYTES:  # also covers /proc-style files whose size reads as 0
        with open(path, "rb") as f:
            return blake3.blake3(f.read()).hexdigest()
    hasher = blake3.blake3(max_threads=_threads)
    if USE_MMAP and hasattr(hasher, "update_mmap"):
        return hasher.update_mmap(path).hexdigest()
    buf = bytearray(min(_CHUNK_BYTES, size))
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        if hasattr(os, "posix_fadvise"):  # doubles readahead on a cold disk
            try:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
            except OSError:  # some FUSE and network file systems refuse the hint; it is only a hint
                pass
        while n := f.readinto(buf):
            hasher.update(view[:n])
    return hasher.hexdigest()


def _hash_folder(folder: str, cache: HashCache, pending: list) -> tuple[str, int, int, int]:
    """(digest, total bytes, regular files, entries) of one folder, recursing into sub-folders."""
    with os.scandir(folder) as it:
        # Sort on the raw bytes of names so the order is the same under every locale and file system.
        entries = sorted((os.fsencode(e.name), e) for e in it if e.name not in SKIP_NAMES)
    lines: list[bytes] = []
    size = files = 0
    for name, entry in entries:
        if entry.is_symlink():
            tag, digest = b"l", hash_bytes(os.fsencode(os.readlink(entry.path)))
        elif entry.is_dir(follow_symlinks=False):
            digest, sub_size, sub_files, sub_entries = _hash_folder(entry.path, cache, pending)
            if not sub_entries:
                continue  # like git and DVC: an empty folder holds no data
            tag, size, files = b"d", size + sub_size, files + sub_files
        elif entry.is_file(follow_symlinks=False):
            st = entry.stat(follow_symlinks=False)
            tag, digest = b"f", _hash_file(entry.path, st, cache, pending)
            size, files = size + st.st_size, files + 1
            if len(pending) >= 512:
                cache.put_many(pending)
                pending.clear()
        else:
            continue  # a pipe or socket: reading it could block forever
        # Names hold neither NUL nor "/", and digests are fixed-length, so this encoding is unambiguous.
        lines.append(b"%s\0%s\0%s\n" % (tag, name, digest.encode()))
    return hash_bytes(b"pykernel-ext folder v1\n" + b"".join(lines)), size, files, len(lines)


# ---------------------------------------------------------------------------------------------------------- values
# Matched on class names along the MRO so user subclasses (nn.Module, GeoDataFrame) count, without importing
# the libraries: checking a plain int costs well under a microsecond.
_DATA_CLASSES = {"numpy": {"ndarray"}, "torch": {"Tensor", "Module"}, "pandas": {"DataFrame", "Series", "Index"}}


def _data_class(obj: object) -> str | None:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return "bytes"
    for cls in type(obj).__mro__:
        names = _DATA_CLASSES.get(str(getattr(cls, "__module__", "")).partition(".")[0])
        if names is not None and cls.__name__ in names:
            return cls.__name__
    return None


def is_data_value(obj: object) -> bool:
    """Whether `obj` is data pykernel-ext hashes: ndarray, Tensor, nn.Module, DataFrame/Series/Index, bytes."""
    return _data_class(obj) is not None


def hash_value(obj: object) -> ValueHash:
    """Content hash of an in-memory data value; never raises (the reason is in `.error` instead)."""
    kind = type(obj).__name__
    try:
        cls = _data_class(obj)
        if cls is None:
            return ValueHash(None, kind, None, "", f"{kind} is not a data type pykernel-ext hashes")
        kind = cls.lower() if cls != "ndarray" else cls
        if cls == "bytes":
            view = memoryview(obj)  # type: ignore[arg-type]
            return ValueHash(hash_bytes(view), "bytes", view.nbytes, f"{view.nbytes} bytes")
        if cls == "ndarray":
            return _hash_ndarray(obj)
        if cls == "Tensor":
            digest, nbytes, detail = _tensor_digest(obj)
            return ValueHash(digest, "tensor", nbytes, detail)
        if cls == "Module":
            return _hash_module(obj)
        return _hash_pandas(obj, kind)
    except Exception as exc:
        return ValueHash(None, kind, None, "", f"{type(exc).__name__}: {exc}")


def _shape(shape: Iterable[int]) -> str:
    return ", ".join(str(n) for n in shape)


def _update_array(hasher: blake3.blake3, a: Any) -> None:
    """Feed an ndarray's C-order bytes; a non-contiguous one is copied a slab at a time, not whole."""
    import numpy as np

    if a.flags.c_contiguous:
        hasher.update(a.reshape(-1).view(np.uint8))
        return
    rows = max(1, _CHUNK_BYTES // max(1, a[0].nbytes))
    for start in range(0, len(a), rows):
        hasher.update(np.ascontiguousarray(a[start : start + rows]).reshape(-1).view(np.uint8))


def _hash_ndarray(a: Any) -> ValueHash:
    import numpy as np

    detail = f"{a.dtype}[{_shape(a.shape)}]"
    if a.dtype.hasobject:
        error = "object arrays hold Python objects; convert to a numeric dtype to hash"
        return ValueHash(None, "ndarray", a.nbytes, detail, error)
    if not a.dtype.isnative:  # equal values hash equal whatever their byte order
        a = a.astype(a.dtype.newbyteorder("<"))
    hasher = _hasher(a.nbytes)
    hasher.update(f"ndarray\0{np.lib.format.dtype_to_descr(a.dtype)!r}\0{a.shape}\0".encode())
    _update_array(hasher, a)
    return ValueHash(hasher.hexdigest(), "ndarray", a.nbytes, detail)


# ---- tensors: unchanged data is never read twice -------------------------------------------------------------
# A tensor's digest is kept while its storage lives, keyed by the view (offset, shape, stride, dtype) and checked
# against its state: the storage's address and size, torch's version counter (bumped by every in-place change,
# shared by views and detached aliases such as state_dict() entries) and a sample of its bytes. The sample catches
# writes that bypass the version counter (`p.data += ...`, as in popular tutorials): a dense update changes it
# with near certainty; a write to a few elements through `.data` alone can escape it, as it escapes autograd.
_SAMPLE_BYTES = 4096
_SAMPLE_RUN = 64
_tensor_cache: dict[tuple, tuple[Any, tuple, tuple[str, int, str]]] = {}
_tensor_cache_lock = threading.Lock()


def tensor_state(t: Any) -> tuple | None:
    """A cheap identity of a tensor's current data (no full read); None when it has none to offer."""
    try:
        storage = t.untyped_storage()
        return (storage.data_ptr(), storage.nbytes(), t._version, _sample_digest(storage))
    except Exception:  # noqa: BLE001 - sparse, quantized, meta, functorch wrappers: hashed in full every time
        return None


def _sample_digest(storage: Any) -> str:
    import torch

    nbytes = storage.nbytes()
    data = torch.empty(0, dtype=torch.uint8, device=storage.device).set_(storage)
    if nbytes > _SAMPLE_BYTES:
        # Runs of contiguous bytes spread evenly over the storage: every byte position of the elements is seen,
        # and few memory pages are touched (a byte per page costs a TLB miss each).
        runs = _SAMPLE_BYTES // _SAMPLE_RUN
        data = data.as_strided((runs, _SAMPLE_RUN), ((nbytes - _SAMPLE_RUN) // (runs - 1), 1))
    return hash_bytes(data.contiguous().cpu().numpy().data)


def _tensor_cache_key(t: Any) -> tuple | None:
    try:
        return (id(t.untyped_storage()), t.storage_offset(), tuple(t.shape), t.stride(), str(t.dtype))
    except Exception:  # noqa: BLE001
        return None


def _tensor_digest(t: Any) -> tuple[str, int, str]:
    """(digest, nbytes, detail) of a tensor, from the cache when its data has not changed."""
    key = _tensor_cache_key(t)
    state = tensor_state(t) if key is not None else None
    if key is not None and state is not None:
        with _tensor_cache_lock:
            cached = _tensor_cache.get(key)
        if cached is not None and cached[0]() is t.untyped_storage() and cached[1] == state:
            return cached[2]
    result = _tensor_digest_uncached(t)
    if key is not None and state is not None:
        def forget(_: Any, key: tuple = key) -> None:
            with _tensor_cache_lock:
                _tensor_cache.pop(key, None)

        with _tensor_cache_lock:
            _tensor_cache[key] = (weakref.ref(t.untyped_storage(), forget), state, result)
    return result


def _tensor_digest_uncached(t: Any) -> tuple[str, int, str]:
    import ctypes

    import torch

    t = t.detach()
    if t.is_quantized:
        raise TypeError("quantized tensors are not hashed; hash t.dequantize() or t.int_repr()")
    if t.layout != torch.strided:
        raise TypeError(f"{t.layout} tensors are not hashed; hash t.to_dense()")
    dtype = str(t.dtype).removeprefix("torch.")
    detail = f"{dtype}[{_shape(t.shape)}]" + ("" if t.device.type == "cpu" else f" on {t.device}")
    # The device is left out of the hash: the same weights on a GPU or a CPU are the same data.
    t = t.resolve_conj().resolve_neg().to("cpu").contiguous()
    nbytes = t.numel() * t.element_size()
    hasher = _hasher(nbytes)
    hasher.update(f"tensor\0{dtype}\0{tuple(t.shape)}\0".encode())
    if nbytes:
        # Raw memory rather than .numpy(): works for every dtype (bfloat16, float8 have no numpy twin), no numpy needed.
        hasher.update(memoryview((ctypes.c_char * nbytes).from_address(t.data_ptr())).cast("B"))
    return hasher.hexdigest(), nbytes, detail


def _hash_module(module: Any) -> ValueHash:
    import torch

    hasher = blake3.blake3()
    hasher.update(b"module\0")
    tensors = total = 0
    for name, value in module.state_dict().items():
        if isinstance(value, torch.Tensor):
            digest, nbytes, _ = _tensor_digest(value)
            tensors, total = tensors + 1, total + nbytes
        else:  # extra state can be any object
            inner = hash_value(value)
            if inner.hash is None:
                raise TypeError(f"state_dict entry {name!r}: {inner.error}")
            digest = inner.hash
        hasher.update(f"{name}\0{digest}\n".encode())
    params = sum(p.numel() for p in module.parameters())
    return ValueHash(hasher.hexdigest(), "module", total, f"{tensors} tensors, {params:,} params")


def _update_labelled(hasher: blake3.blake3, label: str, values: Any) -> None:
    """Feed one column or index: its label and dtype, then its values."""
    import numpy as np
    import pandas as pd

    hasher.update(f"{label}\0{values.dtype}\0{len(values)}\0".encode())
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biufcmM":
        _update_array(hasher, values.to_numpy(copy=False))
    else:
        # Strings, categories, nullable and Arrow dtypes: pandas' row hash is SipHash with a fixed key, so it is
        # the same in every process (unlike Python's hash()).
        _update_array(hasher, pd.util.hash_pandas_object(values, index=False).to_numpy())


def _hash_pandas(obj: Any, kind: str) -> ValueHash:
    if kind == "dataframe":
        detail, size = f"{obj.shape[0]} rows × {obj.shape[1]} columns", int(obj.memory_usage(deep=False).sum())
    else:
        detail, size = f"{obj.dtype}[{len(obj)}]", int(obj.memory_usage(deep=False))
    hasher = _hasher(size)
    hasher.update(f"pandas {kind}\0".encode())
    if kind == "dataframe":
        for label, column in obj.items():  # by position, so duplicate labels are fine
            _update_labelled(hasher, f"column {label!r}", column)
    elif kind == "series":
        _update_labelled(hasher, f"values {obj.name!r}", obj)
    index = obj if kind == "index" else obj.index
    _update_labelled(hasher, f"index {list(index.names)!r}", index)
    return ValueHash(hasher.hexdigest(), kind, size, detail)
