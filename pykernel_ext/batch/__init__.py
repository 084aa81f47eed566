"""Notebooks as reproducible batch runs: `pykernel-ext run` (one run or a sweep), `reproduce`."""
from .parameters import ParameterError, collect_parameters, expand_sweep, notebook_parameters, parse_sweep
from .runner import BatchError, BatchOptions, BatchResult, BatchRunner

__all__ = ["BatchError", "BatchOptions", "BatchResult", "BatchRunner", "ParameterError", "collect_parameters",
           "expand_sweep", "notebook_parameters", "parse_sweep"]
