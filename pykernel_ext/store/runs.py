"""The run store: SQLite (WAL, busy timeout, short write transactions) plus content-addressed blobs.

Writers are the processes that drive runs (a kernel, the CLI, a batch driver). Many may write at once:
every write is one short `BEGIN IMMEDIATE` transaction and waits on the busy timeout instead of failing.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from ..config import Settings
from ..records import OWNER_COLUMNS
from ..records import EnvironmentRecord, GpuSampleRow, RunDetails, RunRecord, RunSummary
from ..records import SUMMARY_COLUMNS as RECORD_COLUMNS
from ..errors import AmbiguousRunId, RunNotFound, StoreError, StoreVersionError
from . import index, log_chunks
from .blobs import BlobStore
from .manage import RECENT_BLOB_SECONDS, DeleteReport, RunPatch, apply_patch, delete_tree, run_tree
from .query import COLUMN_SORTS, SUMMARY_COLUMNS, RunFilter, RunPage, SortKey, group_info, keys_present, page
from .schema import MIGRATIONS, SCHEMA_VERSION
from .search import parse_search

log = logging.getLogger("pykernel_ext.store")

DB_FILENAME = "runs.sqlite"
# How long a write waits for another process's transaction. Writes are short, so waiting longer means
# something holds the store (a stuck process); a tracked cell then runs on unrecorded after one warning.
ENV_BUSY_TIMEOUT_MS = "PYKERNEL_EXT_BUSY_TIMEOUT_MS"
DEFAULT_BUSY_TIMEOUT_MS = 15_000
SORTABLE = set(COLUMN_SORTS)  # run columns; `param:KEY` and `metric:KEY[:min|max]` sort too


class RunStore:
    """A run store folder: `runs.sqlite` and `blobs/`. Open with `RunStore.open()`."""

    def __init__(self, store_dir: Path, conn: sqlite3.Connection) -> None:
        self.store_dir = store_dir
        self.db_path = store_dir / DB_FILENAME
        self.blobs = BlobStore(store_dir / "blobs")
        self._conn = conn
        # One connection shared by the threads of a process (background git capture writes too).
        self._lock = threading.RLock()
        self._depth = 0

    # ---- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, store_dir: Path | str | None = None) -> "RunStore":
        """Open (creating if needed) the store; migrates an older schema, refuses a newer one."""
        store_dir = Path(store_dir) if store_dir else Settings.from_env().store_dir
        try:
            store_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the run store folder {store_dir}: {exc.strerror}; "
                             f"set PYKERNEL_EXT_HOME to a writable folder") from exc
        db_path = store_dir / DB_FILENAME
        busy_ms = _busy_timeout_ms()
        try:
            conn = sqlite3.connect(db_path, timeout=busy_ms / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            store = cls(store_dir, conn)
            store._migrate()
            store._refresh_statistics()
        except sqlite3.DatabaseError as exc:
            raise _explain_open_error(db_path, exc) from exc
        return store

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        with self.transaction():
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (number INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            done = {row[0] for row in self._conn.execute("SELECT number FROM schema_migrations")}
            newest = max(done, default=0)
            if newest > SCHEMA_VERSION:
                raise StoreVersionError(
                    f"the run store {self.db_path} has schema version {newest}, but this pykernel-ext knows only "
                    f"up to {SCHEMA_VERSION}: upgrade pykernel-ext (pip install -U pykernel-ext)"
                )
            for number, migration in enumerate(MIGRATIONS, start=1):
                if number not in done:
                    migration(self._conn)
                    self._conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (number, time.time()))

    def _refresh_statistics(self) -> None:
        """Keep SQLite's planner statistics near the store's size.

        Without them SQLite takes `archived = 0` for a selective condition and sorts 100,000 rows instead of
        walking the started_at index. ANALYZE costs ~0.4 s at 100,000 runs, so it runs only when the run
        count moved by 2x since the last one (a growing store, a bulk import); a normal open costs one
        COUNT over an index.
        """
        with self._lock:
            runs = self._conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            if runs < 200:
                return
            try:
                row = self._conn.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = 'runs' LIMIT 1").fetchone()
            except sqlite3.OperationalError:  # no sqlite_stat1 yet: never analyzed
                row = None
            known = int(row[0].split()[0]) if row and row[0] else 0
            if known and known / 2 <= runs <= known * 2:
                return
            try:
                self._conn.execute("ANALYZE")
            except sqlite3.OperationalError as exc:  # a busy store: the planner works on, just less well
                log.info("pykernel-ext: store statistics not refreshed (%s)", exc)

    @property
    def schema_version(self) -> int:
        return self._conn.execute("SELECT MAX(number) FROM schema_migrations").fetchone()[0]

    # ---- transactions ----------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (`BEGIN IMMEDIATE`); nested calls become SAVEPOINTs."""
        with self._lock:
            outer = self._depth == 0
            name = f"sp{self._depth}"
            try:
                self._conn.execute("BEGIN IMMEDIATE" if outer else f"SAVEPOINT {name}")
            except sqlite3.DatabaseError as exc:
                raise _explain_open_error(self.db_path, exc) from exc
            self._depth += 1
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK" if outer else f"ROLLBACK TO {name}")
                if not outer:
                    self._conn.execute(f"RELEASE {name}")
                raise
            else:
                self._conn.execute("COMMIT" if outer else f"RELEASE {name}")
            finally:
                self._depth -= 1

    def _read(self, sql: str, params: tuple | list = ()) -> list[sqlite3.Row]:
        with self._lock:
            cursor = self._conn.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    # ---- writing runs ----------------------------------------------------------------------

    def begin_run(self, summary: RunSummary | dict[str, Any], details: RunDetails | dict[str, Any]) -> None:
        """Insert a run in state `running`, owned by this process."""
        row = _summary_row(summary)
        row.setdefault("status", "running")
        row.setdefault("owner_host", socket.gethostname())
        row["updated_at"] = time.time()
        with self.transaction() as conn:
            _insert(conn, "runs", row)
            conn.execute("INSERT INTO run_details VALUES (?, ?)", (row["id"], _dumps(details)))
            if summary.get("tags"):
                _replace_tags(conn, row["id"], summary["tags"])
            index.write_params(conn, row["id"], summary.get("params") or {})
            if summary.get("metrics"):
                index.set_metric_lasts(conn, row["id"], summary["metrics"])

    def finish_run(
        self,
        run_id: str,
        summary: dict[str, Any],
        details: dict[str, Any],
        metrics: list[tuple[str, int | None, float, float]] = (),
        artifacts: list[tuple[str, str, int]] = (),
        gpu_samples: list[dict[str, Any]] = (),
        *,
        drop_log_chunks: bool = False,
    ) -> None:
        """Write a run's outcome in one transaction: summary, details, series, artifacts, GPU samples.

        `drop_log_chunks`: the details hold the run's whole logs, so the chunks live flushes appended go."""
        row = _summary_row(summary)
        row.pop("id", None)
        row["updated_at"] = time.time()
        with self.transaction() as conn:
            if row:
                sets = ", ".join(f"{k} = ?" for k in row)
                conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", [*row.values(), run_id])
            conn.execute("INSERT OR REPLACE INTO run_details VALUES (?, ?)", (run_id, _dumps(details)))
            if "tags" in summary:
                _replace_tags(conn, run_id, summary["tags"] or {})
            if "params" in summary:
                index.write_params(conn, run_id, summary["params"] or {})
            # Skipping empty batches matters: a trivial tracked cell's whole budget is ~1 ms.
            if metrics:
                conn.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)",
                                 [(run_id, k, step, v, ts) for k, step, v, ts in metrics])
                index.add_metric_points(conn, run_id, metrics)
            if summary.get("metrics"):
                index.set_metric_lasts(conn, run_id, summary["metrics"])
            if artifacts:
                conn.executemany("INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?)",
                                 [(run_id, p, b, s) for p, b, s in artifacts])
            if gpu_samples:
                conn.executemany(
                    "INSERT INTO gpu_samples VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, s.get("host"), s["index"], s["timestamp"], s.get("utilization_percent"),
                      s.get("memory_used_bytes"), s.get("memory_total_bytes")) for s in gpu_samples],
                )
            if drop_log_chunks:
                log_chunks.drop_chunks(conn, run_id)

    def append_metrics(self, run_id: str, rows: list[tuple[str, int | None, float, float]],
                       last_values: dict[str, float]) -> None:
        """Add metric points to a running run and refresh its summary values (a live flush)."""
        self.append_live(run_id, rows, last_values)

    def append_live(self, run_id: str, rows: list[tuple[str, int | None, float, float]] = (),
                    last_values: dict[str, float] | None = None, chunks: list[tuple[str, str]] = ()) -> None:
        """A live flush of a running run: metric points, summary values and (stream, text) log chunks."""
        now = time.time()
        with self.transaction() as conn:
            if rows:
                conn.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)",
                                 [(run_id, k, step, v, ts) for k, step, v, ts in rows])
                index.add_metric_points(conn, run_id, rows)
            if chunks:
                log_chunks.append_chunks(conn, run_id, chunks, now)
            if last_values is not None:
                conn.execute("UPDATE runs SET metrics_json = ?, updated_at = ? WHERE id = ?",
                             (_dumps(last_values), now, run_id))
                index.set_metric_lasts(conn, run_id, last_values)
            else:
                conn.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (now, run_id))

    def live_logs(self, run_id: str) -> dict[str, str]:
        """The stdout/stderr live flushes appended for a run still running ({} once it ended)."""
        with self._lock:
            return log_chunks.read_chunks(self._conn, run_id)

    def merge_details(self, run_id: str, patch: dict[str, Any]) -> None:
        """Add keys to a run's details (used by captures that finish after the run, such as git)."""
        with self.transaction() as conn:
            row = conn.execute("SELECT record_json FROM run_details WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return
            details = json.loads(row[0])
            details.update(patch)
            conn.execute("UPDATE run_details SET record_json = ? WHERE run_id = ?", (_dumps(details), run_id))

    def put_environment(self, env_id: str, environment: dict[str, Any]) -> str:
        """Store an environment once per distinct fingerprint; returns its id."""
        with self._lock:
            known = self._conn.execute("SELECT 1 FROM environments WHERE id = ?", (env_id,)).fetchone()
        if known:
            return env_id
        blob = self.blobs.put_text(_dumps(environment))
        with self.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO environments VALUES (?, ?, ?)", (env_id, blob, time.time()))
        return env_id

    def environment(self, env_id: str | None) -> EnvironmentRecord | None:
        if not env_id:
            return None
        rows = self._read("SELECT blob FROM environments WHERE id = ?", (env_id,))
        return json.loads(self.blobs.read_text(rows[0]["blob"])) if rows else None

    def mark_orphans_interrupted(self) -> int:
        """Runs still `running` whose owning process on this host is gone become `interrupted`.

        A kernel killed mid-cell cannot record its own end, so every open of the store by a reader or
        writer reconciles. Runs owned by other hosts are left alone: we cannot see their processes.
        """
        host = socket.gethostname()
        rows = self._read(
            "SELECT id, owner_pid, owner_started_at, started_at FROM runs WHERE status = 'running' AND owner_host = ?",
            (host,),
        )
        dead = [r for r in rows if not _process_alive(r["owner_pid"], r["owner_started_at"])]
        if not dead:
            return 0
        now = time.time()
        with self.transaction() as conn:
            for r in dead:
                reason = (f"the process that ran it (pid {r['owner_pid']} on {host}) ended before the run "
                          "finished: the kernel was killed, restarted or crashed")
                changed = conn.execute(
                    "UPDATE runs SET status = 'interrupted', ended_at = ?, updated_at = ?, duration_s = ?, "
                    "error_type = ?, error_message = ? WHERE id = ? AND status = 'running'",
                    (now, now, now - r["started_at"], "ProcessEnded", reason, r["id"]),
                ).rowcount
                if changed:  # another reader may have reconciled it meanwhile
                    self._record_process_end(conn, r["id"], reason)
        return len(dead)

    def _record_process_end(self, conn: sqlite3.Connection, run_id: str, reason: str) -> None:
        """A dead run's details get the error and the logs its live flushes had appended."""
        row = conn.execute("SELECT record_json FROM run_details WHERE run_id = ?", (run_id,)).fetchone()
        details = json.loads(row[0]) if row else {}
        details.setdefault("error", {"type": "ProcessEnded", "message": reason, "traceback": None})
        logs = log_chunks.recover_logs(conn, self.blobs, run_id)
        if logs is not None:
            details["logs"] = logs
            details["warnings"] = [*(details.get("warnings") or []),
                                   "logs end at the last live flush before the process ended; later output was lost"]
        conn.execute("INSERT OR REPLACE INTO run_details VALUES (?, ?)", (run_id, _dumps(details)))

    # ---- reading runs ----------------------------------------------------------------------

    def resolve_run_id(self, ref: str) -> str:
        """A full run id from an id or a unique prefix."""
        ref = (ref or "").strip().lower()
        if not ref or not all(c in "0123456789abcdef" for c in ref):
            raise RunNotFound(ref, f"{ref!r} is not a run id (run ids are hexadecimal, e.g. from `pykernel-ext runs list`)")
        rows = self._read("SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 6", (ref, ref + "g"))
        ids = [r["id"] for r in rows]
        if not ids:
            raise RunNotFound(ref)
        if len(ids) > 1 and ref not in ids:
            raise AmbiguousRunId(ref, ids)
        return ref if ref in ids else ids[0]

    def list_runs(
        self,
        *,
        notebook: str | None = None,
        status: str | None = None,
        kind: str | None = None,
        tag: str | None = None,
        search: str | None = None,
        parent_id: str | None = None,
        top_level: bool = False,
        sort: str = "started_at",
        descending: bool = True,
        limit: int = 50,
        offset: int = 0,
        archived: str = "exclude",
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of run summaries and the total count matching the filters.

        `search` takes the search syntax (`lr=0.1 status:failed words`, see `store/search.py`); `sort` a
        column, `param:KEY` or `metric:KEY[:min|max]`; archived runs are left out unless `archived` is
        `include` or `only`.
        """
        from .query import parse_sort

        run_filter = RunFilter(notebook=notebook, status=status, kind=kind, tag=tag, search=parse_search(search),
                               parent_id=parent_id, top_level=top_level, archived=archived)
        result = self.page_runs(run_filter, parse_sort(sort, descending), limit=limit, offset=offset)
        return result.rows, result.total or 0

    def page_runs(self, run_filter: RunFilter, sort: SortKey, *, limit: int = 50, offset: int = 0,
                  after: str | None = None, with_total: bool = True, with_groups: bool = False) -> RunPage:
        """A page of the list by offset or after a cursor (keyset), with the cursor of the next page.
        `with_groups` adds each row's `children_count` and a sweep's `sweep` counts."""
        with self._lock:
            result = page(self._read, run_filter, sort, limit=limit, offset=offset, after=after,
                          with_total=with_total)
            result.rows = [_summary_out(r) for r in result.rows]
            if with_groups:
                group_info(self._read, result.rows)
        return result

    def run_keys(self, run_filter: RunFilter) -> dict[str, list[dict[str, Any]]]:
        """Parameter, metric and tag keys of the filtered runs, most common first."""
        return keys_present(self._read, run_filter)

    def get_run(self, ref: str) -> RunRecord:
        """One run in full: summary, details, metric series, artifacts, GPU samples, children."""
        run_id = self.resolve_run_id(ref)
        rows = self._read(f"SELECT {SUMMARY_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        run = _summary_out(rows[0])
        detail_rows = self._read("SELECT record_json FROM run_details WHERE run_id = ?", (run_id,))
        details = json.loads(detail_rows[0]["record_json"]) if detail_rows else {}
        run.update({k: v for k, v in details.items() if k not in run})
        run["metric_series"] = self.metric_series(run_id)
        run["artifacts"] = self._read("SELECT path, blob, size FROM artifacts WHERE run_id = ? ORDER BY path", (run_id,))
        run["gpu_samples"] = self.gpu_samples(run_id)
        run["children"] = [r["id"] for r in self._read(
            "SELECT id FROM runs WHERE parent_id = ? ORDER BY started_at", (run_id,))]
        return run

    def runs_changed_since(self, since: float, limit: int = 500) -> list[RunSummary]:
        """Summaries of runs created or updated after `since` (epoch seconds), oldest change first."""
        rows = self._read(f"SELECT {SUMMARY_COLUMNS} FROM runs WHERE updated_at > ? ORDER BY updated_at LIMIT ?",
                          (since, limit))
        return [_summary_out(r) for r in rows]

    def get_runs(self, refs: list[str]) -> list[RunRecord]:
        return [self.get_run(ref) for ref in refs]

    def metric_series(self, run_id: str) -> dict[str, dict[str, list]]:
        series: dict[str, dict[str, list]] = {}
        for r in self._read("SELECT key, step, value, timestamp FROM metrics WHERE run_id = ? ORDER BY rowid", (run_id,)):
            s = series.setdefault(r["key"], {"steps": [], "values": [], "timestamps": []})
            s["steps"].append(r["step"])
            s["values"].append(r["value"])
            s["timestamps"].append(r["timestamp"])
        return series

    def gpu_samples(self, run_id: str) -> list[GpuSampleRow]:
        return self._read(
            "SELECT host, gpu_index, timestamp, utilization, memory_used, memory_total FROM gpu_samples "
            "WHERE run_id = ? ORDER BY timestamp", (run_id,))

    def artifact_blob(self, run_id: str, path: str) -> tuple[str, int]:
        rows = self._read("SELECT blob, size FROM artifacts WHERE run_id = ? AND path = ?", (run_id, path))
        if not rows:
            raise RunNotFound(run_id, f"run {run_id} has no artifact {path!r}")
        return rows[0]["blob"], rows[0]["size"]

    def run_parents(self, run_ids: list[str] | None = None) -> dict[str, tuple[str | None, str]]:
        """{run id: (parent id, kind)} for these runs (every run when None), oldest first."""
        if run_ids is None:
            rows = self._read("SELECT id, parent_id, kind FROM runs ORDER BY started_at, id")
        else:
            rows = []
            for start in range(0, len(run_ids), 500):  # SQLite caps the number of ? in one statement
                chunk = run_ids[start:start + 500]
                rows += self._read(f"SELECT id, parent_id, kind FROM runs WHERE id IN ({', '.join('?' for _ in chunk)}) "
                                   "ORDER BY started_at, id", chunk)
        return {r["id"]: (r["parent_id"], r["kind"]) for r in rows}

    def replace_run(self, summary: dict[str, Any], details: dict[str, Any],
                    metrics: list[tuple[str, int | None, float, float]] = ()) -> None:
        """Write a whole run recorded elsewhere (pulled from MLflow), replacing an earlier copy of it."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM runs WHERE id = ?", (summary["id"],))
            self.begin_run(summary, details)
            self.finish_run(summary["id"], summary, details, list(metrics))

    def summary(self, ref: str) -> RunSummary:
        """One run's summary row (what the list shows)."""
        run_id = self.resolve_run_id(ref)
        return _summary_out(self._read(f"SELECT {SUMMARY_COLUMNS} FROM runs WHERE id = ?", (run_id,))[0])

    def child_summaries(self, run_id: str, limit: int = 200) -> list[RunSummary]:
        """The summaries of a run's children, in start order."""
        rows = self._read(f"SELECT {SUMMARY_COLUMNS} FROM runs WHERE parent_id = ? ORDER BY started_at, id LIMIT ?",
                          (run_id, limit))
        return [_summary_out(r) for r in rows]

    def metric_stats(self, run_ids: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
        """Each run's metric summaries: {run id: {key: {last, min, max, count}}}."""
        stats: dict[str, dict[str, dict[str, Any]]] = {}
        for start in range(0, len(run_ids), 500):
            chunk = run_ids[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            for r in self._read(f"SELECT run_id, key, last, min, max, count FROM run_metric_summary "
                                f"WHERE run_id IN ({marks})", chunk):
                stats.setdefault(r.pop("run_id"), {})[r.pop("key")] = r
        return stats

    # ---- managing runs ---------------------------------------------------------------------

    def update_run(self, ref: str, patch: RunPatch) -> RunSummary:
        """Rename, annotate, tag, star or archive a run; returns its new summary."""
        patch = patch.validate()
        run_id = self.resolve_run_id(ref)
        if not patch.empty:
            with self.transaction() as conn:
                apply_patch(conn, run_id, patch)
        return self.summary(run_id)

    def delete_runs(self, refs: list[str]) -> DeleteReport:
        """Delete runs with their descendants, then the blobs no remaining run uses."""
        run_ids = [self.resolve_run_id(ref) for ref in refs]
        with self.transaction() as conn:
            deleted, unused, environments = delete_tree(conn, run_ids, self.blobs.exists)
        report = DeleteReport(deleted, environments_removed=len(environments))
        for digest in sorted(unused):
            freed = self.blobs.remove(digest, older_than=RECENT_BLOB_SECONDS)
            if freed is not None:
                report.blobs_removed += 1
                report.bytes_freed += freed
        return report

    def delete_preview(self, refs: list[str]) -> list[RunSummary]:
        """The summaries of what `delete_runs(refs)` would delete (the runs and their descendants)."""
        run_ids = [self.resolve_run_id(ref) for ref in refs]
        with self._lock:
            doomed = run_tree(self._conn, run_ids)
        return [self.summary(run_id) for run_id in doomed]

    def assign_sweep(self, run_ids: list[str]) -> str | None:
        """Group runs started by one invocation as a sweep (led by the first); returns the sweep id."""
        if len(run_ids) < 2:
            return None
        sweep_id = run_ids[0]
        marks = ", ".join("?" for _ in run_ids)
        with self.transaction() as conn:
            conn.execute(f"UPDATE runs SET sweep_id = ?, updated_at = ? WHERE id IN ({marks})",
                         [sweep_id, time.time(), *run_ids])
        return sweep_id

    def count_runs(self) -> int:
        return self._read("SELECT COUNT(*) AS n FROM runs")[0]["n"]


# ---- helpers ---------------------------------------------------------------------------------

# From the one field list (records.RunSummary): summary keys stored as JSON text, and the plain columns.
_JSON_COLUMNS = {name: column.column for name, column in RECORD_COLUMNS.items() if column.json}
_COLUMNS = {column.column for column in RECORD_COLUMNS.values() if not column.json} | set(OWNER_COLUMNS)


def _summary_row(summary: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in summary.items() if k in _COLUMNS}
    for key, column in _JSON_COLUMNS.items():
        if key in summary:
            row[column] = _dumps(summary[key] or {})
    return row


def _summary_out(row: dict[str, Any]) -> RunSummary:
    out = dict(row)
    for key, column in _JSON_COLUMNS.items():
        out[key] = json.loads(out.pop(column) or "{}")
    for flag in ("starred", "archived"):
        if flag in out:
            out[flag] = bool(out[flag])
    return out


def _insert(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    cols = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(row.values()))


def _replace_tags(conn: sqlite3.Connection, run_id: str, tags: dict[str, Any]) -> None:
    conn.execute("DELETE FROM run_tags WHERE run_id = ?", (run_id,))
    conn.executemany("INSERT INTO run_tags VALUES (?, ?, ?)", [(run_id, str(k), str(v)) for k, v in tags.items()])


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


def _busy_timeout_ms() -> int:
    raw = os.environ.get(ENV_BUSY_TIMEOUT_MS, "")
    return int(raw) if raw.isdigit() else DEFAULT_BUSY_TIMEOUT_MS


def _process_alive(pid: int | None, started_at: float | None) -> bool:
    if not pid:
        return False
    import psutil  # lazy: only the reconciliation needs it

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped by its parent
            return False
        # The same pid may have been reused by a new process after the kernel died.
        return started_at is None or abs(proc.create_time() - started_at) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _explain_open_error(db_path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        return StoreError(f"the run store {db_path} stayed locked for {_busy_timeout_ms() / 1000:g} s by another "
                          "process; close whatever holds it (a stuck kernel?) and try again")
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StoreError(f"the run store {db_path} is corrupt ({text}): move it aside "
                          f"(mv {db_path} {db_path}.broken) and a new one is created; blobs are kept")
    if "readonly" in text or "unable to open" in text:
        return StoreError(f"cannot write the run store {db_path} ({text}): make the folder writable or set "
                          "PYKERNEL_EXT_HOME to a writable folder")
    return StoreError(f"cannot open the run store {db_path}: {text}")
