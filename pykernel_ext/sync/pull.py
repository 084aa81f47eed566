"""Pulling an MLflow experiment's runs into the local store as runs of kind `mlflow`, so the sidebar and
`pykernel-ext runs` list and compare them beside notebook runs.

Runs that were pushed from this store are skipped (the local run is the source of truth). Runs pushed by
a teammate's pykernel-ext keep their pykernel-ext id and get their code, data hashes and git state back
from the record pushed with them (`pykernel_ext/run.json`). Pulling again refreshes what was pulled.
"""
from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..store import RunStore
from .client import MlflowSession, check_reachable
from .convert import RECORD_ARTIFACT, STATUS_TO_MLFLOW, TAG_RUN_ID
from .target import MlflowTarget, scrub

STATUS_FROM_MLFLOW = {v: k for k, v in STATUS_TO_MLFLOW.items()} | {"SCHEDULED": "running"}
_HEX_ID = re.compile(r"^[0-9a-f]{32}$")
# Parts of a pushed record that describe the run itself (not this machine's store: blobs, logs).
_RECORD_KEYS = ("code", "data", "outputs", "git", "error", "environment_summary", "hardware", "resources", "cost")


@dataclass
class PullResult:
    pulled: list[str] = field(default_factory=list)  # local ids written (new or refreshed)
    skipped: list[str] = field(default_factory=list)  # runs that came from this store
    warnings: list[str] = field(default_factory=list)


def pull_runs(store: RunStore, target: MlflowTarget, limit: int | None = None, session: MlflowSession | None = None,
              progress: Callable[[int, int], None] | None = None) -> PullResult:
    """Bring the experiment's runs (newest first, at most `limit`) into `store`."""
    check_reachable(target)
    session = session or MlflowSession(target)
    runs = session.search_all(limit)
    local_ids = {run.info.run_id: _local_id(run) for run in runs}
    known = store.run_parents(list(local_ids.values()))
    result = PullResult()
    for index, run in enumerate(reversed(runs), start=1):  # oldest first, as they were recorded
        local = local_ids[run.info.run_id]
        if local in known and known[local][1] != "mlflow":
            result.skipped.append(local)
            continue
        summary, details, metrics = _as_local_run(run, local, local_ids, known, session)
        store.replace_run(summary, details, metrics)
        result.pulled.append(local)
        result.warnings += [f"{local[:8]}: {w}" for w in details["warnings"]]
        if progress:
            progress(index, len(runs))
    return result


def _local_id(run: Any) -> str:
    ours = run.data.tags.get(TAG_RUN_ID, "")
    if _HEX_ID.match(ours):
        return ours
    mlflow_id = run.info.run_id
    return mlflow_id if _HEX_ID.match(mlflow_id) else hashlib.blake2b(mlflow_id.encode(), digest_size=16).hexdigest()


def _as_local_run(run: Any, local: str, local_ids: dict[str, str], known: dict[str, Any],
                  session: MlflowSession) -> tuple[dict[str, Any], dict[str, Any], list[tuple]]:
    info, tags = run.info, run.data.tags
    started = (info.start_time or 0) / 1000
    ended = info.end_time / 1000 if info.end_time else None
    status = STATUS_FROM_MLFLOW.get(info.status, "running")
    parent = local_ids.get(tags.get("mlflow.parentRunId", ""))
    error = tags.get("pykernel_ext.error") or ("the MLflow run failed" if status == "failed" else None)
    summary = {
        "id": local, "kind": "mlflow", "name": info.run_name or info.run_id[:8], "status": status,
        "parent_id": parent if parent and (parent in known or parent in local_ids.values()) else None,
        # Only our own (relative) label: an MLflow source name is a path on the machine that logged it.
        "notebook": tags.get("pykernel_ext.notebook"),
        "started_at": started, "ended_at": ended, "duration_s": (ended - started) if ended else None,
        "code_hash": tags.get("pykernel_ext.code_hash"), "host": tags.get("pykernel_ext.host"),
        "owner_host": None,  # no local process owns it: never marked interrupted here
        "error_type": error.split(":", 1)[0] if error and ":" in error else ("MlflowRunFailed" if error else None),
        "error_message": error.split(":", 1)[-1].strip() if error else None,
        "params": {k: _param_value(v) for k, v in run.data.params.items()},
        "metrics": {k: v for k, v in run.data.metrics.items() if not k.startswith(("system/", "pykernel_ext/"))},
        "tags": {k: v for k, v in tags.items() if not k.startswith(("mlflow.", "pykernel_ext."))},
    }
    details = _details(run, session)
    metrics = _metric_rows(run, session, details["warnings"])
    return summary, details, metrics


