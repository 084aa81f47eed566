"""The run list's SQL: filters, sorting by any column, parameter or metric, offset and keyset paging.

Sorting by a parameter or metric walks the indexed tables (`run_params`, `run_metric_summary`) in order and
joins each run, so a first page sorted by a metric and filtered by a parameter reads a few dozen index
entries at 100,000 runs. Runs lacking the sort key (or with a NULL column) follow the others, newest first:
the list is two segments, A (has a value) then B (has none), and a cursor says where in which one a page
ended. Column and parameter names never come from a request into the SQL text: columns from a fixed set,
keys as bound parameters.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ..records import KINDS, STATUSES
from ..records import SUMMARY_COLUMNS as RECORD_COLUMNS
from .search import Comparison, Search, SearchError, parse_search

Reader = Callable[[str, "list | tuple"], list[dict[str, Any]]]

# Columns a list view reads; never the details or metric series.
SUMMARY_FIELDS = tuple(column.column for column in RECORD_COLUMNS.values())
SUMMARY_COLUMNS = ", ".join(SUMMARY_FIELDS)
_QUALIFIED = ", ".join(f"runs.{c}" for c in SUMMARY_FIELDS)
# Sortable run columns, and whether they are ever NULL (those get a B segment).
COLUMN_SORTS = {name: column.nullable for name, column in RECORD_COLUMNS.items() if column.sortable}
METRIC_STATS = ("last", "min", "max")
# An id set (a parameter, metric or tag condition) matching at most this many runs is fetched and sorted
# rather than walked in sort order.
SELECTIVE_ROWS = 2000
KEYS_SAMPLE = 5000
ARCHIVED_MODES = ("exclude", "include", "only")


class QueryError(ValueError):
    """A list query the store cannot run (bad sort, bad cursor); the message says what to give."""


@dataclass(frozen=True)
class SortKey:
    """What the list is ordered by: a run column, a parameter or a metric statistic."""

    source: str = "column"  # column | param | metric
    name: str = "started_at"
    stat: str = "last"
    descending: bool = True

    @property
    def spec(self) -> str:
        """The `sort=` text of this key: `started_at`, `param:lr`, `metric:loss`, `metric:loss:min`."""
        if self.source == "column":
            return self.name
        if self.source == "param":
            return f"param:{self.name}"
        return f"metric:{self.name}" + ("" if self.stat == "last" else f":{self.stat}")


def parse_sort(text: str | None, descending: bool = True) -> SortKey:
    """`started_at` (and the other columns), `param:KEY`, `metric:KEY` or `metric:KEY:min|max|last`."""
    text = (text or "started_at").strip()
    if text in COLUMN_SORTS:
        return SortKey("column", text, descending=descending)
    source, sep, rest = text.partition(":")
    if sep and rest and source in ("param", "metric"):
        stat = "last"
        if source == "metric":
            head, colon, tail = rest.rpartition(":")
            if colon and head and tail in METRIC_STATS:
                rest, stat = head, tail
        return SortKey(source, rest, stat, descending)
    raise QueryError(f"cannot sort by {text!r}; give one of {', '.join(sorted(COLUMN_SORTS))}, "
                     "param:NAME, metric:NAME or metric:NAME:min|max")


@dataclass(frozen=True)
class RunFilter:
    """Which runs a list shows. `search` is the parsed search box; `archived` is exclude/include/only."""

    notebook: str | None = None
    status: str | None = None
    kind: str | None = None
    tag: str | None = None
    search: Search = field(default_factory=Search)
    parent_id: str | None = None
    top_level: bool = False
    sweep_id: str | None = None
    group_sweeps: bool = False
    ids: tuple[str, ...] = ()
    archived: str = "exclude"
    starred: bool = False

    def effective_archived(self) -> str:
        if "archived" in self.search.flags:
            return "only"
        return "include" if self.ids else self.archived


@dataclass
class RunPage:
    """A page of run summary rows, the matching total (None when not asked) and the cursor of the next page."""

    rows: list[dict[str, Any]]
    total: int | None
    next_cursor: str | None


@dataclass(frozen=True)
class IdSet:
    """Runs selected by an indexed table: branches like `FROM run_params WHERE key = ? AND value > ?`, any of
    which selects a run (a `key=value` looks in parameters, metrics and tags)."""

    branches: tuple[tuple[str, tuple], ...]

    def subquery(self) -> tuple[str, list]:
        """`SELECT run_id ... UNION ALL ...`: the set built once (to drive a query or count it)."""
        sql = " UNION ALL ".join(f"SELECT run_id {branch}" for branch, _ in self.branches)
        return sql, [value for _, values in self.branches for value in values]

    def exists(self) -> tuple[str, list]:
        """A per-run check by primary key (run_id, key): cheap for each run a sort walk passes."""
        sql = " OR ".join(f"EXISTS (SELECT 1 {branch} AND run_id = runs.id)" for branch, _ in self.branches)
        return f"({sql})", [value for _, values in self.branches for value in values]


@dataclass
class Where:
    """A filter as SQL over `runs`: plain conditions, and the id sets (over the indexed tables) that
    parameter, metric and tag conditions select."""

    clauses: list[str] = field(default_factory=list)
    params: list = field(default_factory=list)
    id_sets: list[IdSet] = field(default_factory=list)

    def sql(self, walk: bool = False) -> tuple[str, list]:
        """`walk`: the query walks a sort index and checks each run it passes (by primary key lookups);
        otherwise the id sets are built once and drive the query (few matches: fetch them and sort)."""
        clauses, params = list(self.clauses), list(self.params)
        for id_set in self.id_sets:
            if walk:
                sql, values = id_set.exists()
            else:
                subquery, values = id_set.subquery()
                sql = f"runs.id IN ({subquery})"
            clauses.append(sql)
            params += values
        return (" AND ".join(clauses) or "1"), params

    def set_count(self) -> tuple[str, list] | None:
        """A COUNT done with set operations over the indexed tables alone, when the filter is nothing but
        id sets and the archived flag (a search like `model=resnet50`): 2-3x faster than checking each
        matching run's row. None when other conditions need the runs themselves."""
        if not self.id_sets or self.clauses != ["runs.archived = ?"]:
            return None
        parts = [id_set.subquery() for id_set in self.id_sets]
        sets = " INTERSECT ".join(f"SELECT * FROM ({sql})" for sql, _ in parts)
        params = [value for _, values in parts for value in values]
        keep = "EXCEPT" if self.params == [0] else "INTERSECT"  # archived = 0: leave the archived out
        return f"SELECT COUNT(*) AS n FROM ({sets} {keep} SELECT id FROM runs WHERE archived = 1)", params

    def selective(self, read: Reader, threshold: int = SELECTIVE_ROWS) -> bool:
        """Whether some id set is small enough that fetching its runs and sorting them beats walking."""
        for id_set in self.id_sets:
            subquery, values = id_set.subquery()
            probe = read(f"SELECT COUNT(*) AS n FROM ({subquery} LIMIT ?)", [*values, threshold + 1])
            if probe[0]["n"] <= threshold:
                return True
        return False


