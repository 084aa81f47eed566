"""What a remote cell takes with it: the names it reads that the notebook defines, as ONE object graph (see
`graph`), checked before anything is sent, so a value that cannot travel stops the cell with its name and
the reason.
"""
from __future__ import annotations

import linecache
import re
import types
from dataclasses import dataclass, field
from typing import Any

from ..capture.code import SHELL_NAMES, analyze_names, code_closure
from .errors import RemoteUsageError, ShippingError
from .graph import Mirror, Packed, measure, pack
from ..records import CellPayload

LARGE_VALUE_BYTES = 100 * 1024 * 1024  # warn: sending this takes a noticeable time
# Graphs up to this size travel inside the task; bigger ones go straight to the worker beside it (Dask warns
# about tasks over 10 MB). Either way it is one graph: the size never changes what arrives.
INLINE_BYTES = 1024 * 1024

# IPython's output history (`_`, `_3`, `_i3`, `_oh`, ...): never data of the cell.
_HISTORY_NAME = re.compile(r"^_+$|^_i+\d*$|^_\d+$|^_(oh|ih|dh|ii|iii)$")


@dataclass
class Shipment:
    """A cell ready to send: the task payload, its inputs as one packed graph, and notes for the user.

    `mirror` remembers what was sent, so that what comes back refers to the notebook's own objects."""

    payload: CellPayload
    inputs: Packed
    mirror: Mirror
    names: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def inline(self) -> bool:
        return self.inputs.nbytes <= INLINE_BYTES


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
    """Pack every value in `names` as one graph; raises ShippingError (naming the value) before sending."""
    values = {name: namespace[name] for name in names}
    mirror = Mirror("home", weak_only=False, track_changes=False)
    try:
        inputs = pack(values, mirror)
    except Exception as exc:  # noqa: BLE001 - find the value that cannot travel and say why
        raise _shipping_error(values, exc) from None
    shipment = Shipment(payload=payload, inputs=inputs, mirror=mirror, names=list(values))
    if inputs.nbytes > LARGE_VALUE_BYTES:
        biggest = ", ".join(sorted(values, key=lambda n: _size_hint(values[n]), reverse=True)[:3])
        shipment.notes.append(f"sending {format_bytes(inputs.nbytes)} to the worker ({biggest}); large values "
                              "take time to send; load data on the worker, or keep it there with --session")
    payload.source_lines = _function_sources(list(values.values()))
    return shipment


def _shipping_error(values: dict[str, Any], exc: BaseException) -> ShippingError:
    # Plain values first, so a lock that a notebook function reads is reported by its own name rather than
    # as the function's failure.
    ordered = sorted(values, key=lambda n: isinstance(values[n], (types.FunctionType, type)))
    for name in ordered:
        try:
            measure(values[name])
        except Exception as inner:  # noqa: BLE001
            return ShippingError(name, _reason(values[name], inner))
    return ShippingError(", ".join(values) or "(the cell's values)", _reason(None, exc))


def _size_hint(value: Any) -> int:
    return int(getattr(value, "nbytes", 0) or 0)


def _reason(value: Any, exc: BaseException) -> str:
    message = str(exc).strip() or type(exc).__name__
    if value is None:
        return f"the values cannot be pickled together ({message})"
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
