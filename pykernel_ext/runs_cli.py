"""`pykernel-ext runs rename|note|tag|star|archive|rm`: managing recorded runs from the command line.

The same operations as the sidebar's (and the server's PATCH / DELETE routes), through `RunStore`.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from .store import RunStore
from .store.manage import RunPatch


def register_management(runs_sub: argparse._SubParsersAction, open_store: Callable[[], RunStore]) -> None:
    """Add the management actions to `pykernel-ext runs`."""

    def handler(action: Callable[[RunStore, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        def run(args: argparse.Namespace) -> int:
            with open_store() as store:
                return action(store, args)
        return run

    rename = runs_sub.add_parser("rename", help="give a run a new name")
    rename.add_argument("run_id", metavar="ID", help="run id or a unique prefix")
    rename.add_argument("name", metavar="NAME")
    rename.set_defaults(handler=handler(_rename))

    note = runs_sub.add_parser("note", help="set (or with --clear, remove) a run's note: plain text")
    note.add_argument("run_id", metavar="ID")
    note.add_argument("text", metavar="TEXT", nargs="?", help="the note; '-' reads it from stdin")
    note.add_argument("--clear", action="store_true", help="remove the note")
    note.set_defaults(handler=handler(_note))

    tag = runs_sub.add_parser("tag", help="add or change tags (KEY=VALUE), or remove them (--remove KEY)")
    tag.add_argument("run_id", metavar="ID")
    tag.add_argument("tags", metavar="KEY=VALUE", nargs="*")
    tag.add_argument("--remove", metavar="KEY", action="append", default=[], help="remove this tag (repeatable)")
    tag.set_defaults(handler=handler(_tag))

    star = runs_sub.add_parser("star", help="star runs (--off to unstar)")
    star.add_argument("run_ids", metavar="ID", nargs="+")
    star.add_argument("--off", action="store_true", help="remove the star")
    star.set_defaults(handler=handler(_star))

    archive = runs_sub.add_parser(
        "archive", help="hide runs from the default views (they stay queryable: runs list --archived)")
    archive.add_argument("run_ids", metavar="ID", nargs="+")
    archive.add_argument("--undo", action="store_true", help="bring archived runs back")
    archive.set_defaults(handler=handler(_archive))

    remove = runs_sub.add_parser(
        "rm", help="delete runs, their child runs and the stored files no other run uses (asks first)")
    remove.add_argument("run_ids", metavar="ID", nargs="+")
    remove.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    remove.set_defaults(handler=handler(_remove))


def _updated(store: RunStore, run_id: str, patch: RunPatch, what: str) -> int:
    run = store.update_run(run_id, patch)
    print(f"{run['id'][:8]} {run['name']}: {what}")
    return 0


def _rename(store: RunStore, args: argparse.Namespace) -> int:
    return _updated(store, args.run_id, RunPatch(name=args.name), "renamed")


def _note(store: RunStore, args: argparse.Namespace) -> int:
    if args.clear == (args.text is not None):
        raise ValueError("give the note's TEXT (or '-' to read stdin), or --clear to remove it")
    text = "" if args.clear else (sys.stdin.read() if args.text == "-" else args.text)
    return _updated(store, args.run_id, RunPatch(note=text), "note removed" if not text else "note saved")


def _tag(store: RunStore, args: argparse.Namespace) -> int:
    tags: dict[str, str] = {}
    for pair in args.tags:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"tag {pair!r}: write KEY=VALUE (or --remove {pair} to remove it)")
        tags[key] = value
    if not tags and not args.remove:
        raise ValueError("give tags as KEY=VALUE, or --remove KEY")
    run = store.update_run(args.run_id, RunPatch(set_tags=tags, remove_tags=tuple(args.remove)))
    shown = ", ".join(f"{k}={v}" for k, v in run["tags"].items()) or "(none)"
    print(f"{run['id'][:8]} {run['name']}: tags {shown}")
    return 0


def _star(store: RunStore, args: argparse.Namespace) -> int:
    for run_id in args.run_ids:
        _updated(store, run_id, RunPatch(starred=not args.off), "unstarred" if args.off else "starred")
    return 0


def _archive(store: RunStore, args: argparse.Namespace) -> int:
    for run_id in args.run_ids:
        _updated(store, run_id, RunPatch(archived=not args.undo), "unarchived" if args.undo else "archived")
    return 0


def _remove(store: RunStore, args: argparse.Namespace) -> int:
    doomed = store.delete_preview(args.run_ids)
    named = [r for r in doomed if r["id"] in {store.resolve_run_id(x) for x in args.run_ids}]
    children = len(doomed) - len(named)
    print(f"delete {len(named)} run(s){f' and {children} child run(s)' if children else ''}:")
    for run in doomed[:20]:
        print(f"  {run['id'][:8]}  {run['kind']:<8} {run['status']:<11} {run['name']}")
    if len(doomed) > 20:
        print(f"  ... and {len(doomed) - 20} more")
    if not args.yes:
        if not sys.stdin.isatty():
            raise ValueError("refusing to delete without confirmation: run it in a terminal, or pass --yes")
        if input("Delete them for good? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    report = store.delete_runs(args.run_ids)
    print(f"deleted {len(report.run_ids)} run(s); removed {report.blobs_removed} stored file(s) no other run used "
          f"({_size(report.bytes_freed)})")
    return 0


def _size(count: Any) -> str:
    value = float(count or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
