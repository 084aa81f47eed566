"""Request validation for the REST API, with no tornado: query parameters and JSON bodies become typed,
checked values in the store's terms before anything touches the store.

Errors are `BadRequest` (answered 400 with the message) saying what was wrong and what to give.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from ..store.manage import RunPatch
from ..store.query import ARCHIVED_MODES, QueryError, RunFilter, SortKey, parse_sort
from ..records import STATUSES
from ..store.search import SearchError, parse_search

if TYPE_CHECKING:
    from .api import NotebookPaths

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
MAX_COMPARE = 20
MAX_IDS = 1000
MAX_TEXT = 1000  # longest filter value accepted; longer is a mistake or an attack, not a query
MAX_BODY = 64 * 1024
TOPICS = ("runs", "gpus")
FILTER_KEYS = {"notebook", "status", "kind", "tag", "q", "parent", "top_level", "archived", "starred", "sweep",
               "group_sweeps", "ids"}
RUNS_QUERY_KEYS = FILTER_KEYS | {"limit", "offset", "after", "sort", "order", "count", "stats"}
PATCH_FIELDS = {"name", "note", "starred", "archived", "tags"}
JUPYTER_AUTH_PARAMETER = "token"
_RUN_ID = re.compile(r"^[0-9a-fA-F]{1,64}$")


class BadRequest(ValueError):
    """A request the client must change: answered 400 with this message."""


def single_values(query: Mapping[str, list[bytes]], allowed: set[str]) -> dict[str, str]:
    """One decoded value per query parameter; unknown or repeated parameters are refused."""
    # JupyterLab's ServerConnection appends a bare timestamp (`&1700000000000`) to bust caches, and
    # `token` is Jupyter's own authentication parameter (already checked by the time we parse).
    query = {k: v for k, v in query.items()
             if k != JUPYTER_AUTH_PARAMETER and not (k.isdigit() and v in ([b""], [""]))}
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise BadRequest(f"unknown query parameter(s) {', '.join(unknown)}; accepted: {', '.join(sorted(allowed))}")
    values = {}
    for key, raw in query.items():
        if len(raw) != 1:
            raise BadRequest(f"query parameter {key!r} given {len(raw)} times; give it once")
        try:
            text = raw[0].decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(f"query parameter {key!r} is not UTF-8") from None
        limit = MAX_IDS * 65 if key == "ids" else MAX_TEXT
        if len(text) > limit or "\x00" in text:
            raise BadRequest(f"query parameter {key!r} is too long or holds a NUL character")
        values[key] = text
    return values


def _int_param(values: dict[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = values.get(key)
    if raw is None or raw == "":
        return default
    try:
        number = int(raw)
    except ValueError:
        raise BadRequest(f"{key}={raw!r} is not an integer") from None
    if not low <= number <= high:
        raise BadRequest(f"{key}={number} is out of range; give {low}..{high}")
    return number


def _bool_param(values: dict[str, str], key: str, default: bool = False) -> bool:
    raw = values.get(key, "").lower()
    if raw == "":
        return default
    if raw in ("0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise BadRequest(f"{key}={raw!r} is not a boolean; give true or false")


def validate_run_id(ref: str) -> str:
    """A run id or unique prefix as the store understands it (hexadecimal, at most 64 characters)."""
    if not isinstance(ref, str) or not _RUN_ID.match(ref):
        raise BadRequest(f"{ref!r} is not a run id: run ids are hexadecimal (1 to 64 characters)")
    return ref.lower()


def parse_ids(text: str, low: int, high: int, what: str) -> list[str]:
    """Comma-separated run ids (or unique prefixes), distinct, order kept, `low` to `high` of them."""
    raw = [part.strip() for part in text.split(",") if part.strip()]
    ids = list(dict.fromkeys(validate_run_id(part) for part in raw))
    if not low <= len(ids) <= high:
        raise BadRequest(f"{what} needs {low} to {high} distinct run ids in ids=a,b,...; got {len(ids)}")
    return ids


@dataclass(frozen=True)
class RunsQuery:
    """A validated `GET runs` query, in the store's terms."""

    run_filter: RunFilter = field(default_factory=RunFilter)
    sort: SortKey = field(default_factory=SortKey)
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    after: str | None = None
    with_total: bool = True
    with_stats: bool = False


def parse_run_filter(values: dict[str, str], paths: "NotebookPaths") -> RunFilter:
    """The filter part of a runs query (shared by `runs` and `runs/keys`)."""
    status = values.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status={status!r} is unknown; choose one of {', '.join(STATUSES)}")
    archived = (values.get("archived") or "exclude").lower()
    if archived not in ARCHIVED_MODES:
        raise BadRequest(f"archived={archived!r}: give one of {', '.join(ARCHIVED_MODES)}")
    notebook = values.get("notebook") or None
    parent = values.get("parent") or None
    sweep = values.get("sweep") or None
    try:
        search = parse_search(values.get("q"))
    except SearchError as exc:
        raise BadRequest(f"q: {exc}") from None
    return RunFilter(
        notebook=paths.store_label(notebook) if notebook else None,
        status=status,
        kind=values.get("kind") or None,
        tag=values.get("tag") or None,
        search=search,
        parent_id=validate_run_id(parent) if parent else None,
        top_level=_bool_param(values, "top_level"),
        sweep_id=validate_run_id(sweep) if sweep else None,
        group_sweeps=_bool_param(values, "group_sweeps"),
        ids=tuple(parse_ids(values["ids"], 1, MAX_IDS, "ids")) if values.get("ids") else (),
        archived=archived,
        starred=_bool_param(values, "starred"),
    )


