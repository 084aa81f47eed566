"""`%%remote` against the embedded LocalCluster (real worker processes), driven through a real IPython shell."""
from __future__ import annotations

import _thread
import contextlib
import threading
import time

import numpy as np
import pytest
from IPython.core.error import UsageError

from conftest import run_cell
from conftest_remote import TimedStream, embedded_cluster, last_run, needs_gpu, runs  # noqa: F401

pytestmark = pytest.mark.usefixtures("embedded_cluster")


def test_variables_functions_and_classes_make_the_round_trip(shell, store_home, capsys):
    run_cell(shell, "import numpy as np\nx = np.arange(12).reshape(3, 4)\nlr = 0.5\n"
                    "def scale(a):\n    return a * lr\n"
                    "class Box:\n    def __init__(self, v):\n        self.v = v\n    def twice(self):\n        return self.v * 2\n")
    result = run_cell(shell, "%%remote --name rt\ny = scale(x) + 1\nbox = Box(y.sum())\nimport os\npid = os.getpid()\n"
                             "total = box.twice()\nprint('sum', y.sum())\ntotal")
    assert result.success, result.error_in_exec
    ns = shell.user_ns
    np.testing.assert_array_equal(ns["y"], np.arange(12).reshape(3, 4) * 0.5 + 1)
    assert type(ns["box"]).__name__ == "Box" and ns["box"].v == ns["y"].sum()
    assert ns["total"] == 2 * ns["y"].sum()
    assert ns["pid"] != __import__("os").getpid(), "the cell ran in a worker process"
    assert ns["os"].__name__ == "os", "modules come back as imports by name"
    out = capsys.readouterr().out
    assert "sum 45.0" in out and "· ok ·" in out
    run = last_run(store_home)
    assert run["kind"] == "remote" and run["status"] == "ok" and run["name"] == "rt"
    assert run["params"]["lr"] == 0.5, "globals the notebook functions read are parameters, as with %%track"
    assert {e["name"] for e in run["code"]["closure"]} == {"scale", "Box"}
    assert {o["name"] for o in run["outputs"]} >= {"y", "box", "total"}
    worker = run["worker"]
    assert worker["host"] and worker["address"].startswith("tcp://") and worker["pid"] == ns["pid"]
    assert "peak_rss_bytes" in run["resources"] and "gpu_available" in run["resources"]
    with __import__("pykernel_ext.store", fromlist=["RunStore"]).RunStore.open(store_home / ".pykernel_ext") as s:
        assert s.blobs.read_text(run["logs"]["stdout_blob"]) == "sum 45.0\n"


def test_notebook_functions_see_what_the_cell_assigns_as_they_would_locally(shell, store_home):
    run_cell(shell, "factor = 1\ndef inner():\n    return factor * 2\ndef outer():\n    return inner() + 1\n")
    local = run_cell(shell, "factor = 10\nexpected = outer()")
    run_cell(shell, "factor = 1")
    result = run_cell(shell, "%%remote\nfactor = 10\nres = outer()")
    assert result.success, result.error_in_exec
    assert local.success and shell.user_ns["res"] == shell.user_ns["expected"] == 21
    assert shell.user_ns["factor"] == 10


def test_output_streams_live_while_the_cell_runs(shell, store_home):
    stream = TimedStream()
    with contextlib.redirect_stdout(stream):
        result = run_cell(shell, "%%remote\nimport time\nfor i in range(3):\n    print('tick', i, time.time())\n"
                                 "    time.sleep(0.5)\nprint('done')")
        finished = time.time()
    assert result.success, result.error_in_exec
    # Causal, not a speed limit (bench/bench_remote.py measures latency): each line reached the notebook before
    # the worker printed the next one, half a second later.
    printed_at = {i: float(stream.text.split(f"tick {i} ", 1)[1].split()[0]) for i in range(3)}
    assert stream.first_arrival("tick 0") < printed_at[1] and stream.first_arrival("tick 1") < printed_at[2]
    assert stream.first_arrival("tick 2") < finished


def test_a_flood_of_prints_arrives_complete_and_in_order(shell, store_home, capsys):
    result = run_cell(shell, "%%remote\nimport sys\nfor i in range(5000):\n    print(i)\n"
                             "    if i % 1000 == 0:\n        print('err', i, file=sys.stderr)")
    assert result.success, result.error_in_exec
    captured = capsys.readouterr()
    assert captured.out.splitlines()[:5000] == [str(i) for i in range(5000)]
    assert captured.err.splitlines() == [f"err {i}" for i in range(0, 5000, 1000)]


