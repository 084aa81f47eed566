"""`pykernel-ext export NOTEBOOK [-o SCRIPT]`: a notebook as a plain Python script for production.

The script keeps the notebook's code at module level, in cell order. The `parameters` cell becomes a
command line (typed options, help from its comments); options given replace the defaults right after
that cell, as papermill's injected cell does. `%%track` cells become `with pykernel_ext.track(...)` blocks
around the cell's exact text, so a run records the same code hash and parameters as the notebook's;
`%%remote` cells become calls of `pykernel_ext.remote.remote`. See `export_magics` for the rest.

The second half of this module is what exported scripts call at run time (`cli_bool`, `parse_parameters`,
`named_params`, `show`); it imports nothing heavy.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
import textwrap
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .capture.notebook import notebook_code_text
from .capture.parameters_cell import Parameter, literal_defaults, notebook_parameters, read_parameters
from .export_magics import string_literal
from .errors import PykernelExtError

SKIP_TAG = "skip-export"
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


class ExportError(PykernelExtError):
    """The notebook cannot be exported (missing, not a notebook, not Python, or the output is unsafe)."""


@dataclass
class ExportResult:
    path: Path
    script: str
    warnings: list[str] = field(default_factory=list)
    cells: int = 0


# ---- the command -----------------------------------------------------------------------------------


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebook", metavar="NOTEBOOK", help="the .ipynb file to export")
    parser.add_argument("-o", "--output", metavar="SCRIPT",
                        help="the script to write (default: NOTEBOOK with a .py suffix; folders are created)")


def register_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `export` to the `pykernel-ext` command (its handler returns the exit status)."""
    parser = subparsers.add_parser(
        "export", help="turn a notebook into a plain Python script with a command line",
        description="Turn a notebook into a plain Python script: the `parameters` cell becomes command-line "
                    "options, %%track cells become `with pykernel_ext.track()` blocks recording the same runs, "
                    "%%remote cells call pykernel_ext.remote.remote. Cells tagged `skip-export` are left out.")
    add_export_arguments(parser)
    parser.set_defaults(handler=cmd_export)
    return parser


