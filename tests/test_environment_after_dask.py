"""The environment listing still sees a same-tick install once dask is imported, as it is in any kernel that
ran a `%%remote` cell: dask imports the importlib_metadata backport, which replaces the stdlib's path finder
with its own mtime-keyed cache (this failed `make test` when a Dask test ran first)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import os, sys
from pathlib import Path
import distributed  # what a kernel has after its first %%remote cell
assert "importlib_metadata" in sys.modules
from pykernel_ext.capture.environment import capture_environment

folder = Path(sys.argv[1])
sys.path.insert(0, str(folder))
os.utime(folder)  # the folder just changed (an earlier install), then it is listed
capture_environment()
seen = os.stat(folder).st_mtime_ns
dist_info = folder / "pkx_quick-0.1.dist-info"
dist_info.mkdir()
(dist_info / "METADATA").write_text("Name: pkx-quick\\nVersion: 0.1\\n\\n")
os.utime(folder, ns=(seen, seen))  # the install landed in the same mtime tick as the listing
print(capture_environment()["packages"].get("pkx-quick"))
"""


def test_same_tick_install_is_seen_with_the_importlib_metadata_backport(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0.1"
