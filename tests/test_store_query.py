"""The run list's query side of the store: the indexed parameters and metric summaries, the search syntax,
sorting by any column, parameter or metric, offset and keyset paging, sweeps, and the index's migration."""
from __future__ import annotations

import json
import math
import os
import sqlite3
import time
import uuid

import pytest

from pykernel_ext.store import RunStore
from pykernel_ext.store.query import QueryError, RunFilter, parse_sort
from pykernel_ext.store.schema import MIGRATIONS, SCHEMA_VERSION
from pykernel_ext.store.search import SearchError, parse_search


def add(store, *, name=None, params=None, metrics=None, series=(), tags=None, status="ok", started=None,
        parent_id=None, kind="cell", duration=1.0) -> str:
    run_id = uuid.uuid4().hex
    started = time.time() if started is None else started
    store.begin_run({"id": run_id, "kind": kind, "name": name or run_id[:6], "started_at": started,
                     "params": params or {}, "tags": tags or {}, "owner_pid": os.getpid(), "parent_id": parent_id},
                    {"code": {"source": "x = 1"}})
    store.finish_run(run_id, {"status": status, "ended_at": started + duration, "duration_s": duration,
                              **({"metrics": metrics} if metrics is not None else {})},
                     {"code": {"source": "x = 1"}}, list(series))
    return run_id


def names(rows):
    return [r["name"] for r in rows]


def page_names(store, search="", sort="started_at", descending=True, **filters):
    result = store.page_runs(RunFilter(search=parse_search(search), **filters), parse_sort(sort, descending),
                             limit=1000)
    return names(result.rows)


@pytest.fixture
def sweep_store(store):
    """Eight runs: lr and model parameters, a loss series, an accuracy summary; one without metrics."""
    base = time.time() - 100
    specs = [(0.1, "resnet", 0.9, [1.0, 0.5, 0.4]), (0.01, "resnet", 0.8, [1.2, 0.3, 0.35]),
             (0.001, "vit", 0.95, [2.0, 1.5]), (0.05, "vit", 0.7, [0.9, 0.8, 0.85]),
             (0.2, "mlp", 0.6, [3.0]), (0.02, "mlp", 0.75, [1.1, 0.2]), (0.005, "resnet", 0.85, [0.7, 0.6])]
    for i, (lr, model, accuracy, losses) in enumerate(specs):
        series = [("loss", step, value, base + i) for step, value in enumerate(losses)]
        add(store, name=f"r{i}", params={"lr": lr, "model": model, "bn": i % 2 == 0},
            metrics={"accuracy": accuracy, "loss": losses[-1]}, series=series, started=base + i,
            tags={"example": "spirals" if i < 3 else "moons"}, status="failed" if i == 4 else "ok")
    add(store, name="bare", params={"model": "resnet"}, started=base + 50)
    return store


def test_the_index_holds_typed_params_and_metric_summaries(sweep_store):
    rows = sweep_store._read("SELECT key, value, typeof(value) AS t FROM run_params WHERE run_id IN "
                             "(SELECT id FROM runs WHERE name = 'r0') ORDER BY key")
    assert [(r["key"], r["value"], r["t"]) for r in rows] == [("bn", 1, "integer"), ("lr", 0.1, "real"),
                                                             ("model", "resnet", "text")]
    loss = sweep_store._read("SELECT last, min, max, count FROM run_metric_summary WHERE key = 'loss' AND run_id IN "
                             "(SELECT id FROM runs WHERE name = 'r1')")[0]
    assert loss == {"last": 0.35, "min": 0.3, "max": 1.2, "count": 3}


def test_live_flushes_keep_the_summary_current_and_nan_orders_nothing(store):
    run_id = uuid.uuid4().hex
    store.begin_run({"id": run_id, "kind": "cell", "name": "live", "started_at": time.time(), "params": {}},
                    {})
    store.append_metrics(run_id, [("loss", 0, 2.0, 0.0), ("loss", 1, 1.0, 0.0)], {"loss": 1.0})
    store.append_metrics(run_id, [("loss", 2, 3.0, 0.0), ("loss", 3, float("nan"), 0.0)], {"loss": float("nan")})
    row = store._read("SELECT last, min, max, count FROM run_metric_summary WHERE run_id = ?", (run_id,))[0]
    assert row == {"last": None, "min": 1.0, "max": 3.0, "count": 4}
    assert page_names(store, "loss>0") == []  # a NaN last value is no value to compare
    assert page_names(store, "max(loss)>=3") == ["live"]


