"""The one module that talks to MLflow (mlflow imported lazily: it is the `pykernel-ext[mlflow]` extra).

An `MlflowSession` resolves the experiment, finds the MLflow runs that carry our run ids, and writes a
`RunPayload` with as few requests as MLflow allows: one create, batched `log_batch` calls (1,000
metric points each), one `log_inputs`, the artifact files, one status update.
"""
from __future__ import annotations

import os
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import MissingOptionalDependency
from ..store import BlobStore
from .convert import TAG_RUN_ID, TAG_UPDATED_AT, MetricPoint, RunPayload
from .target import MlflowSyncError, MlflowTarget, ServerUnreachable

MAX_ENTITIES_PER_BATCH = 1000  # MLflow's limit for one log_batch request
BULK_LOOKUP_THRESHOLD = 20  # more runs than this to look up: one paged search of the experiment instead
REACHABLE_TIMEOUT_S = 3.0


def require_mlflow() -> None:
    """Import mlflow or say which extra installs it."""
    try:
        import mlflow  # noqa: F401
    except ImportError as exc:
        raise MissingOptionalDependency("mlflow", "mlflow", "MLflow sync (`pykernel-ext mlflow`)") from exc


def check_reachable(target: MlflowTarget, timeout: float = REACHABLE_TIMEOUT_S) -> None:
    """Fail fast when nothing listens at an http(s) tracking server's address.

    MLflow's own client retries a refused connection with backoff for minutes; the mirror would rather
    keep the run in the outbox and try again later."""
    if not target.is_http:
        return
    parts = urlsplit(target.tracking_uri)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as exc:
        raise ServerUnreachable(f"the MLflow tracking server {target.label} does not answer "
                                f"({exc.strerror or exc}): is it running?") from None


@dataclass
class ExistingRun:
    """An MLflow run that already carries one of our run ids."""

    mlflow_run_id: str
    status: str
    tags: dict[str, str]
    params: dict[str, str]
    metric_keys: set[str] = field(default_factory=set)
    artifact_uri: str | None = None


