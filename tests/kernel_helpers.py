"""Driving a real kernel over ZMQ in tests, the way JupyterLab does (shared by the kernel test files)."""
from __future__ import annotations

import time


def send(client, code: str, cell_id: str | None = None) -> str:
    """Send an execute_request (with JupyterLab's cellId metadata when given); returns its msg_id."""
    msg = client.session.msg("execute_request", {"code": code, "silent": False, "store_history": True,
                                                 "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
    if cell_id:
        msg["metadata"]["cellId"] = cell_id
    client.shell_channel.send(msg)
    return msg["header"]["msg_id"]


def collect(client, msg_id: str, timeout: float = 120, on_message=None) -> tuple[dict, list[tuple[float, dict]]]:
    """iopub messages of one request with their arrival times, until the kernel is idle; then the reply."""
    outputs = []
    deadline = time.monotonic() + timeout
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the kernel did not finish request {msg_id} within {timeout} s")
        io = client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if io["parent_header"].get("msg_id") != msg_id:
            continue
        if io["msg_type"] == "status" and io["content"]["execution_state"] == "idle":
            break
        outputs.append((time.time(), io))
        if on_message:
            on_message(io)
    # Only this request's reply: jupyter_client's wait_for_ready re-sends kernel_info every second until
    # one answer comes back, so on a loaded machine a second kernel_info_reply may still be queued here.
    while True:
        reply = client.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"], outputs


def execute(client, code: str, cell_id: str | None = None, timeout: float = 60) -> tuple[dict, list[dict]]:
    """Run code and return (execute_reply content, iopub messages)."""
    reply, outputs = collect(client, send(client, code, cell_id), timeout=timeout)
    return reply, [message for _, message in outputs]
