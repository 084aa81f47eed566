"""The code closure of a run: the code its cell (or block) reaches, so a run can be understood and re-run
without the rest of the notebook.

- Functions and classes defined in the notebook, followed transitively (with their decorators, bases and
  the classes of the objects the cell uses, such as a model built in an earlier cell), with their source.
- The user's own modules (source files outside the Python installation) the code calls into, with each
  file's content hash; the tracking layer stores the source once, content-addressed.
- The library names the code reads (`np`, `nn`, `DataLoader`), as the import statements that rebind them.

A notebook class has no source file `inspect` can find (IPython keeps cells in `linecache` under a name
per cell); its methods' code objects point at that cell, where `ast` finds the `class` statement. The
same works under JupyterLab's ipykernel, nbconvert and papermill, and in scripts `inspect` finds it.
"""
from __future__ import annotations

import ast
import dis
import functools
import inspect
import linecache
import os
import site
import sys
import sysconfig
import textwrap
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .code import code_hash, is_notebook_defined

MAX_ENTRIES = 500  # a safety bound on the walk; a notebook reaches far fewer
_SOURCE_KEY = "_source"  # module source text carried from the walk to the store, never recorded inline


@dataclass
class CodeClosure:
    """What a cell's code reaches.

    `entries`: notebook functions/classes (name, kind, source, hash) and user modules (name, kind="module",
    path, hash, blob). `globals_read`: other namespace names the notebook functions read (a learning rate
    a training function uses is a parameter of the cell that calls it). `imports`: statements that
    rebind the library names the code reads. `warnings`: what could not be recorded faithfully.
    """

    entries: list[dict[str, Any]]
    globals_read: list[str]
    imports: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def code_closure(reads: tuple[str, ...] | list[str], namespace: dict[str, Any], module_name: str = "__main__",
                 base: Path | None = None) -> CodeClosure:
    """The closure reachable from the names a cell reads; `base` is the folder module paths are shown
    relative to (the run's working folder)."""
    walk = _ClosureWalk(namespace, module_name, Path(base) if base else Path.cwd())
    walk.run([n for n in reads if n in namespace])
    reads_set = set(reads)
    globals_read = [g for g in walk.globals_read if g not in walk.seen and g not in reads_set]
    return CodeClosure(list(walk.seen.values()) + list(walk.modules.values()), globals_read,
                       list(dict.fromkeys(walk.imports.values())), walk.warnings)


def store_module_sources(entries: list[dict[str, Any]], put_text: Callable[[str], str] | None) -> None:
    """Move each module entry's source text into the blob store (once per content), keeping its digest."""
    for entry in entries:
        source = entry.pop(_SOURCE_KEY, None)
        if source is not None and put_text is not None:
            entry["blob"] = put_text(source)


def with_module_sources(code: dict[str, Any], read_text: Callable[[str], str]) -> dict[str, Any]:
    """`code` with each module entry's `source` read back from its blob (for diffs, views, reproduce)."""
    closure = []
    for entry in code.get("closure") or []:
        if entry.get("kind") == "module" and entry.get("source") is None and entry.get("blob"):
            try:
                entry = {**entry, "source": read_text(entry["blob"])}
            except Exception as exc:  # noqa: BLE001 - a store copied without its blobs: say so in place
                entry = {**entry, "error": f"source blob {entry['blob'][:12]} unreadable: {exc}"}
        closure.append(entry)
    return {**code, "closure": closure}


