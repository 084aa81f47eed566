"""A running run's stdout/stderr as appended chunks (table `log_chunks`), and their recovery into blobs.

Live flushes append chunks while the code runs. A run that ends normally writes its whole logs as blobs
and drops the chunks in the same transaction, so nothing is kept twice. A run whose process died (kill -9,
the OOM killer) never ends: the reconciliation that marks it `interrupted` turns its chunks into the same
blobs and logs record a finished run has, so every reader (CLI, server, sidebar) finds them where it
always looks.
"""
from __future__ import annotations

import sqlite3
from typing import Any, Sequence

from .blobs import BlobStore

STREAMS = ("stdout", "stderr")


def append_chunks(conn: sqlite3.Connection, run_id: str, chunks: Sequence[tuple[str, str]], now: float) -> None:
    """Add (stream, text) chunks to a run, in order."""
    conn.executemany("INSERT INTO log_chunks VALUES (?, ?, ?, ?)",
                     [(run_id, stream, text, now) for stream, text in chunks])


def read_chunks(conn: sqlite3.Connection, run_id: str) -> dict[str, str]:
    """The text appended so far per stream ({} when the run has no chunks)."""
    texts: dict[str, list[str]] = {}
    for stream, text in conn.execute("SELECT stream, text FROM log_chunks WHERE run_id = ? ORDER BY rowid",
                                     (run_id,)):
        texts.setdefault(stream, []).append(text)
    return {stream: "".join(parts) for stream, parts in texts.items()}


def drop_chunks(conn: sqlite3.Connection, run_id: str) -> None:
    conn.execute("DELETE FROM log_chunks WHERE run_id = ?", (run_id,))


def recover_logs(conn: sqlite3.Connection, blobs: BlobStore, run_id: str) -> dict[str, Any] | None:
    """Turn a dead run's chunks into blobs; returns the logs record for its details (None without chunks)."""
    texts = read_chunks(conn, run_id)
    if not texts:
        return None
    record: dict[str, Any] = {"truncated": False, "partial": True}
    for stream in STREAMS:
        text = texts.get(stream, "")
        record[f"{stream}_bytes"] = len(text.encode("utf-8", errors="replace"))
        record[f"{stream}_blob"] = blobs.put_text(text) if text else None
    drop_chunks(conn, run_id)
    return record
