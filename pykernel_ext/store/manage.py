"""What a person does to recorded runs: rename, annotate, tag, star, archive, delete.

Every change is one short write transaction and bumps `updated_at`, so open sidebars hear about it through
the push channel. Deleting a run deletes its descendants (the cells of a notebook run) and then the blobs no
remaining run uses (logs, notebooks, artifacts, an environment no other run ran in).
"""
from __future__ import annotations

import json
import re
import sqlite3
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable

MAX_NAME = 200
MAX_NOTE = 10_000
MAX_TAG_KEY = 100
MAX_TAG_VALUE = 500
MAX_TAGS = 100
RECENT_BLOB_SECONDS = 10.0  # a blob touched this recently may be about to be referenced by a writer
_DIGEST_IN_TEXT = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")


@dataclass(frozen=True)
class RunPatch:
    """Changes to one run; None leaves a field alone. `note=""` clears the note."""

    name: str | None = None
    note: str | None = None
    starred: bool | None = None
    archived: bool | None = None
    set_tags: dict[str, str] = field(default_factory=dict)
    remove_tags: tuple[str, ...] = ()

    def validate(self) -> "RunPatch":
        """The patch with text cleaned up; ValueError saying which field is wrong and how."""
        name = self.name
        if name is not None:
            name = name.strip()
            if not name:
                raise ValueError("a run's name cannot be empty")
            if len(name) > MAX_NAME or _has_control(name):
                raise ValueError(f"a run's name must be one line of at most {MAX_NAME} characters")
        if self.note is not None and len(self.note) > MAX_NOTE:
            raise ValueError(f"a note holds at most {MAX_NOTE:,} characters; this one has {len(self.note):,}")
        if len(self.set_tags) > MAX_TAGS:
            raise ValueError(f"give at most {MAX_TAGS} tags at once")
        tags = {}
        for key, value in self.set_tags.items():
            key, value = str(key).strip(), str(value)
            _check_tag_key(key)
            if len(value) > MAX_TAG_VALUE or _has_control(value):
                raise ValueError(f"tag {key!r}: a value is one line of at most {MAX_TAG_VALUE} characters")
            tags[key] = value
        for key in self.remove_tags:
            _check_tag_key(str(key).strip())
        return RunPatch(name=name, note=self.note, starred=self.starred, archived=self.archived, set_tags=tags,
                        remove_tags=tuple(str(k).strip() for k in self.remove_tags))

    @property
    def empty(self) -> bool:
        return (self.name is None and self.note is None and self.starred is None and self.archived is None
                and not self.set_tags and not self.remove_tags)


@dataclass
class DeleteReport:
    """What a deletion removed."""

    run_ids: list[str]
    blobs_removed: int = 0
    bytes_freed: int = 0
    environments_removed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"deleted": self.run_ids, "blobs_removed": self.blobs_removed, "bytes_freed": self.bytes_freed,
                "environments_removed": self.environments_removed}


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in text)


def _check_tag_key(key: str) -> None:
    if not key or len(key) > MAX_TAG_KEY or "=" in key or _has_control(key) or key != key.strip():
        raise ValueError(f"tag key {key!r}: give 1 to {MAX_TAG_KEY} characters without '=' or line breaks")


def apply_patch(conn: sqlite3.Connection, run_id: str, patch: RunPatch) -> None:
    """Write a validated patch inside the caller's transaction."""
    sets: dict[str, Any] = {}
    if patch.name is not None:
        sets["name"] = patch.name
    if patch.note is not None:
        sets["note"] = patch.note or None
    if patch.starred is not None:
        sets["starred"] = int(patch.starred)
    if patch.archived is not None:
        sets["archived"] = int(patch.archived)
    if patch.set_tags or patch.remove_tags:
        row = conn.execute("SELECT tags_json FROM runs WHERE id = ?", (run_id,)).fetchone()
        tags = json.loads(row[0] or "{}") if row else {}
        for key in patch.remove_tags:
            tags.pop(key, None)
        tags.update(patch.set_tags)
        sets["tags_json"] = json.dumps(tags, separators=(",", ":"))
        conn.execute("DELETE FROM run_tags WHERE run_id = ?", (run_id,))
        conn.executemany("INSERT INTO run_tags VALUES (?, ?, ?)", [(run_id, k, str(v)) for k, v in tags.items()])
    sets["updated_at"] = time.time()
    assignments = ", ".join(f"{column} = ?" for column in sets)  # column names from this function only
    conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", [*sets.values(), run_id])
    if patch.archived is not None:
        repair_sweep_leaders(conn, [run_id])


def repair_sweep_leaders(conn: sqlite3.Connection, run_ids: list[str]) -> None:
    """A sweep shows as its leader (the member whose id is the sweep_id). When the leader is archived or
    deleted while other members stay, the earliest visible member leads instead, so the sweep does not
    vanish from the default view."""
    marks = ", ".join("?" for _ in run_ids)
    sweeps = {r[0] for r in conn.execute(
        f"SELECT DISTINCT sweep_id FROM runs WHERE id IN ({marks}) AND sweep_id IS NOT NULL", run_ids)}
    for sweep_id in sweeps:
        _repair_sweep(conn, sweep_id)


