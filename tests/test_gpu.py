"""GPU sampling: a clean "no GPU" state here, real readings on a machine with an NVIDIA GPU."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pykernel_ext import gpu
from pykernel_ext.gpu import (
    GpuSample,
    GpuStatus,
    gpu_status,
    gpus_used_by_pid,
    resolve_visible_devices,
    sample_gpus,
    visible_gpu_count,
)

HAS_GPU = gpu_status().available
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs an NVIDIA GPU")
needs_no_gpu = pytest.mark.skipif(HAS_GPU, reason="checks the no-GPU state")


@needs_no_gpu
def test_no_gpu_state_is_explicit() -> None:
    status = gpu_status()
    assert status.available is False
    assert status.reason  # a sentence the user can act on
    assert status.gpus == []
    assert sample_gpus() == []
    assert visible_gpu_count() == 0
    assert gpus_used_by_pid(os.getpid()) == []


def test_status_is_cached() -> None:
    first = gpu_status()
    assert gpu_status() is first
    state = gpu._state
    gpu_status()
    assert gpu._state is state  # nvmlInit ran once


def test_status_to_dict_is_json_ready() -> None:
    data = gpu_status().to_dict()
    assert set(data) == {"available", "reason", "driver_version", "gpus"}
    json.dumps(data)
    data["gpus"].append({"index": 99})
    assert {"index": 99} not in gpu_status().gpus  # a copy, not the cached list


def test_sample_to_dict() -> None:
    sample = GpuSample(0, "GPU-x", "Fake", 12.0, 1, 2, 30.5, 40.0, 1.0)
    assert sample.to_dict()["utilization_percent"] == 12.0
    assert GpuStatus(False, "why").to_dict()["gpus"] == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, [0, 1, 2]),
        ("", []),
        ("-1", []),
        ("1", [1]),
        ("2,0", [2, 0]),
        ("1, 0", [1, 0]),
        ("0,7,1", [0]),  # CUDA stops at the first invalid entry
        ("1,1", [1]),
        ("GPU-bbbb2222", [1]),
        ("GPU-cc", [2]),  # a unique prefix is enough
        ("GPU-", []),
        ("0,GPU-aaaa1111", [0]),  # the same device twice
        ("GPU-zz,0", []),
        ("MIG-1234", []),  # MIG UUIDs are resolved through NVML, not by prefix
    ],
)
def test_resolve_visible_devices(value: str | None, expected: list[int]) -> None:
    uuids = ["GPU-aaaa1111", "GPU-bbbb2222", "GPU-cccc3333"]
    assert resolve_visible_devices(value, uuids) == expected


def test_ambiguous_uuid_prefix_stops() -> None:
    assert resolve_visible_devices("GPU-a", ["GPU-ab", "GPU-ac"]) == []


@pytest.mark.gpu
@needs_gpu
def test_real_gpu_samples() -> None:
    status = gpu_status()
    assert status.gpus and status.driver_version
    samples = sample_gpus()
    assert len(samples) == visible_gpu_count() == len(status.gpus)
    for s in samples:
        assert s.name and s.uuid.startswith(("GPU-", "MIG-"))
        assert s.memory_total_bytes and s.memory_total_bytes > 0
        assert s.memory_used_bytes is not None and 0 <= s.memory_used_bytes <= s.memory_total_bytes
        if s.utilization_percent is not None:
            assert 0 <= s.utilization_percent <= 100
        json.dumps(s.to_dict())


@pytest.mark.gpu
@needs_gpu
def test_cuda_visible_devices_limits_to_one_gpu() -> None:
    code = (
        "import json; from pykernel_ext.gpu import gpu_status, sample_gpus, visible_gpu_count;"
        "print(json.dumps([visible_gpu_count(), [s.index for s in sample_gpus()], gpu_status().gpus]))"
    )
    first_uuid = gpu_status().gpus[0]["uuid"]
    for value in ("0", first_uuid):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": value}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        count, indexes, gpus = json.loads(out.stdout)
        assert count == 1 and len(indexes) == 1 and len(gpus) == 1
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)[0] == 0
