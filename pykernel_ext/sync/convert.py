"""A pykernel-ext run, as MLflow records runs: tags, params, metric points, dataset inputs and artifact
files, following MLflow's conventions (`mlflow.*` system tags, `system/gpu_N_*` system metrics, MLflow's
length limits). Pure data: no mlflow import here, so it is cheap and testable on its own.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

# MLflow's limits (mlflow.utils.validation; a test checks they still agree with the installed MLflow).
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_ENTITY_KEY_LENGTH = 250
MAX_DATASET_DIGEST_SIZE = 36
MAX_DATASET_NAME_SIZE = 500

TAG_RUN_ID = "pykernel_ext.run_id"  # the idempotency key: the MLflow run that carries our run id
TAG_UPDATED_AT = "pykernel_ext.updated_at"  # the local run's updated_at when last pushed in full
TAG_KIND = "pykernel_ext.kind"
PARAMS_ARTIFACT = "pykernel_ext/params.json"
RECORD_ARTIFACT = "pykernel_ext/run.json"

# MLflow run statuses for ours.
STATUS_TO_MLFLOW = {"running": "RUNNING", "ok": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
SOURCE_TYPES = {"cell": "NOTEBOOK", "remote": "NOTEBOOK", "notebook": "NOTEBOOK", "script": "LOCAL"}

# Characters MLflow accepts in param, metric and tag names (mlflow.utils.validation._VALID_PARAM_AND_METRIC_NAMES).
_INVALID_NAME_CHARS = re.compile(r"[^\w\-./ :]")


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    timestamp_ms: int
    step: int


@dataclass(frozen=True)
class DatasetRecord:
    """A data hash as an MLflow dataset input (name, digest, source type, source, profile)."""

    name: str
    digest: str
    source_type: str
    source: str
    profile: str


@dataclass(frozen=True)
class ArtifactFile:
    """A file of the MLflow run: its artifact path and either a blob of the store or text."""

    path: str
    blob: str | None = None
    text: str | None = None


@dataclass
class RunPayload:
    """Everything MLflow gets for one run."""

    run_id: str
    name: str
    kind: str
    status: str  # an MLflow status: RUNNING, FINISHED, FAILED, KILLED
    start_ms: int
    end_ms: int | None
    parent_run_id: str | None  # ours; the pusher turns it into mlflow.parentRunId
    updated_at: str
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: list[MetricPoint] = field(default_factory=list)
    datasets: list[DatasetRecord] = field(default_factory=list)
    artifacts: list[ArtifactFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what MLflow could not take as is (truncations, renames)


def build_payload(run: dict[str, Any], environment: dict[str, Any] | None = None) -> RunPayload:
    """The MLflow form of a run as `RunStore.get_run` returns it (with its environment, if stored)."""
    payload = RunPayload(
        run_id=run["id"], name=run.get("name") or run["id"][:8], kind=run.get("kind") or "cell",
        status=STATUS_TO_MLFLOW.get(run.get("status"), "RUNNING"), start_ms=_ms(run["started_at"]),
        end_ms=_ms(run["ended_at"]) if run.get("ended_at") and run.get("status") != "running" else None,
        parent_run_id=run.get("parent_id"), updated_at=repr(run.get("updated_at")),
    )
    _add_tags(payload, run)
    _add_params(payload, run.get("params") or {})
    _add_metrics(payload, run)
    _add_system_metrics(payload, run.get("gpu_samples") or [])
    _add_datasets(payload, run.get("data") or [])
    _add_artifacts(payload, run, environment)
    return payload


# ---- tags ----------------------------------------------------------------------------------------


def _add_tags(payload: RunPayload, run: dict[str, Any]) -> None:
    git = run.get("git") or {}
    source = run.get("notebook") or (run.get("code") or {}).get("path")
    tags: dict[str, Any] = {
        TAG_RUN_ID: run["id"], TAG_KIND: run.get("kind"),
        "pykernel_ext.status": run.get("status"), "pykernel_ext.notebook": run.get("notebook"),
        "pykernel_ext.cell_id": run.get("cell_id"), "pykernel_ext.execution_count": run.get("execution_count"),
        "pykernel_ext.code_hash": run.get("code_hash"), "pykernel_ext.host": run.get("host"),
        "pykernel_ext.environment_id": run.get("environment_id"), "pykernel_ext.parent_run_id": run.get("parent_id"),
        "pykernel_ext.reproduces": run.get("reproduces"),
        "pykernel_ext.error": f"{run['error_type']}: {run.get('error_message') or ''}" if run.get("error_type") else None,
        "mlflow.source.name": source,
        "mlflow.source.type": SOURCE_TYPES.get(run.get("kind"), "LOCAL") if source else None,
        "mlflow.source.git.commit": git.get("commit"), "mlflow.source.git.branch": git.get("branch"),
        "mlflow.source.git.repoURL": git.get("remote_url"), "mlflow.gitRepoURL": git.get("remote_url"),
        "mlflow.note.content": _description(run),
    }
    # The user's tags first, so that none can overwrite ours (the run id tag above all).
    tags = {**{_name(payload, key, "tag"): value for key, value in (run.get("tags") or {}).items()}, **tags}
    for key, value in tags.items():
        if value is None or value == "":
            continue
        payload.tags[key] = _clip(payload, f"tag {key}", str(value), MAX_TAG_VAL_LENGTH, "")


def _description(run: dict[str, Any]) -> str:
    """The MLflow run's description (shown on its page): where it came from and how to see all of it."""
    where = {"cell": "a `%%track` cell", "remote": "a `%%remote` cell", "notebook": "a notebook run",
             "script": "a `pykernel_ext.track()` block"}.get(run.get("kind"), run.get("kind") or "a run")
    text = f"Recorded by pykernel-ext from {where}"
    if run.get("notebook"):
        text += f" of `{run['notebook']}`"
    if run.get("execution_count") is not None:
        text += f" (execution [{run['execution_count']}])"
    text += f".\n\nLocal run `{run['id']}`: `pykernel-ext runs show {run['id'][:12]}`."
    if run.get("error_type"):
        text += f"\n\n**{run['error_type']}**: {run.get('error_message') or ''}"
    return text


