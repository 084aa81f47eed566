"""Run every benchmark in bench/ one after another and print their figures (`make bench`).

    .venv/bin/python bench/run_all.py [--quick]

`--quick` uses small sizes (a smoke run, figures not comparable with the targets).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK_ARGS = {
    "bench_track.py": ["--cells", "50"],
    "bench_hashing.py": ["--size-mib", "64"],
    "bench_remote.py": ["--n", "20", "--repeats", "1", "--model-mb", "50"],
    "bench_batch.py": ["--repeats", "1", "--sweep-runs", "2", "--steps", "20"],
    "bench_server.py": ["--runs", "5000"],
    "bench_mlflow.py": ["--runs", "50", "--points", "100", "--peer-runs", "2"],
    "bench_browser.py": ["--runs", "5000"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    failed = []
    for name in QUICK_ARGS:
        print(f"\n=== {name} ===", flush=True)
        extra = QUICK_ARGS[name] if args.quick else []
        done = subprocess.run([sys.executable, str(HERE / name), *extra])
        if done.returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