def test_display_and_matplotlib_figures_come_back_as_rich_outputs(shell, store_home, monkeypatch):
    published = []
    monkeypatch.setattr(shell.display_pub, "publish",
                        lambda data, metadata=None, **kw: published.append((data, metadata)))
    result = run_cell(shell, "%%remote\nclass Fancy:\n    def _repr_html_(self):\n        return '<b>fancy</b>'\n"
                             "display(Fancy())\nfrom IPython.display import display as d2, HTML\nd2(HTML('<i>x</i>'))\n"
                             "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()\n"
                             "fig = plt.figure()\nplt.plot([3, 2, 1])\n41 + 1")
    assert result.success, result.error_in_exec
    kinds = [sorted(data) for data, _ in published]
    assert published[0][0]["text/html"] == "<b>fancy</b>"
    assert published[1][0]["text/html"] == "<i>x</i>"
    pngs = [data for data, _ in published if "image/png" in data]
    assert len(pngs) == 2, f"one figure from show(), one left open at the end; got {kinds}"
    import base64

    assert base64.b64decode(pngs[0]["image/png"]).startswith(b"\x89PNG")
    # As with the inline backend: the value of the last expression, then the figures left open.
    assert published[-2][0] == {"text/plain": "42"} and "image/png" in published[-1][0]


def test_an_exception_keeps_what_ran_before_it_as_locally_and_shows_the_cells_line_numbers(shell, store_home, capsys):
    run_cell(shell, "a = 'before'\nhistory = []")
    local = run_cell(shell, "a = 'after'\nb = 2\nhistory.append(b)\nc = b / 0\nd = 4")
    expected = {k: shell.user_ns.get(k) for k in ("a", "b", "c", "d")}, list(shell.user_ns["history"])
    run_cell(shell, "a = 'before'\nhistory = []\ndel b")
    result = run_cell(shell, "%%remote\na = 'after'\nb = 2\nhistory.append(b)\nc = b / 0\nd = 4")
    error = result.error_in_exec
    assert type(error).__name__ == "RemoteCellError" and error.ename == "ZeroDivisionError"
    assert type(local.error_in_exec) is ZeroDivisionError
    got = {k: shell.user_ns.get(k) for k in ("a", "b", "c", "d")}, list(shell.user_ns["history"])
    assert got == expected == ({"a": "after", "b": 2, "c": None, "d": None}, [2]), \
        "a failing remote cell leaves the notebook as the same cell run locally does"
    rendered = "\n".join(error._render_traceback_())
    # Line 4 of the notebook cell (the %%remote line is line 1) and its source.
    assert f'File "<remote cell {shell.execution_count - 1}>", line 5' in rendered and "c = b / 0" in rendered
    assert "pykernel_ext" not in rendered, "our frames on the worker are not shown"
    assert "ZeroDivisionError" in capsys.readouterr().out
    run = last_run(store_home)
    assert run["status"] == "failed" and run["error_type"] == "RemoteCellError"
    assert "line 5" in run["error"]["traceback"] and "ZeroDivisionError" in run["error"]["traceback"]


def test_a_syntax_error_reports_the_cells_line(shell, store_home):
    result = run_cell(shell, "%%remote\nx = 1\ny = (\n")
    assert result.error_in_exec.ename == "SyntaxError"
    assert "line 3" in result.error_in_exec.remote_traceback


@pytest.mark.parametrize("definition, kind", [("import threading\nlock = threading.Lock()", "lock"),
                                              ("gen = (i for i in range(3))", "generator")])
def test_an_unpicklable_variable_stops_the_cell_before_anything_is_sent(shell, store_home, definition, kind):
    from pykernel_ext.remote import JOBS

    name = definition.split("\n")[-1].split(" =")[0]
    run_cell(shell, definition)
    jobs_before = len(JOBS)
    result = run_cell(shell, f"%%remote\nprint({name})\nz = 1")
    assert isinstance(result.error_in_exec, UsageError)
    message = str(result.error_in_exec)
    assert repr(name) in message and "cannot" in message and kind in message
    assert len(JOBS) == jobs_before and runs(store_home) == [], "nothing was submitted or recorded"
    assert "z" not in shell.user_ns


