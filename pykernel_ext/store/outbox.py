"""The MLflow outbox: which runs wait to be pushed to which MLflow target, and which were pushed.

A row per (run, tracking URI, experiment). The mirror queues a run when it ends (`enqueue`); whoever
pushes it (the mirror's thread, or `pykernel-ext mlflow push`) first claims it (`claim`), so two
processes never push the same run at once, then marks it `pushed` or `failed` (kept pending, retried
after a backoff). A claim is a lease: a process killed mid-push leaves a claim that expires.

The tracking URI stored here never holds credentials: callers pass a URI with any user:password removed.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Iterable

from .runs import RunStore

PENDING = "pending"
PUSHED = "pushed"
RETRY_BASE_S = 5.0
RETRY_MAX_S = 300.0


@dataclass(frozen=True)
class OutboxEntry:
    """One row of the outbox."""

    run_id: str
    tracking_uri: str
    experiment: str
    state: str
    enqueued_at: float
    next_attempt_at: float
    attempts: int
    last_attempt_at: float | None
    last_error: str | None
    claimed_by: str | None
    claimed_until: float | None
    mlflow_run_id: str | None
    pushed_at: float | None


_COLUMNS = ", ".join(OutboxEntry.__dataclass_fields__)
_CHUNK = 500


@dataclass(frozen=True)
class OutboxTotals:
    """Counts of one target's rows in one state, for `pykernel-ext mlflow status`."""

    tracking_uri: str
    experiment: str
    state: str
    count: int
    oldest_enqueued_at: float
    last_pushed_at: float | None


