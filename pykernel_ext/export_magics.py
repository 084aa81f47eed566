"""IPython syntax -> plain Python, for `pykernel-ext export`: shell lines, line magics, cell magics.

Only what has a plain equivalent is translated; everything else is commented out and reported, so an
exported script never silently does less than the notebook without saying so. No IPython import here:
the exporter reads IPython syntax, it does not run it.
"""
from __future__ import annotations

import io
import re
import shlex
import tokenize
from dataclasses import dataclass, field
from typing import Any

# Magics that only change how a notebook shows or reloads things: dropped with a note, no warning.
NOTEBOOK_ONLY = frozenset({"matplotlib", "autoreload", "aimport", "config"})
INSTALLERS = frozenset({"pip", "conda", "mamba"})
# Cell magics whose body is plain Python the script runs as is (the magic only hides or profiles output).
PASS_THROUGH_CELLS = frozenset({"capture", "prun"})
INSTALL_COMMANDS = frozenset({"install", "uninstall", "remove", "update", "upgrade", "create", "download"})
SHELL_CELLS = {"bash": "/bin/bash", "sh": None}

# The magics IPython and ipykernel define (IPython 8-9), and ours. A notebook that calls another one fails
# there with a UsageError, unless an extension it loads defines it: the script then fails the same way.
KNOWN_LINE_MAGICS = frozenset("""
    alias alias_magic autoawait autocall autoindent automagic autosave bookmark cat cd clear code_wrap colors
    conda config connect_info cp cpaste debug dhist dirs doctest_mode ed edit env gui hist history
    killbgscripts ldir less lf lk ll load load_ext loadpy logoff logon logstart logstate logstop ls lsmagic lx
    macro magic mamba man matplotlib micromamba mkdir more mv notebook page paste pastebin pdb pdef pdoc pfile
    pinfo pinfo2 pip popd pprint precision prun psearch psource pushd pwd pycat pylab qtconsole quickref recall
    rehashx reload_ext rep rerun reset reset_selective rm rmdir run save sc set_env sx system tb time timeit
    unalias unload_ext uv who who_ls whos xdel xmode autoreload aimport remote_jobs remote_pull
    remote_push remote_session""".split())
KNOWN_CELL_MAGICS = frozenset("""
    ! HTML SVG bash capture code_wrap debug file html javascript js latex markdown perl prun pypy python
    python2 python3 ruby script sh svg sx system time timeit writefile track remote""".split())
# In `known` (the notebook's names): the notebook loads an extension other than ours and autoreload, so a
# magic we do not know may be one of its own.
OTHER_EXTENSIONS = "<extensions>"

_ASSIGN_MAGIC = re.compile(r"^(?P<target>[A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*)\s*=\s*(?P<rest>[!%].*)$")
_HELP_LINE = re.compile(r"^(\?{1,2}[\w.]+|[\w.]+\?{1,2})$")
_TIMEIT_OPTION = re.compile(r"^-(?:[nrp]\s*\S+|[tcqo])\s+")


@dataclass
class Translated:
    """Python lines for some IPython source, what they need imported, and what could not be translated."""

    lines: list[str] = field(default_factory=list)
    imports: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    changed: bool = False
    translated: set[int] = field(default_factory=set)  # indices of the lines made from IPython syntax

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def merge(self, other: "Translated") -> None:
        self.translated |= {len(self.lines) + i for i in range(len(other.lines))}
        self.lines += other.lines
        self.imports |= other.imports
        self.problems += other.problems
        self.changed = self.changed or other.changed

    def show_last(self, wrapper: str) -> None:
        """Pass the trailing expression to `wrapper(...)` as the notebook displays it (not a translated
        line: `!cmd` shows its output, not a value)."""
        self.lines = wrap_last_expression(self.text.rstrip(), wrapper, skip_lines=self.translated).split("\n")


def split_cell_magic(source: str) -> tuple[str, str, str] | None:
    """(name, option line, body) of a `%%name options` cell, else None."""
    if not source.startswith("%%"):
        return None
    first, _, body = source.partition("\n")
    name, _, line = first[2:].partition(" ")
    return name.strip(), line.strip(), body


