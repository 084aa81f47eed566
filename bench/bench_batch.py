"""`pykernel-ext run` against bare papermill on the same notebook, and a sweep on 2 workers against 1.

    .venv/bin/python bench/bench_batch.py [--repeats 5] [--sweep-runs 8] [--json]

Overhead: median wall time of one tracked notebook run (BatchRunner, inline) minus bare
`papermill.execute_notebook` on the same notebook, as a fraction of the bare time; the two alternate. Sweep: the same
sweep through a Dask LocalCluster of 1 and of 2 single-threaded workers (cluster start excluded).
Prints figures and ratios; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

TARGET_OVERHEAD = 0.10
TARGET_SPEEDUP = 1.7

WORK = """%%track --name work
import numpy as np
rng = np.random.default_rng(seed)
a = rng.standard_normal((300, 300))
for _ in range(steps):
    a = np.tanh(a @ a.T / 300)
pykernel_ext.log(norm=float(np.linalg.norm(a)))"""


def make_notebook(folder: Path, steps: int) -> Path:
    import nbformat

    params = nbformat.v4.new_code_cell(f"seed = 0\nsteps = {steps}")
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%load_ext pykernel_ext\nimport pykernel_ext"),
                                         params, nbformat.v4.new_code_cell(WORK)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "bench.ipynb"
    nbformat.write(nb, path)
    return path


def time_papermill(notebook: Path, folder: Path, repeats: int) -> list[float]:
    import papermill

    samples = []
    for i in range(repeats):
        start = time.perf_counter()
        papermill.execute_notebook(str(notebook), str(folder / f"bare-{i}.ipynb"), kernel_name="python3",
                                   progress_bar=False, cwd=str(folder))
        samples.append(time.perf_counter() - start)
    return samples


def time_pykernel_ext(notebook: Path, folder: Path, repeats: int) -> list[float]:
    from pykernel_ext.batch import BatchOptions, BatchRunner

    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner = BatchRunner(notebook, BatchOptions(output_dir=folder / "out"))
        [result] = runner.run([{}])
        samples.append(time.perf_counter() - start)
        assert result.status == "ok", result.error
    return samples


def time_sweep(notebook: Path, folder: Path, workers: int, runs: int) -> float:
    from distributed import LocalCluster

    from pykernel_ext.batch import BatchOptions, BatchRunner

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster:
        options = BatchOptions(parallel=workers, scheduler=cluster.scheduler_address, output_dir=folder / "sweep")
        runner = BatchRunner(notebook, options)
        start = time.perf_counter()
        results = runner.run([{"seed": seed} for seed in range(runs)])
        elapsed = time.perf_counter() - start
    assert all(r.status == "ok" for r in results), [r.error for r in results]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sweep-runs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=150, help="work per notebook (matrix products)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    start_dir = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        os.environ["PYKERNEL_EXT_HOME"] = scratch
        os.chdir(folder)
        try:
            notebook = make_notebook(folder, args.steps)
            time_papermill(notebook, folder, 1)  # warm-up: imports, kernel spec lookup, file cache
            time_pykernel_ext(notebook, folder, 1)
            bare_samples, our_samples = [], []
            for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
                bare_samples += time_papermill(notebook, folder, 1)
                our_samples += time_pykernel_ext(notebook, folder, 1)
            bare, ours = statistics.median(bare_samples), statistics.median(our_samples)
            one = time_sweep(notebook, folder, 1, args.sweep_runs)
            two = time_sweep(notebook, folder, 2, args.sweep_runs)
        finally:
            os.chdir(start_dir)
    overhead = (ours - bare) / bare
    speedup = one / two
    print(f"one notebook, median of {args.repeats}:")
    print(f"  bare papermill        {bare:.3f} s")
    print(f"  pykernel-ext run      {ours:.3f} s")
    print(f"  overhead              {overhead * 100:+.1f}%   target <= {TARGET_OVERHEAD * 100:.0f}%: "
          f"{'PASS' if overhead <= TARGET_OVERHEAD else 'MISS'}")
    print(f"{args.sweep_runs}-run sweep (cores here: {os.cpu_count()}):")
    print(f"  1 worker              {one:.2f} s")
    print(f"  2 workers             {two:.2f} s")
    print(f"  speed-up              {speedup:.2f}x   target >= {TARGET_SPEEDUP}x: "
          f"{'PASS' if speedup >= TARGET_SPEEDUP else 'MISS'}")
    if args.json:
        print(json.dumps({"bench": "batch", "bare_s": bare, "ours_s": ours, "overhead": overhead,
                          "sweep_1_worker_s": one, "sweep_2_workers_s": two, "speedup": speedup}))


if __name__ == "__main__":
    sys.exit(main())
