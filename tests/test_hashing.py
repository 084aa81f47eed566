"""Tests of pykernel_ext.hashing on real files, real numpy/torch/pandas values and real SQLite caches."""
from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import blake3
import numpy as np
import pandas as pd
import pytest
import torch

from pykernel_ext import hashing
from pykernel_ext.hashing import (
    HashCache,
    PathHash,
    ValueHash,
    hash_bytes,
    hash_path,
    hash_value,
    is_data_value,
)

REPO = Path(__file__).resolve().parents[1]
EMPTY_BLAKE3 = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
HOUR_NS = 3600 * 10**9


def write_old(path: Path, data: bytes, age_ns: int = HOUR_NS) -> Path:
    """Write `data` and date it in the past, outside the racy window in which files are not cached."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    then = time.time_ns() - age_ns
    os.utime(path, ns=(then, then))
    return path


def overwrite_in_place(path: Path, data: bytes) -> None:
    """Replace the content keeping size, inode and mtime: invisible to a stat-keyed cache."""
    before = os.stat(path)
    assert len(data) == before.st_size
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)


def run_python(code: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# ------------------------------------------------------------------------------------------------------------ bytes
def test_hash_bytes_known_vectors() -> None:
    assert hash_bytes(b"") == EMPTY_BLAKE3 == blake3.blake3(b"").hexdigest()
    assert hash_bytes(b"abc") == blake3.blake3(b"abc").hexdigest()
    assert len(hash_bytes(b"abc")) == 64


def test_hash_bytes_accepts_every_bytes_like() -> None:
    data = bytes(range(256)) * 5000  # over 1 MiB: the multi-threaded path
    expected = blake3.blake3(data).hexdigest()
    assert hash_bytes(bytearray(data)) == hash_bytes(memoryview(data)) == hash_bytes(data) == expected
    ints = np.arange(12, dtype=np.int32)
    assert hash_bytes(memoryview(ints)) == hash_bytes(ints.tobytes())  # a non-byte format
    strided = memoryview(ints)[::2]
    assert hash_bytes(strided) == hash_bytes(ints[::2].tobytes())  # a non-contiguous view


# ------------------------------------------------------------------------------------------------------------ files
@pytest.mark.parametrize("size", [0, 10, (1 << 20) + 3, (17 << 20) + 5])  # empty, small, threaded, several chunks
def test_file_hash_is_blake3_of_content(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = write_old(tmp_path / "data.bin", data)
    result = hash_path(path, HashCache(None))
    assert result == PathHash(hash=hash_bytes(data), kind="file", size=size, files=1)
    assert result.to_dict() == {"hash": hash_bytes(data), "kind": "file", "size": size, "files": 1}


def test_file_hash_accepts_str_and_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_old(tmp_path / "a.txt", b"hello")
    monkeypatch.chdir(tmp_path)
    cache = HashCache(None)
    assert hash_path("a.txt", cache).hash == hash_path(str(tmp_path / "a.txt"), cache).hash == hash_bytes(b"hello")


def test_changing_one_byte_changes_hash(tmp_path: Path) -> None:
    data = bytearray(os.urandom(4096))
    first = hash_path(write_old(tmp_path / "f", bytes(data)), HashCache(None)).hash
    data[2048] ^= 1
    second = hash_path(write_old(tmp_path / "f", bytes(data), age_ns=2 * HOUR_NS), HashCache(None)).hash
    assert first != second == hash_bytes(bytes(data))


def test_cache_hit_does_not_read_the_file(tmp_path: Path) -> None:
    path = write_old(tmp_path / "f.bin", b"A" * 1000)
    cache = HashCache(None)
    original = hash_path(path, cache).hash
    overwrite_in_place(path, b"B" * 1000)
    # Same path, size, mtime_ns and inode: the cached digest comes back, stale by design, proving no read happened.
    assert hash_path(path, cache).hash == original
    newer = os.stat(path).st_mtime_ns + 10**9
    os.utime(path, ns=(newer, newer))
    assert hash_path(path, cache).hash == hash_bytes(b"B" * 1000)


def test_recently_modified_file_is_not_cached(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"A" * 100)
    future = time.time_ns() + HOUR_NS  # inside the racy window, whatever the clock does meanwhile
    os.utime(path, ns=(future, future))
    cache = HashCache(None)
    assert hash_path(path, cache).hash == hash_bytes(b"A" * 100)
    overwrite_in_place(path, b"B" * 100)
    assert hash_path(path, cache).hash == hash_bytes(b"B" * 100)


def test_cache_persists_across_instances(tmp_path: Path) -> None:
    db = tmp_path / "state" / "cache.sqlite"
    path = write_old(tmp_path / "f.bin", b"A" * 1000)
    first = HashCache(db)
    assert first.get(path, os.stat(path)) is None
    assert not db.exists()  # created on the first write only
    digest = hash_path(path, first).hash
    assert db.exists()
    overwrite_in_place(path, b"B" * 1000)
    second = HashCache(db)
    assert second.get(path, os.stat(path)) == digest
    assert hash_path(path, second).hash == digest  # served from SQLite, not read


def test_cache_put_get_round_trip_with_huge_inode(tmp_path: Path) -> None:
    # overlayfs and NFS hand out inodes beyond SQLite's signed 64-bit integers.
    db = tmp_path / "cache.sqlite"
    st = SimpleNamespace(st_size=5, st_mtime_ns=123, st_ino=2**64 - 1)
    HashCache(db).put(tmp_path / "x", st, "d" * 64)  # type: ignore[arg-type]
    fresh = HashCache(db)
    assert fresh.get(tmp_path / "x", st) == "d" * 64  # type: ignore[arg-type]
    touched = SimpleNamespace(st_size=5, st_mtime_ns=124, st_ino=2**64 - 1)
    assert fresh.get(tmp_path / "x", touched) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("make_bad_db", ["parent_is_a_file", "not_a_database"])
def test_unusable_cache_file_falls_back_to_memory(tmp_path: Path, make_bad_db: str) -> None:
    if make_bad_db == "parent_is_a_file":
        (tmp_path / "blocker").write_text("a file where a folder should be")
        db = tmp_path / "blocker" / "cache.sqlite"
    else:
        db = tmp_path / "cache.sqlite"
        db.write_bytes(b"this is not an SQLite database" * 100)
    path = write_old(tmp_path / "f.bin", b"A" * 100)
    cache = HashCache(db)
    digest = hash_path(path, cache).hash
    assert digest == hash_bytes(b"A" * 100)
    overwrite_in_place(path, b"B" * 100)
    assert hash_path(path, cache).hash == digest  # still cached, in memory


def test_default_cache_lives_in_the_store_dir(tmp_path: Path) -> None:
    write_old(tmp_path / "data" / "f.bin", b"xyz")
    out = run_python(
        f"""
        from pykernel_ext.hashing import default_cache, hash_path
        assert default_cache() is default_cache()
        print(hash_path({str(tmp_path / "data" / "f.bin")!r}).hash)
        """,
        env={"PYKERNEL_EXT_HOME": str(tmp_path / "home")},
    )
    assert out == hash_bytes(b"xyz")
    assert (tmp_path / "home" / ".pykernel_ext" / "hash_cache.sqlite").is_file()


def test_default_cache_survives_bad_settings(tmp_path: Path) -> None:
    write_old(tmp_path / "f.bin", b"xyz")
    out = run_python(
        f"from pykernel_ext.hashing import hash_path; print(hash_path({str(tmp_path / 'f.bin')!r}).hash)",
        env={"PYKERNEL_EXT_HOME": str(tmp_path / "home"), "PYKERNEL_EXT_GPU_HOUR_PRICE": "not a number"},
    )
    assert out == hash_bytes(b"xyz")


def test_cache_shared_by_threads_and_processes(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    for i in range(200):
        write_old(folder / f"{i:03d}.bin", os.urandom(100 + i))
    db = tmp_path / "cache.sqlite"
    cache = HashCache(db)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(hash_path(folder, cache).hash)) for _ in range(4)]
    code = (
        "from pykernel_ext.hashing import HashCache, hash_path\n"
        f"print(hash_path({str(folder)!r}, HashCache({str(db)!r})).hash)"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(results + outputs)) == 1 and len(results) == 4


def _hash_in_child(path: str, queue: multiprocessing.Queue) -> None:
    queue.put((hash_bytes(b"x" * (4 << 20)), hash_path(path, HashCache(None)).hash))


def test_hashing_works_in_a_forked_child(tmp_path: Path) -> None:
    # blake3's thread pool does not survive fork(); a child must not deadlock on it.
    data = os.urandom(4 << 20)
    path = write_old(tmp_path / "big.bin", data)
    assert hash_path(path, HashCache(None)).hash == hash_bytes(data)  # starts the pool in this process
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_hash_in_child, args=(str(path), queue))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("hashing deadlocked in a forked child")
    assert queue.get(timeout=5) == (hash_bytes(b"x" * (4 << 20)), hash_bytes(data))


# ---------------------------------------------------------------------------------------------------------- folders
def make_tree(root: Path, order: list[str]) -> Path:
    contents = {"a.txt": b"alpha", "sub/b.txt": b"beta", "sub/deeper/c.bin": b"\x00\x01", "z.txt": b"zeta"}
    for rel in order:
        write_old(root / rel, contents[rel])
    return root


def test_folder_hash_ignores_creation_order(tmp_path: Path) -> None:
    names = ["a.txt", "sub/b.txt", "sub/deeper/c.bin", "z.txt"]
    one = hash_path(make_tree(tmp_path / "one", names), HashCache(None))
    two = hash_path(make_tree(tmp_path / "two", names[::-1]), HashCache(None))
    assert one.hash == two.hash
    assert (one.kind, one.files, one.size) == ("folder", 4, len(b"alphabeta\x00\x01zeta"))


def test_folder_hash_changes_on_rename_and_content(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t", ["a.txt", "sub/b.txt", "sub/deeper/c.bin", "z.txt"])
    cache = HashCache(None)
    original = hash_path(root, cache).hash
    (root / "sub" / "b.txt").rename(root / "sub" / "b2.txt")
    renamed = hash_path(root, cache).hash
    assert renamed != original
    (root / "sub" / "b2.txt").rename(root / "sub" / "b.txt")
    assert hash_path(root, cache).hash == original
    (root / "sub" / "deeper").rename(root / "sub" / "deep")  # a folder rename too
    assert hash_path(root, cache).hash not in (original, renamed)
    (root / "sub" / "deep").rename(root / "sub" / "deeper")
    write_old(root / "sub" / "deeper" / "c.bin", b"\x00\x02", age_ns=2 * HOUR_NS)
    assert hash_path(root, cache).hash not in (original, renamed)


def test_folder_skips_tool_folders_and_empty_folders(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t", ["a.txt", "z.txt"])
    cache = HashCache(None)
    original = hash_path(root, cache)
    write_old(root / ".git" / "HEAD", b"ref: refs/heads/main")
    write_old(root / "__pycache__" / "m.cpython-311.pyc", b"\x00")
    write_old(root / "sub" / ".ipynb_checkpoints" / "nb-checkpoint.ipynb", b"{}")
    write_old(root / ".pykernel_ext" / "runs.sqlite", b"db")
    (root / "empty" / "nested").mkdir(parents=True)
    assert hash_path(root, cache) == original


def test_symlinks_in_a_folder_hash_their_target_path_only(tmp_path: Path) -> None:
    outside = write_old(tmp_path / "outside.txt", b"v1")
    root = make_tree(tmp_path / "t", ["a.txt"])
    cache = HashCache(None)
    plain = hash_path(root, cache).hash
    (root / "link").symlink_to(outside)
    (root / "loop").symlink_to(root)  # following this would never end
    linked = hash_path(root, cache)
    assert linked.hash != plain and linked.files == 1
    write_old(outside, b"v2", age_ns=2 * HOUR_NS)
    assert hash_path(root, cache).hash == linked.hash  # the target's content is not part of the folder
    (root / "link").unlink()
    (root / "link").symlink_to(tmp_path / "elsewhere.txt")
    assert hash_path(root, cache).hash != linked.hash


def test_top_level_symlink_is_followed(tmp_path: Path) -> None:
    target = write_old(tmp_path / "real.bin", b"content")
    (tmp_path / "alias.bin").symlink_to(target)
    assert hash_path(tmp_path / "alias.bin", HashCache(None)).hash == hash_bytes(b"content")


def test_missing_path_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file or folder") as info:
        hash_path(tmp_path / "nope.csv", HashCache(None))
    assert info.value.filename == str(tmp_path / "nope.csv")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(FileNotFoundError, match="broken symlink"):
        hash_path(tmp_path / "dangling", HashCache(None))


# ----------------------------------------------------------------------------------------------------------- values
def test_numpy_equal_content_hashes_equal() -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    result = hash_value(a)
    assert result.hash is not None and result.error is None
    assert (result.kind, result.size, result.detail) == ("ndarray", 48, "float32[3, 4]")
    assert hash_value(a.copy()).hash == result.hash
    assert hash_value(np.asfortranarray(a)).hash == result.hash  # layout is not content
    assert hash_value(a.astype(">f4")).hash == result.hash  # nor is byte order
    assert hash_value(a.T.copy().T).hash == result.hash


def test_numpy_dtype_and_shape_change_the_hash() -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    hashes = {hash_value(x).hash for x in (a, a.astype(np.float64), a.reshape(4, 3), a.reshape(12), a.view(np.int32))}
    assert len(hashes) == 5


def test_numpy_non_contiguous_is_hashed_in_slabs(monkeypatch: pytest.MonkeyPatch) -> None:
    a = np.random.default_rng(0).random((50, 7))
    expected = hash_value(np.ascontiguousarray(a[:, ::2])).hash
    monkeypatch.setattr(hashing, "_CHUNK_BYTES", 64)  # force many slabs
    assert hash_value(a[:, ::2]).hash == expected


def test_numpy_scalar_array_and_empty_array() -> None:
    assert hash_value(np.array(3.0)).detail == "float64[]"
    assert hash_value(np.array(3.0)).hash != hash_value(np.array([3.0])).hash
    assert hash_value(np.zeros((0, 3))).hash != hash_value(np.zeros((3, 0))).hash


def test_numpy_object_array_is_an_error() -> None:
    result = hash_value(np.array(["a", 1], dtype=object))
    assert result.hash is None and result.kind == "ndarray"
    assert result.error == "object arrays hold Python objects; convert to a numeric dtype to hash"


def test_torch_tensor_equal_content_hashes_equal() -> None:
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    result = hash_value(t)
    assert (result.kind, result.size, result.detail, result.error) == ("tensor", 48, "float32[3, 4]", None)
    assert hash_value(t.clone()).hash == result.hash
    assert hash_value(t.t().contiguous().t()).hash == result.hash  # non-contiguous view
    assert hash_value(torch.nn.Parameter(t.clone())).hash == result.hash  # requires_grad does not matter
    others = (t.double(), t.reshape(4, 3), t.reshape(12), t.to(torch.int32))
    assert len({result.hash, *(hash_value(x).hash for x in others)}) == 5


def test_torch_bfloat16_tensor() -> None:
    t = torch.linspace(-2, 2, 100, dtype=torch.bfloat16)
    result = hash_value(t)
    assert result.error is None and result.hash is not None
    assert (result.detail, result.size) == ("bfloat16[100]", 200)
    assert hash_value(t.clone()).hash == result.hash
    assert hash_value(t.view(torch.float16)).hash != result.hash  # same bits, different dtype
    changed = t.clone()
    changed[50] = 7
    assert hash_value(changed).hash != result.hash


def test_torch_hash_is_deterministic_across_processes() -> None:
    code = """
        import torch
        from pykernel_ext.hashing import hash_value
        torch.manual_seed(0)
        print(hash_value(torch.randn(64, 8, dtype=torch.bfloat16)).hash)
    """
    torch.manual_seed(0)
    assert run_python(code) == hash_value(torch.randn(64, 8, dtype=torch.bfloat16)).hash


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.norm = torch.nn.BatchNorm1d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.fc(x))


def test_module_state_hash_changes_after_an_update() -> None:
    torch.manual_seed(0)
    net = TinyNet()
    torch.manual_seed(0)
    twin = TinyNet()
    before = hash_value(net)
    assert before.kind == "module" and before.error is None
    # fc.weight, fc.bias, norm.weight, norm.bias, running_mean, running_var, num_batches_tracked; 12+3+3+3 params.
    assert before.detail == "7 tensors, 21 params"
    assert hash_value(twin).hash == before.hash
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    net(torch.randn(8, 4)).sum().backward()
    optimizer.step()
    assert hash_value(net).hash != before.hash


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": np.arange(5, dtype=np.int64),
            "y": np.linspace(0, 1, 5),
            "name": ["a", "b", "c", "d", "e"],
            "when": pd.date_range("2024-01-01", periods=5, tz="UTC"),
            "cat": pd.Categorical(["u", "v", "u", "v", "u"]),
            "n": pd.array([1, None, 3, 4, 5], dtype="Int64"),
        },
        index=pd.Index([10, 11, 12, 13, 14], name="id"),
    )


def test_pandas_equal_content_hashes_equal() -> None:
    df = frame()
    result = hash_value(df)
    assert (result.kind, result.detail, result.error) == ("dataframe", "5 rows × 6 columns", None)
    rebuilt = pd.concat([df[["x", "y"]], df[["name", "when", "cat", "n"]]], axis=1)  # different internal blocks
    assert hash_value(rebuilt).hash == result.hash
    assert hash_value(df.copy(deep=True)).hash == result.hash


def test_pandas_dtype_names_and_index_change_the_hash() -> None:
    df = frame()
    variants = [
        df,
        df.astype({"x": "float64"}),
        df.rename(columns={"x": "x2"}),
        df.set_axis([20, 21, 22, 23, 24], axis=0),
        df.rename_axis("key"),
        df.iloc[::-1],
        df.assign(name=["a", "b", "c", "d", "f"]),
    ]
    assert len({hash_value(v).hash for v in variants}) == len(variants)


def test_pandas_series_and_index() -> None:
    s = pd.Series([1.0, 2.0, 3.0], name="s")
    result = hash_value(s)
    assert (result.kind, result.detail) == ("series", "float64[3]")
    assert hash_value(s.rename("t")).hash != result.hash
    assert hash_value(pd.Series([1.0, 2.0, 4.0], name="s")).hash != result.hash
    assert hash_value(s.astype("float32")).hash != result.hash
    assert hash_value(pd.Series([1.0, 2.0, 3.0], name="s")).hash == result.hash
    index = hash_value(pd.Index(["a", "b"]))
    assert index.kind == "index" and index.hash == hash_value(pd.Index(["a", "b"])).hash
    assert hash_value(pd.MultiIndex.from_tuples([(1, "a"), (2, "b")])).hash is not None


def test_pandas_hash_is_deterministic_across_processes() -> None:
    code = """
        import sys
        sys.path.insert(0, "tests")
        from test_hashing import frame
        from pykernel_ext.hashing import hash_value
        print(hash_value(frame()).hash)
    """
    assert run_python(code, env={"PYTHONHASHSEED": "12345"}) == hash_value(frame()).hash


def test_bytes_values_hash_directly() -> None:
    for value in (b"abc", bytearray(b"abc"), memoryview(b"abc")):
        assert hash_value(value) == ValueHash(hash_bytes(b"abc"), "bytes", 3, "3 bytes", None)


def test_unhashable_values_give_an_error_not_an_exception() -> None:
    result = hash_value(object())
    assert result == ValueHash(None, "object", None, "", "object is not a data type pykernel-ext hashes")
    assert result.to_dict()["error"] == "object is not a data type pykernel-ext hashes"
    meta = hash_value(torch.empty(3, device="meta"))  # no data to read: torch raises, hash_value does not
    assert meta.hash is None and meta.kind == "tensor" and meta.error
    sparse = hash_value(torch.eye(3).to_sparse())
    assert sparse.hash is None and sparse.error and sparse.error.startswith("TypeError:")
    json.dumps(sparse.to_dict())


@pytest.mark.parametrize(
    "value",
    [
        np.zeros(2),
        np.ma.masked_array([1, 2]),
        torch.zeros(2),
        torch.nn.Parameter(torch.zeros(2)),
        torch.nn.Linear(2, 2),
        TinyNet(),
        pd.DataFrame({"a": [1]}),
        pd.Series([1]),
        pd.Index([1]),
        pd.RangeIndex(3),
        b"x",
        bytearray(b"x"),
        memoryview(b"x"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_is_data_value_true(value: object) -> None:
    assert is_data_value(value)


@pytest.mark.parametrize("value", [1, 1.5, "s", None, [1, 2], {"a": 1}, (1,), np.float32(1.0), torch.float32, object()])
def test_is_data_value_false(value: object) -> None:
    assert not is_data_value(value)


def test_import_and_is_data_value_do_not_import_heavy_libraries() -> None:
    out = run_python(
        """
        import sys
        import pykernel_ext.hashing as hashing
        assert not hashing.is_data_value(1) and not hashing.is_data_value("s")
        assert hashing.hash_value({"a": 1}).error
        print(sorted(m for m in ("torch", "pandas", "numpy") if m in sys.modules))
        """
    )
    assert out == "[]"


def test_an_unchanged_tensor_is_not_read_again_and_every_kind_of_change_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    from pykernel_ext import hashing

    reads: list[int] = []
    real = hashing._tensor_digest_uncached
    monkeypatch.setattr(hashing, "_tensor_digest_uncached", lambda t: (reads.append(1), real(t))[1])
    model = torch.nn.Linear(300, 300)
    first = hashing.hash_value(model).hash
    assert len(reads) == 2
    assert hashing.hash_value(model).hash == first and len(reads) == 2, "unchanged: served from the cache"
    assert hashing.hash_value(model.weight).hash == hashing.hash_value(model.state_dict()["weight"]).hash
    with torch.no_grad():
        model.weight[0, 0] += 1  # in place: torch's version counter moves
    second = hashing.hash_value(model).hash
    assert second != first and len(reads) == 3
    model.bias.data += 0.5  # through .data (tutorial style): no version bump, the byte sample sees it
    assert hashing.hash_value(model).hash not in (first, second)
    model.weight.data = torch.zeros(300, 300)  # rebound to new storage
    assert hashing.hash_value(model.weight).hash == hashing.hash_value(torch.zeros(300, 300)).hash


def test_the_tensor_cache_forgets_a_tensor_whose_storage_is_freed() -> None:
    torch = pytest.importorskip("torch")
    import gc

    from pykernel_ext import hashing

    t = torch.arange(1000.)
    first = hashing.hash_value(t).hash
    key = hashing._tensor_cache_key(t)
    assert key in hashing._tensor_cache
    del t
    gc.collect()
    assert key not in hashing._tensor_cache, "no stale entry that a new tensor at the same address could match"
    again = torch.arange(1000.) + 1  # may reuse the freed memory, with a fresh version counter
    assert hashing.hash_value(again).hash != first
