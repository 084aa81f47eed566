"""Content-addressed blob store beside the database: logs, notebooks, artifacts, environment lists.

A blob's name is its blake3 hex digest and nothing else, so a reference taken from a request can be
validated by its shape alone and can never name a path outside the store.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from ..errors import InvalidBlobReference

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 4 * 1024 * 1024


def _blake3():
    import blake3  # lazy: keeps `import pykernel_ext` cheap

    return blake3.blake3(max_threads=blake3.blake3.AUTO)


class BlobStore:
    """Blobs under `root/ab/cdef...`, written atomically (temp file + rename), deduplicated by content."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, digest: str) -> Path:
        """The file of a blob; raises InvalidBlobReference for anything that is not a digest."""
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise InvalidBlobReference(f"{digest!r} is not a blob reference (64 lowercase hex characters)")
        return self.root / digest[:2] / digest[2:]

    def exists(self, digest: str) -> bool:
        return self.path_for(digest).is_file()

    def put_bytes(self, data: bytes) -> str:
        hasher = _blake3()
        hasher.update(data)
        digest = hasher.hexdigest()
        target = self.path_for(digest)
        if not target.exists():
            self._write_atomically(target, lambda f: f.write(data))
        else:
            _touch(target)
        return digest

    def put_text(self, text: str) -> str:
        return self.put_bytes(text.encode("utf-8"))

    def put_file(self, source: Path | str) -> tuple[str, int]:
        """Store a file's content; returns (digest, size)."""
        source = Path(source)
        hasher = _blake3()
        with open(source, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                hasher.update(chunk)
        digest = hasher.hexdigest()
        target = self.path_for(digest)
        if not target.exists():
            self._write_atomically(target, lambda out: _copy_into(source, out))
        else:
            _touch(target)
        return digest, source.stat().st_size

    def remove(self, digest: str, older_than: float = 0.0) -> int | None:
        """Delete a blob no run references any more; returns the bytes freed, or None when it was kept
        (missing, or touched within `older_than` seconds: a writer reusing it may be about to reference
        it, since writing a run's record follows putting its blobs)."""
        path = self.path_for(digest)
        try:
            stat = path.stat()
            if older_than and time.time() - stat.st_mtime < older_than:
                return None
            path.unlink()
        except FileNotFoundError:
            return None
        return stat.st_size

    def read_bytes(self, digest: str) -> bytes:
        return self.path_for(digest).read_bytes()

    def read_text(self, digest: str) -> str:
        return self.read_bytes(digest).decode("utf-8", errors="replace")

    def _write_atomically(self, target: Path, write) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _touch(path: Path) -> None:
    # A reused blob is marked fresh, so a deletion running meanwhile leaves it alone (see `remove`).
    with contextlib.suppress(OSError):
        os.utime(path)


def _copy_into(source: Path, out) -> None:
    with open(source, "rb") as f:
        shutil.copyfileobj(f, out, _CHUNK)
