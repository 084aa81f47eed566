"""The run list's search syntax, parsed into a typed query (no SQL here; `query.py` turns it into SQL).

    lr=0.1   lr>0.01   loss<=0.2   model=resnet50   min(loss)<0.3   params.lr=0.1   metrics.loss<0.2
    status:failed   kind:remote   tag:example=spirals   tag:team   is:starred   is:archived
    notebook:sweep   name:train   free words

A `key=value` matches a parameter, a metric (its last value) or a tag with that key; `<`, `<=`, `>`, `>=`
compare numbers (parameters and metrics). Prefix the key with `params.`, `metrics.` or `tags.` to look in one
place only; `min(key)` and `max(key)` compare a metric's smallest or largest value. Free words must all
appear in the run's name, notebook, id, error, tags, parameters or note. Quote values holding spaces:
`name:"my run"`, `note="to check"`.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from ..records import KINDS, STATUSES

FLAGS = ("starred", "archived")
OPERATORS = ("<=", ">=", "!=", "=", "<", ">")
ORDERING_OPERATORS = ("<", "<=", ">", ">=")
SCOPES = {"param": "param", "params": "param", "metric": "metric", "metrics": "metric", "tag": "tag", "tags": "tag"}
MAX_TERMS = 20

SEARCH_HELP = (
    "lr=0.1 · lr>0.01 · loss<=0.2 · min(loss)<0.3 · status:failed · kind:remote · tag:example=spirals · "
    "is:starred · is:archived · notebook:NAME · free words (name, notebook, id, error, tags, params, note)"
)

_PREFIX = re.compile(r"^(status|kind|tag|is|notebook|name):(.*)$", re.IGNORECASE)
_COMPARISON = re.compile(r"^([^<>=!]+?)\s*(<=|>=|!=|=|<|>)\s*(.*)$", re.DOTALL)
_STAT = re.compile(r"^(min|max|last)\((.+)\)$", re.IGNORECASE)


class SearchError(ValueError):
    """A search the store cannot run: the message says what is wrong and how to write it."""


@dataclass(frozen=True)
class Comparison:
    """`key op value`: scope `any` looks at parameters, metrics and tags."""

    key: str
    op: str
    text: str
    number: float | None
    scope: str = "any"
    stat: str = "last"


@dataclass(frozen=True)
class Search:
    comparisons: tuple[Comparison, ...] = ()
    statuses: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    tags: tuple[tuple[str, str | None], ...] = ()
    notebooks: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    flags: frozenset[str] = field(default_factory=frozenset)
    words: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.comparisons or self.statuses or self.kinds or self.tags or self.notebooks or self.names
                    or self.flags or self.words)


def parse_number(text: str) -> float | None:
    """A number as the user typed it (`0.1`, `1e-3`, `32`), `true`/`false` as 1/0, else None."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return 1.0 if lowered == "true" else 0.0
    try:
        number = float(lowered)
    except ValueError:
        return None
    return number if number == number else None  # "nan" orders nothing


def parse_search(text: str | None) -> Search:
    """Parse the search box's text; SearchError names the term that is wrong."""
    tokens = _tokens(text or "")
    if len(tokens) > MAX_TERMS:
        raise SearchError(f"the search has {len(tokens)} terms; use at most {MAX_TERMS}")
    parts: dict[str, list] = {k: [] for k in ("comparisons", "statuses", "kinds", "tags", "notebooks", "names",
                                              "flags", "words")}
    for token in tokens:
        prefixed = _PREFIX.match(token)
        if prefixed:
            _prefixed_term(prefixed.group(1).lower(), prefixed.group(2), token, parts)
            continue
        compared = _COMPARISON.match(token)
        if compared:
            parts["comparisons"].append(_comparison(*compared.groups(), token))
            continue
        parts["words"].append(token)
    return Search(comparisons=tuple(parts["comparisons"]), statuses=tuple(parts["statuses"]),
                  kinds=tuple(parts["kinds"]), tags=tuple(parts["tags"]), notebooks=tuple(parts["notebooks"]),
                  names=tuple(parts["names"]), flags=frozenset(parts["flags"]), words=tuple(parts["words"]))


def _tokens(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.escape = ""  # a backslash is a character of the value (a Windows path), not an escape
    try:
        raw = list(lexer)
    except ValueError:
        raise SearchError(f"unbalanced quote in the search {text!r}: close it (name:\"my run\")") from None
    # `lr = 0.1` (spaces around the operator) reads as `lr=0.1`.
    tokens: list[str] = []
    for token in raw:
        if tokens and (token in OPERATORS or tokens[-1].endswith(OPERATORS)) and not _PREFIX.match(tokens[-1]):
            tokens[-1] += token
        else:
            tokens.append(token)
    return tokens


def _prefixed_term(prefix: str, value: str, token: str, parts: dict[str, list]) -> None:
    if not value:
        raise SearchError(f"{token!r} needs a value after the colon, e.g. status:failed")
    if prefix == "status":
        for status in value.split(","):
            if status not in STATUSES:
                raise SearchError(f"status:{status} is unknown; choose one of {', '.join(STATUSES)}")
            parts["statuses"].append(status)
    elif prefix == "kind":
        for kind in value.split(","):
            if kind not in KINDS:
                raise SearchError(f"kind:{kind} is unknown; choose one of {', '.join(KINDS)}")
            parts["kinds"].append(kind)
    elif prefix == "tag":
        key, sep, tag_value = value.partition("=")
        if not key:
            raise SearchError(f"{token!r}: write tag:KEY or tag:KEY=VALUE")
        parts["tags"].append((key, tag_value if sep else None))
    elif prefix == "is":
        if value.lower() not in FLAGS:
            raise SearchError(f"is:{value} is unknown; choose one of {', '.join('is:' + f for f in FLAGS)}")
        parts["flags"].append(value.lower())
    elif prefix == "notebook":
        parts["notebooks"].append(value)
    else:
        parts["names"].append(value)


def _comparison(key: str, op: str, value: str, token: str) -> Comparison:
    key = key.strip()
    value = value.strip()
    if not value:
        raise SearchError(f"{token!r} needs a value after {op}, e.g. {key}{op}0.1")
    scope, stat = "any", "last"
    stat_match = _STAT.match(key)
    if stat_match:
        scope, stat, key = "metric", stat_match.group(1).lower(), stat_match.group(2).strip()
    else:
        head, dot, rest = key.partition(".")
        if dot and head.lower() in SCOPES and rest:
            scope, key = SCOPES[head.lower()], rest
    number = parse_number(value)
    if op in ORDERING_OPERATORS:
        if number is None:
            raise SearchError(f"{token!r}: {op} compares numbers; give one, e.g. {key}{op}0.01")
        if scope == "tag":
            raise SearchError(f"{token!r}: tags are text; compare them with = or !=")
    return Comparison(key=key, op=op, text=value, number=number, scope=scope, stat=stat)