def where_clause(f: RunFilter) -> tuple[str, list]:
    """The SQL condition (over `runs`, with WHERE) and its parameters for a filter."""
    sql, params = build_where(f).sql()
    return ("WHERE " + sql) if sql != "1" else "", params


def build_where(f: RunFilter) -> Where:
    w = Where()
    if f.status is not None and f.status not in STATUSES:
        raise QueryError(f"unknown status {f.status!r}; choose one of {', '.join(STATUSES)}")
    for column, value in (("notebook", f.notebook), ("status", f.status), ("kind", f.kind),
                          ("parent_id", f.parent_id), ("sweep_id", f.sweep_id)):
        if value:
            w.clauses.append(f"runs.{column} = ?")  # column names come from this tuple, never from the request
            w.params.append(value)
    if f.top_level:
        w.clauses.append("runs.parent_id IS NULL")
    if f.group_sweeps:
        w.clauses.append("(runs.sweep_id IS NULL OR runs.sweep_id = runs.id)")
    if f.ids:
        w.clauses.append(f"runs.id IN ({', '.join('?' for _ in f.ids)})")
        w.params += list(f.ids)
    archived = f.effective_archived()
    if archived != "include":
        w.clauses.append("runs.archived = ?")
        w.params.append(1 if archived == "only" else 0)
    if f.starred or "starred" in f.search.flags:
        w.clauses.append("runs.starred = 1")
    if f.tag:
        key, sep, value = f.tag.partition("=")
        w.id_sets.append(_tag_set(key, value if sep else None))
    _search_clauses(f.search, w)
    return w