# ---- params and metrics ------------------------------------------------------------------------------


def _add_params(payload: RunPayload, params: dict[str, Any]) -> None:
    truncated = []
    for key, value in params.items():
        text = value if isinstance(value, str) else (json.dumps(value, default=str)
                                                     if isinstance(value, (list, dict)) else str(value))
        clipped = _clip(payload, f"param {key}", text, MAX_PARAM_VAL_LENGTH, f" (full value in {PARAMS_ARTIFACT})")
        if clipped != text:
            truncated.append(key)
        payload.params[_name(payload, key, "param")] = clipped
    if truncated:
        payload.tags["pykernel_ext.truncated_params"] = ", ".join(truncated)[:MAX_TAG_VAL_LENGTH]
        payload.artifacts.append(ArtifactFile(PARAMS_ARTIFACT, text=json.dumps(params, indent=2, default=str)))


def _add_metrics(payload: RunPayload, run: dict[str, Any]) -> None:
    series = run.get("metric_series") or {}
    for key, points in series.items():
        name = _name(payload, key, "metric")
        for step, value, timestamp in zip(points["steps"], points["values"], points["timestamps"]):
            if value is not None:
                payload.metrics.append(MetricPoint(name, float(value), _ms(timestamp), int(step or 0)))
    end = _ms(run.get("ended_at") or run.get("updated_at") or run["started_at"])
    # Final values without a series (a notebook run's summary of its cells) become one point each.
    for key, value in (run.get("metrics") or {}).items():
        if key not in series and isinstance(value, (int, float)):
            payload.metrics.append(MetricPoint(_name(payload, key, "metric"), float(value), end, 0))
    for key, value in (("pykernel_ext/duration_s", run.get("duration_s")), ("pykernel_ext/cost_usd", run.get("cost_usd"))):
        if isinstance(value, (int, float)) and run.get("status") != "running":
            payload.metrics.append(MetricPoint(key, float(value), end, 0))


def _add_system_metrics(payload: RunPayload, samples: list[dict[str, Any]]) -> None:
    """GPU samples under MLflow's system-metric names (those of mlflow.system_metrics' GPU monitor);
    with samples from several hosts (a remote run), each host is a node: system/<host>/gpu_0_..."""
    hosts = {s.get("host") for s in samples}
    steps: dict[str, int] = {}
    for sample in samples:
        prefix = f"system/{sample.get('host')}/" if len(hosts) > 1 else "system/"
        gpu = f"{prefix}gpu_{sample['gpu_index']}_"
        used, total = sample.get("memory_used"), sample.get("memory_total")
        values = {
            "utilization_percentage": sample.get("utilization"),
            "memory_usage_megabytes": used / 1e6 if used is not None else None,
            "memory_usage_percentage": used / total * 100 if used is not None and total else None,
        }
        for name, value in values.items():
            if value is None:
                continue
            key = gpu + name
            step = steps.get(key, 0)
            steps[key] = step + 1
            payload.metrics.append(MetricPoint(key, float(value), _ms(sample["timestamp"]), step))


