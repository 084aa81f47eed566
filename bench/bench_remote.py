"""Benchmark `%%remote`: round trip of a trivial cell on a warm embedded cluster, and push + pull of a
256 MB array; ipyparallel's `%%px` on a one-engine local cluster measured in the same run for comparison.

    python bench/bench_remote.py [--n 100] [--repeats 5] [--json]

Targets (issue 3): trivial cell <= 25 ms median; 256 MB push + pull >= 400 MB/s. Prints figures and ratios;
asserts nothing.
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
from typing import Any, Callable

ARRAY_BYTES = 256 * 1024 * 1024


def timed(action: Callable[[], Any], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return samples


def quiet(action: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return action()
    return run


def cell(shell: Any, source: str) -> Callable[[], None]:
    def run() -> None:
        result = shell.run_cell(source)
        if not result.success:
            raise RuntimeError(f"cell failed: {result.error_in_exec!r}")
    return run


def bench_remote(shell: Any, n: int, repeats: int) -> dict[str, float]:
    from pykernel_ext.remote.cluster import get_executor

    shell.run_line_magic("load_ext", "pykernel_ext")
    trivial = quiet(cell(shell, "%%remote\nx = 1"))
    timed(trivial, 5)  # warm: cluster started, imports done on the worker
    client = get_executor().client
    bare = lambda: client.submit(int, 1, pure=False).result()  # noqa: E731
    # Alternate with bare Dask, so a busy machine slows both alike.
    remote_ms, dask_ms = [], []
    for _ in range(n):
        remote_ms += timed(trivial, 1)
        dask_ms += timed(bare, 1)
    figures = {"remote_trivial_ms": statistics.median(remote_ms) * 1000,
               "dask_submit_result_ms": statistics.median(dask_ms) * 1000}
    shell.run_cell(f"import numpy as np\narr = np.random.rand({ARRAY_BYTES // 8})")
    transfer = quiet(cell(shell, "%%remote --pull out\nout = arr"))
    array = shell.user_ns["arr"]

    def dask_round_trip() -> None:  # the floor: Dask's own transfer, no tracking, no checks
        data = client.scatter(array, direct=True, hash=False)
        client.gather(client.submit(lambda a: a, data, pure=False), direct=True)

    # Alternate the two, so a busy machine slows both alike.
    remote_s, dask_s = [], []
    for _ in range(repeats):
        remote_s += timed(transfer, 1)
        dask_s += timed(dask_round_trip, 1)
    figures["remote_push_pull_256mb_s"] = statistics.median(remote_s)
    figures["remote_push_pull_mb_per_s"] = 2 * ARRAY_BYTES / 1e6 / statistics.median(remote_s)
    figures["dask_scatter_gather_mb_per_s"] = 2 * ARRAY_BYTES / 1e6 / statistics.median(dask_s)
    return figures


def bench_ipyparallel(shell: Any, n: int, repeats: int) -> dict[str, float]:
    try:
        import ipyparallel
    except ImportError:
        return {}
    cluster = ipyparallel.Cluster(n=1, log_level=40)
    rc = cluster.start_and_connect_sync()
    try:
        rc.wait_for_engines(1, timeout=60)
        view = rc[:]
        view.activate()  # registers %%px in this shell
        trivial = quiet(cell(shell, "%%px\nx = 1"))
        timed(trivial, 5)
        figures = {"px_trivial_ms": statistics.median(timed(trivial, n)) * 1000}
        array = shell.user_ns["arr"]

        def push_pull() -> None:
            view.push({"arr": array}, block=True)
            view.pull("arr", block=True)

        seconds = statistics.median(timed(push_pull, repeats))
        figures["px_push_pull_256mb_s"] = seconds
        figures["px_push_pull_mb_per_s"] = 2 * ARRAY_BYTES / 1e6 / seconds
        return figures
    finally:
        rc.close()
        cluster.stop_cluster_sync()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="trivial cells timed (median)")
    parser.add_argument("--repeats", type=int, default=5, help="256 MB round trips timed (median)")
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    args = parser.parse_args()
    os.environ["PYKERNEL_EXT_HOME"] = tempfile.mkdtemp(prefix="bench-remote-")
    os.environ.pop("PYKERNEL_EXT_SCHEDULER", None)
    from IPython.testing.globalipapp import start_ipython

    from pykernel_ext.remote.cluster import close_all

    shell = start_ipython()
    try:
        figures = bench_remote(shell, args.n, args.repeats)
        figures.update(bench_ipyparallel(shell, args.n, args.repeats))
    finally:
        close_all()
    report(figures)
    if args.json:
        print(json.dumps({k: round(v, 4) for k, v in figures.items()}))
    return 0


def report(f: dict[str, float]) -> None:
    print(f"trivial %%remote cell (warm embedded cluster, tracked): {f['remote_trivial_ms']:.1f} ms median "
          f"(target <= 25 ms; {f['remote_trivial_ms'] / 25:.2f}x of target)")
    print(f"  bare Dask submit+result on the same client:          {f['dask_submit_result_ms']:.1f} ms "
          f"(%%remote costs {f['remote_trivial_ms'] / f['dask_submit_result_ms']:.2f}x)")
    if "px_trivial_ms" in f:
        print(f"  ipyparallel %%px, one local engine:                  {f['px_trivial_ms']:.1f} ms "
              f"(%%remote / %%px = {f['remote_trivial_ms'] / f['px_trivial_ms']:.2f})")
    print(f"256 MB array push + pull through %%remote (tracked):    {f['remote_push_pull_256mb_s']:.2f} s = "
          f"{f['remote_push_pull_mb_per_s']:.0f} MB/s (target >= 400 MB/s)")
    print(f"  bare Dask scatter + gather of the same array:       {f['dask_scatter_gather_mb_per_s']:.0f} MB/s "
          f"(%%remote reaches {f['remote_push_pull_mb_per_s'] / f['dask_scatter_gather_mb_per_s']:.2f} of it)")
    if "px_push_pull_mb_per_s" in f:
        print(f"  ipyparallel push + pull of the same array:          {f['px_push_pull_256mb_s']:.2f} s = "
              f"{f['px_push_pull_mb_per_s']:.0f} MB/s (ratio {f['remote_push_pull_mb_per_s'] / f['px_push_pull_mb_per_s']:.2f})")


if __name__ == "__main__":
    sys.exit(main())
