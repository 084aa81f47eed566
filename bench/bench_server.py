"""Benchmark: the sidebar's API over a store of 100,000 runs, against MLflow's search_runs on the same runs.

    python bench/bench_server.py [--runs 100000] [--repeat 30] [--json]

Fills a temporary store (one transaction, executemany, then the sortable index as the writers keep it),
starts a real `jupyter server` with the extension and a token, and times over HTTP (one keep-alive
connection, median of --repeat): the first page of the run list (target <= 50 ms), the first page sorted by
a metric and filtered by a parameter (target <= 50 ms), sorted by a parameter, filtered and searched, a
deep page by offset and by cursor (keyset), one run in full, and a 10-run comparison (target <= 100 ms).
If MLflow is importable, the same runs (params, latest metrics, tags) go into an MLflow SQLite tracking
store and `MlflowClient.search_runs` is timed in-process (no HTTP, which favours MLflow) for the same
queries, `order_by=["metrics.accuracy DESC"]` included. Prints figures and ratios; asserts nothing.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

TARGET_LIST_MS = 50.0
TARGET_SORTED_MS = 50.0
TARGET_COMPARE_MS = 100.0
SORTED_QUERY = "sort=metric:accuracy&order=desc&q=model%3Dresnet50"  # sorted by a metric, filtered by a param
NOTEBOOKS = [f"experiments/exp{i:02d}.ipynb" for i in range(20)]
STATUSES = ["ok"] * 8 + ["failed", "interrupted"]
MODELS = ["resnet18", "resnet50", "vit-b16", "mlp"]


def synthetic_run(i: int, count: int, now: float, rng: random.Random) -> dict[str, Any]:
    """One plausible run: a few params, last metric values, tags, a small code record."""
    lr = rng.choice([0.1, 0.03, 0.01, 0.003, 0.001])
    params = {"lr": lr, "batch_size": rng.choice([32, 64, 128]), "model": rng.choice(MODELS)}
    return {
        "id": uuid.UUID(int=rng.getrandbits(128)).hex,
        "status": STATUSES[i % len(STATUSES)],
        "kind": "cell" if i % 7 else "notebook",
        "name": f"train-{i}",
        "notebook": NOTEBOOKS[i % len(NOTEBOOKS)],
        "started_at": now - (count - i) * 10.0,
        "params": params,
        "metrics": {"loss": round(rng.random(), 6), "accuracy": round(rng.random(), 6)},
        "tags": {"team": rng.choice(["vision", "nlp"]), "sweep": f"s{i // 100}"},
        "code": f"model = build('{params['model']}')\nfit(model, lr={lr}, batch_size={params['batch_size']})\n",
    }


def bulk_insert_runs(store, count: int, *, series_runs: int = 10, points: int = 200, seed: int = 0) -> list[dict]:
    """Insert `count` finished runs in one transaction; the newest `series_runs` get metric series of `points`.

    Writes the store's tables directly (executemany) because begin_run/finish_run cost a transaction each:
    fine for real runs, hours for 100,000 synthetic ones. Returns the runs, oldest first.
    """
    from pykernel_ext.store.index import reindex_all

    rng = random.Random(seed)
    now = time.time()
    runs = [synthetic_run(i, count, now, rng) for i in range(count)]
    run_rows, detail_rows, tag_rows, metric_rows = [], [], [], []
    for r in runs:
        ended = r["started_at"] + 5.0
        run_rows.append((r["id"], r["kind"], r["name"], r["status"], r["notebook"], r["started_at"], ended, 5.0,
                         f"{abs(hash(r['code'])):016x}", "bench-host", json.dumps(r["params"]),
                         json.dumps(r["metrics"]), json.dumps(r["tags"]), ended))
        detail_rows.append((r["id"], json.dumps({"code": {"source": r["code"], "closure": []}, "data": [],
                                                 "outputs": [], "logs": {}, "warnings": []})))
        tag_rows.extend((r["id"], k, v) for k, v in r["tags"].items())
    for r in runs[-series_runs:]:
        metric_rows.extend((r["id"], "loss", step, 1.0 / (step + 1) + rng.random() * 0.01, now)
                           for step in range(points))
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO runs (id, kind, name, status, notebook, started_at, ended_at, duration_s, code_hash, "
            "host, params_json, metrics_json, tags_json, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            run_rows)
        conn.executemany("INSERT INTO run_details VALUES (?, ?)", detail_rows)
        conn.executemany("INSERT INTO run_tags VALUES (?, ?, ?)", tag_rows)
        conn.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", metric_rows)
        reindex_all(conn)  # the sortable index of params and metric summaries, as the writers keep it
    return runs


# ---- the server ------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterServer:
    """A real `jupyter server` subprocess with the extension enabled, isolated from the user's config."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root, self.home = root, home
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "JupyterServer":
        config = self.root.parent / "jupyter-config"
        config.mkdir(exist_ok=True)
        (config / "jupyter_server_config.json").write_text(
            json.dumps({"ServerApp": {"jpserver_extensions": {"pykernel_ext": True}}}))
        env = {**os.environ, "PYKERNEL_EXT_HOME": str(self.home), "JUPYTER_CONFIG_DIR": str(config),
               "JUPYTER_RUNTIME_DIR": str(self.root.parent / "runtime")}
        command = [sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={self.port}",
                   "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
                   f"--ServerApp.root_dir={self.root}", "--ServerApp.log_level=WARN"]
        if os.geteuid() == 0:
            command.append("--allow-root")
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter server exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                status, _ = self.get("/api/status")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("jupyter server did not start within a minute")

    def get(self, path: str, conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path, headers={"Authorization": f"token {self.token}"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            if own:
                conn.close()

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def median_ms(action: Callable[[], Any], repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        action()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def time_api(server: JupyterServer, runs: list[dict], repeat: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)  # keep-alive: time the server
    base = "/pykernel-ext/api/v1"
    compare_ids = ",".join(r["id"] for r in runs[-10:])

    def fetch(path: str) -> Callable[[], None]:
        def action() -> None:
            status, body = server.get(base + path, conn)
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}: {body[:300]!r}")
        return action

    def cursor_at(path: str) -> str:
        status, body = server.get(base + path, conn)
        return json.loads(body)["next_cursor"]

    deep = len(runs) // 2
    try:
        after = cursor_at(f"/runs?limit=50&offset={deep - 50}&count=false")
        sorted_after = cursor_at(f"/runs?limit=50&offset={deep // 4 - 50}&count=false&{SORTED_QUERY}")
        return {
            "list_first_page_ms": median_ms(fetch("/runs?limit=50"), repeat),
            "list_sorted_by_metric_filtered_by_param_ms": median_ms(fetch(f"/runs?limit=50&{SORTED_QUERY}"), repeat),
            "list_sorted_by_param_ms": median_ms(fetch("/runs?limit=50&sort=param:lr&order=asc"), repeat),
            "list_filtered_ms": median_ms(fetch("/runs?limit=50&status=failed&notebook=experiments/exp03.ipynb"),
                                          repeat),
            "list_search_ms": median_ms(fetch("/runs?limit=50&q=resnet50"), repeat),
            "list_deep_page_offset_ms": median_ms(fetch(f"/runs?limit=50&offset={deep}&count=false"), repeat),
            "list_deep_page_cursor_ms": median_ms(fetch(f"/runs?limit=50&after={after}&count=false"), repeat),
            "list_deep_sorted_page_cursor_ms": median_ms(
                fetch(f"/runs?limit=50&after={sorted_after}&count=false&{SORTED_QUERY}"), repeat),
            "run_detail_ms": median_ms(fetch(f"/runs/{runs[-1]['id']}"), repeat),
            "compare_10_ms": median_ms(fetch(f"/compare?ids={compare_ids}"), repeat),
        }
    finally:
        conn.close()


# ---- MLflow ------------------------------------------------------------------------------------------------


def mlflow_bulk_insert(db_path: Path, runs: list[dict], artifact_root: Path) -> str:
    """The same runs in an MLflow SQLite tracking store: schema by MLflow, rows by executemany."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{db_path}", artifact_root.as_uri())
    experiment_id = store.create_experiment("bench")
    run_rows, param_rows, metric_rows, tag_rows = [], [], [], []
    for r in runs:
        start = int(r["started_at"] * 1000)
        status = {"ok": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}[r["status"]]
        run_rows.append((r["id"], r["name"], "LOCAL", "", "", "bench", status, start, start + 5000, None, "",
                         "active", f"{artifact_root.as_uri()}/{r['id']}", int(experiment_id)))
        param_rows.extend((k, str(v), r["id"]) for k, v in r["params"].items())
        metric_rows.extend((k, v, start, 0, 0, r["id"]) for k, v in r["metrics"].items())
        tag_rows.extend((k, v, r["id"]) for k, v in r["tags"].items())
        tag_rows.append(("mlflow.runName", r["name"], r["id"]))
    conn = sqlite3.connect(db_path)
    with conn:
        conn.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
            "start_time, end_time, deleted_time, source_version, lifecycle_stage, artifact_uri, experiment_id) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", run_rows)
        conn.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?,?,?)", param_rows)
        conn.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                         "VALUES (?,?,?,?,?,?)", metric_rows)
        conn.executemany("INSERT INTO metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?,?,?,?,?,?)",
                         metric_rows)
        conn.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?,?,?)", tag_rows)
    conn.close()
    return experiment_id


MLFLOW_QUERIES = {
    "search_runs_50_ms": {},
    "search_runs_sorted_by_metric_filtered_by_param_ms": {
        "filter_string": "params.model = 'resnet50'", "order_by": ["metrics.accuracy DESC"]},
    "search_runs_filtered_ms": {"filter_string": "attributes.status = 'FAILED' and params.model = 'resnet50'"},
}
MLFLOW_QUERY_TIMEOUT_S = 600  # MLflow's sorted search grows superlinearly (2.3 s at 10,000 runs here)


def mlflow_query_worker(db: str, experiment_id: str, name: str, repeat: int) -> None:
    """In a child process: time one kind of search_runs and print the median (ms) as JSON. A call over 5 s
    is not repeated: one slow call says enough."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    kwargs = MLFLOW_QUERIES[name]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        page = client.search_runs([experiment_id], max_results=50, **kwargs)
        times.append((time.perf_counter() - start) * 1000)
        if times[-1] > 5000:
            break
    if "order_by" in kwargs:
        values = [r.data.metrics["accuracy"] for r in page]
        assert values == sorted(values, reverse=True), "MLflow did not sort by the metric"
    print(json.dumps(statistics.median(times)))


def time_mlflow(tmp: Path, runs: list[dict], repeat: int) -> dict[str, Any] | None:
    """The same runs in MLflow's SQLite store; each query timed in a child process with a time limit, so a
    query MLflow cannot answer in minutes is reported as such instead of stalling the benchmark."""
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        return None
    db = tmp / "mlflow.db"
    start = time.perf_counter()
    experiment_id = mlflow_bulk_insert(db, runs, tmp / "mlartifacts")
    insert_s = time.perf_counter() - start
    _progress(f"MLflow store filled in {insert_s:.1f} s")
    results: dict[str, Any] = {"runs": len(runs), "insert_s": insert_s, "timed_out": []}
    for name in MLFLOW_QUERIES:
        command = [sys.executable, __file__, "--mlflow-worker", str(db), experiment_id, name, str(repeat)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=MLFLOW_QUERY_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            results[name] = float(MLFLOW_QUERY_TIMEOUT_S * 1000)
            results["timed_out"].append(name)
            _progress(f"MLflow {name}: no answer within {MLFLOW_QUERY_TIMEOUT_S} s")
            continue
        if done.returncode != 0:
            raise RuntimeError(f"MLflow {name} failed: {done.stderr[-2000:]}")
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        _progress(f"MLflow {name}: {results[name]:.1f} ms")
    return results


# ---- main ----------------------------------------------------------------------------------------------


def run_bench(count: int, repeat: int, with_mlflow: bool) -> dict[str, Any]:
    from pykernel_ext.store import RunStore

    with tempfile.TemporaryDirectory(prefix="pykernel-ext-bench-") as tmp_name:
        tmp = Path(tmp_name)
        home = tmp / "home"
        home.mkdir()
        start = time.perf_counter()
        with RunStore.open(home / ".pykernel_ext") as store:
            runs = bulk_insert_runs(store, count)
        results: dict[str, Any] = {"runs": count, "repeat": repeat, "insert_s": time.perf_counter() - start}
        _progress(f"store filled in {results['insert_s']:.1f} s; timing the API")
        with JupyterServer(home, home) as server:
            results["api"] = time_api(server, runs, repeat)
        if with_mlflow:
            _progress("timing MLflow search_runs on the same runs")
        results["mlflow"] = time_mlflow(tmp, runs, repeat) if with_mlflow else None
    api = results["api"]
    sorted_ms = api["list_sorted_by_metric_filtered_by_param_ms"]
    results["targets"] = {
        "list_first_page_ms": {"target": TARGET_LIST_MS, "met": api["list_first_page_ms"] <= TARGET_LIST_MS},
        "list_sorted_by_metric_filtered_by_param_ms": {"target": TARGET_SORTED_MS,
                                                       "met": sorted_ms <= TARGET_SORTED_MS},
        "compare_10_ms": {"target": TARGET_COMPARE_MS, "met": api["compare_10_ms"] <= TARGET_COMPARE_MS},
    }
    if results["mlflow"]:
        ml = results["mlflow"]
        results["ratios"] = {
            "mlflow_search_over_api_first_page": ml["search_runs_50_ms"] / api["list_first_page_ms"],
            "mlflow_sorted_over_api_sorted": ml["search_runs_sorted_by_metric_filtered_by_param_ms"] / sorted_ms,
            "mlflow_filtered_over_api_filtered": ml["search_runs_filtered_ms"] / api["list_filtered_ms"],
        }
    return results


def _progress(text: str) -> None:
    print(f"[bench_server] {text}", file=sys.stderr, flush=True)


def report(results: dict[str, Any]) -> str:
    api = results["api"]
    lines = [f"pykernel-ext server API, {results['runs']:,} runs (inserted in {results['insert_s']:.1f} s), "
             f"HTTP over a keep-alive connection, median of {results['repeat']}:"]
    for key, value in api.items():
        target = results["targets"].get(key)
        mark = f"  (target <= {target['target']:.0f} ms: {'met' if target['met'] else 'MISSED'})" if target else ""
        lines.append(f"  {key:<44} {value:8.2f} ms{mark}")
    ml = results.get("mlflow")
    if ml is None:
        lines.append("MLflow: not measured (--no-mlflow, or not installed: pip install 'pykernel-ext[bench]')")
    else:
        lines.append(f"MLflow {_mlflow_version()} SQLite store, same {ml['runs']:,} runs "
                     f"(bulk-inserted in {ml['insert_s']:.1f} s), MlflowClient over SQLite, no HTTP, median of up to "
                     f"{results['repeat']} (a call over 5 s once):")
        def shown(name: str) -> str:
            if name in ml["timed_out"]:
                return f"no answer within {MLFLOW_QUERY_TIMEOUT_S} s"
            return f"{ml[name]:8.2f} ms"

        lines.append(f"  search_runs(max_results=50)                                  {shown('search_runs_50_ms')}")
        lines.append("  search_runs(params.model = 'resnet50', order_by=[\"metrics.accuracy DESC\"], 50) "
                     f"{shown('search_runs_sorted_by_metric_filtered_by_param_ms')}")
        lines.append(f"  search_runs(filtered, 50)                                    {shown('search_runs_filtered_ms')}")
        ratios = results["ratios"]
        lines.append(f"  ratio MLflow / pykernel-ext first page:        {ratios['mlflow_search_over_api_first_page']:.1f}x")
        at_least = ">= " if "search_runs_sorted_by_metric_filtered_by_param_ms" in ml["timed_out"] else ""
        lines.append(f"  ratio MLflow / pykernel-ext sorted + filtered: {at_least}"
                     f"{ratios['mlflow_sorted_over_api_sorted']:.1f}x")
        lines.append(f"  ratio MLflow / pykernel-ext filtered:          {ratios['mlflow_filtered_over_api_filtered']:.1f}x")
    return "\n".join(lines)


def _mlflow_version() -> str:
    try:
        import mlflow

        return mlflow.__version__
    except ImportError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--mlflow-worker"]:
        db, experiment_id, name, repeat = argv[1:5]
        mlflow_query_worker(db, experiment_id, name, int(repeat))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--no-mlflow", action="store_true", help="skip the MLflow comparison")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    results = run_bench(args.runs, args.repeat, not args.no_mlflow)
    print(json.dumps(results, indent=2) if args.json else report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
