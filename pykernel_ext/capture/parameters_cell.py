"""The parameters cell of a notebook: one parser (`read_parameters`) decides what a parameter is, for
`pykernel-ext run` and for `pykernel-ext export` alike.

Every single-name assignment at the top of the cell is a parameter (`epochs = 20`, `lr: float = 1`,
`d = a == 3`), typed by its annotation or its literal default; its help is the trailing comment, or the
comment lines right above it (the cell's opening comment is a heading, not help).
"""
from __future__ import annotations

import ast
import io
import json
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PARAMETERS_TAG = "parameters"
KINDS = ("int", "float", "str", "bool", "list", "dict", "any")
_NO_DEFAULT = object()


@dataclass(frozen=True)
class Parameter:
    """One assignment of the parameters cell."""

    name: str
    kind: str  # int | float | str | bool | list | dict | any
    default: str  # the default's source text
    help: str = ""
    literal: Any = _NO_DEFAULT  # the default's value when it is a literal

    @property
    def has_literal(self) -> bool:
        return self.literal is not _NO_DEFAULT


def read_parameters(source: str) -> list[Parameter]:
    """The parameters a `parameters` cell defines, in order (a name assigned twice: its last value)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    comments = _comments_by_line(source)
    opening = _opening_comment_lines(tree, comments)
    found: dict[str, Parameter] = {}
    for node in tree.body:
        target, annotation = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target = node.targets[0].id
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, annotation = node.target.id, ast.unparse(node.annotation).strip("'\"")
        if target is None or node.value is None:
            continue
        literal = _literal(node.value)
        kind = annotation if annotation in KINDS else _kind_of(literal)
        found.pop(target, None)
        found[target] = Parameter(target, kind, ast.get_source_segment(source, node.value) or ast.unparse(node.value),
                                  _help(node, comments, opening), literal)
    return list(found.values())


def _literal(value: ast.expr) -> Any:
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _NO_DEFAULT


def _kind_of(literal: Any) -> str:
    for kind, types in (("bool", bool), ("int", int), ("float", float), ("str", str), ("list", (list, tuple)),
                        ("dict", dict)):
        if literal is not _NO_DEFAULT and isinstance(literal, types):
            return kind
    return "any"


def _help(node: ast.stmt, comments: dict[int, tuple[bool, str]], opening: set[int]) -> str:
    trailing = comments.get(node.end_lineno or node.lineno)
    if trailing and trailing[0]:
        return trailing[1]
    above, line = [], node.lineno - 1
    while line in comments and not comments[line][0] and comments[line][1] and line not in opening:
        above.insert(0, comments[line][1])
        line -= 1
    return " ".join(above)


def _opening_comment_lines(tree: ast.Module, comments: dict[int, tuple[bool, str]]) -> set[int]:
    """The comment lines before the cell's first statement: a heading (`# Parameters`), not help."""
    first = tree.body[0].lineno if tree.body else 1 << 30
    return {line for line, (trailing, _) in comments.items() if not trailing and line < first}


def _comments_by_line(source: str) -> dict[int, tuple[bool, str]]:
    """line -> (comment trails code, comment text)."""
    found: dict[int, tuple[bool, str]] = {}
    lines = source.split("\n")
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                row, col = token.start
                found[row] = (bool(lines[row - 1][:col].strip()), token.string.lstrip("#").strip())
    except (tokenize.TokenError, SyntaxError):
        pass
    return found


def parameters_cell(notebook: dict[str, Any]) -> str | None:
    """The source of the notebook's first cell tagged `parameters`, if any."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code" and PARAMETERS_TAG in (cell.get("metadata", {}).get("tags") or []):
            source = cell.get("source", "")
            return "".join(source) if isinstance(source, list) else source
    return None


def notebook_parameters(notebook: Path | dict[str, Any]) -> dict[str, Parameter]:
    """The parameters of a notebook (a path or its parsed JSON), by name."""
    if not isinstance(notebook, dict):
        try:
            notebook = json.loads(Path(notebook).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the parameters of {notebook}: {exc}") from None
    source = parameters_cell(notebook)
    return {p.name: p for p in read_parameters(source)} if source else {}


def literal_defaults(spec: dict[str, Parameter]) -> dict[str, Any]:
    """The defaults that are literals: with the values given, what a notebook run records as its
    parameters (an expression such as `str(model) + "_data"` has no value before the notebook runs)."""
    return {name: p.literal for name, p in spec.items() if p.has_literal}
