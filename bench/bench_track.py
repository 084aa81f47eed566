"""%%track overhead on a trivial cell, against the same cell untracked and against MLflow.

    .venv/bin/python bench/bench_track.py [--cells 300] [--json]

Overhead = median(tracked cell) - median(untracked cell), both through a real IPython shell, interleaved
so drift hits both alike. MLflow's cost is start_run + log_params + end_run on its SQLite store, measured
in the same run when mlflow is installed. Prints figures and ratios; asserts nothing.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time

TARGET_OVERHEAD_MS = 2.0
TARGET_MLFLOW_RATIO = 20.0


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def measure_track(cells: int) -> dict[str, float]:
    from IPython.testing.globalipapp import get_ipython

    ip = get_ipython()
    ip.run_line_magic("load_ext", "pykernel_ext")
    ip.run_cell("lr = 0.1\nepochs = 3")
    plain, tracked = [], []
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        for _ in range(20):  # warm-up: imports, store open, environment probe
            ip.run_cell("%%track\nx = lr * epochs")
        for _ in range(cells):
            start = time.perf_counter()
            ip.run_cell("x = lr * epochs")
            plain.append(time.perf_counter() - start)
            start = time.perf_counter()
            ip.run_cell("%%track\nx = lr * epochs")
            tracked.append(time.perf_counter() - start)
            sink.seek(0)
            sink.truncate()
    return {"untracked_ms": median_ms(plain), "tracked_ms": median_ms(tracked),
            "overhead_ms": median_ms(tracked) - median_ms(plain),
            "tracked_p90_ms": sorted(tracked)[int(len(tracked) * 0.9)] * 1000}


def measure_mlflow(cells: int, folder: str) -> dict[str, float] | None:
    try:
        import mlflow
    except ImportError:
        return None
    import logging

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    mlflow.set_experiment("bench")
    samples = []
    for i in range(cells + 5):
        start = time.perf_counter()
        mlflow.start_run()
        mlflow.log_params({"lr": 0.1, "epochs": 3})
        mlflow.end_run()
        if i >= 5:
            samples.append(time.perf_counter() - start)
    return {"mlflow_run_ms": median_ms(samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    start_dir = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["PYKERNEL_EXT_HOME"] = folder
        os.chdir(folder)
        try:
            ours = measure_track(args.cells)
            theirs = measure_mlflow(args.cells, folder)
        finally:
            os.chdir(start_dir)  # IPython's exit hook needs a working folder that still exists
    print(f"%%track overhead, trivial cell, median of {args.cells}:")
    print(f"  untracked cell   {ours['untracked_ms']:.3f} ms")
    print(f"  tracked cell     {ours['tracked_ms']:.3f} ms  (p90 {ours['tracked_p90_ms']:.3f} ms)")
    verdict = "PASS" if ours["overhead_ms"] <= TARGET_OVERHEAD_MS else "MISS"
    print(f"  overhead         {ours['overhead_ms']:.3f} ms   target <= {TARGET_OVERHEAD_MS} ms: {verdict}")
    result = dict(ours)
    if theirs:
        ratio = theirs["mlflow_run_ms"] / max(ours["overhead_ms"], 1e-6)
        verdict = "PASS" if ratio >= TARGET_MLFLOW_RATIO else "MISS"
        print(f"  MLflow start_run+log_params+end_run (SQLite): {theirs['mlflow_run_ms']:.3f} ms")
        print(f"  MLflow / pykernel-ext overhead: {ratio:.1f}x   target >= {TARGET_MLFLOW_RATIO:.0f}x: {verdict}")
        result.update(theirs, mlflow_ratio=ratio)
    else:
        print("  MLflow not installed (pip install 'pykernel-ext[bench]'): no comparison")
    if args.json:
        print(json.dumps({"bench": "track", **result}))


if __name__ == "__main__":
    sys.exit(main())
