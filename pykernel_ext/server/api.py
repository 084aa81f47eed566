"""The REST API's logic, with no tornado: query parsing and validation, payload shaping, store access.

Handlers call these functions off the event loop and map the exceptions with `status_for`. Everything a
request names (run ids, artifact paths, log streams, query values) is validated here before the store is
touched; file content is only ever read from the blob store, addressed by a digest the store recorded.
"""
from __future__ import annotations

import json
import mimetypes
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..compare import compare_runs
from ..config import Settings
from ..errors import InvalidBlobReference, RunNotFound
from ..json_output import finite
from ..records import RunListEntry, RunSummary, RunView
from ..store import RunStore
from ..store.manage import RunPatch
from .params import BadRequest, RunsQuery, validate_artifact_path, validate_run_id

LOG_CAP_BYTES = 256 * 1024  # per stream in a run's payload; the full log is a download away
MAX_SERIES_POINTS = 2000  # per metric (and GPU samples) in a payload: enough for a chart of any width
LOG_STREAMS = ("stdout", "stderr")
MAX_CHILDREN = 200  # child summaries in a run's payload
_INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "text/plain", "text/csv", "application/json"}


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
        return json.dumps(finite(payload), allow_nan=False, default=str, separators=(",", ":"))



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


def _safe_stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return stem[:60] or "run"


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

    def summary(self, row: RunSummary) -> RunListEntry:
        row["notebook_server_path"] = self.paths.server_path(row.get("notebook"))
        return row

    def list_runs(self, query: RunsQuery) -> dict[str, Any]:
        store = self.store()
        page = store.page_runs(query.run_filter, query.sort, limit=query.limit, offset=query.offset,
                               after=query.after, with_total=query.with_total, with_groups=True)
        if query.with_stats:
            stats = store.metric_stats([r["id"] for r in page.rows])
            for row in page.rows:
                row["metric_stats"] = stats.get(row["id"], {})
        return {"runs": [self.summary(r) for r in page.rows], "total": page.total, "offset": query.offset,
                "limit": query.limit, "next_cursor": page.next_cursor, "sort": query.sort.spec}

    def run_keys(self, run_filter) -> dict[str, Any]:
        return self.store().run_keys(run_filter)

    def get_run(self, ref: str) -> RunView:
        store = self.store()
        run = self.summary(store.get_run(validate_run_id(ref)))
        run["environment"] = store.environment(run.get("environment_id"))
        run["metric_series"] = {k: downsample(v) for k, v in (run.get("metric_series") or {}).items()}
        run["gpu_samples"] = _downsample_rows(run.get("gpu_samples") or [])
        run["logs_text"] = self._logs_text(run.get("logs") or {})
        if run.get("code"):  # the user's modules' source is kept once, as a blob: shown with the run
            from ..capture.closure import with_module_sources

            run["code"] = with_module_sources(run["code"], store.blobs.read_text)
        run["child_runs"] = [self.summary(r) for r in store.child_summaries(run["id"], MAX_CHILDREN)]
        executed = run.get("executed_notebook") or {}
        run["executed_notebook_server_path"] = self._executed_server_path(executed)
        return run

    def _executed_server_path(self, executed: dict[str, Any]) -> str | None:
        """Where Lab can open the executed notebook: its output file when it still lies under the root."""
        path = executed.get("path")
        if not path:
            return None
        absolute = os.path.normpath(path if os.path.isabs(path) else os.path.join(self.paths.home, path))
        if not os.path.isfile(absolute):
            return None
        return _relative_inside(os.path.realpath(absolute), self.paths.root_dir)

    def executed_notebook(self, ref: str) -> BlobFile:
        """The executed notebook a notebook run stored, from its blob (the output file may be gone)."""
        store = self.store()
        run = store.get_run(validate_run_id(ref))
        digest = (run.get("executed_notebook") or {}).get("blob")
        if not digest:
            raise NotFound(f"run {run['id'][:12]} stored no executed notebook (only `pykernel-ext run` runs do)")
        path = self._blob_path(digest)
        name = f"{_safe_stem(run.get('name') or 'run')}-{run['id'][:8]}.ipynb"
        return BlobFile(path, path.stat().st_size, name, "application/x-ipynb+json", False)

    def update_run(self, ref: str, patch: RunPatch) -> RunListEntry:
        return self.summary(self.store().update_run(validate_run_id(ref), patch))

    def delete_run(self, ref: str) -> dict[str, Any]:
        return self.store().delete_runs([validate_run_id(ref)]).to_dict()

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
        # Notebook and script runs compare through their cells: series, data hashes and code closures.
        result = compare_runs(self.store(), ids, through_children=True)
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


def record_schema() -> dict[str, Any]:
    """The run record's JSON Schema, as `records` defines it (the same as pykernel_ext/schema/run-record.schema.json)."""
    from ..record_schema import json_schema

    return json_schema()
