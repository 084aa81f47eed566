"""Errors of pykernel-ext: one root class and a few narrow subclasses.

Each subclass carries what the user needs to act (the run id, the path, the variable name) so callers
never have to parse a message.
"""
from __future__ import annotations


class PykernelExtError(Exception):
    """Root of every error this project raises on purpose."""


class StoreError(PykernelExtError):
    """The run store cannot be opened, read or written."""


class StoreVersionError(StoreError):
    """The store was written by a newer pykernel-ext than the one running."""


class RunNotFound(PykernelExtError):
    """No run matches an id or id prefix."""

    def __init__(self, run_ref: str, message: str | None = None) -> None:
        self.run_ref = run_ref
        super().__init__(message or f"no run matches {run_ref!r}; `pykernel-ext runs list` shows the ids")


class AmbiguousRunId(RunNotFound):
    """An id prefix matches several runs."""

    def __init__(self, run_ref: str, candidates: list[str]) -> None:
        self.candidates = candidates
        # The store looks up one candidate more than it shows, to know there are more.
        count = f"{len(candidates)} runs" if len(candidates) <= 5 else "more than 5 runs"
        shown = ", ".join(candidates[:5]) + (", ..." if len(candidates) > 5 else "")
        super().__init__(run_ref, f"run id prefix {run_ref!r} matches {count} ({shown}); give more characters")


class InvalidBlobReference(StoreError):
    """A blob reference that is not a content hash (and so could name a path outside the store)."""


class DataPathNotFound(PykernelExtError):
    """A path given with --data does not exist."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"--data path {path!r} does not exist (relative paths start at {_cwd()})")


class BatchError(PykernelExtError):
    """A notebook run cannot start: a missing notebook, an unknown kernel, no cluster."""


class MissingOptionalDependency(PykernelExtError):
    """A feature needs a package that is not installed."""

    def __init__(self, package: str, extra: str | None = None, feature: str = "this feature") -> None:
        hint = f"pip install 'pykernel-ext[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{feature} needs {package}, which is not installed: {hint}")


def _cwd() -> str:
    import os

    return os.getcwd()
