"""`pykernel-ext mlflow push` throughput against MLflow's own client logging the same runs one call at a time.

    .venv/bin/python bench/bench_mlflow.py [--runs 1000] [--points 1000] [--peer-runs 5] [--workers 4]
                                           [--tracking-uri URI] [--json]

Records `--runs` runs with `pykernel_ext.track()` (each logs `--points` steps of one metric, a few params, its
code and stdout), starts a local `mlflow server` (SQLite backend, artifacts in a temporary folder) unless
--tracking-uri is given, then times:
  - pykernel-ext: `Pusher.push` of every run (batched log_batch, runs pushed `--workers` at a time);
  - mlflow, one call at a time: the first `--peer-runs` of the same runs through MlflowClient as a user
    logs them by hand: create_run, log_param / set_tag / log_metric per value, log_artifact per file,
    set_terminated;
  - mlflow log_batch, one run at a time: the same runs with MlflowClient.log_batch, no concurrency;
  - the server's floor: one bare log_batch of one run's points (no client pushes a run faster).
The server is timed once it has gone idle (its job runner starts worker processes after /health answers).
Prints runs/s and points/s for each and the ratios; asserts nothing.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
TARGET_SECONDS = 60.0  # the bar: 1,000 runs x 1,000 points "well under a minute" to a local server


def record_runs(home: Path, runs: int, points: int) -> list[str]:
    """Runs made through the real lifecycle, as a training script makes them."""
    os.environ["PYKERNEL_EXT_HOME"] = str(home)
    os.chdir(home)
    import pykernel_ext

    ids = []
    for index in range(runs):
        with contextlib.redirect_stdout(io.StringIO()):
            with pykernel_ext.track(name=f"sweep-{index}", params={"lr": 0.001 * (index + 1), "batch": 32,
                                                                    "optimizer": "adam"}, tags={"sweep": "bench"}) as run:
                for step in range(points):
                    pykernel_ext.log(loss=1.0 / (step + 1 + index), step=step)
                print("trained", index)
        ids.append(run.id)
    return ids


def start_server(root: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                             "--artifacts-destination", str(root / "artifacts")],
                            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.read().strip() == b"OK":
                    wait_until_idle(proc.pid)
                    return proc, uri
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError("mlflow server did not start")


def wait_until_idle(pid: int, quiet_cpu_s: float = 0.1, limit_s: float = 60.0) -> None:
    """Wait until the server's process tree stops using CPU: /health answers while MLflow's job runner is
    still starting its worker processes, and whatever is timed first would pay for their imports."""
    import psutil

    def tree_cpu() -> float:
        total = 0.0
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for process in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    total += times.user + times.system
        return total

    deadline = time.monotonic() + limit_s
    before = tree_cpu()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = tree_cpu()
        if now - before < quiet_cpu_s:
            return
        before = now


def stop_server(proc: subprocess.Popen) -> None:
    """End the server's whole process group (uvicorn workers and MLflow's job runner included)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # children outlive the leader when SIGTERM only reached it


def time_pykernel_ext(store, uri: str, ids: list[str], workers: int) -> float:
    from pykernel_ext.sync.push import Pusher
    from pykernel_ext.sync.target import MlflowTarget

    start = time.perf_counter()
    results = Pusher(store, MlflowTarget(uri, "bench-pykernel-ext"), workers=workers).push(ids)
    elapsed = time.perf_counter() - start
    failed = [r for r in results if r.action == "failed"]
    if failed:
        raise RuntimeError(f"{len(failed)} runs failed to push: {failed[0].message}")
    return elapsed


def time_mlflow_per_call(store, uri: str, ids: list[str]) -> float:
    """What a user writes with MLflow's client: one request per param, tag, point and file."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment(f"bench-mlflow-calls-{time.time()}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(io.StringIO()):
        for run_id in ids:
            run = store.get_run(run_id)
            mlflow_run = client.create_run(experiment, start_time=int(run["started_at"] * 1000), run_name=run["name"])
            rid = mlflow_run.info.run_id
            for key, value in run["params"].items():
                client.log_param(rid, key, value)
            for key, value in run["tags"].items():
                client.set_tag(rid, key, value)
            for key, series in run["metric_series"].items():
                for step, value, ts in zip(series["steps"], series["values"], series["timestamps"]):
                    client.log_metric(rid, key, value, timestamp=int(ts * 1000), step=step)
            code = Path(folder, "cell.py")
            code.write_text(run["code"]["source"] or "")
            client.log_artifact(rid, str(code), "code")
            stdout = Path(folder, "stdout.txt")
            stdout.write_text(store.blobs.read_text(run["logs"]["stdout_blob"]))
            client.log_artifact(rid, str(stdout), "logs")
            client.set_terminated(rid, "FINISHED", end_time=int(run["ended_at"] * 1000))
    return time.perf_counter() - start


def time_mlflow_batched(store, uri: str, ids: list[str]) -> float:
    """MLflow's client with log_batch, one run after another (what our push does, without concurrency)."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment(f"bench-mlflow-batch-{time.time()}")
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        for run_id in ids:
            run = store.get_run(run_id)
            rid = client.create_run(experiment, start_time=int(run["started_at"] * 1000), run_name=run["name"]).info.run_id
            metrics = [Metric(key, value, int(ts * 1000), step) for key, s in run["metric_series"].items()
                       for step, value, ts in zip(s["steps"], s["values"], s["timestamps"])]
            client.log_batch(rid, metrics=metrics, params=[Param(k, str(v)) for k, v in run["params"].items()],
                             tags=[RunTag(k, str(v)) for k, v in run["tags"].items()])
            client.log_text(rid, run["code"]["source"] or "", "code/cell.py")
            client.log_text(rid, store.blobs.read_text(run["logs"]["stdout_blob"]), "logs/stdout.txt")
            client.set_terminated(rid, "FINISHED", end_time=int(run["ended_at"] * 1000))
    return time.perf_counter() - start


