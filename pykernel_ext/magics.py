"""IPython magics: parse the line, delegate to tracking (or remote), display. Thin by design."""
from __future__ import annotations

import argparse
import ast
import os
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from .errors import DataPathNotFound
from .magic_options import REMOTE_PARSER, TRACK_PARSER, MagicOptionError, track_options
from .magic_options import parse_line as _parse_line
from .tracking import ENV_NOTEBOOK, RunContext, start_run


def parse_line(parser: argparse.ArgumentParser, line: str) -> argparse.Namespace:
    """The magic's options; a mistake is IPython's UsageError (shown without a traceback), with the usage."""
    try:
        return _parse_line(parser, line)
    except MagicOptionError as exc:
        raise UsageError(str(exc)) from None


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
        from .widgets import LiveRunStatus, show_run_summary

        live = LiveRunStatus(run).start()
        error: BaseException | None = None
        try:
            execute_cell(self.shell, cell, header=f"%%track {line}".rstrip(), transformed=context.python_source)
        except BaseException as exc:
            error = exc
            raise
        finally:
            live.stop()
            run.finish(error)
            show_run_summary(run)

    def run_context(self, cell: str, kind: str) -> RunContext:
        """Where this cell runs: its namespace, notebook path, cell id and execution count."""
        shell = self.shell
        try:
            python_source = shell.transform_cell(cell)
        except Exception:  # noqa: BLE001 - a cell IPython cannot transform fails, as usual, when it runs
            python_source = None
        notebook, cell_id = notebook_path(shell), _cell_id(shell)
        if cell_id is None and getattr(shell, "kernel", None) is not None:
            notebook, cell_id = _locate_cell(shell, notebook)
        return RunContext(
            kind=kind, source=cell, python_source=python_source, analysis_source=_stacked_body(shell, cell),
            namespace=shell.user_ns, notebook=notebook, cell_id=cell_id, execution_count=_cell_number(shell),
            cwd=os.getcwd(),
        )


def execute_cell(shell: Any, cell: str, header: str = "", transformed: str | None = None) -> None:
    """Run a cell in the user's namespace as IPython would: magics and `!` lines work, the last
    expression is displayed (unless the cell ends in `;`), and an exception propagates with line numbers
    of the cell as the user sees it, `header` (the `%%track ...` line) being line 1."""
    __tracebackhide__ = True  # noqa: F841
    transformed = transformed if transformed is not None else shell.transform_cell(cell)
    shown = f"{header}\n{cell}" if header else cell
    # One leading newline per header line keeps the compiled line numbers equal to the displayed ones.
    offset = "\n" * (shown.count("\n") - cell.count("\n"))
    filename = shell.compile.cache(offset + transformed, _cell_number(shell), raw_code=shown)  # "Cell In[n]"
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


def _stacked_body(shell: Any, cell: str) -> str | None:
    """The Python a cell runs when cell magics are stacked under %%track (`%%time`, `%%capture out`)."""
    from .capture.code import magic_assignments, peel_cell_magics

    magics, body = peel_cell_magics(cell)
    if not magics:
        return None
    try:
        python = shell.transform_cell(body)
    except Exception:  # noqa: BLE001 - the cell fails, as usual, when it runs
        return None
    # Names a magic binds are writes of the cell too: analysed as assignments ahead of the body.
    return "".join(f"{name} = None\n" for name in magic_assignments(magics)) + python


def _locate_cell(shell: Any, notebook: str | None) -> tuple[str | None, str | None]:
    """Notebook and cell id when the front end does not send them (nbconvert, papermill): the kernel's
    input history matched against the notebook's code cells."""
    from .capture.notebook import ENV_NOTEBOOK_FILE, locate_cell

    try:
        history = list(shell.history_manager.input_hist_raw)
        hint = os.environ.get(ENV_NOTEBOOK_FILE) or (notebook if notebook and os.path.isfile(notebook) else None)
        location = locate_cell(history, hint, os.getcwd())
    except Exception as exc:  # noqa: BLE001 - identity is a nicety; the run is recorded without it
        import logging

        logging.getLogger("pykernel_ext").warning("pykernel-ext: this cell's notebook cell id was not found: %s", exc)
        return notebook, None
    if location is None:
        return notebook, None
    return notebook or location.notebook, location.cell_id


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
    ipython.register_magics(RemoteMagics)


# ---- %%remote -----------------------------------------------------------------------------------