def translate_lines(source: str, known: set[str]) -> Translated:
    """Translate the shell lines and line magics of Python source, line by line, keeping indentation.

    `known` holds the notebook's variable names: `$name` and `{expr}` in a command expand (as IPython
    expands them) only when they name notebook variables, so `!echo $HOME` stays a shell variable.
    """
    out = Translated()
    pending = ""  # Python text of a statement still open (brackets, strings, backslashes)
    for line in source.split("\n"):
        stripped = line.strip()
        if not pending and stripped and not stripped.startswith("#"):
            indent = line[: len(line) - len(line.lstrip())]
            piece = _translate_line(stripped, known)
            if piece is not None:
                out.merge(Translated([indent + text for text in piece.lines], piece.imports, piece.problems, True))
                continue
        out.lines.append(line)
        pending = pending + line + "\n" if _is_open(pending + line + "\n") else ""
    return out


def translate_cell_magic(name: str, line: str, body: str, known: set[str]) -> Translated | None:
    """Plain Python for a cell magic other than %%track/%%remote; None when it has no equivalent."""
    if name == "time":  # the body runs, timed; its value shows as the notebook shows it
        result = translate_lines(body, known)
        result.show_last("_export.show")
        result.lines = ["with _export.timed():  # %%time"] + indent_block(result.text.rstrip() or "pass")
        result.changed = True
        return result
    if name == "timeit":
        return _timeit_cell(line, body)
    if name in PASS_THROUGH_CELLS:
        result = translate_lines(body, known)
        note = f"# %%{name} {line}".rstrip() + ": the body runs as is"
        if name == "capture" and line.strip():
            note += f"; {line.split()[-1]} is not set in the script (output is not captured)"
        result.lines.insert(0, note)
        result.changed = True
        return result
    if name in SHELL_CELLS:
        executable = SHELL_CELLS[name]
        extra = f", executable={executable!r}" if executable else ""
        return Translated([f"subprocess.run({string_literal(body)}, shell=True, check=True{extra})"],
                          {"subprocess"}, changed=True)
    if name == "writefile":
        try:
            words = shlex.split(line)
        except ValueError:
            return None
        append = any(w in ("-a", "--append") for w in words)
        paths = [w for w in words if not w.startswith("-")]
        if len(paths) != 1:
            return None
        mode = "a" if append else "w"
        return Translated([f"with open({expand(paths[0], known)}, {mode!r}, encoding='utf-8') as _file:",
                           f"    _file.write({string_literal(body)})"], changed=True)
    return None


def _translate_line(stripped: str, known: set[str]) -> Translated | None:
    """The translation of one IPython-syntax line, or None for a plain Python line."""
    target = None
    match = _ASSIGN_MAGIC.match(stripped)
    if match and not stripped.startswith(("!", "%")):
        target, stripped = match.group("target"), match.group("rest")
    if _HELP_LINE.match(stripped):
        return _untranslatable(stripped, "help lines (`obj?`) are interactive")
    if stripped.startswith("!"):
        command = stripped.lstrip("!")
        return _shell(command, target, known, stripped)
    if stripped.startswith("%") and not stripped.startswith("%%"):
        name, _, args = stripped[1:].partition(" ")
        try:
            return _line_magic(name, args.strip(), target, known, stripped)
        except ValueError as exc:  # shlex: unbalanced quotes
            return _untranslatable(stripped, f"cannot split its arguments ({exc})")
    return None


def _installs(words: list[str]) -> bool:
    """`pip install ...`, `conda create ...`: changes to the environment, not work a script should redo
    (`pip list`, `conda env list` are plain commands)."""
    if words[:2] in (["python", "-m"], ["python3", "-m"]):
        words = words[2:]
    tool = words[:1]
    command = next((w for w in words[1:] if not w.startswith("-")), "")
    return tool in (["pip"], ["pip3"], ["conda"], ["mamba"]) and command in INSTALL_COMMANDS


def _shell(command: str, target: str | None, known: set[str], original: str) -> Translated:
    words = command.split()
    if _installs(words):
        return _untranslatable(original, "install packages in the script's environment beforehand")
    call = f"subprocess.run({expand(command, known)}, shell=True, check=True"
    if target is None:
        return Translated([call + ")"], {"subprocess"})
    return Translated([f"{target} = {call}, capture_output=True, text=True).stdout.splitlines()"], {"subprocess"})


