"""The indexed form of runs' parameters and metric summaries, written in the run's own transaction.

`run_params` keeps one typed value per (run, parameter): numbers as numbers (so `lr>0.01` is an index range
scan and a parameter column sorts numerically), text as text, lists and dicts as their JSON text.
`run_metric_summary` keeps each metric's last, min and max value and its point count. The list view sorts
and filters on these tables; it never scans the JSON columns of `runs`.

Every function takes the open connection of a transaction the caller holds.
"""
from __future__ import annotations

import json
import math
import sqlite3
from typing import Any, Iterable

MetricPoint = tuple[str, "int | None", float, float]  # key, step, value, timestamp

_UPSERT_METRIC = """
    INSERT INTO run_metric_summary (run_id, key, last, min, max, count) VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (run_id, key) DO UPDATE SET
        last = excluded.last,
        min = MIN(COALESCE(run_metric_summary.min, excluded.min), COALESCE(excluded.min, run_metric_summary.min)),
        max = MAX(COALESCE(run_metric_summary.max, excluded.max), COALESCE(excluded.max, run_metric_summary.max)),
        count = run_metric_summary.count + excluded.count
"""


def indexed_value(value: Any) -> Any:
    """A parameter value as the index holds it: bools as 0/1, finite numbers, text; anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) else None
    try:
        return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    except (TypeError, ValueError):
        return str(value)


def _number(value: Any) -> float | None:
    """A metric value that can order runs: any number but NaN (a diverged loss of inf still sorts)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or _is_nan(value):
        return None
    return float(value)


def write_params(conn: sqlite3.Connection, run_id: str, params: dict[str, Any]) -> None:
    """Replace a run's indexed parameters."""
    conn.execute("DELETE FROM run_params WHERE run_id = ?", (run_id,))
    if params:
        conn.executemany("INSERT INTO run_params VALUES (?, ?, ?)",
                         [(run_id, str(k), indexed_value(v)) for k, v in params.items()])


def add_metric_points(conn: sqlite3.Connection, run_id: str, points: Iterable[MetricPoint]) -> None:
    """Fold new series points into the run's metric summaries (the last point is `last`; a NaN point
    counts but orders nothing)."""
    summary: dict[str, list] = {}
    for key, _step, value, _ts in points:
        number = _number(value)
        entry = summary.setdefault(key, [None, None, None, 0])
        entry[0] = number
        if number is not None:
            entry[1] = number if entry[1] is None else min(entry[1], number)
            entry[2] = number if entry[2] is None else max(entry[2], number)
        entry[3] += 1
    if summary:
        conn.executemany(_UPSERT_METRIC, [(run_id, k, *v) for k, v in summary.items()])


def set_metric_lasts(conn: sqlite3.Connection, run_id: str, last_values: dict[str, Any]) -> None:
    """The run's summary values (what the list shows) are each metric's `last`; a metric without a series
    (a notebook run summarizing its cells) gets min = max = last."""
    rows = []
    for key, value in (last_values or {}).items():
        number = _number(value)
        rows.append((run_id, str(key), number, number, number, 0))
    if rows:
        conn.executemany(_UPSERT_METRIC, rows)


def reindex_runs(conn: sqlite3.Connection, run_ids: list[str]) -> None:
    """Rebuild the index of these runs from their rows (runs imported from another store)."""
    for run_id in run_ids:
        conn.execute("DELETE FROM run_metric_summary WHERE run_id = ?", (run_id,))
        row = conn.execute("SELECT params_json, metrics_json FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            continue
        write_params(conn, run_id, _loads(row[0]))
        _summarize_series(conn, "AND run_id = ?", (run_id,))
        set_metric_lasts(conn, run_id, _loads(row[1]))


def reindex_all(conn: sqlite3.Connection) -> None:
    """Build the whole index (the migration that introduces it, on a store of any size)."""
    conn.execute("DELETE FROM run_params")
    conn.execute("DELETE FROM run_metric_summary")
    rows = conn.execute("SELECT id, params_json, metrics_json FROM runs").fetchall()
    param_rows = [(run_id, str(k), indexed_value(v)) for run_id, params, _ in rows
                  for k, v in _loads(params).items()]
    conn.executemany("INSERT INTO run_params VALUES (?, ?, ?)", param_rows)
    _summarize_series(conn, "", ())
    for run_id, _, metrics in rows:
        set_metric_lasts(conn, run_id, _loads(metrics))


def _summarize_series(conn: sqlite3.Connection, where: str, params: tuple) -> None:
    # The last point is the one written last (rowid order), as the run's own `log()` calls made them.
    conn.execute(f"""
        INSERT INTO run_metric_summary (run_id, key, last, min, max, count)
        SELECT run_id, key,
               (SELECT m2.value FROM metrics m2 WHERE m2.run_id = m.run_id AND m2.key = m.key
                ORDER BY m2.rowid DESC LIMIT 1),
               MIN(value), MAX(value), COUNT(*)
        FROM metrics m WHERE true {where} GROUP BY run_id, key
        ON CONFLICT (run_id, key) DO NOTHING
    """, params)


def _loads(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
