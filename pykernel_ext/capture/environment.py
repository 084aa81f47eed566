"""The software environment of a run: interpreter, platform, installed packages, torch build.

Listing installed packages costs tens of milliseconds and `%%track` has a 2 ms budget, so the listing is
cached per process and redone only when a folder it came from may have changed (a `pip install` in the
kernel adds or removes `*.dist-info` folders, which changes the parent folder's mtime).
"""
from __future__ import annotations

import json
import os
import platform
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

# Metadata entries whose appearance, disappearance or rewrite means the installed set may have changed.
_METADATA_SUFFIXES = (".dist-info", ".egg-info", ".egg-link", ".pth", ".egg")

# Fields probed from a live torch: present only after the user imported torch, so they are left out of
# the fingerprint; otherwise the same environment would hash differently before and after `import torch`.
_RUNTIME_TORCH_FIELDS = ("cudnn", "cuda_available")

_lock = threading.Lock()
_snapshot: "_Snapshot | None" = None


def _normalize(name: str) -> str:
    # PEP 503, so "Jupyter_Server" and "jupyter-server" are one package.
    return re.sub(r"[-_.]+", "-", name).lower()


def _path_dirs() -> tuple[str, ...]:
    # "" on sys.path means the current folder, which importlib.metadata searches too.
    return tuple(os.path.abspath(p or os.curdir) for p in sys.path if isinstance(p, str))


# A folder's mtime has the kernel's coarse clock granularity (up to a few ms), so a change made in the same
# tick as an earlier one leaves it unchanged. Folders changed this recently are trusted only after a look.
_RACY_NS = 1_000_000_000
_RACY = -1


def _dir_mtimes(dirs: tuple[str, ...]) -> tuple[int | None, ...]:
    out: list[int | None] = []
    for d in dirs:
        try:
            out.append(os.stat(d).st_mtime_ns)
        except OSError:
            out.append(None)
    return tuple(out)


def _trusted(mtimes: tuple[int | None, ...]) -> tuple[int | None, ...]:
    """`mtimes` with the too-recent ones replaced by a value no stat returns, so they are looked at again."""
    recent = time.time_ns() - _RACY_NS
    return tuple(_RACY if m is not None and m > recent else m for m in mtimes)


def _metadata_entries(directory: str) -> frozenset[tuple[str, int]]:
    """(name, mtime_ns) of the package-metadata entries directly in `directory`."""
    entries = set()
    try:
        with os.scandir(directory) as it:
            for entry in it:
                if entry.name.endswith(_METADATA_SUFFIXES):
                    try:
                        entries.add((entry.name, entry.stat().st_mtime_ns))
                    except OSError:
                        continue
    except OSError:
        pass
    return frozenset(entries)


def _read_name_version(dist: Any) -> tuple[str | None, str | None]:
    # Reading only the two headers is about twice as fast as `dist.metadata`, which parses the whole file
    # as an email message including the long description.
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    name = version = None
    for line in text.splitlines():
        if not line:
            break
        if name is None and line.startswith("Name:"):
            name = line[5:].strip()
        elif version is None and line.startswith("Version:"):
            version = line[8:].strip()
        if name and version:
            break
    if name is None:
        name, version = dist.metadata["Name"], dist.version
    return name, version


def _list_packages() -> dict[str, str]:
    from importlib import metadata

    # importlib.metadata caches each folder's listing keyed by its mtime, so it would miss the same-tick
    # change that sent us here.
    try:
        try:
            metadata.MetadataPathFinder.invalidate_caches()
        except TypeError:  # Python <= 3.11 forgot @classmethod on it
            metadata.FastPath.__new__.cache_clear()  # type: ignore[attr-defined]
    except AttributeError:  # another Python's internals: its cache, if any, is its own business
        pass
    # The importlib_metadata backport (imported by dask, distributed and others) replaces the stdlib's path
    # finder with its own, which keeps its own mtime-keyed cache.
    backport = sys.modules.get("importlib_metadata")
    for finder in sys.meta_path:
        if backport is not None and isinstance(finder, getattr(backport, "MetadataPathFinder", ())):
            finder.invalidate_caches()
    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        try:
            name, version = _read_name_version(dist)
        except Exception:  # one broken install must not hide the rest
            continue
        if name:
            # Distributions come in sys.path order; the first one is the one `import` would load.
            packages.setdefault(_normalize(name), version or "")
    return dict(sorted(packages.items()))