def parse_runs_query(query: Mapping[str, list[bytes]], paths: "NotebookPaths") -> RunsQuery:
    """Validate a runs-list query; the `notebook` filter is a path relative to the Jupyter root."""
    values = single_values(query, RUNS_QUERY_KEYS)
    order = (values.get("order") or "desc").lower()
    if order not in ("asc", "desc"):
        raise BadRequest(f"order={order!r} must be asc or desc")
    try:
        sort = parse_sort(values.get("sort") or "started_at", order == "desc")
    except QueryError as exc:
        raise BadRequest(f"sort={values.get('sort')!r} is not sortable: {exc}") from None
    after = values.get("after") or None
    if after and values.get("offset") not in (None, "", "0"):
        raise BadRequest("give either offset or after (a cursor from next_cursor), not both")
    return RunsQuery(
        run_filter=parse_run_filter(values, paths),
        sort=sort,
        limit=_int_param(values, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=_int_param(values, "offset", 0, 0, 2**53),
        after=after,
        with_total=_bool_param(values, "count", default=True),
        with_stats=_bool_param(values, "stats"),
    )


def parse_keys_query(query: Mapping[str, list[bytes]], paths: "NotebookPaths") -> RunFilter:
    return parse_run_filter(single_values(query, FILTER_KEYS), paths)


def parse_compare_ids(query: Mapping[str, list[bytes]]) -> list[str]:
    """`ids=a,b,...`: two to MAX_COMPARE distinct run ids (or unique prefixes), order kept."""
    values = single_values(query, {"ids"})
    return parse_ids(values.get("ids", ""), 2, MAX_COMPARE, "compare")


def parse_topics(query: Mapping[str, list[bytes]]) -> tuple[str, ...]:
    """`topics=runs,gpus` for the push channel (default both)."""
    values = single_values(query, {"topics"})
    topics = tuple(dict.fromkeys(t.strip() for t in values.get("topics", ",".join(TOPICS)).split(",") if t.strip()))
    unknown = [t for t in topics if t not in TOPICS]
    if unknown or not topics:
        raise BadRequest(f"topics must name some of {', '.join(TOPICS)}; got {values.get('topics')!r}")
    return topics


def validate_artifact_path(path: str) -> str:
    """An artifact path as a lookup key. It never reaches the file system (content comes from the blob
    the run recorded), but a `..` segment, a NUL or a backslash is refused outright: no run records one."""
    if not path or len(path) > 4096:
        raise BadRequest("artifact path is empty or too long")
    if "\x00" in path or "\\" in path:
        raise BadRequest("artifact path holds a NUL or a backslash")
    if any(part in ("..", ".") for part in path.split("/")):
        raise BadRequest(f"artifact path {path!r} holds a '.' or '..' segment; give the path the run recorded")
    return path


def parse_patch(body: bytes) -> RunPatch:
    """A `PATCH runs/<id>` body: `{"name", "note", "starred", "archived", "tags": {"set": {}, "remove": []}}`,
    each optional; types are checked here, text limits by `RunPatch.validate`."""
    if len(body) > MAX_BODY:
        raise BadRequest(f"the request body is over {MAX_BODY // 1024} KiB")
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise BadRequest("the request body is not JSON; send an object like {\"name\": \"new name\"}") from None
    if not isinstance(data, dict) or not data:
        raise BadRequest(f"send a JSON object with some of {', '.join(sorted(PATCH_FIELDS))}")
    unknown = sorted(set(data) - PATCH_FIELDS)
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)}; accepted: {', '.join(sorted(PATCH_FIELDS))}")
    for key in ("name", "note"):
        if key in data and not isinstance(data[key], str) and not (key == "note" and data[key] is None):
            raise BadRequest(f"{key} must be a string")
    for key in ("starred", "archived"):
        if key in data and not isinstance(data[key], bool):
            raise BadRequest(f"{key} must be true or false")
    tags = data.get("tags") or {}
    if not isinstance(tags, dict) or set(tags) - {"set", "remove"}:
        raise BadRequest('tags must be {"set": {"key": "value"}, "remove": ["key"]}')
    to_set, to_remove = tags.get("set") or {}, tags.get("remove") or []
    if not isinstance(to_set, dict) or not all(isinstance(v, str) for v in to_set.values()):
        raise BadRequest('tags.set must map tag keys to string values, e.g. {"stage": "final"}')
    if not isinstance(to_remove, list) or not all(isinstance(k, str) for k in to_remove):
        raise BadRequest('tags.remove must be a list of tag keys, e.g. ["stage"]')
    patch = RunPatch(name=data.get("name"), note=("" if data.get("note") is None else data["note"])
                     if "note" in data else None, starred=data.get("starred"), archived=data.get("archived"),
                     set_tags=dict(to_set), remove_tags=tuple(to_remove))
    try:
        return patch.validate()
    except ValueError as exc:
        raise BadRequest(str(exc)) from None

