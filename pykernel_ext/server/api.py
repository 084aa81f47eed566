"""The REST API's logic, with no tornado: query parsing and validation, payload shaping, store access.

Handlers call these functions off the event loop and map the exceptions with `status_for`. Everything a
request names (run ids, artifact paths, log streams, query values) is validated here before the store is
touched; file content is only ever read from the blob store, addressed by a digest the store recorded.
"""
from __future__ import annotations

import json
import math
import mimetypes
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from ..compare import compare_runs
from ..config import Settings
from ..errors import InvalidBlobReference, RunNotFound
from ..store import RunStore
from ..store.runs import SORTABLE, STATUSES

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
MAX_COMPARE = 20
MAX_TEXT = 1000  # longest filter value accepted; longer is a mistake or an attack, not a query
LOG_CAP_BYTES = 256 * 1024  # per stream in a run's payload; the full log is a download away
MAX_SERIES_POINTS = 2000  # per metric (and GPU samples) in a payload: enough for a chart of any width
LOG_STREAMS = ("stdout", "stderr")
TOPICS = ("runs", "gpus")
RUNS_QUERY_KEYS = {"limit", "offset", "notebook", "status", "kind", "tag", "q", "sort", "order", "parent", "top_level"}
_RUN_ID = re.compile(r"^[0-9a-fA-F]{1,64}$")
_INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "text/plain", "text/csv", "application/json"}


class BadRequest(ValueError):
    """A request the client must change: answered 400 with this message."""


class NotFound(LookupError):
    """Something a request names that the store does not hold: answered 404."""


def status_for(exc: BaseException) -> int:
    """The one error mapping of the API: not found 404, bad input 400, anything else 500."""
    if isinstance(exc, (RunNotFound, NotFound)):
        return 404
    if isinstance(exc, json.JSONDecodeError):  # a corrupt record in the store, not the request's fault
        return 500
    if isinstance(exc, (ValueError, InvalidBlobReference)):
        return 400
    return 500


def message_for(exc: BaseException) -> str:
    """The JSON `message` for an error; a 500 does not echo internals beyond the exception's text."""
    if status_for(exc) == 500:
        return f"internal error ({type(exc).__name__}: {exc}); the server log has the traceback"
    return str(exc)


def to_json(payload: Any) -> str:
    """JSON for the browser: NaN and infinities (a diverged loss) become null, which JSON.parse accepts."""
    try:
        return json.dumps(payload, allow_nan=False, default=str, separators=(",", ":"))
    except ValueError:
        return json.dumps(_finite(payload), allow_nan=False, default=str, separators=(",", ":"))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# ---- query parsing --------------------------------------------------------------------------------


JUPYTER_AUTH_PARAMETER = "token"


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
        if len(text) > MAX_TEXT or "\x00" in text:
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


def _bool_param(values: dict[str, str], key: str) -> bool:
    raw = values.get(key, "").lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise BadRequest(f"{key}={raw!r} is not a boolean; give true or false")


def validate_run_id(ref: str) -> str:
    """A run id or unique prefix as the store understands it (hexadecimal, at most 64 characters)."""
    if not isinstance(ref, str) or not _RUN_ID.match(ref):
        raise BadRequest(f"{ref!r} is not a run id: run ids are hexadecimal (1 to 64 characters)")
    return ref.lower()


