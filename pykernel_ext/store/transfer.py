"""Moving runs between stores: a batch execution records into a private store on its worker and the
driver imports the bundle, so workers never need access to the user's store (the driver writes).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .index import reindex_runs
from .runs import RunStore

_TABLES = ("runs", "run_details", "run_tags", "metrics", "artifacts", "gpu_samples")
_RUN_KEY = {"runs": "id"}  # every other table keys its rows by run_id


def export_runs(store: RunStore) -> dict[str, Any]:
    """Every run of `store` with its details, series, artifacts, environments and the blobs they name."""
    bundle: dict[str, Any] = {"tables": {}, "environments": [], "blobs": {}}
    for table in _TABLES:
        bundle["tables"][table] = store._read(f"SELECT * FROM {table}")
    bundle["environments"] = store._read("SELECT * FROM environments")
    for digest in _referenced_blobs(bundle):
        if store.blobs.exists(digest):
            bundle["blobs"][digest] = store.blobs.read_bytes(digest)
    return bundle


def import_runs(store: RunStore, bundle: dict[str, Any], *, parent_id: str | None = None,
                reproduces: str | None = None) -> list[str]:
    """Write a bundle's runs into `store`; top-level runs become children of `parent_id`.

    Runs still `running` in the bundle (their kernel died mid-cell) are imported as `interrupted`.
    Returns the imported run ids in start order.
    """
    for digest, content in bundle.get("blobs", {}).items():
        if not store.blobs.exists(digest):
            store.blobs.put_bytes(content)
    tables = bundle.get("tables", {})
    runs = sorted(tables.get("runs", []), key=lambda r: r["started_at"])
    now = time.time()
    with store.transaction() as conn:
        for env in bundle.get("environments", []):
            conn.execute("INSERT OR IGNORE INTO environments VALUES (?, ?, ?)", (env["id"], env["blob"], env["created_at"]))
        for row in runs:
            row = dict(row)
            if row.get("parent_id") is None:
                row["parent_id"] = parent_id
                if reproduces:
                    row["reproduces"] = reproduces
            if row["status"] == "running":
                row.update(status="interrupted", ended_at=now, duration_s=now - row["started_at"],
                           error_type="KernelDied",
                           error_message="the notebook's kernel ended while this cell ran")
            row["updated_at"] = now
            _insert_row(conn, "runs", row)
        for table in _TABLES[1:]:
            for row in tables.get(table, []):
                _insert_row(conn, table, row)
        # The sortable index is derived, so it is rebuilt here rather than carried in the bundle.
        reindex_runs(conn, [r["id"] for r in runs])
    return [r["id"] for r in runs]


def _insert_row(conn, table: str, row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    conn.execute(f"INSERT OR REPLACE INTO {table} ({columns}) VALUES ({marks})", list(row.values()))


def _referenced_blobs(bundle: dict[str, Any]) -> set[str]:
    digests = {env["blob"] for env in bundle["environments"]}
    digests |= {a["blob"] for a in bundle["tables"]["artifacts"]}
    for row in bundle["tables"]["run_details"]:
        logs = json.loads(row["record_json"]).get("logs") or {}
        digests |= {logs[k] for k in ("stdout_blob", "stderr_blob") if logs.get(k)}
    return digests


def open_private_store(folder: Path) -> RunStore:
    """A store in a scratch folder, for one execution on a worker."""
    return RunStore.open(Path(folder) / ".pykernel_ext")