def _tag_set(key: str, value: str | None) -> IdSet:
    if value is None:
        return IdSet((("FROM run_tags WHERE key = ?", (key,)),))
    return IdSet((("FROM run_tags WHERE key = ? AND value = ?", (key, value)),))


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


_WORD_COLUMNS = tuple(column.column for column in RECORD_COLUMNS.values() if column.words)


def _search_clauses(search: Search, w: Where) -> None:
    if search.statuses:
        w.clauses.append(f"runs.status IN ({', '.join('?' for _ in search.statuses)})")
        w.params += list(search.statuses)
    if search.kinds:
        w.clauses.append(f"runs.kind IN ({', '.join('?' for _ in search.kinds)})")
        w.params += list(search.kinds)
    for key, value in search.tags:
        w.id_sets.append(_tag_set(key, value))
    for column, texts in (("notebook", search.notebooks), ("name", search.names)):
        for text in texts:
            w.clauses.append(f"runs.{column} LIKE ? ESCAPE '\\'")
            w.params.append(_like(text))
    for word in search.words:
        # Free text over what a person remembers of a run: its name, notebook, id, params, tags, error, note.
        w.clauses.append("(" + " OR ".join(f"runs.{c} LIKE ? ESCAPE '\\'" for c in _WORD_COLUMNS) + ")")
        w.params += [_like(word)] * len(_WORD_COLUMNS)
    for comparison in search.comparisons:
        id_set = comparison_set(comparison)
        if id_set is None:
            w.clauses.append("0")  # e.g. metrics.loss=abc: no metric equals a word
        else:
            w.id_sets.append(id_set)


def comparison_set(c: Comparison) -> IdSet | None:
    """The runs where `key op value` holds in the indexed parameters, metric summaries or tags; None when
    nothing can match."""
    branches: list[tuple[str, tuple]] = []
    ordering = c.op not in ("=", "!=")
    if c.scope in ("any", "param"):
        if ordering:
            condition = f"typeof(value) IN ('integer', 'real') AND value {c.op} ?"
            values: tuple = (c.number,)
        else:
            values = (c.text,) + ((c.number,) if c.number is not None else ())
            marks = ", ".join("?" for _ in values)
            condition = f"value IN ({marks})" if c.op == "=" else f"(value IS NULL OR value NOT IN ({marks}))"
        branches.append((f"FROM run_params WHERE key = ? AND {condition}", (c.key, *values)))
    if c.scope in ("any", "metric") and c.number is not None:
        stat = c.stat if c.stat in METRIC_STATS else "last"
        op = "<>" if c.op == "!=" else c.op
        branches.append((f"FROM run_metric_summary WHERE key = ? AND {stat} {op} ?", (c.key, c.number)))
    if c.scope in ("any", "tag") and not ordering:
        op = "=" if c.op == "=" else "<>"
        branches.append((f"FROM run_tags WHERE key = ? AND value {op} ?", (c.key, c.text)))
    return IdSet(tuple(branches)) if branches else None


# ---- segments and paging ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Segment:
    name: str  # "a": runs with a sort value, in its order; "b": runs without, newest first
    source: str  # FROM ... (joins `runs`)
    condition: str
    params: tuple
    value: str  # the ordering value expression
    run_id: str  # the id expression that breaks ties
    descending: bool