def test_a_large_value_warns_with_its_size_and_travels_beside_the_task(shell, store_home, monkeypatch, capsys):
    from pykernel_ext.remote import shipping

    monkeypatch.setattr(shipping, "LARGE_VALUE_BYTES", 1_000_000)
    run_cell(shell, "import numpy as np\nbig = np.ones(500_000)")  # 4 MB
    result = run_cell(shell, "%%remote\ntotal = big.sum()\nbig2 = big * 2")
    assert result.success, result.error_in_exec
    assert "sending 4.0 MB to the worker (big)" in capsys.readouterr().err
    assert shell.user_ns["total"] == 500_000 and shell.user_ns["big2"].sum() == 1_000_000


def test_push_pull_and_timeout(shell, store_home):
    run_cell(shell, "hidden = 7")
    result = run_cell(shell, "%%remote --push hidden --pull b\na = globals()['hidden']\nb = a * 2")
    assert result.success, result.error_in_exec
    assert shell.user_ns["b"] == 14 and "a" not in shell.user_ns
    result = run_cell(shell, "%%remote --push nowhere\nq = 1")
    assert isinstance(result.error_in_exec, UsageError) and "nowhere" in str(result.error_in_exec)
    result = run_cell(shell, "%%remote --timeout 1\nimport time\nfor i in range(200):\n    time.sleep(0.05)\nlate = 1")
    assert type(result.error_in_exec).__name__ == "RemoteTimeout" and "late" not in shell.user_ns
    assert last_run(store_home)["duration_s"] < 10, "stopped, not run to its end (10 s)"
    assert last_run(store_home)["status"] == "failed"


def test_unsatisfiable_resources_fail_fast_listing_the_cluster(shell, store_home):
    result = run_cell(shell, "%%remote --gpus 4\nx = 1")
    message = str(result.error_in_exec)
    assert isinstance(result.error_in_exec, UsageError)
    assert "no worker offers GPU=4" in message and "1 worker: tcp://" in message and "threads" in message
    result = run_cell(shell, "%%remote --memory 900TB\nx = 1")
    assert "900.0 TB memory" in str(result.error_in_exec)


def test_bad_options_are_usage_errors(shell, store_home):
    for line in ("--gpus lots", "--memory huge", "--timeout 0", "--push 1x", "--frobnicate"):
        result = run_cell(shell, f"%%remote {line}\nx = 1")
        assert isinstance(result.error_in_exec, UsageError), line
        assert "usage: %%remote" in str(result.error_in_exec)


def test_interrupt_stops_the_remote_code_and_the_worker_stays_usable(shell, store_home):
    class InterruptOnStart(TimedStream):
        sent = False

        def write(self, text: str) -> int:
            # Once, whatever else was printed before (a warning the worker wrote under load, say).
            if "started" in text and not self.sent:
                self.sent = True
                threading.Timer(0.2, _thread.interrupt_main).start()  # as Jupyter's interrupt button does
            return super().write(text)

    stream = InterruptOnStart()
    with contextlib.redirect_stdout(stream):
        result = run_cell(shell, "%%remote\nimport time, os\nprint('started', flush=True)\n"
                                 "for i in range(400):\n    time.sleep(0.025)\nfinished = True")
        returned = time.time()
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert returned - stream.first_arrival("started") < 10, "stopped, not run to its end (10 s)"
    assert "finished" not in shell.user_ns
    interrupted = last_run(store_home)
    assert interrupted["status"] == "interrupted"
    result = run_cell(shell, "%%remote\nimport os\nagain = os.getpid()")
    assert result.success, result.error_in_exec
    assert shell.user_ns["again"] == interrupted["worker"]["pid"], "the same worker process ran the next cell"


