"""Benchmark: the Runs sidebar in a real JupyterLab and Debian's Chromium, over 100,000 runs.

    python bench/bench_browser.py [--runs 100000] [--json]

Fills a temporary store (bench_server's synthetic runs), starts JupyterLab with this checkout's built
extension, and runs the Playwright benchmarks in bench/browser/ (sidebar.bench.ts):

- scrollbar drag end to end (a real mouse drag on the table's scrollbar): time until every row on screen
  shows a run after the release (target <= 200 ms); page requests the drag caused and how many were
  cancelled; a status filter chosen right after a drag against the same filter at rest;
- parallel coordinates of 1,000 runs ("Plot all"): time from the runs arriving on screen to the chart's
  `finished` event (target <= 300 ms); W&B caps its plots at 100 runs and its comparer at 10.

Needs node, npm packages (npm ci) and /usr/bin/chromium. Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_server import bulk_insert_runs  # noqa: E402
from jupyterlab_server import JupyterLab  # noqa: E402

TARGET_FILL_MS = 200.0
TARGET_PARALLEL_MS = 300.0
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def run_bench(count: int) -> dict:
    from pykernel_ext.store import RunStore

    with tempfile.TemporaryDirectory(prefix="pykernel-ext-bench-browser-") as name:
        tmp = Path(name)
        root = tmp / "root"
        root.mkdir()
        start = time.perf_counter()
        with RunStore.open(root / ".pykernel_ext") as store:
            bulk_insert_runs(store, count)
        insert_s = time.perf_counter() - start
        output = tmp / "bench.json"
        with JupyterLab(root, tmp, REPO / "pykernel_ext" / "labextension") as lab:
            env = {**os.environ, "LAB_URL": lab.url, "LAB_TOKEN": lab.token, "CHROMIUM_PATH": CHROMIUM,
                   "BENCH_OUTPUT": str(output), "PW_OUTPUT_DIR": str(tmp / "playwright-output")}
            done = subprocess.run(["npx", "playwright", "test", "-c", "bench/browser/playwright.config.ts"],
                                  cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"the browser benchmark failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
        results = json.loads(output.read_text())
    results.update(runs=count, insert_s=insert_s)
    return results


def report(r: dict) -> str:
    def mark(value: float, target: float) -> str:
        return f"(target <= {target:.0f} ms: {'met' if value <= target else 'MISSED'})"

    lines = [f"Runs sidebar in JupyterLab + Chromium, {r['runs']:,} runs (store filled in {r['insert_s']:.1f} s):"]
    for drag in r["scrollbar_drags"]:
        lines.append(f"  scrollbar drag: rows on screen filled {drag['fill_ms']:6.0f} ms after release; "
                     f"{drag['page_requests']} page requests, {drag['cancelled']} cancelled")
    lines.append(f"  slowest fill after a drag        {r['scrollbar_fill_ms_max']:6.0f} ms "
                 f"{mark(r['scrollbar_fill_ms_max'], TARGET_FILL_MS)}")
    lines.append(f"  status filter at rest            {r['filter_at_rest_ms']:6.0f} ms")
    lines.append(f"  status filter right after a drag {r['filter_after_drag_ms']:6.0f} ms "
                 f"(ratio {r['filter_after_drag_ms'] / r['filter_at_rest_ms']:.2f}x)")
    lines.append(f"  parallel coordinates, 1,000 runs: first render {r['parallel_first_render_ms']:.0f} ms "
                 "(loads ECharts' chunk)")
    lines.append(f"  parallel coordinates, 1,000 runs: render median {r['parallel_render_ms_median']:.0f} ms, "
                 f"max {r['parallel_render_ms_max']:.0f} ms {mark(r['parallel_render_ms_max'], TARGET_PARALLEL_MS)}")
    lines.append("  parallel coordinates, 1,000 runs: each render " +
                 ", ".join(f"{r['render_ms']:.0f}" for r in r["parallel_renders"]) + " ms")
    lines.append(f"  parallel coordinates, 1,000 runs: click to chart median "
                 f"{r['parallel_click_to_chart_ms_median']:.0f} ms (fetching 1,000 summaries included)")
    lines.append("  (W&B plots at most 100 runs and compares 10; the MLflow UI is not driven here)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = run_bench(args.runs)
    print(json.dumps(results, indent=2) if args.json else report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
