"""The run store: schema and migrations, writes and reads, concurrency, orphaned runs, broken stores."""
from __future__ import annotations

import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time
import uuid

import pytest

from pykernel_ext.errors import AmbiguousRunId, InvalidBlobReference, RunNotFound, StoreError, StoreVersionError
from pykernel_ext.store import RunStore
from pykernel_ext.store.schema import SCHEMA_VERSION


def _summary(**overrides):
    run_id = overrides.pop("id", uuid.uuid4().hex)
    base = {"id": run_id, "kind": "cell", "name": "r", "started_at": time.time(), "owner_pid": os.getpid(),
            "params": {"lr": 0.1}, "tags": {"team": "vision"}}
    base.update(overrides)
    return base


def test_open_creates_schema_and_records_migrations(store):
    assert store.schema_version == SCHEMA_VERSION
    mode = store._conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    tables = {r[0] for r in store._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "run_details", "metrics", "artifacts", "gpu_samples", "environments", "schema_migrations"} <= tables


def test_reopen_does_not_migrate_again(store_home):
    path = store_home / ".pykernel_ext"
    RunStore.open(path).close()
    with RunStore.open(path) as again:
        rows = again._conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0]
    assert rows == SCHEMA_VERSION


def test_newer_schema_is_refused_with_an_upgrade_hint(store_home):
    path = store_home / ".pykernel_ext"
    with RunStore.open(path) as s:
        s._conn.execute("INSERT INTO schema_migrations VALUES (999, 0)")
    with pytest.raises(StoreVersionError, match="upgrade pykernel-ext"):
        RunStore.open(path)


