"""`%remote_session`: a table of this kernel's remote sessions."""
from __future__ import annotations

from typing import Any

from .shipping import format_bytes


def format_sessions(sessions: list[Any]) -> str:
    if not sessions:
        return "No remote sessions in this kernel. Start one with `%%remote --session NAME`."
    blocks = []
    for session in sessions:
        head = f"{session.name}: {session.state}"
        if session.state != "open":
            blocks.append(f"{head} ({session.reason})")
            continue
        try:
            info = session.info()
        except Exception as exc:  # noqa: BLE001 - a session that cannot answer is shown with why
            blocks.append(f"{head} on {session.address}, not answering ({type(exc).__name__}: {exc})")
            continue
        gpu = info.get("gpu_memory_bytes")
        idle = "running a cell" if info.get("busy") else f"idle {info.get('idle_seconds', 0):.0f} s"
        held = session.wants.describe() if session.wants.describe() != "nothing in particular" else "no reserved resources"
        lines = [f"{head} on {info.get('host')} ({info.get('worker')}) · holds {held} · "
                 f"{info.get('cells', 0)} cells · {idle} (closed after {info.get('idle_limit', 0):.0f} s idle)"
                 + (f" · GPU memory {format_bytes(gpu)}" if gpu else "")]
        variables = info.get("variables") or {}
        for name, var in sorted(variables.items(), key=lambda kv: -(kv[1].get("bytes") or 0)):
            lines.append(f"    {name:<24} {var.get('type', ''):<20} {format_bytes(var.get('bytes') or 0):>10}")
        if not variables:
            lines.append("    (no variables yet)")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)
