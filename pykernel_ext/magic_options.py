"""The option lines of `%%track` and `%%remote`: one parser each, shared by the magics and the exporter.

Free of IPython (the exporter and tests use it outside a kernel): a mistake raises MagicOptionError, which the
magic layer shows as IPython's UsageError.
"""
from __future__ import annotations

import argparse
import shlex

from .errors import PykernelExtError
from .tracking import TrackOptions


class MagicOptionError(PykernelExtError):
    """A mistake in a magic's option line; the message holds the usage (the magic layer shows it as IPython's
    UsageError, the exporter as a note)."""


class _MagicArgumentParser(argparse.ArgumentParser):
    """argparse that raises MagicOptionError (with the usage) instead of exiting the process."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise MagicOptionError(f"{self.prog}: {message}\n\n{self.format_usage().strip()}\n"
                               f"Run `{self.prog}?` for the full help.")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise MagicOptionError(message or self.format_help())


def _comma_list(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    for name in names:
        if not name.isidentifier():
            raise argparse.ArgumentTypeError(f"{name!r} is not a Python name")
    return names


def _key_value(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{value!r} is not KEY=VALUE")
    return key.strip(), val.strip()


def add_track_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every tracked cell takes (`%%track`, and `%%remote` on top of its own)."""
    parser.add_argument("--name", help="a name for the run (default: notebook name and execution count)")
    parser.add_argument("--params", type=_comma_list, action="extend", default=[], metavar="a,b",
                        help="names whose values to record as parameters, beyond those detected")
    parser.add_argument("--data", nargs="+", action="extend", default=[], metavar="PATH",
                        help="files or folders the cell reads; content-hashed (must exist)")
    parser.add_argument("--metrics", type=_comma_list, action="extend", default=[], metavar="a,b",
                        help="names whose numeric values at the end are recorded as metrics")
    parser.add_argument("--artifacts", nargs="+", action="extend", default=[], metavar="GLOB",
                        help="files to store with the run when it ends (globs, ** allowed)")
    parser.add_argument("--tag", nargs="+", action="extend", type=_key_value, default=[], metavar="KEY=VALUE",
                        help="tags for filtering runs")


def make_parser(prog: str, description: str) -> _MagicArgumentParser:
    return _MagicArgumentParser(prog=prog, description=description, add_help=False, allow_abbrev=False)


TRACK_PARSER = make_parser("%%track", "Run the cell as usual and record it as a run.")
add_track_arguments(TRACK_PARSER)


_PARSED: dict[tuple[int, str], argparse.Namespace] = {}


def parse_line(parser: argparse.ArgumentParser, line: str) -> argparse.Namespace:
    # argparse costs ~0.1 ms of a ~1 ms budget; a cell's line rarely changes between runs and parsing is
    # deterministic, so each distinct line is parsed once (a copy is returned: callers may change lists).
    key = (id(parser), line.strip())
    parsed = _PARSED.get(key)
    if parsed is None:
        if not key[1]:
            parsed = parser.parse_args([])
        else:
            try:
                words = shlex.split(line)
            except ValueError as exc:
                parser.error(f"cannot split the option line ({exc}); check the quotes")
            parsed = parser.parse_args(words)
        if len(_PARSED) > 512:
            _PARSED.clear()
        _PARSED[key] = parsed
    return argparse.Namespace(**{k: (list(v) if isinstance(v, list) else v) for k, v in vars(parsed).items()})


def track_options(args: argparse.Namespace) -> TrackOptions:
    return TrackOptions(name=args.name, param_names=args.params, data=args.data, metrics=args.metrics,
                        artifacts=args.artifacts, tags=dict(args.tag))


_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
               "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def _size(value: str) -> int:
    import re

    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", value)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(f"{value!r} is not a size such as 16GB or 512MiB")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def _count(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is negative")
    return number


def _seconds(value: str) -> float:
    number = _count(value)
    if number == 0:
        raise argparse.ArgumentTypeError("a timeout must be more than 0 seconds")
    return number


REMOTE_PARSER = make_parser("%%remote", "Run the cell on a worker of a Dask cluster and record it as a run.")
REMOTE_PARSER.add_argument("--gpus", type=_count, default=0, metavar="N", help="GPUs the worker must give the cell")
REMOTE_PARSER.add_argument("--cpus", type=_count, default=None, metavar="N", help="CPU threads the cell needs")
REMOTE_PARSER.add_argument("--memory", type=_size, default=None, metavar="SIZE", help="memory the cell needs (16GB)")
REMOTE_PARSER.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler (tcp://host:8786, tls://...)")
REMOTE_PARSER.add_argument("--push", type=_comma_list, action="extend", default=[], metavar="a,b",
                           help="send these variables too, beyond those the cell's code reads")
REMOTE_PARSER.add_argument("--pull", type=_comma_list, action="extend", default=[], metavar="a,b",
                           help="bring back only these variables (default: every name the cell assigns)")
REMOTE_PARSER.add_argument("--timeout", type=_seconds, default=None, metavar="S",
                           help="stop the cell after S seconds from submission")
REMOTE_PARSER.add_argument("--no-wait", action="store_true",
                           help="return at once; the handle (--name, else _remote_job) has .result()")
REMOTE_PARSER.add_argument("--session", metavar="NAME",
                           help="run in remote session NAME: its namespace stays on one worker across cells "
                                "(started on first use, holding --gpus/--cpus/--memory)")
REMOTE_PARSER.add_argument("--home-limit", type=_size, default=None, metavar="SIZE",
                           help="in a session, assigned values up to SIZE also come home (default 1MB); "
                                "bigger ones stay until pulled")
add_track_arguments(REMOTE_PARSER)


# %%remote's options that take a number or a size, by destination.
NUMERIC_REMOTE_OPTIONS = {"--gpus": "gpus", "--cpus": "cpus", "--memory": "memory", "--timeout": "timeout",
                          "--home-limit": "home_limit"}


def remote_option_value(dest: str, value: object) -> object:
    """`value` as `%%remote --OPTION $value` takes it once IPython has expanded the variable into the line
    (`dest` is the option's destination, `gpus` or `home_limit`)."""
    option = next(o for o, d in NUMERIC_REMOTE_OPTIONS.items() if d == dest)
    return getattr(parse_line(REMOTE_PARSER, f"{option} {shlex.quote(str(value))}"), dest)
