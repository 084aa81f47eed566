"""Settings: where the store lives, which Dask scheduler to use, what compute costs.

Every value has an environment-variable default so the kernel, the CLI, the server extension and batch
kernels started by papermill all agree without passing anything around.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

STORE_DIRNAME = ".pykernel_ext"

ENV_HOME = "PYKERNEL_EXT_HOME"
ENV_SCHEDULER = "PYKERNEL_EXT_SCHEDULER"
ENV_GPU_PRICE = "PYKERNEL_EXT_GPU_HOUR_PRICE"
ENV_CPU_PRICE = "PYKERNEL_EXT_CPU_HOUR_PRICE"
ENV_GPU_SAMPLE_INTERVAL = "PYKERNEL_EXT_GPU_SAMPLE_INTERVAL"
ENV_SESSION_IDLE = "PYKERNEL_EXT_SESSION_IDLE"  # seconds before an idle remote session is closed
ENV_SESSION_HOME_BYTES = "PYKERNEL_EXT_SESSION_HOME_BYTES"  # session values up to this size also come home

# Rough on-demand cloud prices (USD per hour); users set their own through the environment.
DEFAULT_GPU_HOUR_PRICE = 2.50
DEFAULT_CPU_HOUR_PRICE = 0.04


def resolve_home(start: Path | str | None = None) -> Path:
    """The folder whose `.pykernel_ext/` holds the store.

    `$PYKERNEL_EXT_HOME` if set; else the nearest ancestor holding `.pykernel_ext/`; else the git root;
    else the starting folder. The kernel, the CLI and the server all call this.
    """
    explicit = os.environ.get(ENV_HOME)
    if explicit:
        return Path(explicit).expanduser().resolve()
    here = Path(start or os.getcwd()).resolve()
    candidates = [here, *here.parents]
    for folder in candidates:
        if (folder / STORE_DIRNAME).is_dir():
            return folder
    for folder in candidates:
        if (folder / ".git").exists():
            return folder
    return here


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number; unset it or give a number such as {default}") from None


@dataclass(frozen=True)
class Settings:
    """Resolved settings; build with `Settings.from_env()`."""

    home: Path
    scheduler: str | None = None
    gpu_hour_price: float = DEFAULT_GPU_HOUR_PRICE
    cpu_hour_price: float = DEFAULT_CPU_HOUR_PRICE
    gpu_sample_interval: float = 0.5
    git_diff_cap_bytes: int = 256 * 1024
    log_cap_bytes: int = 8 * 1024 * 1024
    # A forgotten session must not hold a GPU forever.
    session_idle_seconds: float = 3600.0
    session_home_bytes: int = 1_000_000
    extra: dict = field(default_factory=dict)

    @property
    def store_dir(self) -> Path:
        return self.home / STORE_DIRNAME

    @classmethod
    def from_env(cls, start: Path | str | None = None) -> "Settings":
        return cls(
            home=resolve_home(start),
            scheduler=os.environ.get(ENV_SCHEDULER) or None,
            gpu_hour_price=_float_env(ENV_GPU_PRICE, DEFAULT_GPU_HOUR_PRICE),
            cpu_hour_price=_float_env(ENV_CPU_PRICE, DEFAULT_CPU_HOUR_PRICE),
            gpu_sample_interval=_float_env(ENV_GPU_SAMPLE_INTERVAL, 0.5),
            session_idle_seconds=_float_env(ENV_SESSION_IDLE, 3600.0),
            session_home_bytes=int(_float_env(ENV_SESSION_HOME_BYTES, 1_000_000)),
        )
