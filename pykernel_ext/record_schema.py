"""The run record's JSON Schema, and the front end's TypeScript types, generated from `records`.

    python -m pykernel_ext.record_schema --write   # regenerate both files (the front-end build does this too)
    python -m pykernel_ext.record_schema --check   # exit 1 when a file is out of date (a test runs this)

The schema is served at `/pykernel-ext/api/v1/schema` and written to `pykernel_ext/schema/run-record.schema.json`;
`extension/src/records.generated.ts` is generated from the schema, so the Python and TypeScript sides cannot
disagree without a test failing.
"""
from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from . import records

PACKAGE = Path(__file__).resolve().parent
SCHEMA_FILE = PACKAGE / "schema" / "run-record.schema.json"
TS_FILE = PACKAGE.parent / "extension" / "src" / "records.generated.ts"
SCHEMA_ID = "https://pykernel-ext.invalid/schema/run-record.schema.json"
# The records the schema publishes (and their nested ones, found on the way).
ROOTS = ("RunSummary", "RunDetails", "RunRecord", "RunListEntry", "RunView", "WorkerEvent")


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the run record: one definition per typed structure."""
    definitions: dict[str, Any] = {
        "Status": {"enum": list(records.STATUSES)},
        "Kind": {"enum": list(records.KINDS)},
    }
    for name in ROOTS:
        _define(getattr(records, name), definitions, name)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "pykernel-ext run record",
        "description": "A run as the CLI's --json and the server's API give it; NaN and infinities are null.",
        "$ref": "#/$defs/RunRecord",
        "$defs": dict(sorted(definitions.items())),
    }


def _define(tp: Any, definitions: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """Add the definition of `tp` (a TypedDict or a union of them) and return a reference to it."""
    name = name or tp.__name__
    if name not in definitions:
        definitions[name] = {}  # placeholder: a structure may (indirectly) refer to itself
        if _is_typeddict(tp):
            hints = get_type_hints(tp, include_extras=True)
            properties = {key: _schema(_unwrap(hint), definitions) for key, hint in hints.items()}
            doc = " ".join((tp.__doc__ or "").split())
            definition: dict[str, Any] = {"type": "object", "properties": properties,
                                          "required": sorted(tp.__required_keys__)}
            if doc:
                definition["description"] = doc
            definitions[name] = definition
        else:
            definitions[name] = _schema(tp, definitions)
    return {"$ref": f"#/$defs/{name}"}


def _unwrap(hint: Any) -> Any:
    origin = get_origin(hint)
    if origin is Annotated:
        return _unwrap(get_args(hint)[0])
    if origin in (records.Required, records.NotRequired):
        return _unwrap(get_args(hint)[0])
    return hint


def _schema(tp: Any, definitions: dict[str, Any]) -> dict[str, Any]:  # noqa: C901 - one case per typing form
    tp = _unwrap(tp)
    if tp is records.Status:
        return {"$ref": "#/$defs/Status"}
    if tp is records.Kind:
        return {"$ref": "#/$defs/Kind"}
    if tp is Any:
        return {}
    if tp is type(None) or tp is None:
        return {"type": "null"}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", bytes: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        options = [_schema(a, definitions) for a in args]
        return {"anyOf": options}
    if origin in (list, tuple):
        return {"type": "array", "items": _schema(args[0], definitions) if args else {}}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema(args[1], definitions) if args else {}}
    if _is_typeddict(tp):
        return _define(tp, definitions)
    raise TypeError(f"no JSON Schema for {tp!r}")


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


# ---- TypeScript ----------------------------------------------------------------------------------------


def typescript(schema: dict[str, Any]) -> str:
    """TypeScript declarations of the schema's definitions (`export interface` / `export type`)."""
    lines = ["// Generated from pykernel_ext/records.py by `python -m pykernel_ext.record_schema --write`.",
             "// Do not edit: change records.py and regenerate (a test fails when this file is out of date).",
             ""]
    for name, definition in schema["$defs"].items():
        if definition.get("type") == "object" and "properties" in definition:
            if definition.get("description"):
                lines.append(f"/** {definition['description']} */")
            lines.append(f"export interface {name} {{")
            required = set(definition.get("required", []))
            for key, prop in definition["properties"].items():
                optional = "" if key in required else "?"
                lines.append(f"  {key}{optional}: {_ts(prop)};")
            lines.append("}")
        else:
            lines.append(f"export type {name} = {_ts(definition)};")
            if "enum" in definition:  # the values too, for menus and checks
                values = ", ".join(json.dumps(value) for value in definition["enum"])
                lines.append(f"export const {_constant(name)}: readonly {name}[] = [{values}];")
        lines.append("")
    return "\n".join(lines)


def _constant(name: str) -> str:
    """`Status` -> `STATUSES`, `Kind` -> `KINDS`."""
    plural = name + ("es" if name.endswith("s") else "s")
    return plural.upper()


def _ts(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "enum" in schema:
        return " | ".join(json.dumps(value) for value in schema["enum"])
    if "anyOf" in schema:
        return " | ".join(_ts(option) for option in schema["anyOf"])
    kind = schema.get("type")
    if kind == "array":
        item = _ts(schema.get("items", {}))
        return f"Array<{item}>"
    if kind == "object":
        return f"Record<string, {_ts(schema.get('additionalProperties', {}))}>"
    return {"string": "string", "integer": "number", "number": "number", "boolean": "boolean",
            "null": "null"}.get(kind, "unknown")


# ---- files ---------------------------------------------------------------------------------------------


def rendered() -> dict[Path, str]:
    schema = json_schema()
    return {SCHEMA_FILE: json.dumps(schema, indent=2) + "\n", TS_FILE: typescript(schema)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="write the schema and the TypeScript types")
    action.add_argument("--check", action="store_true", help="exit 1 when a generated file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in rendered().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
        else:
            stale.append(path)
    for path in stale:
        print(f"{path} is out of date: run `python -m pykernel_ext.record_schema --write`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