def _line_magic(name: str, args: str, target: str | None, known: set[str], original: str) -> Translated:
    assigned = f"{target} = " if target else ""
    if name in ("system", "sx"):
        return _shell(args, target, known, original)
    if name == "time" and args:
        return Translated(["with _export.timed():  # %time", f"    {assigned}{args}"])
    if name == "timeit" and args:
        if target:
            return _untranslatable(original, "%timeit's result object has no plain equivalent")
        options, statement = _timeit_options(args)
        return Translated([f"_export.timeit({string_literal(statement)}, globals(){options})"])
    if target:
        return _untranslatable(original, f"the value of %{name} has no plain equivalent")
    if name == "cd":
        return _cd(args, known, original)
    if name == "env":
        return _env(args, known, original)
    if name in ("load_ext", "reload_ext"):
        if args.split() == ["pykernel_ext"]:
            return Translated([f"# {original}: not needed, the script imports pykernel_ext"])
        if args.split() == ["autoreload"]:
            return Translated([f"# {original}: notebook only"])
        return _untranslatable(original, "IPython extensions do not load in a plain script")
    if name in NOTEBOOK_ONLY:
        return Translated([f"# {original}: notebook only (plots: save them with savefig)"
                           if name == "matplotlib" else f"# {original}: notebook only"])
    if name in INSTALLERS:
        if _installs([name] + args.split()):
            return _untranslatable(original, "install packages in the script's environment beforehand")
        tool = "[sys.executable, '-m', 'pip']" if name == "pip" else repr([name])
        return Translated([f"subprocess.run({tool} + {shlex.split(args)!r}, check=True)"], {"subprocess", "sys"})
    if name == "run" and args and not args.startswith("-") and args.split()[0].endswith(".py"):
        words = shlex.split(args)
        run = f"globals().update(runpy.run_path({expand(words[0], known)}, run_name='__main__'))"
        if len(words) == 1:
            return Translated([run], {"runpy"})
        argv = ", ".join(expand(w, known) for w in words)
        return Translated([f"_argv, sys.argv = sys.argv, [{argv}]", run, "sys.argv = _argv"], {"runpy", "sys"})
    if name == "remote_jobs":
        return Translated(["print(pykernel_ext.remote.format_jobs())"], {"pykernel_ext.remote"})
    if name in ("remote_pull", "remote_push") and len(args.split()) >= 2:
        session, *names = args.split()
        method = name.removeprefix("remote_")
        return Translated([f"pykernel_ext.remote.session({session!r}).{method}({names!r}, globals())"],
                          {"pykernel_ext.remote"})
    if name == "remote_session":
        words = args.split()
        if not words or words == ["list"]:
            return Translated(["print(pykernel_ext.remote.format_sessions())"], {"pykernel_ext.remote"})
        if len(words) == 2 and words[0] == "close":
            target = "" if words[1] == "--all" else repr(words[1])
            return Translated([f"pykernel_ext.remote.close_session({target})"], {"pykernel_ext.remote"})
    if name not in KNOWN_LINE_MAGICS and OTHER_EXTENSIONS not in known:
        return unknown_magic(original, f"Line magic function `%{name}` not found.")
    return _untranslatable(original, f"%{name} has no plain-Python equivalent")


def unknown_magic(original: str, message: str) -> Translated:
    """A magic IPython does not know: the notebook stops there with a UsageError, and so does the script."""
    return Translated([f"raise _export.UsageError({message!r})  # {original}"],
                      problems=[f"`{original}`: {message} The notebook fails there; the script raises the same error"])


def _timeit_options(args: str) -> tuple[str, str]:
    """`-n 10 -r 3 stmt` -> (", number=10, repeat=3", "stmt")."""
    keywords = ""
    statement = args
    while _TIMEIT_OPTION.match(statement):
        option = _TIMEIT_OPTION.match(statement).group(0).split()
        if option[0][:2] == "-n":
            keywords += f", number={int(option[0][2:] or option[1])}"
        elif option[0][:2] == "-r":
            keywords += f", repeat={int(option[0][2:] or option[1])}"
        statement = _TIMEIT_OPTION.sub("", statement, count=1)
    return keywords, statement


def _timeit_cell(line: str, body: str) -> Translated:
    """`%%timeit [options] [setup]` + body -> `_export.timeit(body, globals(), setup=...)`; like IPython it
    times the body in its own scope, so what it assigns stays there."""
    options, setup = _timeit_options(line)
    setup_arg = f", setup={string_literal(setup)}" if setup.strip() else ""
    return Translated([f"_export.timeit({string_literal(body)}, globals(){setup_arg}{options})  # %%timeit"],
                      changed=True)