@dataclass(frozen=True)
class RunsQuery:
    """A validated `GET runs` query, in the store's terms."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0
    notebook: str | None = None
    status: str | None = None
    kind: str | None = None
    tag: str | None = None
    search: str | None = None
    sort: str = "started_at"
    descending: bool = True
    parent_id: str | None = None
    top_level: bool = False

    def store_kwargs(self) -> dict[str, Any]:
        return {
            "limit": self.limit, "offset": self.offset, "notebook": self.notebook, "status": self.status,
            "kind": self.kind, "tag": self.tag, "search": self.search, "sort": self.sort,
            "descending": self.descending, "parent_id": self.parent_id, "top_level": self.top_level,
        }


def parse_runs_query(query: Mapping[str, list[bytes]], paths: "NotebookPaths") -> RunsQuery:
    """Validate a runs-list query; the `notebook` filter is a path relative to the Jupyter root."""
    values = single_values(query, RUNS_QUERY_KEYS)
    status = values.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status={status!r} is unknown; choose one of {', '.join(STATUSES)}")
    sort = values.get("sort") or "started_at"
    if sort not in SORTABLE:
        raise BadRequest(f"sort={sort!r} is not sortable; choose one of {', '.join(sorted(SORTABLE))}")
    order = (values.get("order") or "desc").lower()
    if order not in ("asc", "desc"):
        raise BadRequest(f"order={order!r} must be asc or desc")
    parent = values.get("parent") or None
    notebook = values.get("notebook") or None
    return RunsQuery(
        limit=_int_param(values, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=_int_param(values, "offset", 0, 0, 2**53),
        notebook=paths.store_label(notebook) if notebook else None,
        status=status,
        kind=values.get("kind") or None,
        tag=values.get("tag") or None,
        search=values.get("q") or None,
        sort=sort,
        descending=order == "desc",
        parent_id=validate_run_id(parent) if parent else None,
        top_level=_bool_param(values, "top_level"),
    )


def parse_compare_ids(query: Mapping[str, list[bytes]]) -> list[str]:
    """`ids=a,b,...`: two to MAX_COMPARE distinct run ids (or unique prefixes), order kept."""
    values = single_values(query, {"ids"})
    raw = [part.strip() for part in values.get("ids", "").split(",") if part.strip()]
    ids = list(dict.fromkeys(validate_run_id(part) for part in raw))
    if not 2 <= len(ids) <= MAX_COMPARE:
        raise BadRequest(f"compare needs 2 to {MAX_COMPARE} distinct run ids in ids=a,b,...; got {len(ids)}")
    return ids


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


# ---- notebook paths --------------------------------------------------------------------------------


class NotebookPaths:
    """Translates between the store's notebook labels (relative to the store's home when inside it, else
    absolute) and paths relative to the Jupyter server's root_dir, which the front end opens."""

    def __init__(self, home: Path, root_dir: Path) -> None:
        self.home = os.path.realpath(home)
        self.root_dir = os.path.realpath(root_dir)

    def server_path(self, label: str | None) -> str | None:
        """The path the front end opens, or None for a notebook outside the server's root_dir."""
        if not label:
            return None
        absolute = os.path.normpath(label if os.path.isabs(label) else os.path.join(self.home, label))
        return _relative_inside(absolute, self.root_dir)

    def store_label(self, server_path: str) -> str:
        """The label the store holds for a notebook the front end names by its server path."""
        if os.path.isabs(server_path) or ".." in PurePosixPath(server_path).parts:
            raise BadRequest(f"notebook={server_path!r} must be a path relative to the Jupyter root")
        absolute = os.path.normpath(os.path.join(self.root_dir, server_path))
        inside = _relative_inside(absolute, self.home)
        return inside if inside is not None else Path(absolute).as_posix()


def _relative_inside(path: str, base: str) -> str | None:
    if path != base and not path.startswith(base.rstrip(os.sep) + os.sep):
        return None
    return Path(os.path.relpath(path, base)).as_posix()


# ---- payloads --------------------------------------------------------------------------------------


def downsample(series: dict[str, list], limit: int = MAX_SERIES_POINTS) -> dict[str, Any]:
    """Keep at most `limit` points of parallel lists (first and last kept), noting the original length."""
    length = max((len(v) for v in series.values()), default=0)
    if length <= limit:
        return series
    step = (length - 1) / (limit - 1)
    picks = sorted({round(i * step) for i in range(limit)})
    out: dict[str, Any] = {k: [v[i] for i in picks] for k, v in series.items()}
    out["downsampled_from"] = length
    return out


