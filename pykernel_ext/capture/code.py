"""What a cell's code reads and writes, its code hash, and the body of a script's `with track():` block.

The code closure (what the code reaches beyond its own text) lives in `closure.py`.
"""
from __future__ import annotations

import ast
import functools
import textwrap
import types
from dataclasses import dataclass, field
from typing import Any

# Namespaces IPython and Jupyter put in every kernel; never parameters or data of a run.
SHELL_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open", "display", "__builtins__"})


@dataclass(frozen=True)
class CellNames:
    """Module-level names a cell reads before assigning them, and the names it assigns."""

    reads: tuple[str, ...]
    writes: tuple[str, ...]
    imports: tuple[str, ...] = field(default=())
    # Names the cell changes in place (`losses.append(x)`, `d[k] = v`, `total += x`): its state, not its
    # parameters, however parameter-like their value looks before it runs.
    changed: tuple[str, ...] = field(default=())


def normalize_source(source: str) -> str:
    """The form a code hash is taken of: dedented, trailing blanks stripped.

    A `%%track` cell body and the same body inside an exported `with track():` block hash equal.
    """
    lines = [line.rstrip() for line in textwrap.dedent(source).strip("\n").splitlines()]
    return "\n".join(lines).strip("\n") + "\n"


def code_hash(source: str) -> str:
    import blake3

    return blake3.blake3(normalize_source(source).encode("utf-8")).hexdigest()


# Cell magics whose body is Python the kernel runs in the notebook's namespace: stacked under %%track
# (`%%track` then `%%time`), the body is what the run's code reads and writes.
PYTHON_BODY_MAGICS = frozenset({"time", "timeit", "capture", "prun", "memit", "track"})


def peel_cell_magics(source: str) -> tuple[list[tuple[str, str]], str]:
    """The Python-body cell magics stacked at the top of `source` (name, option line), and the body."""
    magics: list[tuple[str, str]] = []
    while source.startswith("%%"):
        first, _, rest = source.partition("\n")
        name, _, line = first[2:].partition(" ")
        if name.strip() not in PYTHON_BODY_MAGICS:
            break
        magics.append((name.strip(), line.strip()))
        source = rest
    return magics, source


def magic_assignments(magics: list[tuple[str, str]]) -> list[str]:
    """Names the stacked magics themselves assign (`%%capture out` binds `out`)."""
    names = []
    for name, line in magics:
        words = [w for w in line.split() if not w.startswith("-")]
        if name == "capture" and words and words[-1].isidentifier():
            names.append(words[-1])
    return names


@functools.lru_cache(maxsize=512)
def analyze_names(python_source: str) -> CellNames:
    """Names read and written at module level, in source order. Raises SyntaxError on bad code."""
    tree = ast.parse(python_source)
    collector = _NameCollector()
    for stmt in tree.body:
        collector.visit(stmt)
    return CellNames(tuple(collector.reads), tuple(collector.writes), tuple(collector.imports),
                     tuple(collector.changed))


# Methods of lists, dicts, sets and deques that change the object they are called on.
_CHANGING_METHODS = frozenset({"append", "extend", "insert", "remove", "pop", "clear", "sort", "reverse", "update",
                               "setdefault", "popitem", "add", "discard", "appendleft", "extendleft", "popleft"})