def test_no_wait_returns_a_handle_and_result_brings_the_variables_back(shell, store_home, capsys):
    result = run_cell(shell, "%%remote --no-wait --name job1\nimport time\ntime.sleep(1)\nprint('bg')\nout = 42")
    assert result.success, result.error_in_exec
    job = shell.user_ns["job1"]
    assert shell.user_ns["_remote_job"] is job
    assert job.status in ("queued", "running") and "out" not in shell.user_ns
    assert "job1.result()" in capsys.readouterr().out  # the text fallback of the status widget
    assert job.result(timeout=30)["out"] == 42 and shell.user_ns["time"].__name__ == "time"
    assert shell.user_ns["out"] == 42 and job.status == "ok" and job.stdout == "bg\n"
    run_cell(shell, "%remote_jobs")
    listing = capsys.readouterr().out
    line = next(row for row in listing.splitlines() if row.startswith("job1"))
    assert " ok " in line and job.run_id[:8] in line
    assert last_run(store_home)["status"] == "ok"
    failing = run_cell(shell, "%%remote --no-wait\nraise ValueError('later')").success
    assert failing, "a --no-wait cell returns before it fails"
    with pytest.raises(Exception, match="later"):
        shell.user_ns["_remote_job"].result(timeout=30)


def test_metrics_logged_in_a_remote_cell_reach_its_run(shell, store_home):
    result = run_cell(shell, "%%remote --metrics acc\nimport pykernel_ext\nfor step in range(3):\n"
                             "    pykernel_ext.log(loss=1.0 / (step + 1))\nacc = 0.9")
    assert result.success, result.error_in_exec
    run = last_run(store_home)
    assert run["metric_series"]["loss"]["values"] == pytest.approx([1.0, 0.5, 1 / 3])
    assert run["metrics"]["acc"] == pytest.approx(0.9)


def test_shell_commands_run_on_the_worker(shell, store_home, capsys):
    result = run_cell(shell, "%%remote\n!echo from-the-worker\nlines = !echo captured")
    assert result.success, result.error_in_exec
    assert "from-the-worker" in capsys.readouterr().out and shell.user_ns["lines"] == ["captured"]


def test_the_python_api_runs_code_remotely(store_home):
    from pykernel_ext.remote import remote

    namespace = {"n": 5}
    assert remote("m = n * n", namespace) == {"m": 25} and namespace["m"] == 25
    job = remote("k = n + 1", namespace, wait=False)
    assert job.result(timeout=30) == {"k": 6} and namespace["k"] == 6
    assert last_run(store_home)["kind"] == "remote"


def test_worker_gpus_and_the_state_file_show_the_embedded_cluster(shell, store_home):
    from pykernel_ext.remote import cluster

    assert run_cell(shell, "%%remote\nx = 1").success
    state_files = list((store_home / ".pykernel_ext" / "clusters").glob("*.json"))
    executor = cluster.get_executor()
    if state_files:  # written into the store of the test that started the cluster
        assert cluster.read_state(state_files[0])["address"] == executor.address
    rows = cluster.worker_gpus(executor.address)
    assert len(rows) == len(cluster.embedded_worker_specs())
    row = rows[0]
    assert row["worker"].startswith("tcp://") and row["nthreads"] >= 1 and isinstance(row["gpus"], list)
    assert cluster.worker_gpus("tcp://127.0.0.1:9") == [], "unreachable: empty, never raises"


def test_a_killed_worker_fails_the_cell_clearly_and_the_run_records_why(shell, store_home):
    run_cell(shell, "keep = 'untouched'")
    result = run_cell(shell, "%%remote\nimport os, time\nkeep = 'changed'\ntime.sleep(0.2)\nos.kill(os.getpid(), 9)")
    error = result.error_in_exec
    assert type(error).__name__ == "WorkerDied" and "died" in str(error)
    assert shell.user_ns["keep"] == "untouched"
    run = last_run(store_home)
    assert run["status"] == "failed" and "died" in run["error_message"]
    result = run_cell(shell, "%%remote\nafter = 'worker restarted'")  # the nanny brings a new worker up
    assert result.success and shell.user_ns["after"] == "worker restarted"


@pytest.mark.gpu
@needs_gpu
def test_a_gpu_cell_runs_on_a_gpu_worker_and_records_its_gpu(shell, store_home):
    result = run_cell(shell, "%%remote --gpus 1\nimport torch\nt = torch.ones(4, device='cuda') * 2\n"
                             "for _ in range(50):\n    t = t * 1.0\nname = torch.cuda.get_device_name(0)")
    assert result.success, result.error_in_exec
    assert shell.user_ns["t"].sum().item() == 8
    run = last_run(store_home)
    assert run["worker"]["gpus"] and run["resources"]["gpu_available"]
    assert run["gpu_samples"] and run["gpu_samples"][0]["host"] == run["worker"]["host"]


