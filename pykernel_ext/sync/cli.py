"""`pykernel-ext mlflow push | pull | status`.

`status` reads only the store (no mlflow import); push and pull import mlflow when they run and say which
extra to install when it is missing.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
import time
from typing import Iterator

from ..errors import PykernelExtError
from ..store import RunStore
from ..store.outbox import outbox_totals, pending_entries
from .target import ENV_EXPERIMENT, ENV_URI, MlflowSyncError, MlflowTarget, MlflowTargetError, redact_uri, scrub

LIST_LIMIT = 20  # pushes of more runs than this print a progress line instead of one line per run


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("mlflow", help="push runs to an MLflow tracking server, pull them back, mirror status")
    actions = parser.add_subparsers(title="mlflow commands", metavar="ACTION")
    parser.set_defaults(handler=lambda args: parser.print_help() or 2)

    push = actions.add_parser("push", help="copy runs to MLflow (again: updates, never duplicates)")
    push.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="run ids or unique prefixes")
    push.add_argument("--all", action="store_true", help="every run of the store (not those pulled from MLflow)")
    push.add_argument("--pending", action="store_true", help="the runs the mirror's outbox holds for this target")
    _target_options(push)
    push.add_argument("--workers", type=int, default=4, help="runs pushed at once (default 4)")
    push.add_argument("--json", action="store_true", help="one JSON object per run")
    push.set_defaults(handler=cmd_push)

    pull = actions.add_parser("pull", help="bring an experiment's runs into the local store (kind mlflow)")
    _target_options(pull)
    pull.add_argument("--limit", type=int, default=None, help="only the newest N runs")
    pull.set_defaults(handler=cmd_pull)

    status = actions.add_parser("status", help="the mirror's setting and what its outbox holds")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)


def _target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", metavar="URI",
                        help=f"MLflow tracking URI (default: ${ENV_URI}, else $MLFLOW_TRACKING_URI); credentials "
                             "come from MLflow's own variables (MLFLOW_TRACKING_USERNAME/PASSWORD/TOKEN)")
    parser.add_argument("--experiment", metavar="NAME",
                        help=f"experiment name (default: ${ENV_EXPERIMENT}, else $MLFLOW_EXPERIMENT_NAME, else Default)")


def _open_store() -> RunStore:
    store = RunStore.open()
    store.mark_orphans_interrupted()
    return store


# ---- push ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _mlflow_errors(target: MlflowTarget) -> Iterator[None]:
    """MLflow's own exceptions (a URI it cannot use, a server error) as one clear line, credentials removed."""
    try:
        yield
    except PykernelExtError:
        raise
    except Exception as exc:  # noqa: BLE001 - mlflow raises many kinds; the user needs the message
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise MlflowSyncError(f"MLflow at {target.label}: {scrub(first, target.tracking_uri)}") from exc


def cmd_push(args: argparse.Namespace) -> int:
    from .push import Pusher

    target = MlflowTarget.resolve(args.tracking_uri, args.experiment)
    if not (args.run_ids or args.all or args.pending):
        raise MlflowTargetError("name the runs to push (RUN_ID ...), or --all, or --pending")
    with _open_store() as store:
        if args.all:
            run_ids = [r for r, (_, kind) in store.run_parents().items() if kind != "mlflow"]
        elif args.pending:
            run_ids = [e.run_id for e in pending_entries(store, limit=1_000_000)
                       if (e.tracking_uri, e.experiment) == (target.label, target.experiment)]
        else:
            run_ids = list(dict.fromkeys(store.resolve_run_id(ref) for ref in args.run_ids))
        if not run_ids:
            print("nothing to push" + (f" (the outbox holds nothing for {target.label})" if args.pending else ""))
            return 0
        started = time.monotonic()
        with _mlflow_errors(target):
            pusher = Pusher(store, target, workers=args.workers)
            progress = _progress_line if len(run_ids) > LIST_LIMIT and not args.json else None
            results = pusher.push(run_ids, progress=progress)
            experiment_id = pusher.session.experiment_id() if any(r.mlflow_run_id for r in results) else None
    _print_push(results, target, experiment_id, time.monotonic() - started, args.json)
    return 1 if any(r.action == "failed" for r in results) else 0