def _cell_sink() -> Any:
    """Remote output into the running cell's output area: text as PrintSink writes it, displays and
    clears through IPython's display machinery (called from the kernel's main thread)."""
    from .remote.jobs import PrintSink

    class CellSink(PrintSink):
        def display(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
            from IPython.display import publish_display_data

            publish_display_data(data, metadata)

        def clear(self, wait: bool) -> None:
            from IPython.display import clear_output

            clear_output(wait=wait)

    return CellSink()


@magics_class
class RemoteMagics(Magics):
    """`%%remote`: run a cell on a Dask worker as a tracked run; `%remote_jobs`: this kernel's remote cells."""

    @cell_magic
    def remote(self, line: str, cell: str) -> None:
        """%%remote [--gpus N] [--cpus N] [--memory SIZE] [--scheduler ADDRESS] [--push a,b] [--pull a,b]
        [--timeout S] [--no-wait] [--name NAME] plus every %%track option

        Sends the cell, with the notebook variables it reads, to a worker of a Dask cluster (--scheduler,
        else $PYKERNEL_EXT_SCHEDULER, else Dask's scheduler-address, else `pykernel-ext cluster start`'s,
        else a local cluster started now). Output streams back live; the names the cell assigns (or
        --pull) come back into the notebook. With --no-wait the cell returns at once and binds a handle
        (named --name when that is a Python name, and always `_remote_job`) whose .result() brings the
        variables back later. Recorded as a run of kind "remote".
        """
        __tracebackhide__ = True  # noqa: F841
        from .remote import DEFAULT_HANDLE, ClusterUnavailable, RemoteOptions, RemoteUsageError, submit_remote
        from .remote.session_kernel import SessionLost

        args = parse_line(REMOTE_PARSER, line)
        if args.home_limit is not None and not args.session:
            raise UsageError("%%remote: --home-limit applies to session cells; add --session NAME")
        options = RemoteOptions(gpus=args.gpus, cpus=args.cpus, memory=args.memory, scheduler=args.scheduler,
                                push=args.push, pull=args.pull, timeout=args.timeout, wait=not args.no_wait,
                                session=args.session, home_bytes=args.home_limit)
        context = TrackMagics.run_context(self, cell, kind="remote")  # type: ignore[arg-type]
        sink = _cell_sink()
        try:
            job = submit_remote(context, options, track_options(args), sink=sink,
                                display_source=f"%%remote {line}\n{cell}", line_offset=1,
                                view_factory=_job_view)
        except (RemoteUsageError, ClusterUnavailable, DataPathNotFound) as exc:
            raise UsageError(str(exc)) from None
        except SessionLost as exc:
            raise UsageError(str(exc)) from None
        if args.no_wait:
            self.shell.user_ns[DEFAULT_HANDLE] = job
            if job.variable:
                self.shell.user_ns[job.variable] = job
            return
        try:
            job.follow(sink)
        finally:
            from .widgets import show_run_summary

            show_run_summary(job.run)

    @line_magic
    def remote_jobs(self, line: str) -> None:
        """%remote_jobs: the remote cells of this kernel (running and finished), oldest first."""
        from .remote import format_jobs

        print(format_jobs())

    @line_magic
    def remote_pull(self, line: str) -> None:
        """%remote_pull SESSION NAME [NAME ...]: bring values home from a remote session, as one graph (a
        model and its optimizer stay linked, and to the notebook's own objects they were made from)."""
        session, names = self._session_and_names("%remote_pull", line)
        values = session.pull(names, self.shell.user_ns)
        print(f"pulled from session {session.name!r}: {', '.join(values)}")

    @line_magic
    def remote_push(self, line: str) -> None:
        """%remote_push SESSION NAME [NAME ...]: send notebook values into a remote session."""
        session, names = self._session_and_names("%remote_push", line)
        missing = [n for n in names if n not in self.shell.user_ns]
        if missing:
            raise UsageError(f"%remote_push: {missing[0]!r} is not defined in the notebook")
        session.push(names, self.shell.user_ns)
        print(f"pushed to session {session.name!r}: {', '.join(names)}")

    @line_magic
    def remote_session(self, line: str) -> None:
        """%remote_session: this kernel's remote sessions (worker, resources, variables and sizes, GPU memory,
        idle time). `%remote_session close NAME` (or `--all`) closes one and frees its GPU memory."""
        from .remote.session_kernel import SESSIONS, close_all, forget
        from .remote.session_format import format_sessions

        words = line.split()
        if not words or words == ["list"]:
            print(format_sessions(list(SESSIONS.values())))
            return
        if words[0] == "close" and len(words) == 2:
            if words[1] == "--all":
                close_all()
                print("closed every remote session of this kernel")
                return
            if forget(words[1]) is None:
                raise UsageError(f"%remote_session: no session named {words[1]!r} in this kernel")
            print(f"closed remote session {words[1]!r}")
            return
        raise UsageError("usage: %remote_session [list] | %remote_session close NAME | %remote_session close --all")

    def _session_and_names(self, magic: str, line: str) -> tuple[Any, list[str]]:
        from .remote.session_kernel import SESSIONS, SessionLost

        words = line.split()
        if len(words) < 2:
            raise UsageError(f"usage: {magic} SESSION NAME [NAME ...]")
        session = SESSIONS.get(words[0])
        if session is None:
            known = ", ".join(SESSIONS) or "none yet"
            raise UsageError(f"{magic}: no remote session named {words[0]!r} in this kernel (sessions: {known})")
        names = [n.strip(",") for n in words[1:] if n.strip(",")]
        bad = [n for n in names if not n.isidentifier()]
        if bad:
            raise UsageError(f"{magic}: {bad[0]!r} is not a Python name")
        try:
            session.ensure_open()
        except SessionLost as exc:
            raise UsageError(str(exc)) from None
        return session, names


def route_ipython_display(display: Any, clear_output: Any) -> None:
    """On a remote worker: make IPython's `display`/`clear_output` (however the cell imports them) the worker's
    own, which send the output home."""
    import sys

    import IPython.core.display_functions as functions
    import IPython.display as public

    for module in (functions, public, sys.modules.get("IPython.core.display")):
        if module is not None:
            module.display = display
            module.clear_output = clear_output


def _job_view(job: Any) -> Any:
    from .widgets import remote_job_view

    return remote_job_view(job)