def test_search_syntax_parses_each_kind_of_term():
    search = parse_search('lr=0.1 lr>0.01 loss<=0.2 status:failed kind:remote tag:example=spirals is:starred '
                          'min(loss)<0.3 params.model=resnet notebook:sweep name:"my run" free words')
    assert [(c.key, c.op, c.number, c.scope, c.stat) for c in search.comparisons] == [
        ("lr", "=", 0.1, "any", "last"), ("lr", ">", 0.01, "any", "last"), ("loss", "<=", 0.2, "any", "last"),
        ("loss", "<", 0.3, "metric", "min"), ("model", "=", None, "param", "last")]
    assert search.statuses == ("failed",) and search.kinds == ("remote",)
    assert search.tags == (("example", "spirals"),) and search.flags == {"starred"}
    assert search.notebooks == ("sweep",) and search.names == ("my run",) and search.words == ("free", "words")
    assert parse_search("lr = 0.1").comparisons[0].number == 0.1  # spaces around the operator


@pytest.mark.parametrize("text, message", [
    ("lr>abc", "compares numbers"), ("status:exploded", "status:exploded is unknown"),
    ("kind:gpu", "kind:gpu is unknown"), ("is:pinned", "is:pinned is unknown"), ('name:"open', "unbalanced quote"),
    ("lr=", "needs a value"), ("status:", "needs a value"), ("tags.team>1", "tags are text"),
])
def test_bad_searches_say_what_to_write(text, message):
    with pytest.raises(SearchError, match=message):
        parse_search(text)


def test_filters_by_params_metrics_tags_and_words(sweep_store):
    assert sorted(page_names(sweep_store, "lr=0.1")) == ["r0"]
    assert sorted(page_names(sweep_store, "lr>0.01")) == ["r0", "r3", "r4", "r5"]
    assert sorted(page_names(sweep_store, "loss<=0.35")) == ["r1", "r5"]
    assert sorted(page_names(sweep_store, "min(loss)<0.31")) == ["r1", "r5"]
    assert sorted(page_names(sweep_store, "accuracy>=0.9 model=vit")) == ["r2"]
    assert sorted(page_names(sweep_store, "model!=resnet")) == ["r2", "r3", "r4", "r5"]
    assert sorted(page_names(sweep_store, "bn=true lr<0.01")) == ["r2", "r6"]
    assert sorted(page_names(sweep_store, "tag:example=spirals")) == ["r0", "r1", "r2"]
    assert sorted(page_names(sweep_store, "example=spirals")) == ["r0", "r1", "r2"]  # a bare key=value finds tags
    assert page_names(sweep_store, "status:failed") == ["r4"]
    assert page_names(sweep_store, "spirals vit") == ["r2"]  # free words match tags and params, all of them
    assert page_names(sweep_store, "metrics.accuracy=resnet") == []


def test_sort_by_metric_param_and_column_puts_runs_without_a_value_last(sweep_store):
    assert page_names(sweep_store, sort="metric:accuracy") == ["r2", "r0", "r6", "r1", "r5", "r3", "r4", "bare"]
    assert page_names(sweep_store, sort="metric:accuracy", descending=False)[:2] == ["r4", "r3"]
    assert page_names(sweep_store, sort="metric:accuracy", descending=False)[-1] == "bare"
    assert page_names(sweep_store, sort="metric:loss:min", descending=False)[:3] == ["r5", "r1", "r0"]
    assert page_names(sweep_store, sort="param:lr", descending=False) == ["r2", "r6", "r1", "r5", "r3", "r0",
                                                                          "r4", "bare"]
    for value in (10, "small", 3, "big"):  # numbers sort numerically, and before text
        add(sweep_store, name=f"size-{value}", params={"size": value})
    assert page_names(sweep_store, sort="param:size", descending=False)[:4] == ["size-3", "size-10", "size-big",
                                                                                 "size-small"]
    assert page_names(sweep_store, sort="name", descending=False)[0] == "bare"
    with pytest.raises(QueryError, match="cannot sort by"):
        parse_sort("params_json; DROP TABLE runs")