class MlflowSession:
    """A client for one target; safe to share between threads."""

    def __init__(self, target: MlflowTarget) -> None:
        require_mlflow()
        from mlflow.tracking import MlflowClient

        self.target = target
        self.client = MlflowClient(tracking_uri=target.tracking_uri)
        self.experiment_created = False
        self._experiment_id: str | None = None
        self._lock = threading.Lock()

    # ---- experiments and lookups -----------------------------------------------------------------

    def experiment_id(self, create: bool = True) -> str:
        """The experiment's id, creating it (when `create`) if the server has none by that name."""
        with self._lock:
            if self._experiment_id is None:
                self._experiment_id = self._resolve_experiment(create)
            return self._experiment_id

    def _resolve_experiment(self, create: bool) -> str:
        from mlflow.exceptions import MlflowException

        name = self.target.experiment
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None and not create:
            known = [e.name for e in self.client.search_experiments(max_results=20)]
            raise MlflowSyncError(f"{self.target.label} has no experiment named {name!r}; it has: "
                                  f"{', '.join(known) or 'none'} (choose one with --experiment)")
        if experiment is None:
            try:
                created = self.client.create_experiment(name)
                self.experiment_created = True
                return created
            except MlflowException as exc:  # another process created it meanwhile
                experiment = self.client.get_experiment_by_name(name)
                if experiment is None:
                    raise exc
        if experiment.lifecycle_stage == "deleted":
            raise MlflowSyncError(
                f"experiment {name!r} on {self.target.label} is deleted: restore it "
                f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) or choose another --experiment")
        return experiment.experiment_id

    def find(self, run_ids: list[str]) -> dict[str, ExistingRun]:
        """The MLflow runs of the experiment that carry these run ids (none when we just created it)."""
        experiment = self.experiment_id()
        if self.experiment_created or not run_ids:
            return {}
        wanted = set(run_ids)
        if len(run_ids) > BULK_LOOKUP_THRESHOLD:
            found = self._search(experiment, f"tags.`{TAG_RUN_ID}` IS NOT NULL")
        else:  # our run ids are hexadecimal (checked by the store), so quoting them is safe
            found = [run for run_id in run_ids
                     for run in self._search(experiment, f"tags.`{TAG_RUN_ID}` = '{run_id}'")]
        existing: dict[str, ExistingRun] = {}
        for run in sorted(found, key=lambda r: r.info.start_time or 0, reverse=True):
            ours = run.data.tags.get(TAG_RUN_ID)
            if ours in wanted:  # the oldest wins if some other tool copied the tag
                existing[ours] = ExistingRun(run.info.run_id, run.info.status, dict(run.data.tags),
                                             dict(run.data.params), set(run.data.metrics), run.info.artifact_uri)
        return existing

    def search_all(self, max_runs: int | None = None) -> list[Any]:
        """Every active run of the experiment (MLflow Run objects), newest first."""
        return self._search(self.experiment_id(create=False), "", max_runs)

    def _search(self, experiment: str, filter_string: str, max_runs: int | None = None) -> list[Any]:
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs([experiment], filter_string, max_results=1000, page_token=token,
                                           order_by=["attributes.start_time DESC"])
            runs.extend(page)
            token = page.token
            if not token or (max_runs is not None and len(runs) >= max_runs):
                return runs[:max_runs] if max_runs is not None else runs

    # ---- writing ---------------------------------------------------------------------------------

    def write(self, payload: RunPayload, existing: ExistingRun | None, parent_mlflow_id: str | None,
              blobs: BlobStore) -> tuple[str, str]:
        """Create or update the MLflow run of `payload`; returns (MLflow run id, created|updated|unchanged).

        The `pykernel_ext.updated_at` tag is written last, so a push cut short is completed next time."""
        tags = dict(payload.tags)
        if parent_mlflow_id:
            tags["mlflow.parentRunId"] = parent_mlflow_id
        if existing is not None and _unchanged(existing, payload, tags):
            return existing.mlflow_run_id, "unchanged"
        last_tags = {TAG_UPDATED_AT: payload.updated_at}
        if existing is None:
            run = self.client.create_run(self.experiment_id(), start_time=payload.start_ms, tags=tags,
                                         run_name=payload.name)
            mlflow_id, artifact_uri, action = run.info.run_id, run.info.artifact_uri, "created"
            self._log_inputs(mlflow_id, payload)
            self._log_artifacts(mlflow_id, artifact_uri, payload, blobs)
            # One batch (MLflow's client splits it by its limits). A push cut short is still seen as
            # unfinished: the run stays RUNNING in MLflow until _update_run, the last request.
            self._log_batches(mlflow_id, payload.params, payload.metrics, {**_notes_tag(payload), **last_tags}, {})
        else:
            mlflow_id, artifact_uri, action = existing.mlflow_run_id, existing.artifact_uri, "updated"
            params = _new_params(existing, payload)
            metrics = self._new_points(mlflow_id, payload.metrics, existing.metric_keys)
            self._log_inputs(mlflow_id, payload)
            self._log_artifacts(mlflow_id, artifact_uri, payload, blobs)
            self._log_batches(mlflow_id, params, metrics, {**tags, **_notes_tag(payload)}, last_tags)
        self._update_run(mlflow_id, payload)
        return mlflow_id, action

    def _log_batches(self, mlflow_id: str, params: dict[str, str], metrics: list[MetricPoint],
                     tags: dict[str, str], last_tags: dict[str, str]) -> None:
        """Params, metrics and tags in as few requests as MLflow allows (its client splits a batch by
        MLflow's limits: 100 params or tags, 1,000 entities); `last_tags` go in the last request, so they
        land only once everything before them did."""
        from mlflow.entities import Metric, Param, RunTag

        entities = [Metric(m.key, m.value, m.timestamp_ms, m.step) for m in metrics]
        cut = max(0, len(entities) - (MAX_ENTITIES_PER_BATCH - len(last_tags))) if last_tags else len(entities)
        if params or tags or cut:
            self.client.log_batch(mlflow_id, metrics=entities[:cut], params=[Param(k, v) for k, v in params.items()],
                                  tags=[RunTag(k, v) for k, v in tags.items()])
        if last_tags:
            self.client.log_batch(mlflow_id, metrics=entities[cut:], tags=[RunTag(k, v) for k, v in last_tags.items()])

    def _new_points(self, mlflow_id: str, points: list[MetricPoint], known_keys: set[str]) -> list[MetricPoint]:
        """Points MLflow does not have yet: an update resends only those (MLflow keeps every point it gets)."""
        have: set[tuple[str, int, int, float]] = set()
        for key in {p.key for p in points} & known_keys:
            have |= {(key, m.step, m.timestamp, m.value) for m in self.client.get_metric_history(mlflow_id, key)}
        return [p for p in points if (p.key, p.step, p.timestamp_ms, p.value) not in have]

    def _log_inputs(self, mlflow_id: str, payload: RunPayload) -> None:
        if not payload.datasets:
            return
        from mlflow.entities import Dataset, DatasetInput

        inputs = [DatasetInput(Dataset(d.name, d.digest, d.source_type, d.source, profile=d.profile))
                  for d in payload.datasets]
        for start in range(0, len(inputs), 1000):
            self.client.log_inputs(mlflow_id, datasets=inputs[start:start + 1000])

    def _log_artifacts(self, mlflow_id: str, artifact_uri: str | None, payload: RunPayload, blobs: BlobStore) -> None:
        if not payload.artifacts:
            return
        with tempfile.TemporaryDirectory(prefix="pykernel-ext-mlflow-") as folder:
            for item in payload.artifacts:
                target = Path(folder, *item.path.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                if item.text is not None:
                    target.write_text(item.text, encoding="utf-8")
                elif blobs.exists(item.blob):
                    os.symlink(blobs.path_for(item.blob), target)  # no copy of a large checkpoint
                else:
                    payload.notes.append(f"artifact {item.path} is missing from the local store (blob {item.blob[:12]})")
            self._artifact_repository(mlflow_id, artifact_uri).log_artifacts(folder)

    def _artifact_repository(self, mlflow_id: str, artifact_uri: str | None):
        """The run's artifact store, from the artifact URI we already have: MlflowClient.log_artifacts
        would first fetch the run to learn it (one request per run more)."""
        if artifact_uri:
            try:
                from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
                from mlflow.utils.uri import add_databricks_profile_info_to_artifact_uri

                uri = add_databricks_profile_info_to_artifact_uri(artifact_uri, self.target.tracking_uri)
                return get_artifact_repository(uri, tracking_uri=self.target.tracking_uri)
            except (ImportError, TypeError):
                pass  # another MLflow version: let its client find the repository
        return _ClientArtifacts(self.client, mlflow_id)

    def _update_run(self, mlflow_id: str, payload: RunPayload) -> None:
        from mlflow.entities import RunStatus

        # The store's update_run_info sets status, end time and name in one request; the client's
        # set_terminated would also fetch the run and print its URL to stdout (into a user's cell).
        self.client._tracking_client.store.update_run_info(
            mlflow_id, RunStatus.from_string(payload.status), payload.end_ms, payload.name)


class _ClientArtifacts:
    """The run's artifacts through MlflowClient (which looks the run up first)."""

    def __init__(self, client: Any, mlflow_id: str) -> None:
        self.client, self.mlflow_id = client, mlflow_id

    def log_artifacts(self, folder: str) -> None:
        self.client.log_artifacts(self.mlflow_id, folder)


def _unchanged(existing: ExistingRun, payload: RunPayload, tags: dict[str, str]) -> bool:
    return (existing.tags.get(TAG_UPDATED_AT) == payload.updated_at and existing.status == payload.status
            and existing.tags.get("mlflow.parentRunId") == tags.get("mlflow.parentRunId"))


def _notes_tag(payload: RunPayload) -> dict[str, str]:
    return {"pykernel_ext.push_notes": "; ".join(payload.notes)[:8000]} if payload.notes else {}


def _new_params(existing: ExistingRun, payload: RunPayload) -> dict[str, str]:
    """Params MLflow does not have yet (MLflow never changes a logged param; a different value is noted)."""
    new = {}
    for key, value in payload.params.items():
        if key not in existing.params:
            new[key] = value
        elif existing.params[key] != value:
            payload.notes.append(f"param {key} is {value!r} here but {existing.params[key]!r} in MLflow, "
                                 "which never changes a logged param")
    return new