class _ClosureWalk:
    def __init__(self, namespace: dict[str, Any], module_name: str, base: Path) -> None:
        self.namespace = namespace
        self.module_name = module_name
        self.base = base
        self.seen: dict[str, dict[str, Any]] = {}  # notebook functions and classes, by name
        self.modules: dict[str, dict[str, Any]] = {}  # user module files, by module name
        self.imports: dict[str, str] = {}  # name -> import statement
        self.globals_read: dict[str, None] = {}
        self.warnings: list[str] = []

    def run(self, names: list[str]) -> None:
        pending = list(names)
        visited: set[str] = set()
        while pending and len(self.seen) + len(self.modules) < MAX_ENTRIES:
            name = pending.pop(0)
            if name in visited:
                continue
            visited.add(name)
            try:
                used_names = self._visit(name, self.namespace.get(name))
            except Exception as exc:  # noqa: BLE001 - one odd object must not lose the rest of the closure
                self.warnings.append(f"code closure: {name} skipped ({type(exc).__name__}: {exc})")
                continue
            for used in used_names:
                if used in self.namespace and used not in visited:
                    pending.append(used)
                    if not is_notebook_defined(_unwrap(self.namespace[used]), self.module_name):
                        self.globals_read.setdefault(used)

    def _visit(self, name: str, obj: Any) -> list[str]:
        """Record `obj` (bound to `name`); returns the namespace names its code uses."""
        target = _unwrap(obj)
        if is_notebook_defined(target, self.module_name):
            return self._notebook_object(name, target)
        if isinstance(obj, types.ModuleType):
            self._module(obj, name)
            return []
        if isinstance(target, (types.FunctionType, types.BuiltinFunctionType, type)):
            self._library_or_user_object(name, target)
            return []
        return self._instance(obj)

    def _notebook_object(self, name: str, obj: Any) -> list[str]:
        entry = closure_entry(name, obj)
        self.seen[name] = entry
        return _global_names_used(obj) + _decorator_and_base_names(entry.get("source"))

    def _instance(self, obj: Any) -> list[str]:
        """An object the cell uses (a model, a dataset, an optimizer): the classes its behaviour comes from."""
        used = []
        for cls in _instance_classes(obj):
            if is_notebook_defined(cls, self.module_name):
                bound = cls.__name__
                if self.namespace.get(bound) is cls:
                    used.append(bound)
                elif bound not in self.seen:
                    self.seen[bound] = closure_entry(bound, cls)
                    used += _global_names_used(cls)
            else:
                module = sys.modules.get(getattr(cls, "__module__", "") or "")
                if module is not None:
                    self._user_module(module)
        return used

    def _module(self, module: types.ModuleType, name: str) -> None:
        self._user_module(module)  # a module of the user's own is code of the run, besides being imported
        statement = _import_module_statement(module, name)
        if statement:
            self.imports[name] = statement

    def _library_or_user_object(self, name: str, obj: Any) -> None:
        module_name = getattr(obj, "__module__", None)
        module = sys.modules.get(module_name or "")
        if module is None or module_name == "builtins":
            return
        self._user_module(module)
        statement = _import_object_statement(obj, module, name)
        if statement:
            self.imports[name] = statement

    def _user_module(self, module: types.ModuleType, depth: int = 0) -> bool:
        """Record `module` when it is the user's own source file, and the user modules it uses."""
        path = user_module_file(module)
        if path is None:
            return False
        if module.__name__ in self.modules or len(self.modules) >= MAX_ENTRIES:
            return True
        entry = _module_entry(module, path, self.base)
        self.modules[module.__name__] = entry
        stale = entry.pop("stale", None)
        if stale:
            recorded = ("the run records the source that was loaded" if stale == "loaded" else
                        "the recorded source is the file's, which may not be the code that ran")
            self.warnings.append(f"module {module.__name__} ({entry['path']}) changed on disk since it was imported: "
                                 f"{recorded} (reload it, or use %autoreload)")
        if depth < 8:
            for inner in _modules_used_by(module):
                self._user_module(inner, depth + 1)
        return True


# ---- notebook functions and classes -------------------------------------------------------------


def closure_entry(name: str, obj: Any) -> dict[str, Any]:
    """One notebook function or class: its source (dedented) and hash, or why there is none."""
    kind = "class" if isinstance(obj, type) else "function"
    source = class_source(obj) if kind == "class" else _function_source(obj)
    if source is None:
        return {"name": name, "kind": kind, "source": None, "hash": None,
                "error": "source not available (defined by exec() or in a file that no longer exists)"}
    return {"name": name, "kind": kind, "source": source, "hash": code_hash(source)}


def _function_source(func: Any) -> str | None:
    try:
        return textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return None


def class_source(cls: type) -> str | None:
    """The `class` statement of `cls`, decorators included: from its file, else from the notebook cell
    its methods were compiled from, else from the newest cell that defines a class of that name."""
    try:
        return textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        pass
    for code in _method_codes(cls):
        found = _class_in_lines(linecache.getlines(code.co_filename), cls.__name__, code.co_firstlineno)
        if found:
            return found
    for lines in _cell_sources_newest_first():
        found = _class_in_lines(lines, cls.__name__, None)
        if found:
            return found
    return None


def class_functions(cls: type) -> list[types.FunctionType]:
    """The functions a class holds itself: its methods, static and class methods, property accessors."""
    found = []
    for member in vars(cls).values():
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        candidates = [member.fget, member.fset, member.fdel] if isinstance(member, property) else [member]
        found += [f for f in candidates if isinstance(f, types.FunctionType)]
    return found


def _method_codes(cls: type) -> Iterator[types.CodeType]:
    for func in map(_unwrap, class_functions(cls)):
        if isinstance(func, types.FunctionType) and getattr(func, "__qualname__", "").startswith(cls.__qualname__):
            yield func.__code__


