"""Numbered schema migrations, recorded in a table (the sqlite-utils way, no Alembic).

A migration is a function taking a connection. Never edit one that has shipped: add the next number.
"""
from __future__ import annotations

import sqlite3
from typing import Callable

Migration = Callable[[sqlite3.Connection], None]


def _m001_initial(conn: sqlite3.Connection) -> None:
    # `runs` holds only the summary columns list views read; everything else sits in narrow side tables
    # or in `run_details`, so listing 100,000 runs never drags code, logs or metric series along.
    _run_statements(conn, """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            parent_id TEXT,
            kind TEXT NOT NULL,
            name TEXT,
            status TEXT NOT NULL,
            notebook TEXT,
            cell_id TEXT,
            execution_count INTEGER,
            started_at REAL NOT NULL,
            ended_at REAL,
            duration_s REAL,
            code_hash TEXT,
            environment_id TEXT,
            host TEXT,
            owner_host TEXT,
            owner_pid INTEGER,
            owner_started_at REAL,
            error_type TEXT,
            error_message TEXT,
            cost_usd REAL,
            params_json TEXT NOT NULL DEFAULT '{}',
            metrics_json TEXT NOT NULL DEFAULT '{}',
            tags_json TEXT NOT NULL DEFAULT '{}',
            reproduces TEXT,
            updated_at REAL NOT NULL
        );
        CREATE INDEX runs_updated ON runs(updated_at);
        -- the process that writes a run (the driver) owns it; a run whose owner died is `interrupted`
        CREATE INDEX runs_running ON runs(status) WHERE status = 'running';
        CREATE INDEX runs_started ON runs(started_at DESC);
        CREATE INDEX runs_status ON runs(status, started_at DESC);
        CREATE INDEX runs_notebook ON runs(notebook, started_at DESC);
        CREATE INDEX runs_parent ON runs(parent_id);

        CREATE TABLE run_details (
            run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
            record_json TEXT NOT NULL
        );
        CREATE TABLE run_tags (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (run_id, key)
        );
        CREATE INDEX run_tags_kv ON run_tags(key, value);
        CREATE TABLE metrics (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            step INTEGER,
            value REAL,
            timestamp REAL NOT NULL
        );
        CREATE INDEX metrics_run ON metrics(run_id, key, step);
        CREATE TABLE artifacts (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            blob TEXT NOT NULL,
            size INTEGER NOT NULL,
            PRIMARY KEY (run_id, path)
        );
        CREATE TABLE gpu_samples (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            host TEXT,
            gpu_index INTEGER NOT NULL,
            timestamp REAL NOT NULL,
            utilization REAL,
            memory_used INTEGER,
            memory_total INTEGER
        );
        CREATE INDEX gpu_samples_run ON gpu_samples(run_id, timestamp);
        CREATE TABLE environments (
            id TEXT PRIMARY KEY,
            blob TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        """)


def _m002_log_chunks(conn: sqlite3.Connection) -> None:
    # A running run's stdout/stderr, appended by live flushes so a killed kernel keeps what it printed.
    # A run that ends writes its logs as blobs and drops its chunks; a run found dead has them made into
    # blobs by the reconciliation. Chunks are read in rowid order, as metric points are.
    _run_statements(conn, """
        CREATE TABLE log_chunks (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            stream TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr')),
            text TEXT NOT NULL,
            timestamp REAL NOT NULL
        );
        CREATE INDEX log_chunks_run ON log_chunks(run_id);
        """)


def _m003_mlflow_outbox(conn: sqlite3.Connection) -> None:
    # One row per (run, MLflow target): `pending` until pushed (the mirror's outbox, retried with backoff),
    # then `pushed` with the MLflow run id (what `pykernel-ext mlflow status` reports). A claim (owner,
    # lease) keeps two processes from pushing the same run at once; an expired lease is free again.
    # `tracking_uri` never holds credentials (user:password@ is removed before it is written).
    _run_statements(conn, """
        CREATE TABLE mlflow_outbox (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            tracking_uri TEXT NOT NULL,
            experiment TEXT NOT NULL,
            state TEXT NOT NULL,
            enqueued_at REAL NOT NULL,
            next_attempt_at REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_attempt_at REAL,
            last_error TEXT,
            claimed_by TEXT,
            claimed_until REAL,
            mlflow_run_id TEXT,
            pushed_at REAL,
            PRIMARY KEY (run_id, tracking_uri, experiment)
        );
        CREATE INDEX mlflow_outbox_due ON mlflow_outbox(state, next_attempt_at);
        """)


def _m004_run_index_and_management(conn: sqlite3.Connection) -> None:
    # Sorting and filtering by parameters and metrics over 100,000 runs needs indexes, never a JSON scan:
    # `run_params` holds each parameter as one typed value (numbers stay numbers, so `lr>0.01` is a range
    # scan) and `run_metric_summary` each metric's last, min and max. Both are written in the same
    # transaction as the run. `note`, `starred`, `archived` are the user's own marks; `sweep_id` groups
    # the runs of one `pykernel-ext run` invocation (it is the id of the sweep's first run).
    _run_statements(conn, """
        ALTER TABLE runs ADD COLUMN note TEXT;
        ALTER TABLE runs ADD COLUMN starred INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE runs ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE runs ADD COLUMN sweep_id TEXT;
        CREATE INDEX runs_sweep ON runs(sweep_id, started_at) WHERE sweep_id IS NOT NULL;
        -- Partial, so planner statistics count only runs that have a parent: with most runs top level, the
        -- full index made `parent_id = ?` look unselective and a run's children were found by a full scan.
        DROP INDEX runs_parent;
        CREATE INDEX runs_children ON runs(parent_id, started_at) WHERE parent_id IS NOT NULL;
        -- The default views (not archived; top level with sweeps folded) page newest first and count from
        -- these alone, never touching the wide rows: the filter columns ride along in the index.
        CREATE INDEX runs_visible ON runs(archived, started_at, id);
        CREATE INDEX runs_top ON runs(archived, parent_id, started_at, id, sweep_id);
        -- a filter on parameters or tags yields run ids: checking each id's flags stays in this index
        CREATE INDEX runs_id_flags ON runs(id, archived, parent_id, sweep_id, starred);

        -- `value` has no declared type on purpose: numbers and text keep their own types, and SQLite orders
        -- numbers before text, which is the order a parameter column sorts in.
        CREATE TABLE run_params (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID;
        CREATE INDEX run_params_key_value ON run_params(key, value);
        CREATE TABLE run_metric_summary (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            last REAL,
            min REAL,
            max REAL,
            count INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID;
        CREATE INDEX run_metric_last ON run_metric_summary(key, last);
        CREATE INDEX run_metric_min ON run_metric_summary(key, min);
        CREATE INDEX run_metric_max ON run_metric_summary(key, max);
        """)
    from .index import reindex_all

    reindex_all(conn)


def _run_statements(conn: sqlite3.Connection, script: str) -> None:
    # Not executescript(): it COMMITs first, which would break the migration's transaction.
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    for statement in "\n".join(lines).split(";"):
        if statement.strip():
            conn.execute(statement)


MIGRATIONS: list[Migration] = [_m001_initial, _m002_log_chunks, _m003_mlflow_outbox,
                               _m004_run_index_and_management]
SCHEMA_VERSION = len(MIGRATIONS)