@pytest.mark.parametrize("sort, descending", [("started_at", True), ("metric:accuracy", True),
                                              ("metric:loss:max", False), ("param:lr", True), ("duration_s", False),
                                              ("name", True)])
def test_keyset_pages_walk_the_same_order_as_one_big_page(store, sort, descending):
    base = time.time() - 1000
    for i in range(57):
        # ties in every key, and a few runs without the metric or parameter, to test both segments
        params = {"lr": [0.1, 0.01, 0.001][i % 3]} if i % 11 else {}
        metrics = {"accuracy": round((i % 7) / 7, 3)} if i % 13 else None
        series = [("loss", 0, float(i % 5), base)] if i % 4 else ()
        add(store, name=f"n{i:02d}", params=params, metrics=metrics, series=series, started=base + i // 2,
            duration=float(i % 3))
    key = parse_sort(sort, descending)
    whole = store.page_runs(RunFilter(), key, limit=1000).rows
    walked, cursor = [], None
    while True:
        result = store.page_runs(RunFilter(), key, limit=8, after=cursor, with_total=False)
        walked += result.rows
        cursor = result.next_cursor
        if cursor is None:
            break
    assert [r["id"] for r in walked] == [r["id"] for r in whole]
    by_offset = [r for offset in range(0, 57, 8) for r in store.page_runs(RunFilter(), key, limit=8, offset=offset).rows]
    assert [r["id"] for r in by_offset] == [r["id"] for r in whole]


def test_a_cursor_from_another_sort_or_a_forged_one_is_refused(sweep_store):
    cursor = sweep_store.page_runs(RunFilter(), parse_sort("started_at"), limit=2).next_cursor
    with pytest.raises(QueryError, match="another sort"):
        sweep_store.page_runs(RunFilter(), parse_sort("metric:accuracy"), limit=2, after=cursor)
    with pytest.raises(QueryError, match="malformed"):
        sweep_store.page_runs(RunFilter(), parse_sort("started_at"), limit=2, after="not-a-cursor!!")


def test_selective_and_broad_filters_agree(store):
    base = time.time() - 5000
    for i in range(2100):  # above the threshold where a filter is walked rather than fetched and sorted
        add_fast = {"id": uuid.uuid4().hex, "kind": "cell", "name": f"b{i}", "started_at": base + i,
                    "params": {"group": "big" if i % 2 else "small", "rare": i == 7}}
        store.begin_run(add_fast, {})
    broad = page_names(store, "group=big")
    rare = page_names(store, "rare=true")
    assert len(broad) == 1000 and broad[0] == "b2099" and rare == ["b7"]


def test_archived_runs_leave_default_views_and_stay_queryable(sweep_store):
    from pykernel_ext.store.manage import RunPatch

    r0 = sweep_store.list_runs(search="name:r0")[0][0]["id"]
    sweep_store.update_run(r0, RunPatch(archived=True))
    assert "r0" not in page_names(sweep_store)
    assert page_names(sweep_store, "is:archived") == ["r0"]
    assert "r0" in page_names(sweep_store, archived="include")
    assert sweep_store.list_runs(search="lr=0.1")[1] == 0
    assert sweep_store.list_runs(search="lr=0.1", archived="include")[1] == 1


def test_sweeps_fold_to_their_leader_and_survive_its_archiving(store):
    from pykernel_ext.store.manage import RunPatch

    base = time.time() - 100
    members = [add(store, name=f"s{i}", started=base + i, kind="notebook", status="failed" if i == 2 else "ok")
               for i in range(4)]
    add(store, name="alone", started=base + 10)
    assert store.assign_sweep(members) == members[0]
    grouped = store.page_runs(RunFilter(group_sweeps=True), parse_sort("started_at"), limit=50, with_groups=True)
    assert names(grouped.rows) == ["alone", "s0"] and grouped.total == 2
    assert grouped.rows[1]["sweep"] == {"size": 4, "statuses": {"ok": 3, "failed": 1}}
    assert page_names(store, sweep_id=members[0]) == ["s3", "s2", "s1", "s0"]
    store.update_run(members[0], RunPatch(archived=True))
    regrouped = store.page_runs(RunFilter(group_sweeps=True), parse_sort("started_at"), limit=50, with_groups=True)
    assert names(regrouped.rows) == ["alone", "s1"]  # the earliest visible member leads now
    store.delete_runs([members[1]])
    assert names(store.page_runs(RunFilter(group_sweeps=True), parse_sort("started_at"), limit=50).rows) == \
        ["alone", "s2"]


