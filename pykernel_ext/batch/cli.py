"""`pykernel-ext run` and `pykernel-ext reproduce` (and `export`, registered from its own module)."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="execute a notebook with papermill as tracked runs (one, or a sweep)")
    run.add_argument("notebook", metavar="NOTEBOOK")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="a parameter, typed like the notebook's default (lists and dicts as YAML/JSON)")
    run.add_argument("-y", "--yaml", action="append", default=[], metavar="YAML", help="parameters as a YAML mapping")
    run.add_argument("-f", "--parameters-file", action="append", default=[], metavar="PARAMS_FILE",
                     help="a YAML/JSON file of parameters")
    run.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2",
                     help="run every combination of these values (repeat for a cross product)")
    run.add_argument("--parallel", type=_positive_int, default=1, metavar="N", help="runs at a time (default 1)")
    run.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler (default: discovery, else a local cluster)")
    run.add_argument("--gpus-per-run", type=_at_least_zero, default=0, metavar="N")
    run.add_argument("--output-dir", type=Path, metavar="DIR", help="where executed notebooks are written "
                     "(default pykernel-ext-runs/NOTEBOOK_NAME)")
    run.add_argument("--kernel", metavar="NAME", help="kernel name (default: the notebook's)")
    run.add_argument("--timeout", type=_above_zero, metavar="S", help="longest a single cell may run")
    run.add_argument("--name", help="a name for the runs (default: the notebook's name)")
    run.set_defaults(handler=cmd_run)

    again = sub.add_parser("reproduce", help="re-execute a run and report what differs")
    again.add_argument("run_id", metavar="RUN_ID")
    again.add_argument("--check", action="store_true", help="exit 1 when results differ beyond the tolerance")
    again.add_argument("--tolerance", type=_at_least_zero, default=1e-6,
                       help="relative tolerance for metrics (default 1e-6)")
    again.add_argument("--kernel", metavar="NAME")
    again.set_defaults(handler=cmd_reproduce)

    try:
        from ..export import register_cli
    except ImportError:
        return
    register_cli(sub)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _at_least_zero(text: str) -> float:
    # A negative tolerance would call identical results different; a negative GPU count means nothing.
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative; give 0 or more")
    return value


def _above_zero(text: str) -> float:
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be more than 0 seconds")
    return value


def cmd_run(args: argparse.Namespace) -> int:
    from .parameters import collect_parameters, expand_sweep, parse_sweep
    from .runner import BatchOptions, BatchRunner, print_progress

    notebook = Path(args.notebook)
    options = BatchOptions(parallel=args.parallel, scheduler=args.scheduler, gpus_per_run=args.gpus_per_run,
                           output_dir=args.output_dir, kernel=args.kernel, timeout=args.timeout, name=args.name)
    runner = BatchRunner(notebook, options)  # checks the notebook and the kernel before anything runs
    spec = runner.parameters
    notes = [runner.kernel_note] if runner.kernel_note else []
    base = collect_parameters(spec, [tuple(p) for p in args.parameter], args.yaml, args.parameters_file, notes)
    sets = expand_sweep(base, [parse_sweep(text, spec, notes) for text in args.sweep])
    for note in notes:
        print(f"pykernel-ext run: note: {note}", file=sys.stderr)
    results = runner.run(sets, progress=print_progress)
    print_table(results, swept=[text.partition("=")[0].strip() for text in args.sweep])
    failed = [r for r in results if r.status != "ok"]
    for result in failed:
        print(f"run {result.run_id[:8]} failed at {result.error}", file=sys.stderr)
    return 1 if failed else 0


def print_table(results: list[Any], swept: list[str]) -> None:
    metric_names = sorted({k for r in results for k in r.metrics})[:4]
    header = ["RUN", "STATUS", "PARAMS", *metric_names, "DURATION", "OUTPUT"]
    rows = [header]
    for r in results:
        shown = {k: v for k, v in r.parameters.items() if not swept or k in swept}
        rows.append([r.run_id[:8], r.status, ", ".join(f"{k}={v}" for k, v in shown.items()) or "-",
                     *[_number(r.metrics.get(m)) for m in metric_names], f"{r.duration_s:.1f} s",
                     str(r.output_path or "-")])
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import reproduce

    report = reproduce(args.run_id, tolerance=args.tolerance, kernel=args.kernel)
    print(f"reproduced run {report.original[:8]} as {report.reproduction[:8]} ({report.status})")
    if report.error:
        failed_too = report.original_status == report.status
        print(f"{'the original failed too; ' if failed_too else ''}the reproduction failed: {report.error}")
        if not failed_too and report.parent_notebook_run:
            print(f"note: this ran inside notebook run {report.parent_notebook_run[:8]}, which rebuilds every input: "
                  f"pykernel-ext reproduce {report.parent_notebook_run[:8]}")
    code = report.comparison["code"]
    print("code: same" if code["same"] else "code: differs\n" + code["diffs"][0].rstrip())
    for difference in report.differences:
        print(f"differs: {difference}")
    for note in report.notes:
        print(f"note: {note}")
    if report.same:
        print("results: same within tolerance" + (" (it fails the same way)" if report.status != "ok" else ""))
    return 1 if args.check and not report.same else 0
