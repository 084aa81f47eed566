"""Environment, git and hardware capture against the real interpreter, real git repositories and psutil."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import wait_for
from pykernel_ext.capture import environment
from pykernel_ext.capture.environment import capture_environment, environment_fingerprint
from pykernel_ext.capture.git import capture_git, start_git_capture, strip_credentials
from pykernel_ext.capture.hardware import ResourceSampler, capture_hardware_static, estimate_cost

# --- environment -------------------------------------------------------------------------------------


def test_environment_basics() -> None:
    env = capture_environment()
    assert env["python"]["version"] == platform.python_version()
    assert env["python"]["executable"] == sys.executable
    assert env["hostname"]
    assert env["packages"]["pytest"] == importlib.metadata.version("pytest")
    assert env["packages"]["blake3"] == importlib.metadata.version("blake3")
    assert list(env["packages"]) == sorted(env["packages"])
    assert all(name == name.lower() and "_" not in name for name in env["packages"])
    assert env["cuda_visible_devices"] == os.environ.get("CUDA_VISIBLE_DEVICES")


def test_environment_torch_without_importing_it() -> None:
    env = capture_environment()
    if "torch" not in env["packages"]:
        assert env["torch"] is None
        return
    assert env["torch"]["version"] == env["packages"]["torch"]
    assert "cuda" in env["torch"]
    if "torch" not in sys.modules:
        assert env["torch"]["imported"] is False
        assert "torch" not in sys.modules  # capture did not import it


def test_environment_torch_after_import_without_touching_cuda() -> None:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    # In a fresh process: the first capture is taken before `import torch`, the second after it.
    code = (
        "import json; from pykernel_ext.capture.environment import capture_environment as c;"
        "assert c()['torch']['imported'] is False; import torch; t = c()['torch'];"
        "print(json.dumps([t, torch.version.cuda, torch.cuda.is_initialized()]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    info, built_cuda, initialised = json.loads(out.stdout)
    assert info["imported"] is True and info["cuda"] == built_cuda
    assert initialised is False  # capture did not initialise CUDA
    assert info["cuda_available"] is (False if built_cuda is None else None)


def test_environment_cache_returns_fresh_equal_copies() -> None:
    first = capture_environment()
    first["packages"]["mutated-by-caller"] = "1"
    first["python"]["version"] = "0"
    second = capture_environment()
    assert "mutated-by-caller" not in second["packages"]
    assert second == capture_environment()
    assert second["python"]["version"] == platform.python_version()


def test_fingerprint_stable_and_sensitive() -> None:
    env = capture_environment()
    assert environment_fingerprint(env) == environment_fingerprint(capture_environment())
    changed = capture_environment()
    changed["packages"]["pytest"] = "0.0.1"
    assert environment_fingerprint(changed) != environment_fingerprint(env)
    other_host = capture_environment()
    other_host["hostname"] = "elsewhere"
    assert environment_fingerprint(other_host) != environment_fingerprint(env)


def test_fingerprint_ignores_whether_torch_was_imported() -> None:
    env = capture_environment()
    env["torch"] = {"version": "2.0", "cuda": "12.1", "imported": False}
    later = dict(env, torch={"version": "2.0", "cuda": "12.1", "imported": True, "cudnn": 8902,
                             "cuda_available": True})
    assert environment_fingerprint(env) == environment_fingerprint(later)


def _age(path: Path) -> None:
    # Pretend the folder was last changed long ago, as site-packages usually was; a fresh tmp_path may share
    # a coarse mtime tick with the change the test makes next.
    old = time.time() - 3600
    os.utime(path, (old, old))


def test_environment_cache_invalidated_by_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    _age(tmp_path)
    before = capture_environment()
    assert "pkx-fake-dist" not in before["packages"]

    # An unrelated file in a folder on sys.path moves its mtime but keeps the cached listing.
    snapshot_env = environment._snapshot.env
    (tmp_path / "notes.txt").write_text("not a package")
    assert capture_environment() == before
    assert environment._snapshot.env is snapshot_env

    # What `pip install` leaves behind: a new .dist-info folder.
    _age(tmp_path)
    dist_info = tmp_path / "pkx_fake_dist-1.2.3.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: pkx_fake_dist\nVersion: 1.2.3\n\n")
    after = capture_environment()
    assert after["packages"]["pkx-fake-dist"] == "1.2.3"
    assert environment._snapshot.env is not snapshot_env


def test_environment_cache_sees_change_in_same_mtime_tick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A folder's mtime can have a coarse clock tick, so an install right after the listing may leave it
    # unchanged. Reproduce that exactly: put the folder's mtime back to what the listing saw.
    monkeypatch.syspath_prepend(str(tmp_path))
    capture_environment()
    seen = os.stat(tmp_path).st_mtime_ns
    dist_info = tmp_path / "pkx_quick-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Name: pkx-quick\nVersion: 0.1\n\n")
    os.utime(tmp_path, ns=(seen, seen))
    assert capture_environment()["packages"]["pkx-quick"] == "0.1"


# --- git ---------------------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main",
                          *args], cwd=repo, capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "train.py").write_text("lr = 0.1\n")
    git(root, "add", "train.py")
    git(root, "commit", "-qm", "first")
    return root


def test_git_clean_repo(repo: Path) -> None:
    info = capture_git(repo)
    assert info is not None
    assert info["commit"] == git(repo, "rev-parse", "HEAD")
    assert info["branch"] == "main"
    assert info["root"] == str(repo.resolve())
    assert info["dirty"] is False and info["diff"] == "" and info["diff_bytes"] == 0
    assert info["untracked"] == [] and info["remote_url"] is None


def test_git_dirty_diff_and_untracked(repo: Path) -> None:
    (repo / "train.py").write_text("lr = 0.01\n")
    (repo / "scratch.txt").write_text("x")
    (repo / "sub").mkdir()
    (repo / "sub" / "a.txt").write_text("y")
    info = capture_git(repo / "sub")  # any folder inside the work tree
    assert info is not None
    assert info["dirty"] is True
    assert "+lr = 0.01" in info["diff"] and "-lr = 0.1" in info["diff"]
    assert info["diff_truncated"] is False and info["diff_bytes"] == len(info["diff"].encode())
    assert sorted(info["untracked"]) == ["scratch.txt", "sub/"]
    assert info["untracked_truncated"] is False


def test_git_staged_rename_is_dirty(repo: Path) -> None:
    git(repo, "mv", "train.py", "fit.py")
    info = capture_git(repo)
    assert info is not None and info["dirty"] is True and info["untracked"] == []


def test_git_diff_cap(repo: Path) -> None:
    (repo / "train.py").write_text("".join(f"line {i} " + "x" * 60 + "\n" for i in range(2000)))
    info = capture_git(repo, diff_cap_bytes=1000)
    assert info is not None
    assert info["diff_truncated"] is True
    assert len(info["diff"].encode()) <= 1000
    assert info["diff"].endswith("\n")
    assert info["diff_bytes"] > 100_000


def test_git_untracked_cap(repo: Path) -> None:
    for i in range(205):
        (repo / f"u{i:03}.txt").write_text("")
    info = capture_git(repo)
    assert info is not None
    assert len(info["untracked"]) == 200 and info["untracked_truncated"] is True
    assert info["dirty"] is False  # untracked files are listed, not counted as changes to tracked ones


def test_git_detached_head(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    info = capture_git(repo)
    assert info is not None and info["branch"] is None and info["commit"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:token@github.com/org/x.git", "https://github.com/org/x.git"),
        ("https://ghp_secret@github.com/org/x.git", "https://github.com/org/x.git"),
        ("https://host:8443/org/x.git", "https://host:8443/org/x.git"),
        ("ssh://git:pw@host/org/x.git", "ssh://git@host/org/x.git"),
        ("git@github.com:org/x.git", "git@github.com:org/x.git"),
        ("/srv/repos/x.git", "/srv/repos/x.git"),
    ],
)
def test_strip_credentials(url: str, expected: str) -> None:
    assert strip_credentials(url) == expected


def test_git_remote_url_credentials_stripped(repo: Path) -> None:
    git(repo, "remote", "add", "origin", "https://user:s3cret@example.com/org/repo.git")
    git(repo, "remote", "add", "backup", "https://other.example.com/repo.git")
    info = capture_git(repo)
    assert info is not None
    assert info["remote_url"] == "https://example.com/org/repo.git"
    assert "s3cret" not in repr(info)


def test_git_unborn_head(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "new.py").write_text("print(1)\n")
    info = capture_git(tmp_path)
    assert info is not None
    assert info["commit"] is None and info["branch"] == "main"
    assert info["dirty"] is False and info["untracked"] == ["new.py"]
    git(tmp_path, "add", "new.py")
    info = capture_git(tmp_path)
    assert info is not None and info["dirty"] is True and "+print(1)" in info["diff"]


def test_not_a_repo(tmp_path: Path) -> None:
    assert capture_git(tmp_path) is None
    assert capture_git(tmp_path / "missing-file.py") is None


def test_start_git_capture_matches(repo: Path) -> None:
    (repo / "train.py").write_text("lr = 0.5\n")
    future = start_git_capture(repo)
    captured, direct = future.result(timeout=10), capture_git(repo)
    assert captured.pop("captured_at") <= direct.pop("captured_at")
    assert captured == direct
    assert start_git_capture(repo.parent).result(timeout=10) is None


# --- hardware ----------------------------------------------------------------------------------------


def test_hardware_static() -> None:
    hw = capture_hardware_static()
    assert hw["cpu_logical_cores"] >= 1
    assert hw["cpu_physical_cores"] is None or hw["cpu_physical_cores"] >= 1
    assert hw["memory_total_bytes"] > 0
    assert set(hw["gpu"]) == {"available", "reason", "driver_version", "gpus"}
    hw["cpu_model"] = "changed"
    assert capture_hardware_static()["cpu_model"] != "changed"


def _burn_cpu(seconds: float) -> None:
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        x += 1


def test_resource_sampler_measures_this_process() -> None:
    with ResourceSampler(interval=0.05) as sampler:
        _burn_cpu(0.2)
        block = bytearray(64 * 1024 * 1024)
        block[::4096] = b"\1" * len(block[::4096])  # touch every page so it counts in RSS
        # Held until a background reading has seen it: VmHWM may already be higher from earlier tests, so
        # only the sampling thread's readings can show this peak.
        wait_for(lambda: sampler._peak_rss, lambda peak: peak >= sampler._rss_start + 32 * 1024 * 1024)
        del block
    result = sampler.result
    assert result is not None
    assert result["cpu_seconds"] >= 0.15
    assert result["peak_rss_bytes"] >= result["rss_start_bytes"] > 0
    assert result["peak_rss_bytes"] >= result["rss_start_bytes"] + 32 * 1024 * 1024
    assert result["rss_end_bytes"] > 0
    if not result["gpu_available"]:
        assert result["gpu_samples"] == [] and result["gpu_summary"] == {} and result["gpus_used"] == []
    assert sampler.stop() is result  # idempotent


def test_resource_sampler_without_gpu_reports_so() -> None:
    from pykernel_ext.gpu import gpu_status

    sampler = ResourceSampler(interval=0.5).start()
    result = sampler.stop()
    assert result["gpu_available"] is gpu_status().available
    assert set(result) == {"peak_rss_bytes", "rss_start_bytes", "rss_end_bytes", "cpu_seconds", "gpu_available",
                           "gpu_samples", "gpu_summary", "gpus_used"}


def test_resource_sampler_stop_before_start() -> None:
    with pytest.raises(RuntimeError):
        ResourceSampler().stop()


def test_estimate_cost() -> None:
    cost = estimate_cost(duration_s=1800, cpu_seconds=7200, gpu_count=2, gpu_hour_price=2.5, cpu_hour_price=0.04)
    assert cost["gpu_hours"] == pytest.approx(1.0)
    assert cost["cpu_hours"] == pytest.approx(2.0)
    assert cost["usd"] == pytest.approx(2.5 + 0.08)
    assert (cost["gpu_hour_price"], cost["cpu_hour_price"]) == (2.5, 0.04)
    assert estimate_cost(60, 0, 0, 2.5, 0.04)["usd"] == 0


# ---- notebook identity (capture/notebook.py) and failed cells (batch/failures.py) ------------------------


def _write_notebook(path: Path, sources: list[str], metadata: dict | None = None, tags: dict | None = None) -> list:
    import nbformat

    cells = [nbformat.v4.new_code_cell(s) for s in sources]
    for index, cell_tags in (tags or {}).items():
        cells[index].metadata["tags"] = cell_tags
    nb = nbformat.v4.new_notebook(cells=cells, metadata=metadata or {})
    nbformat.write(nb, path)
    return cells


def test_a_kernel_finds_its_notebook_and_cell_from_its_history(tmp_path: Path) -> None:
    from pykernel_ext.capture.notebook import locate_cell

    cells = _write_notebook(tmp_path / "train.ipynb", ["import os", "lr = 0.1", "%%track\nx = lr"],
                            tags={1: ["parameters"]})
    injected = "# Parameters\nlr = 0.5\n"
    history = ["", "import os", "lr = 0.1", injected, "%%track\nx = lr"]  # papermill's run: In[0] is empty
    found = locate_cell(history, None, tmp_path)
    assert found is not None and found.cell_id == cells[2].id and found.notebook.endswith("train.ipynb")
    # papermill's output beside it holds the same code and names its input: the input is the notebook.
    _write_notebook(tmp_path / "out.ipynb", ["import os", "lr = 0.1", injected, "%%track\nx = lr"],
                    metadata={"papermill": {"input_path": "train.ipynb"}})
    assert locate_cell(history, None, tmp_path).notebook == found.notebook
    _write_notebook(tmp_path / "train.nbconvert.ipynb", ["import os", "lr = 0.1", "%%track\nx = lr"])
    assert locate_cell(history, None, tmp_path).notebook == found.notebook
    _write_notebook(tmp_path / "copy.ipynb", ["import os", "lr = 0.1", "%%track\nx = lr"])
    assert locate_cell(history, None, tmp_path) is None  # two notebooks fit: none is claimed
    assert locate_cell(["print('not in any notebook')"], None, tmp_path) is None
    # A notebook the kernel was told about, cells run out of order (interactive use): the cell still counts.
    assert locate_cell(["%%track\nx = lr", "import os"], str(tmp_path / "train.ipynb"), None).cell_id == cells[0].id


def test_notebook_code_text_round_trips() -> None:
    from pykernel_ext.capture.notebook import notebook_code_text, split_notebook_code

    notebook = {"cells": [{"cell_type": "markdown", "source": "# title"},
                          {"cell_type": "code", "source": ["a = 1\n", "b = 2"], "metadata": {"tags": ["parameters"]}},
                          {"cell_type": "code", "source": "# Parameters\na = 3", "metadata": {"tags": ["injected-parameters"]}},
                          {"cell_type": "code", "source": "%%time\nc = a + b\n", "metadata": {}}]}
    text = notebook_code_text(notebook)
    assert "# title" not in text and "a = 3" not in text
    assert split_notebook_code(text) == [("a = 1\nb = 2", True), ("%%time\nc = a + b", False)]


def test_the_failed_cell_is_the_one_papermill_marked() -> None:
    from pykernel_ext.batch import failures

    def cell(source, tags=(), kind="code", outputs=(), cell_id=None):
        return {"cell_type": kind, "source": source, "metadata": {"tags": list(tags)}, "outputs": list(outputs),
                "id": cell_id or source[:8]}

    marker = "papermill-error-cell-tag"
    executed = {"cells": [
        cell("<span>An Exception was encountered</span>", [marker], "markdown"), cell("# Title", kind="markdown"),
        cell("a = 1", ["parameters"]), cell("# Parameters\na = 2", ["injected-parameters"]),
        cell('<span id="papermill-error-cell">here</span>', [marker], "markdown"),
        cell("%bogus", outputs=[{"output_type": "stream", "name": "stderr",
                                 "text": "UsageError: Line magic function `%bogus` not found.\n"}], cell_id="bad"),
        cell("print(1)")]}
    index = failures.marked_error_cell(executed)
    facts = failures.cell_facts(executed, index)
    assert facts["cell_id"] == "bad" and facts["cell_number"] == 3 and facts["cell_source"] == "%bogus"
    assert failures.error_from_outputs(executed, index) == ("UsageError", "Line magic function `%bogus` not found.")
    assert failures.marked_error_cell({"cells": executed["cells"][1:4]}) is None


def test_datasets_hash_what_they_hold(tmp_path: Path) -> None:
    import torch
    from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset, TensorDataset

    from pykernel_ext.capture.datasets import hash_dataset, is_dataset_value

    class Files(Dataset):
        def __init__(self, root, names):
            self.root = root
            self.files = [f"{root}/{n}" for n in names]
            self.vocabulary = ["cat", "dog"]  # words, not file names: hashed as data
            self.transform = lambda x: x  # code, not data

        def __len__(self):
            return len(self.files)

        def __getitem__(self, i):
            return self.files[i]

    (tmp_path / "imgs").mkdir()
    for name in ("a.png", "b.png"):
        (tmp_path / "imgs" / name).write_bytes(name.encode())
    files = Files("imgs", ["a.png", "b.png"])
    first = hash_dataset(files, str(tmp_path))
    assert first["hash"] and first["kind"] == "dataset" and "imgs (folder)" in first["detail"]
    (tmp_path / "imgs" / "b.png").write_bytes(b"changed")
    assert hash_dataset(files, str(tmp_path))["hash"] != first["hash"]  # a file's content is the data
    tensors = TensorDataset(torch.arange(6.0).reshape(3, 2), torch.tensor([0, 1, 0]))
    combined = ConcatDataset([Subset(tensors, [0, 2]), tensors])
    loader = DataLoader(combined, batch_size=2)
    assert is_dataset_value(loader) and not is_dataset_value(torch.ones(1))
    hashed = hash_dataset(loader)
    assert hashed["kind"] == "dataloader" and "over ConcatDataset" in hashed["detail"] and hashed["hash"]
    assert hash_dataset(DataLoader(ConcatDataset([Subset(tensors, [0, 1]), tensors])))["hash"] != hashed["hash"]

    class Lazy(Dataset):
        def __len__(self):
            return 0

    assert hash_dataset(Lazy())["hash"] is None and "name its files with --data" in hash_dataset(Lazy())["error"]