def _print_push(results, target: MlflowTarget, experiment_id: str | None, seconds: float, as_json: bool) -> None:
    if as_json:
        for r in results:
            print(json.dumps({"run_id": r.run_id, "action": r.action, "mlflow_run_id": r.mlflow_run_id,
                              "message": r.message, "notes": r.notes}))
        return
    if len(results) <= LIST_LIMIT:
        for r in results:
            where = _run_url(target, experiment_id, r.mlflow_run_id) if r.mlflow_run_id else ""
            line = f"{r.run_id[:8]}  {r.action:<9}  {where or r.message}"
            print(line.rstrip())
            for note in r.notes:
                print(f"          note: {note}")
            if r.message and where:
                print(f"          {r.message}")
    counts: dict[str, int] = {}
    for r in results:
        counts[r.action] = counts.get(r.action, 0) + 1
    summary = ", ".join(f"{n} {action}" for action, n in counts.items())
    print(f"{len(results)} run(s) to {target.label} experiment {target.experiment!r} in {seconds:.1f} s: {summary}")
    failed = [r for r in results if r.action == "failed"]
    if failed and len(results) > LIST_LIMIT:
        print(f"first failure: {failed[0].run_id[:8]}: {failed[0].message}", file=sys.stderr)


def _run_url(target: MlflowTarget, experiment_id: str | None, mlflow_run_id: str) -> str:
    if target.is_http and experiment_id is not None:
        return f"{target.label.rstrip('/')}/#/experiments/{experiment_id}/runs/{mlflow_run_id}"
    return f"mlflow run {mlflow_run_id}"


def _progress_line(done: int, total: int) -> None:
    end = "\n" if done >= total else ""
    sys.stderr.write(f"\rpushed {done}/{total}{end}")
    sys.stderr.flush()


# ---- pull ------------------------------------------------------------------------------------------


def cmd_pull(args: argparse.Namespace) -> int:
    from .pull import pull_runs

    target = MlflowTarget.resolve(args.tracking_uri, args.experiment)
    with _open_store() as store, _mlflow_errors(target):
        result = pull_runs(store, target, limit=args.limit)
    print(f"pulled {len(result.pulled)} run(s) from {target.label} experiment {target.experiment!r} (kind mlflow)"
          + (f"; {len(result.skipped)} came from this store and were left as they are" if result.skipped else ""))
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


# ---- status ----------------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    mirror = MlflowTarget.from_env()
    with _open_store() as store:
        totals = outbox_totals(store)
        pending = pending_entries(store, limit=50)
        names = {e.run_id: _run_name(store, e.run_id) for e in pending}
    if args.json:
        print(json.dumps({
            "mirror": {"tracking_uri": mirror.label, "experiment": mirror.experiment} if mirror else None,
            "targets": [t.__dict__ for t in totals],
            "pending": [{**e.__dict__, "name": names.get(e.run_id)} for e in pending],
        }, indent=2, default=str))
        return 0
    _print_status(mirror, totals, pending, names)
    return 0


def _print_status(mirror: MlflowTarget | None, totals, pending, names: dict[str, str]) -> None:
    if mirror:
        print(f"mirror: on, to {mirror.label} experiment {mirror.experiment!r} ({ENV_URI})")
    else:
        print(f"mirror: off (set {ENV_URI}, and optionally {ENV_EXPERIMENT}, to push every run that ends)")
    if not totals:
        print("outbox: empty (nothing pushed or waiting)")
        return
    for t in totals:
        when = (f", last {_ago(t.last_pushed_at)}" if t.state == "pushed" and t.last_pushed_at
                else f", oldest queued {_ago(t.oldest_enqueued_at)}")
        print(f"{t.count:>6} {'pushed' if t.state == 'pushed' else 'waiting'} to {redact_uri(t.tracking_uri)} "
              f"experiment {t.experiment!r}{when}")
    now = time.time()
    for e in pending:
        due = "now" if e.next_attempt_at <= now else f"in {e.next_attempt_at - now:.0f} s"
        tried = f"{e.attempts} attempt(s), next {due}" if e.attempts else f"not tried yet, due {due}"
        print(f"  {e.run_id[:8]}  {names.get(e.run_id) or ''}  {tried}")
        if e.last_error:
            print(f"            last error: {e.last_error}")
    if pending:
        print("pending runs are pushed by the mirror of the next process that ends a run with this target set, "
              "or now with: pykernel-ext mlflow push --pending --tracking-uri URI --experiment NAME")


def _run_name(store: RunStore, run_id: str) -> str | None:
    try:
        return store.get_run(run_id).get("name")
    except Exception:  # noqa: BLE001 - a name is only decoration here
        return None


def _ago(epoch: float | None) -> str:
    if not epoch:
        return "-"
    seconds = time.time() - epoch
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M")