def _class_in_lines(lines: list[str], name: str, line: int | None) -> str | None:
    """The source of the class `name` in `lines` (the one spanning `line`, innermost, when given)."""
    if not lines:
        return None
    try:
        tree = ast.parse("".join(lines))
    except SyntaxError:
        return None
    # Spanning `line`, the innermost; without a line, the last definition (the one that won).
    candidates = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef) and node.name == name
                  and (line is None or node.lineno <= line <= (node.end_lineno or node.lineno))]
    best = max(candidates, key=lambda node: node.lineno, default=None)
    if best is None:
        return None
    first = min([best.lineno] + [d.lineno for d in best.decorator_list])
    return textwrap.dedent("".join(lines[first - 1:best.end_lineno]))


def _cell_sources_newest_first() -> Iterator[list[str]]:
    # IPython caches every cell in linecache with mtime None (so `checkcache` never drops it), in run order.
    entries = [entry for entry in list(linecache.cache.values()) if len(entry) == 4 and entry[1] is None]
    for entry in reversed(entries):
        yield entry[2]


def _global_names_used(obj: Any) -> list[str]:
    if isinstance(obj, types.FunctionType):
        return _code_global_names(obj.__code__)
    names: list[str] = []
    if isinstance(obj, type):
        names += [base.__name__ for base in obj.__bases__]
        for code in _method_codes(obj):
            names += _code_global_names(code)
    return names