def _repair_sweep(conn: sqlite3.Connection, sweep_id: str) -> None:
    leader = conn.execute("SELECT archived FROM runs WHERE id = ? AND sweep_id = ?", (sweep_id, sweep_id)).fetchone()
    if leader is not None and not leader[0]:
        return
    successor = conn.execute(
        "SELECT id FROM runs WHERE sweep_id = ? AND archived = 0 ORDER BY started_at, id LIMIT 1", (sweep_id,)
    ).fetchone()
    if successor is None:
        return  # every member archived (or gone): the sweep is hidden as a whole
    conn.execute("UPDATE runs SET sweep_id = ?, updated_at = ? WHERE sweep_id = ?", (successor[0], time.time(),
                                                                                      sweep_id))


def run_tree(conn: sqlite3.Connection, run_ids: list[str]) -> list[str]:
    """The runs and all their descendants, parents first."""
    marks = ", ".join("?" for _ in run_ids)
    rows = conn.execute(f"""
        WITH RECURSIVE tree(id, depth) AS (
            SELECT id, 0 FROM runs WHERE id IN ({marks})
            UNION SELECT runs.id, tree.depth + 1 FROM runs JOIN tree ON runs.parent_id = tree.id
        )
        SELECT id, MIN(depth) FROM tree GROUP BY id ORDER BY MIN(depth), id
    """, run_ids).fetchall()
    return [r[0] for r in rows]


def delete_tree(conn: sqlite3.Connection, run_ids: list[str], blob_exists: Callable[[str], bool]
                ) -> tuple[list[str], set[str], list[str]]:
    """Delete the runs and their descendants inside the caller's transaction.

    Returns (deleted ids, blobs no remaining run references, environment ids removed); the caller deletes
    the blob files once the transaction committed.
    """
    doomed = run_tree(conn, run_ids)
    if not doomed:
        return [], set(), []
    marks = ", ".join("?" for _ in doomed)
    candidates = _blobs_of(conn, doomed, marks, blob_exists)
    environments = [r[0] for r in conn.execute(
        f"SELECT DISTINCT environment_id FROM runs WHERE id IN ({marks}) AND environment_id IS NOT NULL", doomed)]
    sweeps = [r[0] for r in conn.execute(
        f"SELECT DISTINCT sweep_id FROM runs WHERE id IN ({marks}) AND sweep_id IS NOT NULL", doomed)]
    conn.execute(f"DELETE FROM runs WHERE id IN ({marks})", doomed)  # side tables cascade
    for sweep_id in sweeps:
        _repair_sweep(conn, sweep_id)
    orphaned_envs = []
    for env_id in environments:
        if conn.execute("SELECT 1 FROM runs WHERE environment_id = ? LIMIT 1", (env_id,)).fetchone() is None:
            blob = conn.execute("SELECT blob FROM environments WHERE id = ?", (env_id,)).fetchone()
            conn.execute("DELETE FROM environments WHERE id = ?", (env_id,))
            orphaned_envs.append(env_id)
            if blob:
                candidates.add(blob[0])
    return doomed, candidates - _blobs_still_used(conn, candidates), orphaned_envs


def _blobs_of(conn: sqlite3.Connection, run_ids: list[str], marks: str,
              blob_exists: Callable[[str], bool]) -> set[str]:
    found = {r[0] for r in conn.execute(f"SELECT blob FROM artifacts WHERE run_id IN ({marks})", run_ids)}
    for (record,) in conn.execute(f"SELECT record_json FROM run_details WHERE run_id IN ({marks})", run_ids):
        # Any digest a record names (logs, notebooks, executed notebooks) that the blob store holds.
        found.update(d for d in _DIGEST_IN_TEXT.findall(record or "") if blob_exists(d))
    return found


def _blobs_still_used(conn: sqlite3.Connection, candidates: set[str]) -> set[str]:
    """The candidates some remaining row still names: any table's `blob` column, or any run's record."""
    if not candidates:
        return set()
    used: set[str] = set()
    for table in _tables_with_blob_column(conn):
        for digest in candidates:
            if conn.execute(f"SELECT 1 FROM {table} WHERE blob = ? LIMIT 1", (digest,)).fetchone():
                used.add(digest)
    remaining = candidates - used
    if remaining:
        for (record,) in conn.execute("SELECT record_json FROM run_details"):
            hits = {d for d in remaining if d in (record or "")}
            if hits:
                used |= hits
                remaining -= hits
                if not remaining:
                    break
    return used


def _tables_with_blob_column(conn: sqlite3.Connection) -> list[str]:
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    # Table names come from the schema itself; quoting keeps an odd one harmless.
    return [f'"{t}"' for t in tables if any(col[1] == "blob" for col in conn.execute(f'PRAGMA table_info("{t}")'))]