def time_server_floor(uri: str, points: int, samples: int = 5) -> float:
    """The server's own cost of storing one run's points: the median time of one bare log_batch of
    `points` metric points on a fresh run (MLflow's limit is 1,000 per request). No client can push
    a run's points faster than this; times the number of runs, it is the floor of any push."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment(f"bench-floor-{time.time()}")
    now = int(time.time() * 1000)
    times = []
    for _ in range(samples):
        run_id = client.create_run(experiment).info.run_id
        metrics = [Metric("loss", 1.0 / (step + 1), now + step, step) for step in range(points)]
        start = time.perf_counter()
        for first in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[first:first + 1000])
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--peer-runs", type=int, default=5, help="runs MLflow's client logs one call at a time")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--tracking-uri", help="push here instead of a local mlflow server started for the run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as scratch:
        root = Path(scratch)
        (root / "home").mkdir()
        started = time.perf_counter()
        ids = record_runs(root / "home", args.runs, args.points)
        record_s = time.perf_counter() - started
        from pykernel_ext.tracking import open_store

        store = open_store()
        proc, uri = (None, args.tracking_uri) if args.tracking_uri else start_server(root)
        try:
            ours = time_pykernel_ext(store, uri, ids, args.workers)
            peer_ids = ids[: args.peer_runs]
            per_call = time_mlflow_per_call(store, uri, peer_ids) if peer_ids else float("nan")
            batched = time_mlflow_batched(store, uri, peer_ids) if peer_ids else float("nan")
            floor = time_server_floor(uri, args.points)
        finally:
            if proc is not None:
                stop_server(proc)
    figures = report(args, record_s, ours, per_call, batched, floor)
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


def report(args: argparse.Namespace, record_s: float, ours: float, per_call: float, batched: float,
           floor: float) -> dict:
    points = args.runs * args.points
    peer_points = args.peer_runs * args.points
    rows = {
        "pykernel-ext push": (args.runs / ours, points / ours, ours),
        "mlflow client, one call at a time": (args.peer_runs / per_call, peer_points / per_call, per_call),
        "mlflow client log_batch, one run at a time": (args.peer_runs / batched, peer_points / batched, batched),
    }
    print(f"{args.runs} runs x {args.points} points recorded with pykernel_ext.track() in {record_s:.1f} s")
    print(f"{'':45}{'runs/s':>10}{'points/s':>12}{'seconds':>10}")
    for name, (runs_s, points_s, seconds) in rows.items():
        print(f"{name:45}{runs_s:10.2f}{points_s:12.0f}{seconds:10.1f}")
    ratio_calls = rows["pykernel-ext push"][1] / rows["mlflow client, one call at a time"][1]
    ratio_batch = rows["pykernel-ext push"][1] / rows["mlflow client log_batch, one run at a time"][1]
    print(f"pykernel-ext push is {ratio_calls:.0f}x MLflow's client one call at a time and {ratio_batch:.1f}x its "
          f"log_batch one run at a time (points/s)")
    print(f"server floor: one bare log_batch of {args.points} points takes {floor * 1000:.0f} ms on this server, "
          f"so {args.runs} runs need >= {floor * args.runs:.1f} s of its time whatever the client; "
          f"pykernel-ext push took {ours / (floor * args.runs):.2f}x that")
    if args.runs >= 1000 and args.points >= 1000:
        print(f"1,000 x 1,000 target (under {TARGET_SECONDS:.0f} s): {ours:.1f} s -> "
              f"{'met' if ours < TARGET_SECONDS else 'NOT met on this machine'}")
    return {name: {"runs_per_s": r, "points_per_s": p, "seconds": s} for name, (r, p, s) in rows.items()} | {
        "ratio_vs_per_call": ratio_calls, "ratio_vs_log_batch": ratio_batch, "record_seconds": record_s,
        "server_floor_seconds_per_run": floor}


if __name__ == "__main__":
    sys.exit(main())