def _cd(args: str, known: set[str], original: str) -> Translated:
    words = shlex.split(args) if args else ["~"]
    if len(words) != 1 or words[0].startswith("-"):
        return _untranslatable(original, "only `%cd DIR` translates")
    path = expand(words[0], known)
    return Translated([f"os.chdir(os.path.expanduser({path}))" if words[0].startswith("~") else f"os.chdir({path})"],
                      {"os"})


def _env(args: str, known: set[str], original: str) -> Translated:
    if not args:
        return Translated(["print(dict(os.environ))"], {"os"})
    key, sep, value = args.partition("=")
    if not sep:
        key, _, value = args.partition(" ")
        if not value.strip():
            return Translated([f"print(os.environ[{key.strip()!r}])"], {"os"})
    return Translated([f"os.environ[{key.strip()!r}] = {expand(value.strip(), known)}"], {"os"})


def _untranslatable(original: str, why: str) -> Translated:
    return Translated([f"# {original}  # not exported: {why}"], problems=[f"`{original}` commented out: {why}"])


def comment_out(source: str, why: str) -> list[str]:
    """Source as comments, headed by why it is not code."""
    return [f"# NOT EXPORTED ({why}):"] + [f"# {line}".rstrip() for line in source.splitlines()]


# ---- strings -------------------------------------------------------------------------------------


def expand(text: str, known: set[str]) -> str:
    """A Python expression for `text` with IPython's `$name` / `{expr}` expansion of notebook names.

    Expansions of names the notebook does not define stay literal, as IPython leaves them when the
    name is missing (so `$HOME` reaches the shell).
    """
    parts: list[tuple[bool, str]] = []  # (is_expression, text)
    position = 0
    for match in re.finditer(r"\{([^{}]*)\}|\$\$|\$([A-Za-z_]\w*(?:\.\w+)*)", text):
        expression = match.group(1) if match.group(1) is not None else match.group(2)
        if match.group(0) == "$$":
            parts += [(False, text[position:match.start()]), (False, "$")]
        elif expression and _names_known(expression, known):
            parts += [(False, text[position:match.start()]), (True, expression.strip())]
        else:
            parts.append((False, text[position:match.end()]))
        position = match.end()
    parts.append((False, text[position:]))
    if not any(is_expr for is_expr, _ in parts):
        return repr("".join(t for _, t in parts))
    if all('"' not in t and "\\" not in t for is_expr, t in parts if is_expr):
        body = "".join("{" + t + "}" if is_expr else _f_escape(t) for is_expr, t in parts)
        return f'f"{body}"'
    return " + ".join(f"str({t})" if is_expr else repr(t) for is_expr, t in parts if t)


def _names_known(expression: str, known: set[str]) -> bool:
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(expression).readline))
    except (tokenize.TokenError, SyntaxError):
        return False
    return any(t.type == tokenize.NAME and t.string in known for t in tokens)


def _f_escape(text: str) -> str:
    """`text` as the literal part of a double-quoted f-string."""
    for raw, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("{", "{{"), ("}", "}}")):
        text = text.replace(raw, escaped)
    return text


def string_literal(text: str) -> str:
    """A readable Python literal for `text` (a triple-quoted block for code), exactly equal to it."""
    import ast

    if "\n" in text and all(ch.isprintable() or ch in "\n\t" for ch in text):
        for quote in ('"""', "'''"):
            if quote not in text:
                body = text.replace("\\", "\\\\")
                if body.endswith(quote[0]):
                    body = body[:-1] + "\\" + quote[0]
                literal = f"{quote}\\\n{body}{quote}"
                try:
                    if ast.literal_eval(literal) == text:
                        return literal
                except (SyntaxError, ValueError):
                    pass
    return repr(text)


# ---- Python structure -----------------------------------------------------------------------------


def _is_open(text: str) -> bool:
    """Whether Python text ends inside a statement (open bracket, string or backslash continuation)."""
    try:
        for _ in tokenize.generate_tokens(io.StringIO(text).readline):
            pass
    except tokenize.TokenError:
        return True
    except (SyntaxError, IndentationError):
        return False
    return False


def string_continuation_lines(source: str) -> set[int]:
    """1-based numbers of the lines that continue a multi-line string (indenting them changes the string)."""
    inside: set[int] = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.STRING or token.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
                inside.update(range(token.start[0] + 1, token.end[0] + 1))
    except (tokenize.TokenError, SyntaxError):
        pass
    return inside


