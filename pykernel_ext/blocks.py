"""Runs of script code: `with pykernel_ext.track():` blocks, and the run of a whole exported notebook.

Both are context-manager classes rather than generators, so an exception from the block reaches the user
with only the block's own frames (no `yield run` frame of ours in the traceback).
"""
from __future__ import annotations

import os
import sys
from typing import Any

from .tracking import ENV_NOTEBOOK, Run, RunContext, TrackOptions, start_run


def track(name: str | None = None, params: dict[str, Any] | None = None, *, data: list[str] | tuple = (),
          metrics: list[str] | tuple = (), artifacts: list[str] | tuple = (), tags: dict[str, str] | None = None,
          namespace: dict[str, Any] | None = None, code: str | None = None,
          param_names: list[str] | tuple = ()) -> "TrackedBlock":
    """Track a block of a script as a run: `with pykernel_ext.track(name="train", params={...}) as run:`.

    The block's own source is recorded (and hashed like a `%%track` cell with the same body); `code` records
    another text instead (an exported cell's, whose IPython lines the block runs translated). Reads of
    globals are looked up in the caller's module namespace unless `namespace` is given; `param_names`
    records those names' values as parameters, as `%%track --params` does.
    """
    options = TrackOptions(name=name, params=dict(params or {}), param_names=list(param_names), data=list(data),
                           metrics=list(metrics), artifacts=list(artifacts), tags=dict(tags or {}))
    return TrackedBlock(options, namespace=namespace, code=code)


class TrackedBlock:
    """The context manager `track()` returns. A class rather than a generator, so an exception from the
    block reaches the user with only the block's own frames (no `yield run` frame of ours)."""

    def __init__(self, options: TrackOptions, *, namespace: dict[str, Any] | None = None, code: str | None = None,
                 kind: str = "script", analyze_block: bool = True) -> None:
        self.options = options
        self.namespace = namespace
        self.code = code
        self.kind = kind
        self.analyze_block = analyze_block
        self.run: Run | None = None

    def __enter__(self) -> Run:
        caller = sys._getframe(1)  # the frame of the `with` statement
        block = code_capture_block(caller.f_code.co_filename, caller.f_lineno) if self.analyze_block else None
        context = RunContext(
            kind=self.kind, source=(self.code if self.code is not None else block) or "",
            # The Python the block runs is what it reads, even when `code` records the cell's own text.
            analysis_source=block if self.code is not None else None,
            namespace=self.namespace if self.namespace is not None else caller.f_globals,
            module_name=caller.f_globals.get("__name__", "__main__"),
            notebook=os.environ.get(ENV_NOTEBOOK) or caller.f_code.co_filename,
        )
        self.run = start_run(self.options, context)
        return self.run

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if self.run is not None:
            self.run.finish(exc if exc_type is not None else None)
        return False  # the exception, if any, goes on unchanged


def code_capture_block(filename: str, lineno: int) -> str | None:
    from .capture.code import with_block_source

    return with_block_source(filename, lineno)


def notebook_run(notebook: str, code: str, parameters: dict[str, Any], name: str | None = None) -> TrackedBlock:
    """The run of a whole exported notebook (kind `script`), parent of the tracked blocks inside it.

    It records what `pykernel-ext run` records for the notebook: all its parameters (the literal
    defaults of its parameters cell, with the values given), and its code as the notebook's code text,
    so the two runs compare equal in parameters and code.
    """
    options = TrackOptions(name=name or os.path.splitext(os.path.basename(notebook))[0], params=dict(parameters))
    return TrackedBlock(options, namespace={}, code=code, kind="script", analyze_block=False)