def test_children_counts_come_with_a_page(store):
    parent = add(store, name="nb", kind="notebook")
    for i in range(3):
        add(store, name=f"cell{i}", parent_id=parent)
    rows = store.page_runs(RunFilter(top_level=True), parse_sort("started_at"), limit=10, with_groups=True).rows
    assert [(r["name"], r["children_count"]) for r in rows] == [("nb", 3)]


def test_keys_present_for_the_column_picker(sweep_store):
    keys = sweep_store.run_keys(RunFilter(search=parse_search("model=vit")))
    assert [k["key"] for k in keys["params"]] == ["bn", "lr", "model"]
    assert {k["key"]: k["numeric"] for k in keys["params"]} == {"bn": True, "lr": True, "model": False}
    assert {k["key"] for k in keys["metrics"]} == {"accuracy", "loss"}
    assert keys["tags"] == [{"key": "example", "count": 2}] and keys["sampled"] is False


def test_the_index_migration_fills_from_an_existing_store(tmp_path):
    """A store made before the index existed (schema 1) gets its params and metric summaries indexed."""
    path = tmp_path / ".pykernel_ext"
    path.mkdir()
    conn = sqlite3.connect(path / "runs.sqlite", isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (number INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    MIGRATIONS[0](conn)
    conn.execute("INSERT INTO schema_migrations VALUES (1, 0)")
    for i, lr in enumerate((0.1, 0.01, float("nan"))):
        run_id = f"{i:032x}"
        conn.execute("INSERT INTO runs (id, kind, name, status, started_at, params_json, metrics_json, updated_at) "
                     "VALUES (?, 'cell', ?, 'ok', ?, ?, ?, 0)",
                     (run_id, f"old{i}", 100.0 + i, json.dumps({"lr": lr}), json.dumps({"loss": i / 10})))
        conn.executemany("INSERT INTO metrics VALUES (?, 'loss', ?, ?, 0)", [(run_id, s, 1.0 + s) for s in range(3)])
    conn.close()
    with RunStore.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert page_names(store, "lr<0.05") == ["old1"]
        rows = store._read("SELECT last, min, max, count FROM run_metric_summary ORDER BY run_id")
        assert rows[0] == {"last": 0.0, "min": 0.0, "max": 3.0, "count": 3}  # last from the summary values
        assert not any(math.isnan(r["value"]) for r in store._read("SELECT value FROM run_params")
                       if isinstance(r["value"], float))


def test_imported_runs_are_indexed(store, tmp_path):
    from pykernel_ext.store.transfer import export_runs, import_runs

    with RunStore.open(tmp_path / "private" / ".pykernel_ext") as private:
        add(private, name="remote-cell", params={"lr": 0.3}, series=[("loss", 0, 0.25, 0.0)],
            metrics={"loss": 0.25})
        bundle = export_runs(private)
    parent = add(store, name="nb", kind="notebook")
    import_runs(store, bundle, parent_id=parent)
    assert page_names(store, "lr=0.3 loss<0.3") == ["remote-cell"]


@pytest.mark.parametrize("search", ["model=resnet", "model=resnet lr<0.05", "tag:example", "example=spirals bn=true",
                                    "is:archived model=resnet", "model!=mlp"])
def test_counts_by_set_operations_match_counting_rows(sweep_store, search):
    """The fast count (set operations over the index) agrees with counting the matching runs' rows."""
    from pykernel_ext.store.manage import RunPatch
    from pykernel_ext.store.query import build_where, with_search

    first = sweep_store.list_runs(search="name:r0")[0][0]["id"]
    sweep_store.update_run(first, RunPatch(archived=True))
    run_filter = with_search(RunFilter(), search)
    where = build_where(run_filter)
    assert where.set_count() is not None
    sql, params = where.sql()
    by_rows = sweep_store._read(f"SELECT COUNT(*) AS n FROM runs WHERE {sql}", params)[0]["n"]
    assert sweep_store.page_runs(run_filter, parse_sort("started_at"), limit=1).total == by_rows
