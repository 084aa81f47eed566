"""Pushing runs of the local store to MLflow, for `pykernel-ext mlflow push` and for the mirror.

Idempotent by our run id: the MLflow run carries it as a tag, so pushing again updates that run (new
metric points, new params, tags, artifacts, status) instead of adding one. Each run is claimed in the
outbox first, so two processes never push the same run at once. Parents go before their children
(`mlflow.parentRunId` needs the parent's MLflow id); runs of one generation go several at a time.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from ..store import RunStore
from ..store.outbox import RETRY_MAX_S, MlflowOutbox, owner_name
from .client import MlflowSession, check_reachable
from .convert import build_payload
from .target import MlflowSyncError, MlflowTarget, scrub

LEASE_S = 600.0  # a claim expires after this (a process killed mid-push frees its runs)
DEFAULT_WORKERS = 4


@dataclass
class PushResult:
    """What happened to one run."""

    run_id: str
    action: str  # created | updated | unchanged | skipped | failed
    mlflow_run_id: str | None = None
    message: str = ""
    notes: list[str] = field(default_factory=list)


class Pusher:
    """Pushes runs of `store` to `target`; one per command or per mirror thread."""

    def __init__(self, store: RunStore, target: MlflowTarget, session: MlflowSession | None = None,
                 workers: int = DEFAULT_WORKERS, retry_max_s: float = RETRY_MAX_S) -> None:
        self.store = store
        self.target = target
        self.session = session or MlflowSession(target)
        self.outbox = MlflowOutbox(store, target.label, target.experiment)
        self.owner = owner_name()
        self.workers = max(1, workers)
        self.retry_max_s = retry_max_s
        self._mlflow_ids: dict[str, str] = {}  # ours -> MLflow's, for the parent links of this push
        self._environments: dict[str, Any] = {}
        self._lock = threading.Lock()

    def push(self, run_ids: list[str], progress: Callable[[int, int], None] | None = None) -> list[PushResult]:
        """Claim and push runs (a push by hand); results in the order given. Runs that fail are reported,
        not queued: the command says so, and the outbox only keeps what it already held."""
        claimed, created = self.outbox.claim(run_ids, self.owner, LEASE_S)
        busy = [PushResult(r, "skipped", message="another process is pushing it right now (a kernel's mirror?)")
                for r in run_ids if r not in set(claimed)]
        results = self.push_claimed(claimed, progress, forget=set(created))
        by_id = {r.run_id: r for r in results + busy}
        return [by_id[r] for r in run_ids]

    def push_claimed(self, run_ids: list[str], progress: Callable[[int, int], None] | None = None,
                     forget: set[str] = frozenset()) -> list[PushResult]:
        """Push runs this process has claimed. A failing run stays pending in the outbox with its
        error (unless in `forget`: rows a push by hand created, dropped again)."""
        try:
            check_reachable(self.target)
            existing = self.session.find(run_ids)
        except Exception as exc:  # noqa: BLE001 - nothing can be pushed: every run records why
            return [self._failed(r, exc, forget) for r in run_ids]
        results: list[PushResult] = []
        # One worker runs inline: the mirror pushes from its own thread, also at interpreter exit, when
        # concurrent.futures no longer starts threads.
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="pykernel-ext-mlflow-push") if self.workers > 1 else None
        try:
            for generation in _generations(self.store.run_parents(run_ids), run_ids):
                push_one = lambda r: self._push_one(r, existing.get(r), forget)  # noqa: E731
                for result in (pool.map(push_one, generation) if pool else map(push_one, generation)):
                    results.append(result)
                    if progress:
                        progress(len(results), len(run_ids))
        finally:
            if pool:
                pool.shutdown()
        return results

    # ---- one run ------------------------------------------------------------------------------------

    def _push_one(self, run_id: str, existing, forget: set[str]) -> PushResult:
        try:
            run = self.store.get_run(run_id)
            if run["kind"] == "mlflow":
                self.outbox.release([run_id], forget=[run_id])
                return PushResult(run_id, "skipped", message="it was pulled from MLflow, where it already is")
            payload = build_payload(run, self._environment(run.get("environment_id")))
            parent = self._parent_mlflow_id(run.get("parent_id"), payload.notes)
            mlflow_id, action = self.session.write(payload, existing, parent, self.store.blobs)
            self.outbox.mark_pushed(run_id, mlflow_id)
            with self._lock:
                self._mlflow_ids[run_id] = mlflow_id
            return PushResult(run_id, action, mlflow_id, notes=payload.notes if action != "unchanged" else [])
        except Exception as exc:  # noqa: BLE001 - one run's failure is reported (and kept), not raised
            return self._failed(run_id, exc, forget)

    def _parent_mlflow_id(self, parent_id: str | None, notes: list[str]) -> str | None:
        """The MLflow id of the parent run, pushing the parent first when MLflow has not got it yet."""
        if not parent_id:
            return None
        with self._lock:
            known = self._mlflow_ids.get(parent_id)
        known = known or self.outbox.pushed_mlflow_id(parent_id)
        if known:
            return known
        parents = self.store.run_parents([parent_id])
        if parent_id not in parents or parents[parent_id][1] == "mlflow":
            notes.append(f"parent run {parent_id} is not in the local store: no mlflow.parentRunId")
            return None
        claimed, created = self.outbox.claim([parent_id], self.owner, LEASE_S)
        if not claimed:
            raise MlflowSyncError(f"its parent run {parent_id[:8]} is being pushed by another process; try again")
        result = self._push_one(parent_id, self.session.find([parent_id]).get(parent_id), set(created))
        if result.action == "failed":
            raise MlflowSyncError(f"its parent run {parent_id[:8]} could not be pushed: {result.message}")
        return result.mlflow_run_id

    def _environment(self, env_id: str | None) -> dict[str, Any] | None:
        if not env_id:
            return None
        with self._lock:
            if env_id not in self._environments:
                self._environments[env_id] = self.store.environment(env_id)
            return self._environments[env_id]

    def _failed(self, run_id: str, exc: BaseException, forget: set[str]) -> PushResult:
        message = scrub(_describe(exc), self.target.tracking_uri)
        if run_id in forget:
            self.outbox.release([run_id], forget=[run_id])
        else:
            self.outbox.mark_failed(run_id, message, self.retry_max_s)
        return PushResult(run_id, "failed", message=message)


def _generations(parents: dict[str, tuple[str | None, str]], run_ids: list[str]) -> list[list[str]]:
    """`run_ids` grouped so that a run comes in a later group than its parent (when both are pushed)."""
    wanted = set(run_ids)
    depth: dict[str, int] = {}

    def depth_of(run_id: str, seen: tuple[str, ...] = ()) -> int:
        if run_id not in depth:
            parent = parents.get(run_id, (None, ""))[0]
            in_push = parent in wanted and parent not in seen
            depth[run_id] = depth_of(parent, seen + (run_id,)) + 1 if in_push else 0
        return depth[run_id]

    groups: dict[int, list[str]] = {}
    for run_id in run_ids:
        groups.setdefault(depth_of(run_id), []).append(run_id)
    return [groups[d] for d in sorted(groups)]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, MlflowSyncError):
        return text
    first = text.splitlines()[0][:500]
    return f"{type(exc).__name__}: {first}"