@functools.lru_cache(maxsize=4096)
def _code_global_names(code: types.CodeType) -> list[str]:
    """The global names a code object (and the functions and comprehensions nested in it) loads.

    `co_names` also holds attribute names (`self.lr`, `model.train()`), which would make a global `lr` look
    read; the bytecode says which names are loaded as globals."""
    names = [i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += _code_global_names(const)
    return names


def _decorator_and_base_names(source: str | None) -> list[str]:
    """Names in the decorators (and a class's bases and keywords) of a definition's source: a notebook
    decorator such as `@timed` is code the function runs through, but its name is not in the code object."""
    if not source:
        return []
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    if not tree.body or not isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return []
    node = tree.body[0]
    exprs = list(node.decorator_list)
    if isinstance(node, ast.ClassDef):
        exprs += node.bases + [k.value for k in node.keywords]
    return [n.id for expr in exprs for n in ast.walk(expr) if isinstance(n, ast.Name)]


def _instance_classes(obj: Any, limit: int = 200) -> list[type]:
    """The classes whose code an object runs: its type; for a torch module, its submodules' types; for a
    DataLoader or a dataset wrapper, the dataset's type."""
    if obj is None or isinstance(obj, (str, bytes, int, float, bool, list, tuple, dict, set, types.ModuleType)):
        return []
    classes: dict[type, None] = {type(obj): None}
    if _has_class(obj, "torch", "Module"):
        try:
            for index, sub in enumerate(obj.modules()):
                if index >= limit:
                    break
                classes.setdefault(type(sub))
        except Exception:  # noqa: BLE001 - a module whose traversal fails still has its own class
            pass
    for attribute in ("dataset", "datasets"):
        inner = getattr(obj, attribute, None) if _has_class(obj, "torch", "DataLoader", "Dataset", "Subset",
                                                              "ConcatDataset") else None
        for item in (inner if isinstance(inner, (list, tuple)) else [inner]):
            if item is not None:
                classes.setdefault(type(item))
    return list(classes)


def _has_class(obj: Any, package: str, *names: str) -> bool:
    return any(c.__name__ in names and str(getattr(c, "__module__", "")).partition(".")[0] == package
               for c in type(obj).__mro__)


def _unwrap(obj: Any) -> Any:
    if isinstance(obj, types.FunctionType):
        try:
            return inspect.unwrap(obj)
        except ValueError:
            return obj
    return obj


# ---- user modules ---------------------------------------------------------------------------------


def _library_roots() -> tuple[str, ...]:
    if not _LIBRARY_ROOTS:
        paths = set(sysconfig.get_paths().values())
        paths |= {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
        try:
            paths |= set(site.getsitepackages()) | {site.getusersitepackages()}
        except AttributeError:  # virtualenv's old site.py
            pass
        _LIBRARY_ROOTS.extend(sorted({os.path.realpath(p) for p in paths if p}))
    return tuple(_LIBRARY_ROOTS)


_LIBRARY_ROOTS: list[str] = []
_OURS = os.path.realpath(Path(__file__).resolve().parent.parent)


def user_module_file(module: types.ModuleType) -> Path | None:
    """The source file of one of the user's own modules (outside the standard library, site-packages and
    this package), else None."""
    file = getattr(module, "__file__", None)
    if not isinstance(file, str) or not file.endswith(".py"):
        return None
    real = os.path.realpath(file)
    if real.startswith(_OURS + os.sep) or any(real.startswith(root + os.sep) for root in _library_roots()):
        return None
    return Path(real) if os.path.isfile(real) else None


_module_cache: dict[str, tuple[int, int, str, str]] = {}  # path -> (size, mtime_ns, source, hash)
# module name -> (identity of its loaded functions and classes, the source and hash read when it was loaded)
_loaded: dict[str, tuple[tuple[int, ...], str, str]] = {}


def _module_entry(module: types.ModuleType, path: Path, base: Path) -> dict[str, Any]:
    """A user module's file: the source that was loaded. A file edited after its module was (re)loaded is
    not what runs, so the source read when the module's current functions appeared is kept, with a note."""
    st = path.stat()
    disk_source, disk_hash = _read_source(path, st)
    identity = _loaded_identity(module)
    known = _loaded.get(module.__name__)
    if identity and known and known[0] == identity:
        source, digest = known[1], known[2]
        stale = "loaded" if digest != disk_hash else None
    else:
        source, digest = disk_source, disk_hash
        stale = "file" if _changed_since_import(module, st) else None
        if identity:
            _loaded[module.__name__] = (identity, source, digest)
    return {"name": module.__name__, "kind": "module", "path": _label(path, base), "hash": digest,
            "blob": None, "source": None, _SOURCE_KEY: source, "stale": stale}


def _read_source(path: Path, st: os.stat_result) -> tuple[str, str]:
    cached = _module_cache.get(str(path))
    if cached and cached[:2] == (st.st_size, st.st_mtime_ns):
        return cached[2], cached[3]
    source = path.read_text(encoding="utf-8", errors="replace")
    digest = code_hash(source)
    _module_cache[str(path)] = (st.st_size, st.st_mtime_ns, source, digest)
    return source, digest


def _loaded_identity(module: types.ModuleType) -> tuple[int, ...]:
    """The ids of the functions and classes the module defines: `importlib.reload` replaces them all."""
    return tuple(id(v) for v in list(vars(module).values())
                 if isinstance(v, (types.FunctionType, type)) and getattr(v, "__module__", None) == module.__name__)


def _label(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _changed_since_import(module: types.ModuleType, st: os.stat_result) -> bool:
    """Whether the source changed after the module was compiled: the bytecode cache records the source's
    mtime and size it was compiled from (a timestamp-based .pyc)."""
    cached = getattr(module, "__cached__", None)
    if not cached:
        return False
    try:
        with open(cached, "rb") as f:
            header = f.read(16)
    except OSError:
        return False
    if len(header) < 16 or int.from_bytes(header[4:8], "little") != 0:
        return False  # hash-based pyc, or none: nothing to compare
    mtime, size = int.from_bytes(header[8:12], "little"), int.from_bytes(header[12:16], "little")
    return (mtime, size) != (int(st.st_mtime) & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF)


def _modules_used_by(module: types.ModuleType) -> Iterator[types.ModuleType]:
    for value in list(vars(module).values()):
        if isinstance(value, types.ModuleType):
            yield value
        elif isinstance(value, (types.FunctionType, type)):
            owner = sys.modules.get(getattr(value, "__module__", "") or "")
            if owner is not None and owner is not module:
                yield owner


# ---- imports ----------------------------------------------------------------------------------------


def _import_module_statement(module: types.ModuleType, name: str) -> str | None:
    full = module.__name__
    if full == "__main__":
        return None
    if name == full:
        return f"import {full}"
    if "." not in full or full.rsplit(".", 1)[1] != name:
        return f"import {full} as {name}"
    package, last = full.rsplit(".", 1)
    return f"from {package} import {last}"


def _import_object_statement(obj: Any, module: types.ModuleType, name: str) -> str | None:
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not qualname or "." in qualname or "<" in qualname or getattr(module, qualname, None) is not obj:
        return None
    public = _public_module(obj, module, qualname)
    return f"from {public} import {qualname}" + (f" as {name}" if name != qualname else "")


def _public_module(obj: Any, module: types.ModuleType, qualname: str) -> str:
    """The shortest parent package that exports the same object (`torch.utils.data`, not its
    `dataloader` submodule), for a readable import."""
    parts = module.__name__.split(".")
    for length in range(1, len(parts)):
        parent = sys.modules.get(".".join(parts[:length]))
        if parent is not None and getattr(parent, qualname, None) is obj:
            return parent.__name__
    return module.__name__
