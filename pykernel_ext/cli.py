"""The `pykernel-ext` command: runs (list, show, diff) and the commands other parts register.

Each command module exposes `register(subparsers)`; its handlers import heavy libraries lazily, so
`pykernel-ext runs list` starts fast.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import sys
from typing import Any, Callable

from .compare import compare_runs
from .errors import PykernelExtError
from .json_output import dumps as json_dumps
from .records import KINDS, STATUSES, RunRecord
from .store import RunStore

# Modules adding their own subcommands (each has `register(subparsers)`), imported only if present.
COMMAND_MODULES = ("pykernel_ext.remote.cli", "pykernel_ext.batch.cli", "pykernel_ext.sync.cli")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except (PykernelExtError, ValueError) as exc:
        print(f"pykernel-ext: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pykernel-ext: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pykernel-ext", description="Tracked, reproducible notebook runs.")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    _register_runs(sub)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def _register_runs(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser("runs", help="list, show, compare and manage recorded runs")
    runs_sub = runs.add_subparsers(title="runs commands", metavar="ACTION")
    runs.set_defaults(handler=lambda args: runs.print_help() or 2)

    listing = runs_sub.add_parser("list", help="recent runs, newest first")
    listing.add_argument("--notebook", help="only runs of this notebook (path as shown in the list)")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--kind", choices=KINDS)
    listing.add_argument("--tag", help="KEY or KEY=VALUE")
    listing.add_argument("--search", help="the sidebar's search: 'lr>0.01 status:failed tag:team=vision words' "
                                          "(see README)")
    listing.add_argument("--sort", default="started_at",
                         help="started_at (default), ended_at, duration_s, name, cost_usd, param:NAME, "
                              "metric:NAME or metric:NAME:min|max")
    listing.add_argument("--asc", action="store_true", help="ascending order (default: descending)")
    listing.add_argument("--archived", action="store_true", help="include archived runs")
    listing.add_argument("--limit", type=_positive_int, default=20)
    listing.add_argument("--json", action="store_true", help="machine-readable output (see README)")
    listing.set_defaults(handler=cmd_runs_list)

    show = runs_sub.add_parser("show", help="one run in full")
    show.add_argument("run_id", metavar="ID", help="run id or a unique prefix")
    show.add_argument("--json", action="store_true")
    show.add_argument("--logs", action="store_true", help="print the stored stdout/stderr too")
    show.set_defaults(handler=cmd_runs_show)

    diff = runs_sub.add_parser("diff", help="compare two runs: params, data, code, environment, metrics")
    diff.add_argument("run_a", metavar="A")
    diff.add_argument("run_b", metavar="B")
    diff.add_argument("--json", action="store_true")
    diff.set_defaults(handler=cmd_runs_diff)

    from .runs_cli import register_management

    register_management(runs_sub, open_store_for_cli)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def open_store_for_cli() -> RunStore:
    store = RunStore.open()
    store.mark_orphans_interrupted()
    return store


# ---- handlers ----------------------------------------------------------------------------------


def cmd_runs_list(args: argparse.Namespace) -> int:
    with open_store_for_cli() as store:
        rows, total = store.list_runs(notebook=args.notebook, status=args.status, kind=args.kind, tag=args.tag,
                                      search=args.search, limit=args.limit, sort=args.sort, descending=not args.asc,
                                      archived="include" if args.archived else "exclude")
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no runs recorded yet" if total == 0 else "no runs match")
        return 0
    table = [("ID", "NAME", "KIND", "STATUS", "STARTED", "DURATION", "PARAMS", "METRICS")]
    for r in rows:
        marks = ("*" if r.get("starred") else "") + (" (archived)" if r.get("archived") else "")
        table.append((r["id"][:8], _clip((r["name"] or "") + marks, 28), r["kind"], r["status"], _time(r["started_at"]),
                      _seconds(r["duration_s"]), _clip(_pairs(r["params"]), 36), _clip(_pairs(r["metrics"]), 30)))
    _print_table(table)
    if total > len(rows):
        print(f"({len(rows)} of {total}; --limit N for more)")
    return 0


def cmd_runs_show(args: argparse.Namespace) -> int:
    with open_store_for_cli() as store:
        run = store.get_run(args.run_id)
        run["environment"] = store.environment(run.get("environment_id"))
        if run.get("code"):  # the user's modules' source is kept once, as a blob
            from .capture.closure import with_module_sources

            run["code"] = with_module_sources(run["code"], store.blobs.read_text)
        logs = _read_logs(store, run) if (args.logs or args.json) else None
    if args.json:
        run["logs_text"] = logs
        _print_json(run)
        return 0
    _print_run(run)
    if logs:
        for stream, text in logs.items():
            if text:
                print(f"\n--- {stream} ---\n{text.rstrip()}")
    return 0


def cmd_runs_diff(args: argparse.Namespace) -> int:
    with open_store_for_cli() as store:
        comparison = compare_runs(store, [args.run_a, args.run_b])
    if args.json:
        _print_json(comparison)
        return 0
    a, b = comparison["runs"]
    print(f"A {a['id'][:8]} {a['name']} ({a['status']})\nB {b['id'][:8]} {b['name']} ({b['status']})")
    _print_section_diff("params", comparison["params"])
    _print_section_diff("data", comparison["data"])
    _print_section_diff("outputs", comparison["outputs"])
    _print_section_diff("metrics", comparison["metrics"])
    print("\ncode: same" if comparison["code"]["same"] else "\ncode:\n" + comparison["code"]["diffs"][0].rstrip())
    env = comparison["environment"]
    if not env["changed"] and not env["packages_changed"]:
        print("\nenvironment: same")
    else:
        print("\nenvironment:")
        for key, (va, vb) in {**env["changed"], **env["packages_changed"]}.items():
            print(f"  {key}: {va} -> {vb}")
    return 0


# ---- formatting --------------------------------------------------------------------------------


def _print_json(value: Any) -> None:
    # Strict JSON: a diverged metric's NaN or infinity is null (README, "Machine-readable output").
    sys.stdout.write(json_dumps(value, indent=2, sort_keys=True) + "\n")


def _read_logs(store: RunStore, run: RunRecord) -> dict[str, str]:
    logs = run.get("logs")
    if not logs and run.get("status") == "running":
        live = store.live_logs(run["id"])  # what live flushes have appended so far
        return {s: live.get(s, "") for s in ("stdout", "stderr")}
    logs = logs or {}
    return {s: store.blobs.read_text(logs[f"{s}_blob"]) if logs.get(f"{s}_blob") else "" for s in ("stdout", "stderr")}


def _print_run(run: RunRecord) -> None:
    print(f"run {run['id']}  {run['name']}  [{run['kind']}]  {run['status']}")
    print(f"  started {_time(run['started_at'])}  duration {_seconds(run['duration_s'])}  host {run.get('host')}")
    if run.get("notebook"):
        print(f"  notebook {run['notebook']}  cell {run.get('cell_id') or '-'}  [{run.get('execution_count')}]")
    if run.get("parent_id"):
        print(f"  parent {run['parent_id']}")
    error = run.get("error") or ({"type": run["error_type"], "message": run.get("error_message")}
                                 if run.get("error_type") else None)
    if error:
        print(f"  error {error['type']}: {error['message']}")
    _print_mapping("params", run.get("params"))
    _print_mapping("metrics", run.get("metrics"))
    _print_mapping("tags", run.get("tags"))
    if run.get("starred") or run.get("archived"):
        print("marks: " + ", ".join(m for m in ("starred", "archived") if run.get(m)))
    if run.get("note"):
        print("note: " + run["note"].rstrip().replace("\n", "\n  "))
    data = run.get("data") or []
    if data:
        print("data:")
        for d in data:
            print(f"  {d['name']} ({d.get('kind')}, {d.get('source')}): {d.get('hash') or 'unhashed: ' + str(d.get('error'))}")
    outputs = run.get("outputs") or []
    if outputs:
        print("outputs: " + ", ".join(f"{o['name']}: {o['type']}" for o in outputs))
    code = run.get("code") or {}
    print(f"code ({(code.get('hash') or '')[:12]}):")
    print("  " + (code.get("source") or "").rstrip().replace("\n", "\n  "))
    for entry in code.get("closure") or []:
        where = f"module {entry['name']} ({entry.get('path')})" if entry["kind"] == "module" else \
            f"notebook {entry['kind']} {entry['name']}"
        print(f"  # calls {where}")
    for a in run.get("artifacts") or []:
        print(f"artifact {a['path']} ({a['size']} bytes, blob {a['blob'][:12]})")
    git = run.get("git") or {}
    if git.get("commit"):
        print(f"git {git.get('branch')}@{git['commit'][:10]}{' (dirty)' if git.get('dirty') else ''}")
    resources, cost = run.get("resources") or {}, run.get("cost") or {}
    gpu = (run.get("hardware") or {}).get("gpu") or {}
    print(f"hardware: peak rss {_bytes(resources.get('peak_rss_bytes'))}, cpu {resources.get('cpu_seconds', 0):.2f} s, "
          f"gpu {'available' if gpu.get('available') else 'none (' + str(gpu.get('reason')) + ')'}")
    if cost:
        print(f"cost: ${cost.get('usd', 0):.6f} ({cost.get('gpu_hours', 0):.4f} GPU-h, {cost.get('cpu_hours', 0):.4f} CPU-h)")
    for warning in run.get("warnings") or []:
        print(f"warning: {warning}")


def _print_mapping(title: str, mapping: dict[str, Any] | None) -> None:
    if mapping:
        print(f"{title}: " + _pairs(mapping))


def _print_section_diff(title: str, section: dict[str, Any]) -> None:
    if not section["names"]:
        return
    if not section["different"]:
        print(f"\n{title}: same ({len(section['names'])})")
        return
    print(f"\n{title}:")
    for name in section["different"]:
        va, vb = section["values"][name]
        print(f"  {name}: {_short(va)} -> {_short(vb)}")


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


def _pairs(mapping: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in (mapping or {}).items())


def _short(value: Any) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _clip(text: str | None, width: int) -> str:
    text = text or ""
    return text if len(text) <= width else text[: width - 1] + "…"


def _time(epoch: float | None) -> str:
    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S") if epoch else "-"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _bytes(value: int | None) -> str:
    if not value:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


if __name__ == "__main__":
    sys.exit(main())