def _downsample_rows(rows: list[dict[str, Any]], limit: int = MAX_SERIES_POINTS) -> list[dict[str, Any]]:
    if len(rows) <= limit:
        return rows
    step = (len(rows) - 1) / (limit - 1)
    return [rows[i] for i in sorted({round(i * step) for i in range(limit)})]


@dataclass(frozen=True)
class BlobFile:
    """A file to send: always a blob inside the store, with the name and type it is served under."""

    path: Path
    size: int
    filename: str
    content_type: str
    inline: bool


class RunsAPI:
    """The API over one store, shared by the handlers (calls are thread-safe: the store has a lock)."""

    def __init__(self, store_dir: Path, paths: NotebookPaths) -> None:
        self.store_dir = Path(store_dir)
        self.paths = paths
        self._store: RunStore | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_server(cls, root_dir: str | Path) -> "RunsAPI":
        """The API for a Jupyter server: the store resolves from its root_dir as a kernel's would."""
        settings = Settings.from_env(start=root_dir)
        return cls(settings.store_dir, NotebookPaths(settings.home, Path(root_dir)))

    def store(self) -> RunStore:
        """The store, opened on first use (creating `.pykernel_ext/` at the home, so kernels started under
        it find this store as their nearest one)."""
        with self._lock:
            if self._store is None:
                store = RunStore.open(self.store_dir)
                store.mark_orphans_interrupted()
                self._store = store
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    # ---- runs --------------------------------------------------------------------------------------

    def summary(self, row: dict[str, Any]) -> dict[str, Any]:
        row["notebook_server_path"] = self.paths.server_path(row.get("notebook"))
        return row

    def list_runs(self, query: RunsQuery) -> dict[str, Any]:
        rows, total = self.store().list_runs(**query.store_kwargs())
        return {"runs": [self.summary(r) for r in rows], "total": total, "offset": query.offset,
                "limit": query.limit}

    def get_run(self, ref: str) -> dict[str, Any]:
        store = self.store()
        run = self.summary(store.get_run(validate_run_id(ref)))
        run["environment"] = store.environment(run.get("environment_id"))
        run["metric_series"] = {k: downsample(v) for k, v in (run.get("metric_series") or {}).items()}
        run["gpu_samples"] = _downsample_rows(run.get("gpu_samples") or [])
        run["logs_text"] = self._logs_text(run.get("logs") or {})
        if run.get("code"):  # the user's modules' source is kept once, as a blob: shown with the run
            from ..capture.closure import with_module_sources

            run["code"] = with_module_sources(run["code"], store.blobs.read_text)
        return run

    def _logs_text(self, logs: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for stream in LOG_STREAMS:
            digest = logs.get(f"{stream}_blob")
            text, truncated = "", False
            if digest:
                try:
                    text, truncated = self._tail(digest, LOG_CAP_BYTES)
                except (InvalidBlobReference, NotFound, OSError) as exc:
                    # A damaged record must not hide the rest of the run: say what is wrong instead.
                    out[f"{stream}_error"] = str(exc)
            out[stream] = text
            out[f"{stream}_truncated"] = truncated
        return out

    def _tail(self, digest: str, cap: int) -> tuple[str, bool]:
        path = self._blob_path(digest)
        size = path.stat().st_size
        with open(path, "rb") as f:
            if size > cap:
                f.seek(size - cap)
            data = f.read(cap)
        return data.decode("utf-8", errors="replace"), size > cap

    def compare(self, ids: list[str]) -> dict[str, Any]:
        result = compare_runs(self.store(), ids)
        for run in result["runs"]:
            self.summary(run)
        result["metric_series"] = {
            key: [downsample(s) if s else None for s in series] for key, series in result["metric_series"].items()
        }
        return result

    def changes_since(self, since: float, limit: int) -> list[dict[str, Any]]:
        return [self.summary(r) for r in self.store().runs_changed_since(since, limit)]

    def reconcile(self) -> int:
        """Runs whose kernel died read `interrupted` (the store does it on open; a server stays open)."""
        return self.store().mark_orphans_interrupted()

    # ---- files -------------------------------------------------------------------------------------

    def artifact(self, ref: str, path: str) -> BlobFile:
        """An artifact's content: only a path the run recorded, read from its blob."""
        store = self.store()
        run_id = store.resolve_run_id(validate_run_id(ref))
        path = validate_artifact_path(path)
        try:
            digest, size = store.artifact_blob(run_id, path)
        except RunNotFound:
            raise NotFound(f"run {run_id[:12]} recorded no artifact {path!r}") from None
        name = PurePosixPath(path).name or "artifact"
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        inline = kind in _INLINE_TYPES
        return BlobFile(self._blob_path(digest), size, name, kind if inline else "application/octet-stream", inline)

    def log_file(self, ref: str, stream: str) -> BlobFile:
        """A run's full stdout or stderr as recorded (capped by the tracker, not here)."""
        if stream not in LOG_STREAMS:
            raise BadRequest(f"log stream {stream!r} is unknown; choose stdout or stderr")
        store = self.store()
        run = store.get_run(validate_run_id(ref))
        digest = (run.get("logs") or {}).get(f"{stream}_blob")
        if not digest:
            raise NotFound(f"run {run['id'][:12]} recorded no {stream}")
        path = self._blob_path(digest)
        return BlobFile(path, path.stat().st_size, f"{run['id'][:12]}-{stream}.txt", "text/plain", True)

    def _blob_path(self, digest: str) -> Path:
        """A blob's file, refused unless the digest has a digest's shape and the file lies in the store."""
        store = self.store()
        path = store.blobs.path_for(digest)
        root = store.blobs.root.resolve()
        resolved = path.resolve()
        # Shape alone keeps `..` out; resolving also refuses a blob file replaced by a symlink to elsewhere.
        if not resolved.is_relative_to(root):
            raise InvalidBlobReference(f"blob {digest[:12]} resolves outside the store")
        if not resolved.is_file():
            raise NotFound(f"blob {digest[:12]} is missing from the store (was the store copied without blobs/?)")
        return resolved

    # ---- GPUs --------------------------------------------------------------------------------------

    def local_gpus(self) -> dict[str, Any]:
        """This machine's GPUs (NVML) as one host entry; `available` false with a reason when none."""
        from ..gpu import gpu_status, sample_gpus

        status = gpu_status().to_dict()
        samples = [s.to_dict() for s in sample_gpus()] if status["available"] else []
        return {"host": socket.gethostname(), "source": "local", "worker": None, "available": status["available"],
                "reason": status["reason"], "driver_version": status["driver_version"], "gpus": samples}

    def gpus(self) -> dict[str, Any]:
        """The local machine's and the Dask workers' GPUs, one entry per host or worker."""
        return gpu_report(self.local_gpus(), cluster_gpus())


def cluster_gpus(timeout: float = 2.0) -> list[dict[str, Any]]:
    """One entry per Dask worker; [] without a cluster (or before the cluster module exists)."""
    try:
        from ..remote.cluster import worker_gpus
    except (ImportError, AttributeError):
        return []
    try:
        workers = worker_gpus(timeout=timeout) or []
    except Exception:  # noqa: BLE001 - the GPU view must not fail because a cluster is unreachable
        return []
    return [
        {"host": w.get("host"), "source": "dask", "worker": w.get("worker"), "name": w.get("name"),
         "available": bool(w.get("gpus")), "reason": None if w.get("gpus") else "no GPU on this worker",
         "driver_version": None, "gpus": list(w.get("gpus") or []), "resources": w.get("resources") or {},
         "nthreads": w.get("nthreads"), "memory_limit": w.get("memory_limit")}
        for w in workers
    ]


def gpu_report(local: dict[str, Any], workers: list[dict[str, Any]]) -> dict[str, Any]:
    hosts = [local, *workers]
    return {"timestamp": time.time(), "hosts": hosts, "gpu_count": sum(len(h["gpus"]) for h in hosts)}
