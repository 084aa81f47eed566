"""What a remote cell takes with it: the names it reads that the notebook defines, checked before anything
is sent, so a value that cannot travel stops the cell with its name and the reason.
"""
from __future__ import annotations

import linecache
import re
import types
from dataclasses import dataclass, field
from typing import Any

from ..capture.code import SHELL_NAMES, analyze_names, code_closure
from .errors import RemoteUsageError, ShippingError
from .worker import CellPayload, pickled_size

LARGE_VALUE_BYTES = 100 * 1024 * 1024  # warn: sending this takes a noticeable time
SCATTER_BYTES = 1024 * 1024  # beyond this a value goes straight to the worker instead of inside the task
INLINE_TOTAL_BYTES = 8 * 1024 * 1024  # and values inside the task stay under this together (Dask warns at 10 MB)

# IPython's output history (`_`, `_3`, `_i3`, `_oh`, ...): never data of the cell.
_HISTORY_NAME = re.compile(r"^_+$|^_i+\d*$|^_\d+$|^_(oh|ih|dh|ii|iii)$")


@dataclass
class Shipment:
    """A cell ready to send: the task payload, the big values sent beside it, and notes for the user."""

    payload: CellPayload
    large: dict[str, Any] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()


def cell_names(python_source: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(reads, writes) of a cell; both empty when it does not parse (the worker reports the SyntaxError)."""
    try:
        names = analyze_names(python_source)
    except SyntaxError:
        return (), ()
    return names.reads, names.writes


def names_to_send(reads: tuple[str, ...], namespace: dict[str, Any], push: list[str]) -> list[str]:
    """The cell's reads that the notebook defines, the globals its notebook functions read, and `push`."""
    wanted = [n for n in reads if n in namespace]
    try:
        wanted += code_closure(tuple(wanted), namespace).globals_read
    except Exception:  # noqa: BLE001 - a closure we cannot follow still ships through cloudpickle
        pass
    missing = [n for n in push if n not in namespace]
    if missing:
        raise RemoteUsageError(f"--push names {missing[0]!r}, which the notebook does not define")
    wanted += push
    selected = dict.fromkeys(n for n in wanted if n not in SHELL_NAMES and not _HISTORY_NAME.match(n))
    return list(selected)


def prepare_cell(payload: CellPayload, namespace: dict[str, Any], names: list[str]) -> Shipment:
    """Check and size every value in `names`, filling `payload`; raises ShippingError before sending.

    Plain values are checked before functions and classes, so a lock that a notebook function reads is
    reported by its own name rather than as the function's failure.
    """
    import cloudpickle

    shipment = Shipment(payload=payload)
    ordered = sorted(names, key=lambda n: isinstance(namespace[n], (types.FunctionType, type)))
    for name in ordered:
        value = namespace[name]
        if isinstance(value, types.ModuleType):
            payload.modules[name] = value.__name__  # re-imported by name on the worker, never pickled
            continue
        try:
            size = pickled_size(value, cloudpickle)
        except Exception as exc:  # noqa: BLE001 - whatever pickling raises, the value cannot travel
            raise ShippingError(name, _reason(value, exc)) from None
        shipment.sizes[name] = size
        if size > LARGE_VALUE_BYTES:
            shipment.notes.append(f"sending {name!r} ({format_bytes(size)}) to the worker; large values "
                                  "take time to send; load data on the worker where you can")
        if size > SCATTER_BYTES:
            shipment.large[name] = value
        else:
            payload.values[name] = value
    _keep_task_small(shipment)
    payload.source_lines = _function_sources([namespace[n] for n in names])
    return shipment


def _keep_task_small(shipment: Shipment) -> None:
    """Move the biggest inline values beside the task until what travels inside it is small."""
    inline = shipment.payload.values
    ordered = sorted(inline, key=lambda n: shipment.sizes.get(n, 0), reverse=True)
    total = sum(shipment.sizes.get(n, 0) for n in inline)
    for name in ordered:
        if total <= INLINE_TOTAL_BYTES:
            break
        total -= shipment.sizes.get(name, 0)
        shipment.large[name] = inline.pop(name)


def _reason(value: Any, exc: BaseException) -> str:
    message = str(exc).strip() or type(exc).__name__
    return f"a {type(value).__module__}.{type(value).__qualname__} cannot be pickled ({message})"


def _function_sources(values: list[Any]) -> dict[str, list[str]]:
    """Source lines of the notebook's functions, so a traceback through them on the worker shows them."""
    sources: dict[str, list[str]] = {}
    for value in values:
        for code in _code_objects(value):
            filename = code.co_filename
            if filename not in sources:
                lines = linecache.getlines(filename)
                if lines:
                    sources[filename] = lines
    return sources


def _code_objects(value: Any) -> list[types.CodeType]:
    if isinstance(value, types.FunctionType) and value.__module__ == "__main__":
        return [value.__code__]
    if isinstance(value, type) and value.__module__ == "__main__":
        return [m.__code__ for m in vars(value).values() if isinstance(m, types.FunctionType)]
    return []


def is_silent(source: str) -> bool:
    """IPython's rule: a cell whose last line ends with `;` does not display its value."""
    lines = [line.split("#", 1)[0].rstrip() for line in source.strip().splitlines()]
    lines = [line for line in lines if line]
    return bool(lines) and lines[-1].endswith(";")


def format_bytes(size: float) -> str:
    """1536 -> '1.5 KB' (decimal units, as Dask shows memory)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