def test_address_files_of_kernels_that_died_are_removed(store_home):
    import json
    import subprocess
    import sys

    from pykernel_ext.config import Settings
    from pykernel_ext.remote import cluster

    folder = Settings.from_env().store_dir / cluster.EMBEDDED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(ended.stdout)  # a process that has exited: its pid names no live kernel
    stale = folder / f"{dead_pid}.json"
    stale.write_text(json.dumps({"address": "tcp://127.0.0.1:9", "pid": dead_pid}))
    alive = folder / f"{__import__('os').getpid()}.json"
    alive.write_text(json.dumps({"address": "tcp://127.0.0.1:10", "pid": __import__("os").getpid()}))
    assert cluster.known_addresses() == ["tcp://127.0.0.1:10"]
    assert not stale.exists() and alive.exists()


DEFINED_REMOTELY = """%%remote{session}
from dataclasses import dataclass

@dataclass
class Config:
    width: int = 4

    def doubled(self):
        return [v * 2 for v in range(self.width)]

def make_config(width):
    return Config(width)
"""


@pytest.mark.parametrize("session", ["", " --session defined-remotely"])
def test_definitions_from_a_remote_cell_have_their_source_at_home(shell, store_home, session):
    # cloudpickle names the code of what it ships `<dynamic-code>`: without the cell's text, a function or
    # class defined in a remote cell would have no source in the runs that use it once it is home.
    try:
        assert run_cell(shell, DEFINED_REMOTELY.format(session=session)).success
        assert run_cell(shell, "%%track\ncfg = make_config(3)\ntwice = cfg.doubled()").success
        ns = shell.user_ns
        assert ns["twice"] == [0, 2, 4] and ns["cfg"].width == 3
        closure = {e["name"]: e for e in last_run(store_home)["code"]["closure"]}
        assert closure["make_config"]["source"] == "def make_config(width):\n    return Config(width)\n"
        assert closure["Config"]["source"].startswith("@dataclass\nclass Config:\n    width: int = 4\n")
        import inspect
        assert "return [v * 2 for v in range(self.width)]" in inspect.getsource(ns["Config"].doubled)
        # the dataclass's generated __init__ was compiled from a string: not pointed at the cell's lines
        assert ns["Config"].__init__.__code__.co_filename != ns["Config"].doubled.__code__.co_filename
    finally:
        if session:
            run_cell(shell, "%remote_session close defined-remotely")


def test_a_workers_first_event_after_registering_reaches_the_cell(shell, store_home):
    # A session cell goes straight to its worker: the worker's first output must not outrun the client's
    # topic subscription to the scheduler (the first cell of a kernel once lost its output this way).
    from distributed import Client

    from pykernel_ext.remote.cluster import get_executor
    from pykernel_ext.remote.executor import DaskExecutor

    address = get_executor().client.scheduler.address
    for attempt in range(5):  # each attempt is a fresh client, so a fresh subscription
        with Client(address, set_as_default=False, timeout=30) as client:
            executor = DaskExecutor(client, origin="test")
            events = executor.register_events("first-words")
            topic = executor.topic
            client.run(lambda dask_worker: dask_worker.log_event(topic, {"key": "first-words", "type": "stream",
                                                                         "text": "hello"}))
            message = events.get(timeout=10)
            assert message["text"] == "hello", (attempt, message)


@pytest.mark.parametrize("session", ["", " --session missing-data"])
def test_a_missing_data_path_stops_a_remote_cell_before_it_is_sent(shell, store_home, session):
    (store_home / "data").mkdir()
    (store_home / "data" / "train.csv").write_text("x\n1\n")
    try:
        result = run_cell(shell, f"%%remote{session} --data data/nowhere.csv\nran = True")
        assert isinstance(result.error_in_exec, UsageError)
        assert "data/nowhere.csv" in str(result.error_in_exec) and "does not exist" in str(result.error_in_exec)
        assert "ran" not in shell.user_ns and runs(store_home) == []
        # A path relative to the kernel's folder is found, as %%track finds it.
        assert run_cell(shell, f"%%remote{session} --data data/train.csv\nran = True").success
        assert shell.user_ns["ran"] is True and last_run(store_home)["status"] == "ok"
    finally:
        if session:
            run_cell(shell, "%remote_session close missing-data")