def indent_block(source: str, prefix: str = "    ") -> list[str]:
    """Lines of `source` indented for a `with` body; lines inside multi-line strings stay as they are."""
    keep = string_continuation_lines(source)
    return [line if (not line.strip() or number in keep) else prefix + line
            for number, line in enumerate(source.split("\n"), start=1)]


def wrap_last_expression(source: str, wrapper: str, skip_lines: set[int] = frozenset()) -> str:
    """`source` with its trailing top-level expression passed to `wrapper(...)`, as a notebook displays it.

    Left alone: a cell ending in `;` (Jupyter hides its value) and a trailing print()/display() call.
    """
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, ast.Expr) or last.end_lineno is None or last.end_col_offset is None:
        return source
    if last.lineno - 1 in skip_lines:
        return source
    value = last.value
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in ("print", "display"):
        return source
    lines = source.split("\n")
    end = lines[last.end_lineno - 1]
    end_col = len(end.encode("utf-8")[: last.end_col_offset].decode("utf-8", errors="replace"))
    if end[end_col:].lstrip().startswith(";"):
        return source
    start = lines[last.lineno - 1]
    start_col = len(start.encode("utf-8")[: last.col_offset].decode("utf-8", errors="replace"))
    lines[last.end_lineno - 1] = end[:end_col] + ")" + end[end_col:]
    start = lines[last.lineno - 1]
    lines[last.lineno - 1] = start[:start_col] + wrapper + "(" + start[start_col:]
    return "\n".join(lines)


# ---- %%track and %%remote -------------------------------------------------------------------------------


def track_cell(line: str, body: str, known: set[str]) -> Translated:
    """`%%track OPTIONS` + body -> `with pykernel_ext.track(...):` around the body's exact text.

    The `with` statement is the first line; `code_hash` parity is checked by the caller on the whole
    script (see export.build_script), which adds `code=` where the block's text would not hash the same.
    """
    import ast

    from .magic_options import TRACK_PARSER, parse_line

    try:
        args = parse_line(TRACK_PARSER, line)
    except Exception as exc:  # noqa: BLE001 - IPython's UsageError: the cell fails in the notebook too
        return _failed_cell(f"%%track {line}\n{body}", f"bad %%track options: {str(exc).splitlines()[0]}")
    stacked = split_cell_magic(body)  # `%%track` over `%%time`: the inner magic exports as it does alone
    inner = (translate_cell_magic(*stacked, known) if stacked else translate_lines(body, known))
    if inner is None:
        return _failed_cell(f"%%track {line}\n{body}", f"%%{stacked[0]} has no plain-Python equivalent")
    try:
        statements = ast.parse(inner.text).body
    except SyntaxError as exc:
        return _failed_cell(f"%%track {line}\n{body}", f"syntax error in line {exc.lineno}: {exc.msg}")
    block = indent_block(inner.text.rstrip())
    if not statements:
        block.append("    pass")
    kwargs = _track_kwargs(args, known)
    result = Translated([f"with pykernel_ext.track({', '.join(kwargs)}):"] + block, inner.imports, inner.problems)
    if inner.changed and not stacked:
        result.problems.append("IPython lines in a %%track body were translated; the run records the cell's "
                               "text, but finds parameters only in plain Python")
    return result


