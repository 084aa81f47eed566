"""Comparison of runs: parameters, data hashes, code, environment and metrics side by side.

The CLI's `runs diff`, the server's compare endpoint and `reproduce` all read this one structure.
"""
from __future__ import annotations

import difflib
from typing import Any

from .records import RunRecord
from .store import RunStore


def compare_runs(store: RunStore, refs: list[str], *, through_children: bool = False) -> dict[str, Any]:
    """Compare two or more runs (ids or unique prefixes); the first is the baseline for diffs.

    `through_children`: a notebook or script run brings in what its cells recorded (metric series, data
    hashes, outputs, code), since the parent itself records only parameters and a summary.
    """
    if len(refs) < 2:
        raise ValueError("compare needs at least two runs")
    runs = [_with_module_sources(store, r) for r in store.get_runs(refs)]
    if through_children:
        runs = [_with_children(store, run) for run in runs]
    environments = [store.environment(r.get("environment_id")) or {} for r in runs]
    return {
        "runs": [_summary(r) for r in runs],
        "params": _side_by_side([r.get("params") or {} for r in runs]),
        "metrics": _side_by_side([r.get("metrics") or {} for r in runs]),
        "metric_series": {key: [r["metric_series"].get(key) for r in runs]
                          for key in sorted({k for r in runs for k in r["metric_series"]})},
        "data": _side_by_side([_data_hashes(r) for r in runs]),
        "outputs": _side_by_side([_output_hashes(r) for r in runs]),
        "code": _code_comparison(runs),
        "environment": _environment_comparison(environments),
        "git": [(r.get("git") or {}).get("commit") for r in runs],
    }


def _with_children(store: RunStore, run: RunRecord) -> RunRecord:
    """A parent run with its children's series, data, outputs and code merged in (the parent's own win).
    A name several cells use is prefixed with the cell run's name: `train/loss`."""
    if not run.get("children"):
        return run
    children = [store.get_run(child) for child in run["children"]]
    merged = dict(run)
    series = dict(run.get("metric_series") or {})
    data = list(run.get("data") or [])
    outputs = list(run.get("outputs") or [])
    for child in children:
        label = child.get("name") or child["id"][:8]
        for key, values in (child.get("metric_series") or {}).items():
            series[key if key not in series else f"{label}/{key}"] = values
        known = {d.get("name") for d in data}
        data += [{**d, "name": d["name"] if d["name"] not in known else f"{label}/{d['name']}"}
                 for d in child.get("data") or [] if "name" in d]
        outputs += child.get("outputs") or []
    merged["metric_series"] = series
    merged["data"] = data
    merged["outputs"] = outputs
    code = dict(run.get("code") or {})
    code["closure"] = list(code.get("closure") or []) + [
        {"kind": "cell", "name": child.get("name") or child["id"][:8], "source": (child.get("code") or {}).get("source")
         or "", "hash": child.get("code_hash")} for child in children]
    merged["code"] = code
    return merged


def runs_differ(comparison: dict[str, Any], tolerance: float = 0.0) -> list[str]:
    """Plain-language reasons two compared runs differ (empty when they agree within `tolerance`)."""
    reasons = []
    if comparison["params"]["different"]:
        reasons.append("parameters differ: " + ", ".join(comparison["params"]["different"]))
    if comparison["data"]["different"]:
        reasons.append("data differs: " + ", ".join(comparison["data"]["different"]))
    if not comparison["code"]["same"]:
        reasons.append("code differs")
    for key, values in comparison["metrics"]["values"].items():
        numbers = [v for v in values if isinstance(v, (int, float))]
        if len(numbers) != len(values):
            reasons.append(f"metric {key} is missing in some runs")
        elif numbers and max(numbers) - min(numbers) > tolerance * max(1.0, max(abs(n) for n in numbers)):
            reasons.append(f"metric {key} differs: {', '.join(_fmt(v) for v in values)}")
    return reasons


def _summary(run: RunRecord) -> dict[str, Any]:
    keys = ("id", "name", "kind", "status", "notebook", "started_at", "duration_s", "code_hash", "error_type")
    return {k: run.get(k) for k in keys}


def _side_by_side(mappings: list[dict[str, Any]]) -> dict[str, Any]:
    names = sorted({k for m in mappings for k in m})
    values = {name: [m.get(name) for m in mappings] for name in names}
    different = [name for name, vals in values.items() if any(v != vals[0] for v in vals[1:])]
    return {"names": names, "values": values, "different": different}


def _data_hashes(run: RunRecord) -> dict[str, Any]:
    return {d["name"]: d.get("hash") or f"(unhashed: {d.get('error')})" for d in run.get("data") or []}


def _output_hashes(run: RunRecord) -> dict[str, Any]:
    return {o["name"]: o.get("hash") or o.get("value") for o in run.get("outputs") or [] if "name" in o}


def _with_module_sources(store: RunStore, run: RunRecord) -> RunRecord:
    from .capture.closure import with_module_sources

    if run.get("code"):
        run = {**run, "code": with_module_sources(run["code"], store.blobs.read_text)}
    return run


def _code_text(run: RunRecord) -> str:
    """The run's code and closure as one text, each part in the form code hashes are taken of (a cell body
    and the same body in a script's block differ only in trailing blank lines)."""
    from .capture.code import normalize_source

    code = run.get("code") or {}
    source = code.get("source") or ""
    parts = [normalize_source(source) if source.strip() else ""]
    for entry in code.get("closure") or []:
        where = "the user's module" if entry.get("kind") == "module" else "notebook-defined"  # where it lies is no code
        body = entry.get("source")
        if body is None:  # no text to show: its content hash still tells versions apart
            body = f"# ({entry.get('error') or 'source not recorded'}; hash {entry.get('hash')})\n"
        elif entry.get("kind") != "module":
            body = normalize_source(body)
        parts.append(f"\n# --- {entry.get('kind')} {entry.get('name')} ({where})\n{body}")
    return "".join(parts)


def _code_comparison(runs: list[RunRecord]) -> dict[str, Any]:
    # A final line without its newline would fuse with the next hunk line in the unified diff.
    texts = [text if text.endswith("\n") else text + "\n" for text in (_code_text(r) for r in runs)]
    base = texts[0].splitlines(keepends=True)
    diffs = []
    for run, text in zip(runs[1:], texts[1:]):
        diff = difflib.unified_diff(base, text.splitlines(keepends=True),
                                    fromfile=f"run {runs[0]['id'][:8]}", tofile=f"run {run['id'][:8]}")
        diffs.append("".join(diff))
    hashes = [r.get("code_hash") for r in runs]
    return {"hashes": hashes, "same": all(t == texts[0] for t in texts), "diffs": diffs}


def _environment_comparison(envs: list[dict[str, Any]]) -> dict[str, Any]:
    fields = {
        "python": [(e.get("python") or {}).get("version") for e in envs],
        "platform": [e.get("platform") for e in envs],
        "host": [e.get("hostname") for e in envs],
        "torch": [(e.get("torch") or {}).get("version") for e in envs],
    }
    changed = {k: v for k, v in fields.items() if any(x != v[0] for x in v[1:])}
    packages = [e.get("packages") or {} for e in envs]
    names = sorted({n for p in packages for n in p})
    package_changes = {n: [p.get(n) for p in packages] for n in names
                       if any(p.get(n) != packages[0].get(n) for p in packages[1:])}
    return {"fields": fields, "changed": changed, "packages_changed": package_changes}


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