def segments(sort: SortKey) -> list[_Segment]:
    direction = sort.descending
    if sort.source == "column":
        if sort.name not in COLUMN_SORTS:
            raise QueryError(f"cannot sort by {sort.name!r}")
        column = f"runs.{sort.name}"
        found = [_Segment("a", "runs", f"{column} IS NOT NULL", (), column, "runs.id", direction)]
        if COLUMN_SORTS[sort.name]:
            found.append(_Segment("b", "runs", f"{column} IS NULL", (), "runs.started_at", "runs.id", True))
        return found
    if sort.source == "param":
        table, value = "run_params", "s.value"
    elif sort.source == "metric" and sort.stat in METRIC_STATS:
        table, value = "run_metric_summary", f"s.{sort.stat}"
    else:
        raise QueryError(f"cannot sort by {sort.spec!r}")
    has = f"s.key = ? AND {value} IS NOT NULL"
    lacks = (f"NOT EXISTS (SELECT 1 FROM {table} s WHERE s.run_id = runs.id AND s.key = ? "
             f"AND {value} IS NOT NULL)")
    # CROSS JOIN keeps SQLite walking the sort index first and looking each run up, never the reverse.
    return [_Segment("a", f"{table} s CROSS JOIN runs ON runs.id = s.run_id", has, (sort.name,), value,
                     "s.run_id", direction),
            _Segment("b", "runs", lacks, (sort.name,), "runs.started_at", "runs.id", True)]