def remote_cell(line: str, body: str, known: set[str]) -> Translated:
    """`%%remote OPTIONS` + body -> `pykernel_ext.remote.remote(<body as a literal>, globals(), ...)`.

    `--no-wait` binds the returned job to `_remote_job` (and to --name when it is a Python name), as
    the magic does; otherwise the call assigns the cell's variables into the script's globals.
    """
    import ast

    from .magic_options import REMOTE_PARSER, parse_line

    try:
        expanded = _expanded_numbers(line, known)
        args = parse_line(REMOTE_PARSER, expanded.line)
    except Exception as exc:  # noqa: BLE001 - IPython's UsageError
        return _failed_cell(f"%%remote {line}\n{body}", f"bad %%remote options: {str(exc).splitlines()[0]}")
    inner = translate_lines(body, known)
    code, problems = body, list(inner.problems)
    if inner.changed:
        imports = [f"import {name}" for name in sorted(inner.imports) if not name.startswith("pykernel_ext")]
        code = "\n".join(imports + inner.lines)
        problems.append("IPython lines of the %%remote body were translated, so its code hash differs from "
                        "the notebook's")
    try:
        ast.parse(code)
    except SyntaxError as exc:
        return _failed_cell(f"%%remote {line}\n{body}", f"syntax error in line {exc.lineno}: {exc.msg}")
    kwargs = [f"gpus={expanded.value('gpus', args)}"] if args.gpus else []
    kwargs += [f"{key}={expanded.value(key, args)}" for key in ("cpus", "memory", "timeout")
               if getattr(args, key) is not None]
    if args.scheduler:
        kwargs.append(f"scheduler={expand(args.scheduler, known)}")
    kwargs += [f"{key}={getattr(args, key)!r}" for key in ("push", "pull") if getattr(args, key)]
    if args.no_wait:
        kwargs.append("wait=False")
    if args.session:  # the same session semantics: state stays on the worker across the script's calls
        kwargs.append(f"session={expand(args.session, known)}")
        if args.home_limit is not None:
            kwargs.append(f"home_bytes={expanded.value('home_limit', args)}")
    kwargs += _track_kwargs(args, known, remote=True)
    call = f"pykernel_ext.remote.remote({string_literal(code)}, globals(){''.join(', ' + k for k in kwargs)})"
    if args.no_wait:
        handle = "_remote_job = "
        if args.name and args.name.isidentifier():
            handle = f"{args.name} = {handle}"
        call = handle + call
        problems_note = "# --no-wait: call .result() on the handle before the script ends, or the work is lost"
        return Translated([problems_note] + call.split("\n"), {"pykernel_ext.remote"}, problems)
    return Translated(call.split("\n"), {"pykernel_ext.remote"}, problems)


@dataclass
class _ExpandedNumbers:
    """A %%remote line whose number and size options written with `$name` / `{expr}` of notebook names (IPython
    expands them before the magic parses the line) hold a placeholder, and the text expressions they stand for."""

    line: str
    expressions: dict[str, str]  # option destination -> Python expression

    def value(self, dest: str, args: Any) -> str:
        """The option's value as script code: the parsed number, or the expression parsed as the magic would."""
        if dest in self.expressions:
            return f"_export.remote_option({dest!r}, {self.expressions[dest]})"
        return _number(getattr(args, dest))


def _expanded_numbers(line: str, known: set[str]) -> _ExpandedNumbers:
    from .magic_options import NUMERIC_REMOTE_OPTIONS

    try:
        words = shlex.split(line)
    except ValueError:
        return _ExpandedNumbers(line, {})  # the parser says what is wrong with the quotes
    expressions: dict[str, str] = {}
    for index, word in enumerate(words):
        option, equals, value = word.partition("=")
        if equals and option in NUMERIC_REMOTE_OPTIONS:
            target, value_index = NUMERIC_REMOTE_OPTIONS[option], None
        elif word in NUMERIC_REMOTE_OPTIONS and index + 1 < len(words):
            target, value_index, value = NUMERIC_REMOTE_OPTIONS[word], index + 1, words[index + 1]
        else:
            continue
        expression = expand(value, known)  # IPython's expansion, as for every other option
        if expression != repr(value):
            expressions[target] = expression
            if value_index is None:
                words[index] = f"{option}=1"  # a placeholder every number and size option accepts
            else:
                words[value_index] = "1"
    return _ExpandedNumbers(shlex.join(words) if expressions else line, expressions)


def _track_kwargs(args, known: set[str], remote: bool = False) -> list[str]:
    kwargs = []
    if args.name:
        kwargs.append(f"name={expand(args.name, known)}")
    if args.params and remote:  # remote() takes the values
        kwargs.append(f"params=_export.named_params({args.params!r}, globals())")
    elif args.params:  # track() records them as %%track --params does, by name
        kwargs.append(f"param_names={args.params!r}")
    for key in ("data", "metrics", "artifacts"):
        values = getattr(args, key)
        if values:
            kwargs.append(f"{key}=[{', '.join(expand(v, known) for v in values)}]")
    if args.tag:
        kwargs.append("tags={" + ", ".join(f"{k!r}: {expand(v, known)}" for k, v in args.tag) + "}")
    return kwargs


def _number(value: float | int) -> str:
    return repr(int(value)) if float(value).is_integer() else repr(value)


def _failed_cell(source: str, why: str) -> Translated:
    return Translated(comment_out(source, why), problems=[f"{why}; the cell is commented out"])
