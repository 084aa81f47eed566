"""Git state of a run: commit, branch, remote, and the uncommitted changes that the commit alone misses.

Each git subprocess costs ~5 ms and a tracked cell's whole overhead budget is 2 ms, so callers use
`start_git_capture`, which runs on a background thread and hands back a Future.
"""
from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..per_process import PerProcess

GIT_TIMEOUT_S = 5.0
UNTRACKED_CAP = 200
DEFAULT_DIFF_CAP_BYTES = 256 * 1024

# Never take index.lock (a user's own `git commit` would then fail), never prompt, parse stable English.
_GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


class _GitMissing(Exception):
    pass


def _run(args: list[str], cwd: str, input_bytes: bytes | None = None) -> tuple[int, bytes, str]:
    """(returncode, stdout, stderr) of one git command; raises _GitMissing when git is not installed."""
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, input=input_bytes, capture_output=True,
            timeout=GIT_TIMEOUT_S, env={**os.environ, **_GIT_ENV},
        )
    except FileNotFoundError as exc:
        raise _GitMissing(str(exc)) from None
    return proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace").strip()


def _run_capped(args: list[str], cwd: str, cap: int) -> tuple[int, bytes, int]:
    """(returncode, first `cap` bytes of stdout, full stdout size) without holding a huge diff in memory."""
    proc = subprocess.Popen(["git", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env={**os.environ, **_GIT_ENV})
    killer = threading.Timer(GIT_TIMEOUT_S, proc.kill)  # a read loop cannot time out by itself
    killer.start()
    kept = bytearray()
    total = 0
    try:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(64 * 1024):
            total += len(chunk)
            if len(kept) < cap:
                kept += chunk[: cap - len(kept)]
        returncode = proc.wait()
    finally:
        killer.cancel()
        proc.stdout.close()  # type: ignore[union-attr]
    if returncode < 0:
        raise subprocess.TimeoutExpired(args, GIT_TIMEOUT_S)
    return returncode, bytes(kept), total


def strip_credentials(url: str) -> str:
    """`url` without user:password (`https://user:token@host/x` -> `https://host/x`).

    For http(s)/ftp the whole userinfo goes, because a token is often passed as the user name; for ssh and
    other schemes only the password goes, since the user name (`git@`) is needed to clone. scp-like
    `git@host:path` has no password and is kept.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if parts.scheme.lower() in ("http", "https", "ftp", "ftps"):
        netloc = hostport
    else:
        netloc = f"{userinfo.split(':', 1)[0]}@{hostport}"
    return urlunsplit(parts._replace(netloc=netloc))


def _parse_status(out: bytes) -> dict[str, Any]:
    """Commit, branch, dirty and untracked paths from `git status --porcelain=v2 --branch -z`."""
    fields = out.decode("utf-8", "replace").split("\0")
    commit: str | None = None
    branch: str | None = None
    dirty = False
    untracked: list[str] = []
    i = 0
    while i < len(fields):
        item = fields[i]
        i += 1
        if item.startswith("# branch.oid "):
            oid = item[len("# branch.oid "):]
            commit = None if oid == "(initial)" else oid
        elif item.startswith("# branch.head "):
            head = item[len("# branch.head "):]
            branch = None if head == "(detached)" else head
        elif item.startswith(("1 ", "u ")):
            dirty = True
        elif item.startswith("2 "):
            dirty = True
            i += 1  # a rename or copy is followed by its original path as a separate field
        elif item.startswith("? "):
            untracked.append(item[2:])
    return {"commit": commit, "branch": branch, "dirty": dirty, "untracked": untracked}


def _remote_url(cwd: str) -> str | None:
    rc, out, _ = _run(["config", "--get-regexp", r"^remote\..*\.url$"], cwd)
    if rc != 0:
        return None
    urls: dict[str, str] = {}
    for line in out.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(" ")
        urls.setdefault(key[len("remote."):-len(".url")], value.strip())
    url = urls.get("origin") or next(iter(urls.values()), None)
    return strip_credentials(url) if url else None


def _diff(cwd: str, commit: str | None, cap: int) -> tuple[str, bool, int]:
    """(diff text capped at `cap` bytes, whether it was cut, full size) of the work tree against HEAD."""
    base = commit
    if base is None:
        # Unborn HEAD: compare against the empty tree, whose id depends on the repo's hash (sha1 or sha256).
        rc, out, _ = _run(["hash-object", "-t", "tree", "--stdin"], cwd, input_bytes=b"")
        if rc != 0:
            return "", False, 0
        base = out.decode().strip()
    rc, kept, total = _run_capped(["diff", base, "--no-color", "--no-ext-diff"], cwd, cap)
    if rc != 0:
        return "", False, 0
    truncated = total > len(kept)
    if truncated and b"\n" in kept:
        kept = kept[: kept.rindex(b"\n") + 1]  # whole lines only, so the text still reads as a diff
    return kept.decode("utf-8", "replace"), truncated, total


def capture_git(path: str | Path, diff_cap_bytes: int = DEFAULT_DIFF_CAP_BYTES) -> dict[str, Any] | None:
    """Git state of the work tree holding `path`; None outside a work tree or without git.

    Returns {root, commit (None before the first commit), branch (None when detached), remote_url (no
    credentials), dirty (tracked files differ from HEAD), diff, diff_truncated, diff_bytes, untracked (at
    most 200 paths, folders collapsed as git shows them), untracked_truncated}. Never raises: an unexpected
    failure gives {"error": message}.
    """
    captured_at = time.time()  # runs that share a capture can tell how old it is
    try:
        cwd = str(path)
        if not os.path.isdir(cwd):
            cwd = os.path.dirname(os.path.abspath(cwd)) or os.curdir
        rc, out, err = _run(["rev-parse", "--show-toplevel"], cwd)
        if rc != 0:
            if "not a git repository" in err or "must be run in a work tree" in err:
                return None
            return {"error": err or f"git rev-parse exited with {rc}"}
        root = os.fsdecode(out).rstrip("\n")
        if not root:
            return None  # inside .git or a bare repository: there is no work tree to describe
        rc, out, err = _run(["status", "--porcelain=v2", "--branch", "-z"], root)
        if rc != 0:
            return {"error": err or f"git status exited with {rc}", "root": root}
        status = _parse_status(out)
        diff, diff_truncated, diff_bytes = "", False, 0
        if status["dirty"]:
            diff, diff_truncated, diff_bytes = _diff(root, status["commit"], diff_cap_bytes)
        untracked = status["untracked"]
        return {
            "captured_at": captured_at,
            "root": root,
            "commit": status["commit"],
            "branch": status["branch"],
            "remote_url": _remote_url(root),
            "dirty": status["dirty"],
            "diff": diff,
            "diff_truncated": diff_truncated,
            "diff_bytes": diff_bytes,
            "untracked": untracked[:UNTRACKED_CAP],
            "untracked_truncated": len(untracked) > UNTRACKED_CAP,
        }
    except _GitMissing:
        return None
    except subprocess.TimeoutExpired:
        return {"error": f"git did not answer within {GIT_TIMEOUT_S:g} s"}
    except Exception as exc:  # recording must never break the user's cell
        return {"error": f"{type(exc).__name__}: {exc}"}


class _DaemonExecutor:
    """One daemon thread running jobs in order.

    Not ThreadPoolExecutor: its threads are joined at interpreter exit, so a slow git on a network drive
    would hold up the kernel's shutdown.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._pid = os.getpid()
        threading.Thread(target=self._work, name="pykernel-ext-git", daemon=True).start()

    def _work(self) -> None:
        while True:
            future, func, args = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(func(*args))
            except BaseException as exc:  # capture_git does not raise; this keeps the thread alive anyway
                future.set_exception(exc)

    def submit(self, func: Any, *args: Any) -> Future:
        future: Future = Future()
        self._jobs.put((future, func, args))
        return future


_executor: PerProcess[_DaemonExecutor] = PerProcess(_DaemonExecutor)


def _get_executor() -> _DaemonExecutor:
    return _executor.get()


def start_git_capture(path: str | Path, diff_cap_bytes: int = DEFAULT_DIFF_CAP_BYTES) -> "Future[dict[str, Any] | None]":
    """Run `capture_git` on a background daemon thread; the Future's result is what capture_git returns."""
    return _get_executor().submit(capture_git, path, diff_cap_bytes)