# ---- datasets and artifacts -------------------------------------------------------------------------


def _add_datasets(payload: RunPayload, data: list[dict[str, Any]]) -> None:
    for item in data:
        digest = item.get("hash")
        if not digest:
            continue
        name = str(item.get("name") or item.get("path"))[:MAX_DATASET_NAME_SIZE]
        if item.get("path"):
            source_type, source = "local", json.dumps({"uri": item["path"]})
        else:
            source_type, source = "code", json.dumps({"tags": {"variable": item.get("name"), "kind": item.get("kind")}})
        # MLflow keeps 36 characters of a digest; the whole blake3 hash travels in the profile.
        profile = json.dumps({"blake3": digest, "size": item.get("size"), "kind": item.get("kind"),
                              "detail": item.get("detail"), "read_as": item.get("source")}, default=str)
        payload.datasets.append(DatasetRecord(name, digest[:MAX_DATASET_DIGEST_SIZE], source_type, source, profile))


def _add_artifacts(payload: RunPayload, run: dict[str, Any], environment: dict[str, Any] | None) -> None:
    files = payload.artifacts
    code = run.get("code") or {}
    if code.get("source"):
        files.append(ArtifactFile("code/script.py" if run.get("kind") == "script" else "code/cell.py",
                                  text=code["source"]))
    if code.get("closure"):
        files.append(ArtifactFile("code/closure.py", text="\n\n".join(
            f"# {entry.get('kind')} {entry.get('name')} (hash {str(entry.get('hash'))[:12]})\n{entry.get('source', '')}"
            for entry in code["closure"])))
    logs = run.get("logs") or {}
    for stream in ("stdout", "stderr"):
        if logs.get(f"{stream}_blob"):
            files.append(ArtifactFile(f"logs/{stream}.txt", blob=logs[f"{stream}_blob"]))
    _add_notebook_files(files, run)
    for artifact in run.get("artifacts") or []:
        files.append(ArtifactFile("artifacts/" + _safe_path(artifact["path"]), blob=artifact["blob"]))
    error = run.get("error") or {}
    if error.get("traceback"):
        files.append(ArtifactFile("error/traceback.txt", text=error["traceback"]))
    git = run.get("git") or {}
    if git.get("diff"):
        files.append(ArtifactFile("git/diff.patch", text=git["diff"]))
    packages = (environment or {}).get("packages") or {}
    if packages:
        files.append(ArtifactFile("environment/requirements.txt",
                                  text="".join(f"{name}=={version}\n" for name, version in sorted(packages.items()))))
    record = {k: v for k, v in run.items() if k not in ("metric_series", "gpu_samples", "environment")}
    files.append(ArtifactFile(RECORD_ARTIFACT, text=json.dumps(record, indent=2, sort_keys=True, default=str)))


def _add_notebook_files(files: list[ArtifactFile], run: dict[str, Any]) -> None:
    source = run.get("notebook_file") or {}
    stem = PurePosixPath(str(source.get("path") or run.get("notebook") or "notebook")).stem
    if source.get("blob"):
        files.append(ArtifactFile(f"notebook/{stem}.ipynb", blob=source["blob"]))
    executed = run.get("executed_notebook") or {}
    if executed.get("blob"):
        files.append(ArtifactFile(f"notebook/{stem}.executed.ipynb", blob=executed["blob"]))


# ---- helpers ------------------------------------------------------------------------------------------


def _ms(epoch_seconds: float) -> int:
    return int(round(float(epoch_seconds) * 1000))


def _clip(payload: RunPayload, what: str, text: str, limit: int, where_full: str) -> str:
    if len(text) <= limit:
        return text
    note = f"... [truncated: {len(text)} characters{where_full}]"
    payload.notes.append(f"{what} is {len(text)} characters, over MLflow's limit of {limit}: truncated")
    return text[: limit - len(note)] + note


def _name(payload: RunPayload, key: str, what: str) -> str:
    """A name MLflow accepts: invalid characters become '_', and it is cut to MLflow's length limit."""
    name = _INVALID_NAME_CHARS.sub("_", str(key))[:MAX_ENTITY_KEY_LENGTH] or "_"
    if name != key:
        payload.notes.append(f"{what} name {key!r} is {name!r} in MLflow (MLflow allows letters, digits, _-./: and spaces)")
    return name


def _safe_path(label: str) -> str:
    """An artifact label as a relative path inside the MLflow run's artifacts (no root, no '..')."""
    parts = [p for p in PurePosixPath(str(label).replace("\\", "/")).parts if p not in ("/", "..", ".", "")]
    return "/".join(parts) or "artifact"