def cmd_export(args: argparse.Namespace) -> int:
    try:
        result = export_notebook(args.notebook, args.output)
    except ExportError as exc:
        print(f"pykernel-ext export: {exc}", file=sys.stderr)
        return 2
    for message in result.warnings:
        print(f"pykernel-ext export: warning: {message}", file=sys.stderr)
    notes = f", {len(result.warnings)} warning(s)" if result.warnings else ""
    print(f"wrote {result.path} ({result.cells} cells{notes}); run it with: python {result.path} --help")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m pykernel_ext.export NOTEBOOK [-o SCRIPT]`, the same as `pykernel-ext export`."""
    parser = argparse.ArgumentParser(prog="pykernel-ext export", description="Turn a notebook into a script.")
    add_export_arguments(parser)
    return cmd_export(parser.parse_args(argv))


def export_notebook(notebook: str | os.PathLike, output: str | os.PathLike | None = None) -> ExportResult:
    """Write the script for `notebook` (default path: the notebook's, with .py); raises ExportError."""
    source = Path(notebook)
    target = Path(output) if output else source.with_suffix(".py")
    if not source.is_file():
        raise ExportError(f"notebook {str(source)!r} does not exist" if not source.exists()
                          else f"{str(source)!r} is not a file")
    if target.resolve() == source.resolve() or target.suffix == ".ipynb":
        raise ExportError(f"refusing to write a script over a notebook ({target}); give -o SCRIPT.py")
    if target.is_dir():
        raise ExportError(f"{target} is a folder; give -o the script's file name")
    nb = read_notebook(source)
    script, messages, cells = build_script(nb, source, target)
    try:
        compile(script, str(target), "exec")
    except SyntaxError as exc:  # a translation bug: say so rather than write a broken script
        raise ExportError(f"the exported script does not compile (line {exc.lineno}: {exc.msg}); please "
                          "report this with the notebook") from None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(script, encoding="utf-8")
        partial.chmod(0o755)
        partial.replace(target)
    except OSError as exc:
        raise ExportError(f"cannot write {target}: {exc}") from None
    return ExportResult(target, script, messages, cells)


def read_notebook(path: Path) -> Any:
    """The notebook at `path` as nbformat v4, validated; ExportError for anything that is not one."""
    import nbformat
    from nbformat import reader

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"cannot read {path}: {exc}") from None
    try:
        nb = nbformat.convert(reader.reads(text), 4)
        nbformat.validate(nb)
    except reader.NotJSONError:
        raise ExportError(f"{path} is not a notebook: it is not JSON") from None
    except nbformat.ValidationError as exc:
        raise ExportError(f"{path} is not a valid notebook: {exc.message}") from None
    except Exception as exc:  # noqa: BLE001 - nbformat raises several kinds for JSON that is no notebook
        raise ExportError(f"{path} is not a notebook: {type(exc).__name__}: {exc}") from None
    language = (nb.metadata.get("kernelspec", {}).get("language")
                or nb.metadata.get("language_info", {}).get("name") or "python")
    if language.lower() != "python":
        raise ExportError(f"{path} is a {language} notebook; only Python notebooks export to scripts")
    return nb


# ---- the script ---------------------------------------------------------------------------------------

_STDLIB = ("argparse", "os", "runpy", "subprocess", "sys")


def build_script(nb: Any, notebook: Path, script: Path) -> tuple[str, list[str], int]:
    """(script text, warnings naming cells, exported cell count) for a notebook."""
    builder = _ScriptBuilder(nb, notebook, script)
    for index, cell in enumerate(nb.cells, start=1):
        builder.add(index, cell)
    return builder.finish(), builder.warnings, builder.exported


class _ScriptBuilder:
    def __init__(self, nb: Any, notebook: Path, script: Path) -> None:
        self.notebook_name, self.script_name = notebook.name, script.name
        self.regenerate = f"pykernel-ext export {notebook} -o {script}"
        self.body: list[str] = []
        self.imports: set[str] = {"argparse"}
        self.warnings: list[str] = []
        self.parameters: list[Parameter] | None = None
        self.tracks: list[tuple[int, str]] = []  # (index in body of the `with` line, the cell's body)
        self.exported = 0
        self.known, self.needs_display = _notebook_names(nb)
        # What `pykernel-ext run` records for this notebook, so the script's run records the same.
        self.code = notebook_code_text(nb)
        self.defaults = literal_defaults(notebook_parameters(nb))

    def add(self, index: int, cell: Any) -> None:
        from . import export_magics as em

        # One newline convention: a \r would end a line of a comment the script is given.
        source = cell.source.replace("\r\n", "\n").replace("\r", "\n")
        tags = list(cell.metadata.get("tags", []))
        if not source.strip():
            return
        first = next(line.strip() for line in source.split("\n") if line.strip())
        label = f"cell {index} (`{first if len(first) <= 50 else first[:47] + '...'}`)"
        if cell.cell_type == "markdown":
            self._emit([f"# {line}".rstrip() for line in source.split("\n")])
            return
        if cell.cell_type != "code":
            return
        is_parameters = PARAMETERS_TAG in tags and self.parameters is None
        if SKIP_TAG in tags:
            self._emit([f"# ---- cell {index}: left out (tagged {SKIP_TAG})"]
                       + (["globals().update(_PARAMETERS)"] if is_parameters else []))
            self.parameters = [] if is_parameters else self.parameters
            return
        if INJECTED_TAG in tags:
            self.warnings.append(f"{label}: papermill's injected parameters are left out; give them as options")
            self._emit([f"# ---- cell {index}: papermill's injected parameters, left out (give them as options)"])
            return
        magic = em.split_cell_magic(source)
        if magic and magic[0] == "track":
            code = em.track_cell(magic[1], magic[2], self.known)
            if code.lines and code.lines[0].startswith("with "):
                self.tracks.append((len(self.body) + 2, magic[2]))  # after a blank and the header
        elif magic and magic[0] == "remote":
            code = em.remote_cell(magic[1], magic[2], self.known)
        elif magic and magic[0] not in em.KNOWN_CELL_MAGICS and em.OTHER_EXTENSIONS not in self.known:
            code = em.unknown_magic(first, f"Cell magic `%%{magic[0]}` not found.")
        elif magic:
            code = em.translate_cell_magic(*magic, self.known) or em.Translated(
                em.comment_out(source, f"%%{magic[0]} has no plain-Python equivalent"),
                problems=[f"%%{magic[0]} has no plain-Python equivalent; the cell is commented out"])
        else:
            code = self._plain(source)
        if is_parameters:
            self.parameters = read_parameters(code.text)
            code.lines.append("globals().update(_PARAMETERS)  # the options given replace the defaults above")
        header = f"# ---- cell {index}" + (f" [{', '.join(tags)}]" if tags else "")
        self._emit([header + (f": {first}" if magic else "")] + code.lines)
        self.imports |= code.imports
        self.warnings += [f"{label}: {problem}" for problem in code.problems]
        self.exported += 1

    def _plain(self, source: str) -> Any:
        from . import export_magics as em

        code = em.translate_lines(source, self.known)
        try:
            ast.parse(code.text)
        except SyntaxError as exc:
            why = f"syntax error in line {exc.lineno}: {exc.msg}"
            return em.Translated(em.comment_out(source, why), problems=[f"{why}; the cell is commented out"])
        code.show_last("_export.show")
        if re.search(r"\bget_ipython\s*\(", code.text):
            code.problems.append("calls get_ipython(), which a plain script does not have")
        return code

    def _emit(self, lines: list[str]) -> None:
        from .export_magics import indent_block

        self.body += [""] + indent_block("\n".join(lines))

    def finish(self) -> str:
        from .export_magics import indent_block

        header = "\n".join(self._header()).split("\n")  # one entry per line (the notebook code spans many)
        # The cells run inside the notebook's run (a `with` block), one level deeper than they were emitted.
        body = indent_block("\n".join(self.body)) if self.body else ["        pass"]
        lines = header + body
        self._check_code_hashes(lines, len(header))
        return "\n".join(lines).rstrip() + "\n"

    def _header(self) -> list[str]:
        nb_name, script = _plain_name(self.notebook_name), _plain_name(self.script_name)
        stdlib = [f"import {name}" for name in _STDLIB if name in self.imports]
        ours = ["import pykernel_ext"] + (["import pykernel_ext.remote"] if "pykernel_ext.remote" in self.imports
                                          else []) + ["from pykernel_ext import export as _export"]
        display = ["from IPython.display import display"] if self.needs_display else []
        taken = {"-h", "--help", "-f", "--params-file"}
        arguments = []
        for parameter in self.parameters or []:
            if f"--{parameter.name}" in taken:
                self.warnings.append(f"parameter {parameter.name!r} clashes with the --{parameter.name} option "
                                     "of every script; it is not a command-line option")
                continue
            arguments.append(argument_line(parameter, taken))
            taken.add(f"--{parameter.name}")
        about = textwrap.wrap(
            f"Run it with `python {script} [--NAME VALUE ...]`: `--help` lists the notebook's parameters; "
            "those not given keep the notebook's values; `-f FILE` reads values from YAML or JSON. Tracked "
            "cells record the same runs as in the notebook (`pykernel-ext runs list`). Edit the notebook and "
            "export it again rather than editing this file:", 100, break_on_hyphens=False)
        return [
            "#!/usr/bin/env python",
            f'"""{script}: the notebook {nb_name}, exported by `pykernel-ext export`.',
            "", *about, "", f"    {_plain_name(self.regenerate)}", '"""',
            *stdlib, "", *ours, *display, "", "",
            "def _parse_parameters(argv=None):",
            '    """The parameters given on the command line or in -f FILE (the rest keep the notebook\'s values)."""',
            f"    parser = argparse.ArgumentParser(description={_quoted(f'{nb_name} as a script.')},",
            "                                     argument_default=argparse.SUPPRESS)",
            '    parser.add_argument("-f", "--params-file", dest="_params_file", metavar="FILE",',
            '                        help="YAML or JSON mapping of parameter values (options given here win)")',
            *arguments,
            "    return _export.parse_parameters(parser, argv)",
            "", "",
            "# What `pykernel-ext run` records for the notebook (its code, its parameters' literal defaults): the",
            "# script's own run records the same, so `pykernel-ext runs diff` compares the two as equals.",
            f"_NOTEBOOK = {_quoted(nb_name)}",
            f"_NOTEBOOK_DEFAULTS = {self.defaults!r}",
            f"_NOTEBOOK_CODE = {string_literal(self.code)}",
            "", "",
            "# The notebook's code runs only when this file is run as a script: worker processes (Dask's",
            "# for %%remote, multiprocessing's) import it again and must not rerun it.",
            'if __name__ == "__main__":',
            "    _PARAMETERS = _parse_parameters()",
            "    with _export.notebook_run(_NOTEBOOK, _NOTEBOOK_CODE, {**_NOTEBOOK_DEFAULTS, **_PARAMETERS}):",
        ]

    def _check_code_hashes(self, lines: list[str], offset: int) -> None:
        """Give `code=` to the track blocks whose text, as track() reads it back, would hash differently
        from the notebook cell (comments around the code, translated lines, an empty body)."""
        import linecache

        from .capture.code import code_hash, with_block_source

        filename = f"<pykernel-ext export {id(lines)}>"
        text = "\n".join(lines) + "\n"
        linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
        try:
            for index, body in self.tracks:
                number = offset + index
                read_back = with_block_source(filename, number + 1)
                if read_back is None or code_hash(read_back) != code_hash(body):
                    line = lines[number]
                    joiner = "" if line.endswith("():") else ", "
                    lines[number] = f"{line[:-2]}{joiner}code={body!r}):"
        finally:
            linecache.cache.pop(filename, None)


def _notebook_names(nb: Any) -> tuple[set[str], bool]:
    """Names the notebook's code assigns (for `$name` expansion) and whether it calls display() unimported."""
    from . import export_magics as em
    from .capture.code import analyze_names

    writes: set[str] = set()
    calls_display = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for loaded in re.findall(r"^\s*%(?:re)?load_ext\s+(\S+)", cell.source, flags=re.MULTILINE):
            if loaded not in ("pykernel_ext", "autoreload"):
                writes.add(em.OTHER_EXTENSIONS)
        magic = em.split_cell_magic(cell.source)
        body = magic[2] if magic else cell.source
        text = em.translate_lines(body, set()).text
        calls_display = calls_display or bool(re.search(r"(?<![\w.])display\s*\(", text))
        try:
            writes.update(analyze_names(text).writes)
        except SyntaxError:
            continue
    return writes, calls_display and "display" not in writes


def _quoted(text: str) -> str:
    """A double-quoted Python string literal for `text` (JSON's escaping is Python's for these)."""
    return json.dumps(text, ensure_ascii=False)


def _plain_name(name: str) -> str:
    return name.replace("\\", "/").replace('"', "'")


# ---- the parameters cell -----------------------------------------------------------------------------

_TYPES = {"int": ("int", "INT"), "float": ("float", "FLOAT"), "str": ("str", "TEXT"),
          "bool": ("_export.cli_bool", "BOOL"), "list": ("_export.cli_list", "LIST"),
          "dict": ("_export.cli_dict", "DICT"), "any": ("_export.cli_value", "VALUE")}


def argument_line(parameter: Parameter, taken: set[str]) -> str:
    """The `parser.add_argument(...)` line of one parameter (its `--snake_case` and `--kebab-case` flags)."""
    converter, metavar = _TYPES[parameter.kind]
    flags = [f"--{parameter.name}"]
    if "_" in parameter.name.strip("_") and f"--{parameter.name.replace('_', '-')}" not in taken:
        flags.append(f"--{parameter.name.replace('_', '-')}")
    default = parameter.default if len(parameter.default) <= 60 else parameter.default[:57] + "..."
    text = f"{parameter.help} (default: {default})" if parameter.help else f"default: {default}"
    flag_text = ", ".join(_quoted(f) for f in flags)
    return (f"    parser.add_argument({flag_text}, type={converter}, metavar={json.dumps(metavar)}, "
            f"help={_quoted(text.replace('%', '%%'))})")


# ---- used by exported scripts at run time ----------------------------------------------------------

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def cli_bool(text: str) -> bool:
    """A boolean option value: true/false, 1/0, yes/no, on/off (any case)."""
    lowered = str(text).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true/false, 1/0, yes/no)")


def cli_value(text: str) -> Any:
    """Any option value: JSON, else a YAML literal, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        import yaml

        return yaml.safe_load(text)
    except Exception:  # noqa: BLE001 - not YAML either: the text is the value
        return text


def cli_list(text: str) -> list:
    value = cli_value(text)
    if not isinstance(value, list):
        raise argparse.ArgumentTypeError(f"{text!r} is not a list (JSON or YAML, such as [1, 2])")
    return value


def cli_dict(text: str) -> dict:
    value = cli_value(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r} is not a mapping (JSON or YAML, such as {{\"a\": 1}})")
    return value


def parse_parameters(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> dict[str, Any]:
    """The parameters given on the command line or in `-f FILE` (options win over the file)."""
    given = vars(parser.parse_args(argv))
    params_file = given.pop("_params_file", None)
    if params_file:
        given = {**_read_params_file(parser, params_file), **given}
    return given


def notebook_run(notebook: str, code: str, parameters: dict[str, Any]) -> Any:
    """The run of the whole script (kind `script`): the notebook's parameters and code, as
    `pykernel-ext run` records the notebook; its tracked blocks are its children."""
    from .blocks import notebook_run as _notebook_run

    return _notebook_run(notebook, code, parameters)


def _read_params_file(parser: argparse.ArgumentParser, path: str) -> dict[str, Any]:
    import yaml

    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        parser.error(f"cannot read parameters file {path}: {exc}")
    if not isinstance(values, dict):
        parser.error(f"parameters file {path} must hold a mapping of name: value")
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in ("help", "_params_file")}
    converted = {}
    for name, value in values.items():
        action = actions.get(name)
        if action is None:
            parser.error(f"{path}: {name!r} is not a parameter of this script (parameters: {', '.join(actions)})")
        try:
            if isinstance(value, str) and action.type is not None:
                value = action.type(value)
            elif action.type is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            elif action.type is cli_bool and not isinstance(value, bool):
                value = cli_bool(str(value))
        except (argparse.ArgumentTypeError, ValueError) as exc:
            parser.error(f"{path}: {name}: {exc}")
        converted[name] = value
    return converted


def remote_option(dest: str, value: Any) -> Any:
    """A `%%remote` number or size option the notebook gave as `$name` or `{expr}`, parsed as the magic
    parses it after IPython's expansion (`--gpus $gpus`, `--memory {mem}`)."""
    from .magic_options import remote_option_value

    return remote_option_value(dest, value)


def named_params(names: list[str], namespace: dict[str, Any]) -> dict[str, Any]:
    """What `%%track --params a,b` records: each name's value (JSON-like, else its repr)."""
    from .capture.params import params_from_namespace

    found: dict[str, Any] = {}
    for name in names:
        if name in namespace:
            found[name] = params_from_namespace([name], namespace).get(name, repr(namespace[name])[:200])
        else:
            warnings.warn(f"--params names {name!r}, which is not defined", stacklevel=2)
    return found


class UsageError(Exception):
    """What IPython raises for a magic it does not know; an exported script raises it at the same line."""


def show(value: Any) -> None:
    """What the notebook displayed as a cell's result: the value's repr, nothing for None."""
    if value is not None:
        print(repr(value))


class timed:  # noqa: N801 - used as `with _export.timed():`, like IPython's %time
    """`%time` / `%%time`: run the block, then print its CPU and wall time as IPython does."""

    def __enter__(self) -> "timed":
        import time

        self._wall, self._cpu = time.perf_counter(), os.times()
        return self

    def __exit__(self, *exc: object) -> bool:
        import time

        wall, cpu = time.perf_counter() - self._wall, os.times()
        user, system = cpu.user - self._cpu.user, cpu.system - self._cpu.system
        print(f"CPU times: user {_seconds(user)}, sys: {_seconds(system)}, total: {_seconds(user + system)}\n"
              f"Wall time: {_seconds(wall)}")
        return False


def timeit(statement: str, namespace: dict[str, Any], setup: str = "pass", number: int | None = None,
           repeat: int = 7) -> None:
    """`%timeit` / `%%timeit`: time `statement` (in its own scope, as IPython does) and print the result."""
    import statistics
    import timeit as _timeit

    timer = _timeit.Timer(statement, setup=setup, globals=namespace)
    if number is None:
        number, _ = timer.autorange()
    per_loop = [t / number for t in timer.repeat(repeat=repeat, number=number)]
    spread = statistics.stdev(per_loop) if len(per_loop) > 1 else 0.0
    runs = "run" if repeat == 1 else "runs"
    loops = "loop" if number == 1 else "loops"
    print(f"{_seconds(statistics.mean(per_loop))} ± {_seconds(spread)} per loop (mean ± std. dev. of {repeat} {runs}, "
          f"{number} {loops} each)")


def _seconds(value: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


if __name__ == "__main__":
    sys.exit(main())
