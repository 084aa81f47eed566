"""IPython magics: parse the line, delegate to tracking (or remote), display. Thin by design."""
from __future__ import annotations

import argparse
import ast
import os
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class

from .errors import DataPathNotFound
from .tracking import ENV_NOTEBOOK, RunContext, TrackOptions, start_run


class _MagicArgumentParser(argparse.ArgumentParser):
    """argparse that raises IPython's UsageError (with the usage) instead of exiting the kernel."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}\n\n{self.format_usage().strip()}\n"
                         f"Run `{self.prog}?` for the full help.")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise UsageError(message or self.format_help())


def _comma_list(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    for name in names:
        if not name.isidentifier():
            raise argparse.ArgumentTypeError(f"{name!r} is not a Python name")
    return names


def _key_value(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{value!r} is not KEY=VALUE")
    return key.strip(), val.strip()


def add_track_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every tracked cell takes (`%%track`, and `%%remote` on top of its own)."""
    parser.add_argument("--name", help="a name for the run (default: notebook name and execution count)")
    parser.add_argument("--params", type=_comma_list, action="extend", default=[], metavar="a,b",
                        help="names whose values to record as parameters, beyond those detected")
    parser.add_argument("--data", nargs="+", action="extend", default=[], metavar="PATH",
                        help="files or folders the cell reads; content-hashed (must exist)")
    parser.add_argument("--metrics", type=_comma_list, action="extend", default=[], metavar="a,b",
                        help="names whose numeric values at the end are recorded as metrics")
    parser.add_argument("--artifacts", nargs="+", action="extend", default=[], metavar="GLOB",
                        help="files to store with the run when it ends (globs, ** allowed)")
    parser.add_argument("--tag", nargs="+", action="extend", type=_key_value, default=[], metavar="KEY=VALUE",
                        help="tags for filtering runs")


def make_parser(prog: str, description: str) -> _MagicArgumentParser:
    return _MagicArgumentParser(prog=prog, description=description, add_help=False, allow_abbrev=False)


TRACK_PARSER = make_parser("%%track", "Run the cell as usual and record it as a run.")
add_track_arguments(TRACK_PARSER)


def parse_line(parser: argparse.ArgumentParser, line: str) -> argparse.Namespace:
    try:
        words = shlex.split(line)
    except ValueError as exc:
        parser.error(f"cannot split the option line ({exc}); check the quotes")
    return parser.parse_args(words)


def track_options(args: argparse.Namespace) -> TrackOptions:
    return TrackOptions(name=args.name, param_names=args.params, data=args.data, metrics=args.metrics,
                        artifacts=args.artifacts, tags=dict(args.tag))


@magics_class
class TrackMagics(Magics):
    """`%%track`: record a cell as a run."""

    @cell_magic
    def track(self, line: str, cell: str) -> None:
        """%%track [--name NAME] [--params a,b] [--data PATH ...] [--metrics a,b] [--artifacts GLOB ...]
        [--tag KEY=VALUE ...]

        Runs the cell exactly as if untracked and records it: code and the notebook functions it calls,
        parameters, data hashes, outputs, metrics, artifacts, logs, environment, git, hardware and cost.
        """
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from the user's traceback
        options = track_options(parse_line(TRACK_PARSER, line))
        context = self.run_context(cell, kind="cell")
        try:
            run = start_run(options, context)
        except DataPathNotFound as exc:
            raise UsageError(str(exc)) from None
        error: BaseException | None = None
        try:
            execute_cell(self.shell, cell, header=f"%%track {line}".rstrip())
        except BaseException as exc:
            error = exc
            raise
        finally:
            run.finish(error)
            from .widgets import show_run_summary

            show_run_summary(run)

    def run_context(self, cell: str, kind: str) -> RunContext:
        """Where this cell runs: its namespace, notebook path, cell id and execution count."""
        shell = self.shell
        try:
            python_source = shell.transform_cell(cell)
        except Exception:  # noqa: BLE001 - a cell IPython cannot transform fails when it runs
            python_source = cell
        return RunContext(
            kind=kind, source=cell, python_source=python_source, namespace=shell.user_ns,
            notebook=notebook_path(shell), cell_id=_cell_id(shell), execution_count=_cell_number(shell),
        )


def execute_cell(shell: Any, cell: str, header: str = "") -> None:
    """Run a cell in the user's namespace as IPython would: magics and `!` lines work, the last
    expression is displayed (unless the cell ends in `;`), and an exception propagates with line numbers
    of the cell as the user sees it, `header` (the `%%track ...` line) being line 1."""
    __tracebackhide__ = True  # noqa: F841
    transformed = shell.transform_cell(cell)
    shown = f"{header}\n{cell}" if header else cell
    # One leading newline per header line keeps the compiled line numbers equal to the displayed ones.
    offset = "\n" * (shown.count("\n") - cell.count("\n"))
    filename = shell.compile.cache(offset + transformed, shell.execution_count, raw_code=shown)
    tree = shell.transform_ast(shell.compile.ast_parse(offset + transformed, filename=filename))
    body, last = tree.body, None
    if body and isinstance(body[-1], ast.Expr) and not shell.displayhook.semicolon_at_end_of_expression(transformed):
        body, last = body[:-1], body[-1]
    flags = shell.compile.flags
    if body:
        module = ast.Module(body=body, type_ignores=[])
        exec(compile(module, filename, "exec", flags, dont_inherit=True), shell.user_global_ns, shell.user_ns)
    if last is not None:
        expression = ast.Expression(body=last.value)
        value = eval(compile(expression, filename, "eval", flags, dont_inherit=True),
                     shell.user_global_ns, shell.user_ns)
        shell.displayhook(value)


def notebook_path(shell: Any) -> str | None:
    """The notebook this kernel serves, as Jupyter tells the kernel (or a batch driver sets it)."""
    for candidate in (os.environ.get(ENV_NOTEBOOK), os.environ.get("JPY_SESSION_NAME"),
                      shell.user_ns.get("__session__"), shell.user_ns.get("__vsc_ipynb_file__")):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


def _cell_number(shell: Any) -> int | None:
    # The In[n] number of the running cell. IPython 9 increments execution_count before the cell runs
    # and 8 after, but both store the input first, so the cell is the last entry of `In`.
    history = shell.user_ns.get("In")
    if isinstance(history, list) and len(history) > 1:
        return len(history) - 1
    return shell.execution_count


def _cell_id(shell: Any) -> str | None:
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return None
    try:
        parent = kernel.get_parent("shell") if _takes_channel(kernel.get_parent) else kernel.get_parent()
    except Exception:  # noqa: BLE001 - an older kernel without parent tracking
        return None
    metadata = (parent or {}).get("metadata") or {}
    return metadata.get("cellId") or metadata.get("cell_id")


def _takes_channel(method: Any) -> bool:
    import inspect

    try:
        return "channel" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def register(ipython: Any) -> None:
    ipython.register_magics(TrackMagics)