class _NameCollector(ast.NodeVisitor):
    """Collects reads and writes in execution order (a value is read before its target is written)."""

    def __init__(self) -> None:
        self.reads: dict[str, None] = {}
        self.writes: dict[str, None] = {}
        self.imports: dict[str, None] = {}
        self.changed: dict[str, None] = {}

    def _read(self, name: str) -> None:
        if name not in self.writes and name not in SHELL_NAMES:
            self.reads.setdefault(name)

    def _write(self, name: str) -> None:
        self.writes.setdefault(name)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._read(node.id)
        else:
            self._write(node.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.target)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.attr in _CHANGING_METHODS:
            self.changed.setdefault(func.value.id)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if not isinstance(node.ctx, ast.Load) and isinstance(node.value, ast.Name):
            self.changed.setdefault(node.value.id)  # `d[k] = v`, `del d[k]`
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):
            self._read(node.target.id)
            self.changed.setdefault(node.target.id)
        self.visit(node.value)
        self.visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.visit(node.target)

    def visit_For(self, node: ast.For) -> None:
        self.visit(node.iter)
        self.visit(node.target)
        for stmt in node.body + node.orelse:
            self.visit(stmt)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            name = alias.asname or alias.name.split(".")[0]
            self._write(name)
            self.imports.setdefault(name)

    visit_ImportFrom = visit_Import

    def _visit_scope(self, node: ast.AST, own_names: set[str]) -> None:
        # A nested function, lambda or comprehension reads the module names it uses and does not
        # define itself; its own assignments stay local.
        inner = _NameCollector()
        for child in ast.iter_child_nodes(node):
            inner.visit(child)
        local = own_names | set(inner.writes)
        for name in inner.reads:
            if name not in local:
                self._read(name)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            self.visit(default)
        body = ast.Module(body=node.body, type_ignores=[])
        self._visit_scope(body, _argument_names(node.args))
        self._write(node.name)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for default in node.args.defaults:
            self.visit(default)
        self._visit_scope(node.body, _argument_names(node.args))

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in node.decorator_list + node.bases + [k.value for k in node.keywords]:
            self.visit(expr)
        self._visit_scope(ast.Module(body=node.body, type_ignores=[]), set())
        self._write(node.name)

    def _visit_comprehension(self, node: ast.AST) -> None:
        generators = node.generators  # type: ignore[attr-defined]
        self.visit(generators[0].iter)  # the first iterable is evaluated in the enclosing scope
        targets: set[str] = set()
        for gen in generators:
            targets |= {n.id for n in ast.walk(gen.target) if isinstance(n, ast.Name)}
        self._visit_scope(node, targets)

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _visit_comprehension


def _argument_names(args: ast.arguments) -> set[str]:
    every = args.posonlyargs + args.args + args.kwonlyargs
    names = {a.arg for a in every}
    if args.vararg:
        names.add(args.vararg.arg)
    if args.kwarg:
        names.add(args.kwarg.arg)
    return names


# ---- code closure (capture/closure.py; kept importable from here) ------------------------------------


def code_closure(reads, namespace, module_name: str = "__main__", base=None):
    """See `closure.code_closure`."""
    from .closure import code_closure as _closure

    return _closure(reads, namespace, module_name, base)


def is_notebook_defined(obj: Any, module_name: str = "__main__") -> bool:
    """See `closure.is_notebook_defined`."""
    if isinstance(obj, (types.FunctionType, type)):
        return getattr(obj, "__module__", None) == module_name
    return False


def with_block_source(filename: str, lineno: int) -> str | None:
    """The body of the `with` statement at `lineno` of a script, as written (for `track()` blocks)."""
    import linecache

    lines = linecache.getlines(filename)
    if not lines:
        return None
    try:
        tree = ast.parse("".join(lines))
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, (ast.With, ast.AsyncWith)) and node.lineno <= lineno <= (node.end_lineno or node.lineno):
            if node.lineno == lineno or any(item.context_expr.lineno == lineno for item in node.items):
                first, last = _block_lines(lines, node)
                return textwrap.dedent("".join(lines[first - 1:last]))
    return None


def _block_lines(lines: list[str], node: ast.With | ast.AsyncWith) -> tuple[int, int]:
    """First and last line of a `with` body, comments included: the AST starts at the first statement
    and ends at the last, but a cell body's leading and trailing comments are part of its code hash."""
    first = node.body[0].lineno
    header_end = max((item.context_expr.end_lineno or item.context_expr.lineno) for item in node.items)
    while first - 1 > header_end and _is_comment_or_blank(lines[first - 2]):
        first -= 1
    while first < node.body[0].lineno and not lines[first - 1].strip():
        first += 1  # blank lines right after the header are not the body's
    last = node.body[-1].end_lineno or node.body[-1].lineno
    indent = _indent(lines[node.body[0].lineno - 1])
    while last < len(lines) and _is_comment_or_blank(lines[last]) and (
            not lines[last].strip() or _indent(lines[last]) >= indent):
        last += 1
    while last > first and not lines[last - 1].strip():
        last -= 1
    return first, last


def _is_comment_or_blank(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())