def test_corrupt_database_gets_an_actionable_error(store_home):
    path = store_home / ".pykernel_ext"
    path.mkdir()
    (path / "runs.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="corrupt.*move it aside"):
        RunStore.open(path)


def test_locked_store_times_out_with_a_clear_error(store_home, monkeypatch):
    path = store_home / ".pykernel_ext"
    RunStore.open(path).close()
    holder = sqlite3.connect(path / "runs.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setenv("PYKERNEL_EXT_BUSY_TIMEOUT_MS", "300")
    try:
        with pytest.raises(StoreError, match="locked"):
            with RunStore.open(path) as s:
                s.begin_run(_summary(), {})
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_begin_finish_and_read_back(store):
    summary = _summary(name="train")
    store.begin_run(summary, {"code": {"source": "x = 1\n"}})
    assert store.get_run(summary["id"])["status"] == "running"
    store.finish_run(
        summary["id"], {"status": "ok", "ended_at": time.time(), "duration_s": 1.5, "metrics": {"loss": 0.2}},
        {"code": {"source": "x = 1\n"}, "outputs": [{"name": "x"}]},
        metrics=[("loss", 0, 0.5, 1.0), ("loss", 1, 0.2, 2.0)],
        gpu_samples=[{"index": 0, "timestamp": 1.0, "utilization_percent": 50.0, "host": "h"}],
    )
    run = store.get_run(summary["id"][:10])
    assert run["status"] == "ok" and run["name"] == "train"
    assert run["params"] == {"lr": 0.1} and run["tags"] == {"team": "vision"}
    assert run["metric_series"]["loss"]["values"] == [0.5, 0.2]
    assert run["metric_series"]["loss"]["steps"] == [0, 1]
    assert run["gpu_samples"][0]["utilization"] == 50.0
    assert run["outputs"] == [{"name": "x"}]


def test_list_filters_sort_and_paging(store):
    for i in range(30):
        store.begin_run(_summary(name=f"run-{i}", started_at=1000.0 + i, notebook="a.ipynb" if i % 2 else "b.ipynb",
                                 tags={"seed": str(i % 3)}, params={"lr": i / 10}), {})
    rows, total = store.list_runs(limit=5)
    assert total == 30 and [r["name"] for r in rows] == [f"run-{i}" for i in range(29, 24, -1)]
    rows, total = store.list_runs(notebook="a.ipynb", limit=100)
    assert total == 15 and all(r["notebook"] == "a.ipynb" for r in rows)
    rows, total = store.list_runs(tag="seed=1", limit=100)
    assert total == 10
    rows, total = store.list_runs(search="run-2", limit=100)
    assert {r["name"] for r in rows} == {"run-2"} | {f"run-2{i}" for i in range(10)}
    rows, _ = store.list_runs(sort="name", descending=False, limit=2, offset=1)
    assert [r["name"] for r in rows] == ["run-1", "run-10"]
    with pytest.raises(ValueError, match="cannot sort"):
        store.list_runs(sort="1; DROP TABLE runs")
    with pytest.raises(ValueError, match="unknown status"):
        store.list_runs(status="weird")


def test_search_treats_wildcards_literally(store):
    store.begin_run(_summary(name="100% done"), {})
    store.begin_run(_summary(name="1000 done"), {})
    rows, total = store.list_runs(search="100%")
    assert total == 1 and rows[0]["name"] == "100% done"


def test_id_prefix_resolution(store):
    a, b = "abc" + "0" * 29, "abd" + "0" * 29
    store.begin_run(_summary(id=a), {})
    store.begin_run(_summary(id=b), {})
    assert store.resolve_run_id("abc") == a
    with pytest.raises(AmbiguousRunId, match="matches 2 runs"):
        store.resolve_run_id("ab")
    with pytest.raises(RunNotFound):
        store.resolve_run_id("ffff")
    with pytest.raises(RunNotFound, match="not a run id"):
        store.resolve_run_id("../etc")


def test_blob_references_cannot_escape_the_store(store):
    digest = store.blobs.put_text("hello")
    assert store.blobs.read_text(digest) == "hello"
    assert store.blobs.put_text("hello") == digest  # content-addressed: stored once
    for bad in ("../../etc/passwd", "/etc/passwd", digest[:10], digest.upper(), digest + "/..", ""):
        with pytest.raises(InvalidBlobReference):
            store.blobs.path_for(bad)


def test_nested_transactions_roll_back_the_inner_part_only(store):
    with store.transaction() as conn:
        conn.execute("INSERT INTO environments VALUES ('outer', 'b', 0)")
        with pytest.raises(RuntimeError):
            with store.transaction() as inner:
                inner.execute("INSERT INTO environments VALUES ('inner', 'b', 0)")
                raise RuntimeError("boom")
    ids = {r[0] for r in store._conn.execute("SELECT id FROM environments")}
    assert ids == {"outer"}


def test_environment_stored_once(store):
    store.put_environment("env1", {"python": "3.11", "packages": {"a": "1"}})
    store.put_environment("env1", {"python": "3.11", "packages": {"a": "1"}})
    assert store._conn.execute("SELECT COUNT(*) FROM environments").fetchone()[0] == 1
    assert store.environment("env1")["packages"] == {"a": "1"}


def test_run_of_a_dead_process_becomes_interrupted(store):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    import psutil

    started = psutil.Process(child.pid).create_time()
    store.begin_run(_summary(id="dead" + "0" * 28, owner_pid=child.pid, owner_started_at=started), {})
    store.begin_run(_summary(id="beef" + "0" * 28, owner_pid=os.getpid(),
                             owner_started_at=psutil.Process().create_time()), {})
    assert store.mark_orphans_interrupted() == 0
    child.kill()
    child.wait()
    assert store.mark_orphans_interrupted() == 1
    dead = store.get_run("dead")
    assert dead["status"] == "interrupted" and "ended before the run finished" in dead["error_message"]
    assert store.get_run("beef")["status"] == "running"


def _write_runs(args: tuple[str, int, int]) -> int:
    home, worker, count = args
    os.environ["PYKERNEL_EXT_HOME"] = home
    os.chdir(home)
    import pykernel_ext

    for i in range(count):
        with pykernel_ext.track(name=f"w{worker}-{i}", params={"worker": worker, "i": i}) as run:
            run.log(loss=1.0 / (i + 1))
    return count


def test_eight_processes_write_500_runs_each(store_home):
    context = multiprocessing.get_context("spawn")
    with context.Pool(8) as pool:
        written = pool.map(_write_runs, [(str(store_home), w, 500) for w in range(8)])
    assert sum(written) == 4000
    with RunStore.open(store_home / ".pykernel_ext") as s:
        rows, total = s.list_runs(limit=1)
        assert total == 4000
        _, running = s.list_runs(status="running", limit=1)
        _, ok = s.list_runs(status="ok", limit=1)
        metrics = s._conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
    assert running == 0 and ok == 4000 and metrics == 4000


def test_append_metrics_while_running(store):
    summary = _summary()
    store.begin_run(summary, {"code": {"source": "x"}})
    store.append_metrics(summary["id"], [("loss", 0, 0.9, 1.0), ("loss", 1, 0.5, 2.0)], {"loss": 0.5})
    run = store.get_run(summary["id"])
    assert run["status"] == "running" and run["metrics"] == {"loss": 0.5}
    assert run["metric_series"]["loss"]["values"] == [0.9, 0.5] and run["code"] == {"source": "x"}