def _details(run: Any, session: MlflowSession) -> dict[str, Any]:
    info, tags = run.info, run.data.tags
    details: dict[str, Any] = {
        "mlflow": {"tracking_uri": session.target.label, "experiment": session.target.experiment,
                   "experiment_id": info.experiment_id, "run_id": info.run_id, "artifact_uri": info.artifact_uri,
                   "user": info.user_id, "pulled_at": time.time(),
                   "system_tags": {k: v for k, v in tags.items() if k.startswith("mlflow.") and k != "mlflow.note.content"}},
        "data": [_dataset(d.dataset) for d in (run.inputs.dataset_inputs if run.inputs else [])],
        "warnings": [],
    }
    if tags.get("mlflow.source.git.commit"):
        details["git"] = {"commit": tags["mlflow.source.git.commit"], "branch": tags.get("mlflow.source.git.branch"),
                          "remote_url": tags.get("mlflow.source.git.repoURL")}
    if tags.get(TAG_RUN_ID):
        details.update(_pushed_record(run, session, details["warnings"]))
    return details


def _pushed_record(run: Any, session: MlflowSession, warnings: list[str]) -> dict[str, Any]:
    """What a pykernel-ext push stored in `pykernel_ext/run.json`: code, data hashes, git, error, ..."""
    try:
        with tempfile.TemporaryDirectory(prefix="pykernel-ext-pull-") as folder:
            path = session.client.download_artifacts(run.info.run_id, RECORD_ARTIFACT, folder)
            record = json.loads(Path(path).read_text(encoding="utf-8"))
    except Exception as exc:  # noqa: BLE001 - the run is still worth listing without it
        warnings.append(f"its pykernel-ext record ({RECORD_ARTIFACT}) could not be read: "
                        f"{scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, session.target.tracking_uri)}")
        return {}
    return {k: record[k] for k in _RECORD_KEYS if record.get(k) is not None}


def _dataset(dataset: Any) -> dict[str, Any]:
    try:
        profile = json.loads(dataset.profile or "{}")
    except ValueError:
        profile = {}
    return {"name": dataset.name, "source": "mlflow dataset", "kind": profile.get("kind") or dataset.source_type,
            "hash": profile.get("blake3") or dataset.digest, "size": profile.get("size"),
            "detail": dataset.source, "path": None, "error": None}


def _metric_rows(run: Any, session: MlflowSession, warnings: list[str]) -> list[tuple[str, int, float, float]]:
    rows: list[tuple[str, int, float, float]] = []
    for key in run.data.metrics:
        try:
            history = session.client.get_metric_history(run.info.run_id, key)
        except Exception as exc:  # noqa: BLE001
            warnings.append(f"the series of {key} could not be read: {type(exc).__name__}")
            continue
        rows += [(key, m.step, m.value, m.timestamp / 1000) for m in sorted(history, key=lambda m: (m.step, m.timestamp))]
    return rows


def _param_value(text: str) -> Any:
    """An MLflow param (always text) as the value it was: numbers, booleans, None, JSON lists and dicts."""
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    if text[:1] in "-0123456789[{" and text:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text