def _torch_build_cuda() -> str | None:
    """CUDA version torch was built for, read from torch/version.py without importing torch (seconds)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        try:
            with open(os.path.join(folder, "version.py"), encoding="utf-8") as fh:
                source = fh.read()
        except OSError:
            continue
        match = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", source, re.MULTILINE)
        return match.group(1) if match else None
    return None


def _torch_info(packages: dict[str, str]) -> dict[str, Any] | None:
    torch = sys.modules.get("torch")
    if torch is None:
        if "torch" not in packages:
            return None
        return {"version": packages["torch"], "cuda": _torch_build_cuda(), "imported": False}
    version = getattr(torch, "__version__", None)
    info: dict[str, Any] = {"version": str(version) if version is not None else None, "imported": True}
    try:
        info["cuda"] = torch.version.cuda
    except Exception:
        info["cuda"] = None
    try:
        info["cudnn"] = torch.backends.cudnn.version()
    except Exception:
        info["cudnn"] = None
    info["cuda_available"] = _torch_cuda_available(torch, info["cuda"])
    return info


def _torch_cuda_available(torch: Any, built_cuda: str | None) -> bool | None:
    """True/False when known without side effects; None when only probing CUDA could tell.

    `torch.cuda.is_available()` initialises the CUDA runtime, which freezes CUDA_VISIBLE_DEVICES and breaks
    a later fork (papermill, Dask); capture must not change the user's process, so it asks only once the
    user's own code has initialised CUDA.
    """
    try:
        if built_cuda is None and getattr(torch.version, "hip", None) is None:
            return False
        if torch.cuda.is_initialized():
            return bool(torch.cuda.is_available())
    except Exception:
        pass
    return None


def _torch_state() -> int:
    """0: torch not imported; 1: imported; 2: imported and CUDA initialised (what _torch_info can see)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return 0
    try:
        return 2 if torch.cuda.is_initialized() else 1
    except Exception:
        return 1


def _build() -> dict[str, Any]:
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": platform.platform(),
        "machine": platform.machine(),
        "hostname": socket.gethostname(),
        "packages": _list_packages(),
    }


@dataclass(frozen=True)
class _Snapshot:
    """One listing and what it was based on; replaced whole so readers never see half an update."""

    dirs: tuple[str, ...]
    mtimes: tuple[int | None, ...]
    entries: tuple[frozenset[tuple[str, int]], ...]
    env: dict[str, Any]
    torch_state: int
    torch: dict[str, Any] | None


def _cached_snapshot() -> _Snapshot:
    global _snapshot
    dirs = _path_dirs()
    mtimes = _dir_mtimes(dirs)
    torch_state = _torch_state()
    snap = _snapshot
    if snap is not None and snap.dirs == dirs and snap.mtimes == mtimes and snap.torch_state == torch_state:
        return snap
    with _lock:
        snap = _snapshot
        if snap is not None and snap.dirs == dirs:
            # Some mtimes moved. Creating any file in the current folder does that, so compare the metadata
            # entries of the moved folders before paying for a full listing.
            moved = [i for i, (a, b) in enumerate(zip(snap.mtimes, mtimes)) if a != b]
            if all(_metadata_entries(dirs[i]) == snap.entries[i] for i in moved):
                torch = snap.torch if snap.torch_state == torch_state else _torch_info(snap.env["packages"])
                _snapshot = replace(snap, mtimes=_trusted(mtimes), torch_state=torch_state, torch=torch)
                return _snapshot
        entries = tuple(_metadata_entries(d) for d in dirs)
        env = _build()
        _snapshot = _Snapshot(dirs, _trusted(mtimes), entries, env, torch_state, _torch_info(env["packages"]))
        return _snapshot


def capture_environment() -> dict[str, Any]:
    """Interpreter, platform, hostname, installed packages ({normalized name: version}, sorted) and torch.

    `torch` is None when torch is not installed; when installed but not yet imported it holds the installed
    version and the CUDA version it was built for (torch is never imported here: that costs seconds); once
    the user imported torch it also holds `cudnn` and `cuda_available` (None until the user's code has
    initialised CUDA, since asking earlier would initialise it). Cached: a repeated call costs a stat
    of each sys.path folder. Returns a fresh copy the caller may change.
    """
    snap = _cached_snapshot()
    # Every value below the first level is a flat dict of str/bool/None, so one level of copying is a full
    # copy; deepcopy of ~200 packages would cost ~0.1 ms.
    env = {k: dict(v) if isinstance(v, dict) else v for k, v in snap.env.items()}
    env["torch"] = dict(snap.torch) if snap.torch is not None else None
    env["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    return env


def environment_fingerprint(env: dict[str, Any]) -> str:
    """A stable blake3 hex digest of `env`, so an identical environment is stored once.

    Leaves out the torch fields that depend on whether torch has been imported yet.
    """
    import blake3

    content = dict(env)
    torch = content.get("torch")
    if isinstance(torch, dict):
        content["torch"] = {k: v for k, v in torch.items() if k not in _RUNTIME_TORCH_FIELDS and k != "imported"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return blake3.blake3(canonical.encode("utf-8")).hexdigest()


_fingerprinted: tuple[int, str | None, str, dict[str, Any]] | None = None


def current_environment() -> tuple[str, dict[str, Any]]:
    """(fingerprint, environment), the fingerprint computed once per distinct snapshot.

    Fingerprinting ~200 packages costs ~50 µs more than a tracked cell's whole budget allows per cell,
    and the answer only changes when the snapshot (or CUDA_VISIBLE_DEVICES) does.
    """
    global _fingerprinted
    snap = _cached_snapshot()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    cached = _fingerprinted
    if cached is not None and cached[0] == id(snap) and cached[1] == visible:
        return cached[2], cached[3]
    env = capture_environment()
    fingerprint = environment_fingerprint(env)
    _fingerprinted = (id(snap), visible, fingerprint, env)
    return fingerprint, env