def encode_cursor(sort: SortKey, segment: str, value: Any, run_id: str) -> str:
    raw = json.dumps([sort.spec, sort.descending, segment, value, run_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(sort: SortKey, cursor: str) -> tuple[str, Any, str]:
    """(segment, value, run id) of a cursor made for this same sort; QueryError otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        spec, descending, segment, value, run_id = json.loads(raw)
    except (ValueError, TypeError, binascii.Error):
        raise QueryError("the cursor is malformed; start again without `after`") from None
    if spec != sort.spec or descending != sort.descending or segment not in ("a", "b") or not isinstance(run_id, str):
        raise QueryError("the cursor belongs to another sort order; start again without `after`")
    if value is not None and not isinstance(value, (int, float, str)):
        raise QueryError("the cursor is malformed; start again without `after`")
    return segment, value, run_id


def page(read: Reader, f: RunFilter, sort: SortKey, *, limit: int, offset: int = 0, after: str | None = None,
         with_total: bool = True) -> RunPage:
    """One page of the list: by `offset` (random access, for a jump), or after a cursor (keyset, for the
    next page, cost independent of depth)."""
    where = build_where(f)
    # Walk the sort index unless a condition picks few runs: then fetch those and sort them.
    walk = not where.selective(read)
    filter_sql, params = where.sql(walk=walk)
    parts = segments(sort)
    start = 0
    position: tuple[Any, str] | None = None
    if after:
        segment, value, run_id = decode_cursor(sort, after)
        names = [s.name for s in parts]
        start = names.index(segment) if segment in names else len(parts)
        position = (value, run_id)
        offset = 0
    rows: list[dict[str, Any]] = []
    for index in range(start, len(parts)):
        seg = parts[index]
        want = limit - len(rows)
        if want <= 0:
            break
        keyset = position if index == start else None
        found = _segment_rows(read, seg, filter_sql, params, want, offset, keyset)
        rows += found
        if offset and not found and index + 1 < len(parts):
            offset = max(0, offset - _segment_count(read, seg, filter_sql, params))
        else:
            offset = 0
    next_cursor = None
    if len(rows) == limit:
        last = rows[-1]
        next_cursor = encode_cursor(sort, last["_segment"], last["_sort_value"], last["id"])
    for row in rows:
        row.pop("_segment", None)
        row.pop("_sort_value", None)
    total = None
    if with_total:
        fast = where.set_count()
        if fast is not None:
            total = read(*fast)[0]["n"]
        else:
            count_sql, count_params = where.sql(walk=False)
            total = read(f"SELECT COUNT(*) AS n FROM runs WHERE {count_sql}", count_params)[0]["n"]
    return RunPage(rows, total, next_cursor)


def _segment_rows(read: Reader, seg: _Segment, filter_sql: str, params: list, limit: int, offset: int,
                  keyset: tuple[Any, str] | None) -> list[dict[str, Any]]:
    direction = "DESC" if seg.descending else "ASC"
    conditions = [seg.condition, f"({filter_sql})"]
    values: list = [*seg.params, *params]
    if keyset is not None:
        conditions.append(f"({seg.value}, {seg.run_id}) {'<' if seg.descending else '>'} (?, ?)")
        values += list(keyset)
    sql = (f"SELECT {_QUALIFIED}, {seg.value} AS _sort_value, '{seg.name}' AS _segment FROM {seg.source} "
           f"WHERE {' AND '.join(conditions)} ORDER BY {seg.value} {direction}, {seg.run_id} {direction} "
           f"LIMIT ? OFFSET ?")
    return read(sql, [*values, int(limit), int(offset)])


def _segment_count(read: Reader, seg: _Segment, filter_sql: str, params: list) -> int:
    sql = f"SELECT COUNT(*) AS n FROM {seg.source} WHERE {seg.condition} AND ({filter_sql})"
    return read(sql, [*seg.params, *params])[0]["n"]


# ---- what a page's rows carry besides their own columns ---------------------------------------------


def group_info(read: Reader, rows: list[dict[str, Any]]) -> None:
    """Add `children_count` to every row and, to a sweep's first run, `sweep` (size and status counts), so
    the table can offer to expand them."""
    ids = [r["id"] for r in rows]
    if not ids:
        return
    marks = ", ".join("?" for _ in ids)
    children = {r["parent_id"]: r["n"] for r in read(
        f"SELECT parent_id, COUNT(*) AS n FROM runs WHERE parent_id IN ({marks}) GROUP BY parent_id", ids)}
    sweeps: dict[str, dict[str, Any]] = {}
    leaders = [r["id"] for r in rows if r.get("sweep_id") == r["id"]]
    if leaders:
        leader_marks = ", ".join("?" for _ in leaders)
        for r in read(f"SELECT sweep_id, status, COUNT(*) AS n FROM runs WHERE sweep_id IN ({leader_marks}) "
                      "GROUP BY sweep_id, status", leaders):
            entry = sweeps.setdefault(r["sweep_id"], {"size": 0, "statuses": {}})
            entry["size"] += r["n"]
            entry["statuses"][r["status"]] = r["n"]
    for row in rows:
        row["children_count"] = children.get(row["id"], 0)
        if row["id"] in sweeps:
            row["sweep"] = sweeps[row["id"]]


def keys_present(read: Reader, f: RunFilter, limit: int = 500, sample: int = KEYS_SAMPLE) -> dict[str, Any]:
    """The parameter, metric and tag keys of the filtered runs, most common first (the column picker).

    Counted over the newest `sample` matching runs, so the picker answers in milliseconds at any size;
    `sampled` says when older runs were not looked at."""
    where = build_where(f)
    filter_sql, params = where.sql(walk=not where.selective(read))
    newest = (f"SELECT runs.id FROM runs WHERE {filter_sql} ORDER BY runs.started_at DESC, runs.id DESC "
              "LIMIT ?")
    scope = [*params, sample]
    param_keys = read(
        f"SELECT key, COUNT(*) AS count, SUM(typeof(value) IN ('integer', 'real')) AS numeric FROM run_params "
        f"WHERE run_id IN ({newest}) GROUP BY key ORDER BY count DESC, key LIMIT ?", [*scope, limit])
    metric_keys = read(
        f"SELECT key, COUNT(*) AS count FROM run_metric_summary WHERE run_id IN ({newest}) "
        f"GROUP BY key ORDER BY count DESC, key LIMIT ?", [*scope, limit])
    tag_keys = read(
        f"SELECT key, COUNT(*) AS count FROM run_tags WHERE run_id IN ({newest}) "
        f"GROUP BY key ORDER BY count DESC, key LIMIT ?", [*scope, limit])
    for entry in param_keys:
        entry["numeric"] = bool(entry["numeric"]) and entry["numeric"] == entry["count"]
    looked_at = read(f"SELECT COUNT(*) AS n FROM ({newest})", scope)[0]["n"]
    return {"params": param_keys, "metrics": metric_keys, "tags": tag_keys, "runs_examined": looked_at,
            "sampled": looked_at >= sample}


def with_search(f: RunFilter, text: str | None) -> RunFilter:
    """The filter with the search box's text parsed into it (SearchError, a ValueError, when malformed)."""
    return replace(f, search=parse_search(text))


__all__ = ["KINDS", "STATUSES", "QueryError", "RunFilter", "RunPage", "SearchError", "SortKey", "group_info",
           "keys_present", "page", "parse_sort", "where_clause", "with_search", "build_where", "Where", "IdSet"]