class MlflowOutbox:
    """The outbox table of one store, for one MLflow target (tracking URI without credentials + experiment)."""

    def __init__(self, store: RunStore, tracking_uri: str, experiment: str) -> None:
        self.store = store
        self.tracking_uri = tracking_uri
        self.experiment = experiment

    def enqueue(self, run_ids: Iterable[str], not_before: float | None = None) -> None:
        """Queue runs to be pushed (again): pending, due at `not_before`, attempts counted from zero."""
        now = time.time()
        due = now if not_before is None else not_before
        with self.store.transaction() as conn:
            conn.executemany(
                "INSERT INTO mlflow_outbox (run_id, tracking_uri, experiment, state, enqueued_at, next_attempt_at) "
                "VALUES (?, ?, ?, 'pending', ?, ?) ON CONFLICT (run_id, tracking_uri, experiment) DO UPDATE SET "
                "state = 'pending', enqueued_at = excluded.enqueued_at, next_attempt_at = excluded.next_attempt_at, "
                "attempts = 0",
                [(run_id, self.tracking_uri, self.experiment, now, due) for run_id in run_ids],
            )

    def claim_due(self, owner: str, lease_s: float, limit: int = 50) -> list[str]:
        """Claim up to `limit` pending runs that are due and not claimed by a live lease; oldest first.

        A lease held by a process of this host that is gone (killed mid-push) is free at once."""
        now = time.time()
        with self.store.transaction() as conn:
            rows = conn.execute(
                "SELECT run_id, claimed_by, claimed_until FROM mlflow_outbox WHERE tracking_uri = ? "
                "AND experiment = ? AND state = 'pending' AND next_attempt_at <= ? ORDER BY enqueued_at, run_id",
                (self.tracking_uri, self.experiment, now),
            ).fetchall()
            ids = [run_id for run_id, by, until in rows if until is None or until < now or _owner_gone(by)][:limit]
            self._set_claim(conn, ids, owner, now + lease_s)
        return ids

    def claim(self, run_ids: list[str], owner: str, lease_s: float) -> tuple[list[str], list[str]]:
        """Claim these runs whatever their state (a push by hand); rows are created as pending when missing.

        Returns (claimed, newly created): runs claimed by another live lease are left out of both.
        """
        now = time.time()
        claimed: list[str] = []
        created: list[str] = []
        with self.store.transaction() as conn:
            for start in range(0, len(run_ids), _CHUNK):  # SQLite caps the number of ? in one statement
                chunk = run_ids[start:start + _CHUNK]
                existing = {run_id: (until is not None and until >= now and not _owner_gone(by))
                            for run_id, by, until in conn.execute(
                    f"SELECT run_id, claimed_by, claimed_until FROM mlflow_outbox WHERE tracking_uri = ? "
                    f"AND experiment = ? AND run_id IN ({', '.join('?' for _ in chunk)})",
                    (self.tracking_uri, self.experiment, *chunk),
                ).fetchall()}  # run id -> held by a live lease
                new = [r for r in chunk if r not in existing]
                conn.executemany(
                    "INSERT INTO mlflow_outbox (run_id, tracking_uri, experiment, state, enqueued_at, next_attempt_at) "
                    "VALUES (?, ?, ?, 'pending', ?, ?)",
                    [(r, self.tracking_uri, self.experiment, now, now) for r in new],
                )
                created += new
                claimed += [r for r in chunk if r in new or not existing[r]]
            self._set_claim(conn, claimed, owner, now + lease_s)
        return claimed, created

    def mark_pushed(self, run_id: str, mlflow_run_id: str) -> None:
        now = time.time()
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE mlflow_outbox SET state = 'pushed', mlflow_run_id = ?, pushed_at = ?, last_attempt_at = ?, "
                "last_error = NULL, claimed_by = NULL, claimed_until = NULL "
                "WHERE run_id = ? AND tracking_uri = ? AND experiment = ?",
                (mlflow_run_id, now, now, run_id, self.tracking_uri, self.experiment),
            )

    def mark_failed(self, run_id: str, error: str, max_delay_s: float = RETRY_MAX_S) -> float:
        """Keep the run pending with the error; it is due again after a backoff that doubles with each
        attempt (RETRY_BASE_S up to `max_delay_s`). Returns when."""
        now = time.time()
        with self.store.transaction() as conn:
            row = conn.execute("SELECT attempts FROM mlflow_outbox WHERE run_id = ? AND tracking_uri = ? "
                               "AND experiment = ?", (run_id, self.tracking_uri, self.experiment)).fetchone()
            attempts = row[0] if row else 0
            retry_at = now + min(max_delay_s, RETRY_BASE_S * 2 ** min(attempts, 16))
            conn.execute(
                "UPDATE mlflow_outbox SET state = 'pending', attempts = attempts + 1, last_attempt_at = ?, "
                "last_error = ?, next_attempt_at = ?, claimed_by = NULL, claimed_until = NULL "
                "WHERE run_id = ? AND tracking_uri = ? AND experiment = ?",
                (now, error, retry_at, run_id, self.tracking_uri, self.experiment),
            )
        return retry_at

    def release(self, run_ids: list[str], forget: list[str] = ()) -> None:
        """Drop our claims without an attempt; rows in `forget` (created by a claim that led nowhere) go."""
        with self.store.transaction() as conn:
            self._set_claim(conn, run_ids, None, None)
            conn.executemany("DELETE FROM mlflow_outbox WHERE run_id = ? AND tracking_uri = ? AND experiment = ? "
                             "AND state = 'pending' AND attempts = 0",
                             [(r, self.tracking_uri, self.experiment) for r in forget])

    def pushed_mlflow_id(self, run_id: str) -> str | None:
        """The MLflow run id this run was last pushed as, if it was pushed to this target."""
        rows = self.store._read(
            "SELECT mlflow_run_id FROM mlflow_outbox WHERE run_id = ? AND tracking_uri = ? AND experiment = ?",
            (run_id, self.tracking_uri, self.experiment))
        return rows[0]["mlflow_run_id"] if rows else None

    def next_due(self) -> float | None:
        """When the earliest pending run of this target can be pushed (epoch seconds): when it is due
        and no live lease holds it. None when nothing is pending."""
        rows = self.store._read(
            "SELECT next_attempt_at, claimed_by, claimed_until FROM mlflow_outbox WHERE tracking_uri = ? "
            "AND experiment = ? AND state = 'pending'", (self.tracking_uri, self.experiment))
        now = time.time()
        times = [max(r["next_attempt_at"], r["claimed_until"] or 0)
                 if (r["claimed_until"] or 0) >= now and not _owner_gone(r["claimed_by"]) else r["next_attempt_at"]
                 for r in rows]
        return min(times, default=None)

    def _set_claim(self, conn, run_ids: list[str], owner: str | None, until: float | None) -> None:
        conn.executemany(
            "UPDATE mlflow_outbox SET claimed_by = ?, claimed_until = ? "
            "WHERE run_id = ? AND tracking_uri = ? AND experiment = ?",
            [(owner, until, r, self.tracking_uri, self.experiment) for r in run_ids],
        )


def pending_entries(store: RunStore, limit: int = 1000) -> list[OutboxEntry]:
    """Runs waiting to be pushed (every target), oldest first."""
    rows = store._read(f"SELECT {_COLUMNS} FROM mlflow_outbox WHERE state = 'pending' "
                       "ORDER BY enqueued_at, run_id LIMIT ?", (limit,))
    return [OutboxEntry(**row) for row in rows]


def outbox_totals(store: RunStore) -> list[OutboxTotals]:
    """Per target and state: how many runs, the oldest queued, the latest pushed."""
    rows = store._read(
        "SELECT tracking_uri, experiment, state, COUNT(*) AS count, MIN(enqueued_at) AS oldest_enqueued_at, "
        "MAX(pushed_at) AS last_pushed_at FROM mlflow_outbox GROUP BY tracking_uri, experiment, state "
        "ORDER BY tracking_uri, experiment, state")
    return [OutboxTotals(**row) for row in rows]


def owner_name() -> str:
    """How this process signs its claims: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_gone(owner: str | None) -> bool:
    """Whether a claim's owner was a process of this host that no longer runs."""
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
