"""The server extension over a real Jupyter server (pytest-jupyter), a real store and real tracked runs.

Covers every endpoint, authentication (a request without the token is refused), path traversal (`../`,
`%2e%2e`, absolute paths, a blob reference of the wrong shape, a path the run never recorded, a blob that is
a symlink out of the store) and bad query parameters (400 with a JSON message).
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

from pykernel_ext.server import api as server_api
from pykernel_ext.server.events import ChangeCursor, OVERLAP_SECONDS


API = "pykernel-ext/api/v1"


@pytest.fixture
def server_store(jp_serverapp):
    """The store the running server reads (its one RunStore)."""
    return jp_serverapp.web_app.settings["pykernel_ext"]["api"].store()


def add_run(store, *, status: str = "ok", kind: str = "cell", name: str | None = None, notebook: str | None = None,
            params: dict | None = None, tags: dict | None = None, started_at: float | None = None,
            details: dict | None = None, artifacts=(), metrics=(), gpu_samples=(), parent_id=None) -> str:
    """A run written directly through the store (for volume and for records a tracker would never write)."""
    run_id = uuid.uuid4().hex
    started = started_at if started_at is not None else time.time()
    summary = {"id": run_id, "kind": kind, "name": name or f"run-{run_id[:4]}", "status": "running",
               "notebook": notebook, "started_at": started, "params": params or {}, "tags": tags or {},
               "owner_pid": os.getpid(), "parent_id": parent_id}
    store.begin_run(summary, details or {})
    if status != "running":
        store.finish_run(run_id, {"status": status, "ended_at": started + 1, "duration_s": 1.0},
                         details or {}, list(metrics), list(artifacts), list(gpu_samples))
    return run_id


async def get_json(jp_fetch, path: str, /, **params):
    response = await jp_fetch(API, path, params=params)
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


async def expect_status(jp_fetch, status: int, path: str, /, **params) -> dict:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(API, path, params=params)
    assert info.value.code == status, info.value.response.body
    body = json.loads(info.value.response.body)
    assert isinstance(body["message"], str) and body["message"]
    return body


async def raw_get(http_server_client, jp_base_url: str, tail: str, headers: dict | None = None):
    """A request with the URL exactly as given (no client-side escaping), e.g. `%2e%2e`."""
    return await http_server_client.fetch(f"{jp_base_url}{API}/{tail}", headers=headers or {},
                                          raise_error=False, request_timeout=10)


# ---- runs list -----------------------------------------------------------------------------------------


async def test_runs_list_pages_filters_and_sorts(jp_fetch, server_store, store_home):
    base = time.time() - 1000
    for i in range(30):
        add_run(server_store, status=["ok", "failed", "interrupted"][i % 3], kind="script" if i % 5 == 0 else "cell",
                name=f"train-{i:02d}", notebook="nbs/a.ipynb" if i < 10 else "b.ipynb", params={"lr": i / 100},
                tags={"team": "vision"} if i % 2 else {"team": "nlp"}, started_at=base + i)
    page = await get_json(jp_fetch, "runs", limit="7", offset="0")
    assert page["total"] == 30 and len(page["runs"]) == 7 and page["limit"] == 7
    assert [r["name"] for r in page["runs"][:2]] == ["train-29", "train-28"]  # newest first by default
    second = await get_json(jp_fetch, "runs", limit="7", offset="7")
    assert second["runs"][0]["name"] == "train-22"
    assert {"params", "metrics", "tags", "notebook_server_path"} <= set(page["runs"][0])
    assert "code" not in page["runs"][0]  # list rows are summaries only

    assert (await get_json(jp_fetch, "runs", status="failed"))["total"] == 10
    assert (await get_json(jp_fetch, "runs", kind="script"))["total"] == 6
    assert (await get_json(jp_fetch, "runs", tag="team=vision"))["total"] == 15
    assert (await get_json(jp_fetch, "runs", tag="team"))["total"] == 30
    assert [r["name"] for r in (await get_json(jp_fetch, "runs", q="train-1"))["runs"]][-1] == "train-10"
    by_name = await get_json(jp_fetch, "runs", sort="name", order="asc", limit="3")
    assert [r["name"] for r in by_name["runs"]] == ["train-00", "train-01", "train-02"]
    in_nb = await get_json(jp_fetch, "runs", notebook="nbs/a.ipynb")
    assert in_nb["total"] == 10
    assert {r["notebook_server_path"] for r in in_nb["runs"]} == {"nbs/a.ipynb"}


async def test_runs_list_bad_parameters_are_400(jp_fetch, jp_serverapp):
    bad = [
        {"limit": "0"}, {"limit": "abc"}, {"limit": "100000"}, {"offset": "-1"}, {"status": "exploded"},
        {"sort": "params_json; DROP TABLE runs"}, {"order": "sideways"}, {"bogus": "1"}, {"top_level": "maybe"},
        {"parent": "not-hex!"}, {"notebook": "../outside.ipynb"}, {"notebook": "/etc/passwd"},
        {"q": "x" * 5000},
    ]
    for params in bad:
        body = await expect_status(jp_fetch, 400, "runs", **params)
        assert "message" in body


async def test_repeated_parameter_is_400_and_cache_buster_is_ignored(http_server_client, jp_base_url, jp_auth_header):
    response = await raw_get(http_server_client, jp_base_url, "runs?limit=1&limit=2", jp_auth_header)
    assert response.code == 400
    assert "once" in json.loads(response.body)["message"]
    # JupyterLab's ServerConnection appends a bare timestamp to GETs to bust caches: accepted.
    busted = await raw_get(http_server_client, jp_base_url, "runs?limit=1&1700000000000", jp_auth_header)
    assert busted.code == 200


# ---- one run -------------------------------------------------------------------------------------------


def _tracked_run(store_home: Path) -> str:
    """A real run recorded by the tracker: params, a data file, metrics, an artifact, printed output."""
    import pykernel_ext
    from pykernel_ext.tracking import track

    data = store_home / "data.csv"
    data.write_text("x,y\n1,2\n")
    with track(name="tracked", params={"lr": 0.1, "name": "<b>x</b>"}, data=[str(data)],
               artifacts=["model.bin"], tags={"team": "vision"}) as run:
        (store_home / "model.bin").write_bytes(b"\x00weights\x01")  # an artifact is a file the run writes
        print("hello from the run")
        for step in range(5):
            pykernel_ext.log(loss=1.0 / (step + 1), step=step)
    return run.id


async def test_run_detail_in_full(jp_fetch, jp_serverapp, store_home):
    run_id = _tracked_run(store_home)
    run = await get_json(jp_fetch, f"runs/{run_id}")
    assert run["id"] == run_id and run["status"] == "ok" and run["kind"] == "script"
    assert run["params"]["lr"] == 0.1 and run["params"]["name"] == "<b>x</b>"
    assert 'print("hello from the run")' in run["code"]["source"]  # the with-block's own source
    assert any(d.get("hash") for d in run["data"])
    assert run["environment"]["packages"]["pytest"]
    assert run["metric_series"]["loss"]["values"] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert run["logs_text"]["stdout"].strip() == "hello from the run"
    assert run["logs_text"]["stdout_truncated"] is False
    assert run["artifacts"][0]["path"] == "model.bin"
    assert isinstance(run["gpu_samples"], list) and run["children"] == []
    assert run["tags"] == {"team": "vision"}
    prefix = await get_json(jp_fetch, f"runs/{run_id[:10]}")
    assert prefix["id"] == run_id


async def test_run_not_found_and_bad_ids(jp_fetch, server_store):
    await expect_status(jp_fetch, 404, f"runs/{'ab' * 16}")
    await expect_status(jp_fetch, 400, "runs/not-a-run-id")
    await expect_status(jp_fetch, 400, "runs/" + "a" * 65)


async def test_children_and_downsampled_series(jp_fetch, server_store):
    parent = add_run(server_store, name="sweep")
    child = add_run(server_store, parent_id=parent)
    metrics = [("loss", i, 1.0 / (i + 1), time.time()) for i in range(5000)]
    big = add_run(server_store, metrics=metrics)
    assert (await get_json(jp_fetch, f"runs/{parent}"))["children"] == [child]
    series = (await get_json(jp_fetch, f"runs/{big}"))["metric_series"]["loss"]
    assert len(series["values"]) <= server_api.MAX_SERIES_POINTS and series["downsampled_from"] == 5000
    assert series["steps"][0] == 0 and series["steps"][-1] == 4999


async def test_logs_are_capped_in_the_payload_and_whole_in_the_download(jp_fetch, server_store):
    text = "".join(f"line {i}\n" for i in range(60_000))  # ~600 KiB, over the cap
    blob = server_store.blobs.put_text(text)
    run_id = add_run(server_store, details={"logs": {"stdout_blob": blob, "stderr_blob": None}})
    run = await get_json(jp_fetch, f"runs/{run_id}")
    assert run["logs_text"]["stdout_truncated"] is True
    assert len(run["logs_text"]["stdout"].encode()) <= server_api.LOG_CAP_BYTES
    assert run["logs_text"]["stdout"].endswith("line 59999\n")  # the end of a log is what matters
    full = await jp_fetch(API, f"runs/{run_id}/logs/stdout")
    assert full.body.decode() == text and full.headers["Content-Type"].startswith("text/plain")
    await expect_status(jp_fetch, 404, f"runs/{run_id}/logs/stderr")
    await expect_status(jp_fetch, 400, f"runs/{run_id}/logs/passwd")


async def test_nan_metrics_are_valid_json(jp_fetch, server_store):
    run_id = add_run(server_store, metrics=[("loss", 0, float("nan"), time.time()), ("loss", 1, 1.0, time.time())])
    server_store.finish_run(run_id, {"metrics": {"loss": float("inf")}}, {})
    run = await get_json(jp_fetch, f"runs/{run_id}")
    assert run["metric_series"]["loss"]["values"] == [None, 1.0] and run["metrics"]["loss"] is None


# ---- compare -------------------------------------------------------------------------------------------


async def test_compare_runs(jp_fetch, server_store):
    code_a = {"source": "x = lr * 2\n", "hash": "a"}
    code_b = {"source": "x = lr * 3\n", "hash": "b"}
    a = add_run(server_store, params={"lr": 0.1, "batch": 32}, details={"code": code_a},
                metrics=[("loss", i, 1.0 / (i + 1), time.time()) for i in range(3)])
    b = add_run(server_store, params={"lr": 0.2, "batch": 32}, details={"code": code_b},
                metrics=[("loss", i, 2.0 / (i + 1), time.time()) for i in range(3)])
    result = await get_json(jp_fetch, "compare", ids=f"{a},{b[:12]}")
    assert [r["id"] for r in result["runs"]] == [a, b]
    assert result["params"]["different"] == ["lr"] and result["params"]["values"]["batch"] == [32, 32]
    assert [s["values"][0] for s in result["metric_series"]["loss"]] == [1.0, 2.0]
    assert result["code"]["same"] is False and "+x = lr * 3" in result["code"]["diffs"][0]
    assert set(result["environment"]) >= {"fields", "changed", "packages_changed"}


async def test_compare_bad_input(jp_fetch, server_store):
    a = add_run(server_store)
    await expect_status(jp_fetch, 400, "compare", ids=a)
    await expect_status(jp_fetch, 400, "compare", ids=f"{a},{a}")
    await expect_status(jp_fetch, 400, "compare", ids=",".join(uuid.uuid4().hex for _ in range(21)))
    await expect_status(jp_fetch, 400, "compare", ids=f"{a},../etc")
    await expect_status(jp_fetch, 400, "compare")
    await expect_status(jp_fetch, 404, "compare", ids=f"{a},{'cd' * 16}")


# ---- artifacts and traversal ---------------------------------------------------------------------------


@pytest.fixture
def artifact_run(server_store, tmp_path):
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights" * 100)
    digest, size = server_store.blobs.put_file(model)
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    # Records no tracker writes: a blob reference that is a path, and a blob replaced by a symlink outside.
    linked_digest = "f" * 64
    link = server_store.blobs.path_for(linked_digest)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(secret)
    run_id = add_run(server_store, artifacts=[
        ("out/model.bin", digest, size), ("report.html", digest, size),
        ("evil.txt", f"../../../../{secret}", 10), ("linked.txt", linked_digest, 10),
    ], details={"logs": {"stdout_blob": f"../../{secret}"}})
    return run_id, model.read_bytes()


async def test_artifact_download(jp_fetch, artifact_run):
    run_id, content = artifact_run
    response = await jp_fetch(API, f"runs/{run_id}/artifacts/out/model.bin")
    assert response.body == content
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    html = await jp_fetch(API, f"runs/{run_id}/artifacts/report.html")
    assert html.headers["Content-Type"] == "application/octet-stream"  # never served as a page


async def test_artifact_traversal_refused(http_server_client, jp_base_url, jp_auth_header, artifact_run):
    run_id, _ = artifact_run
    attempts = {
        f"runs/{run_id}/artifacts/../../../../etc/passwd": (400, 404),
        f"runs/{run_id}/artifacts/out/../../../../../etc/passwd": (400, 404),
        f"runs/{run_id}/artifacts/%2e%2e/%2e%2e/%2e%2e/etc/passwd": (400,),
        f"runs/{run_id}/artifacts/out%2f..%2f..%2f..%2fetc%2fpasswd": (400,),
        f"runs/{run_id}/artifacts//etc/passwd": (404,),
        f"runs/{run_id}/artifacts/%2Fetc%2Fpasswd": (404,),
        f"runs/{run_id}/artifacts/never-recorded.bin": (404,),
        f"runs/{run_id}/artifacts/evil.txt": (400,),  # recorded blob is not a digest
        f"runs/{run_id}/artifacts/linked.txt": (400,),  # blob file links out of the store
        f"runs/{run_id}/artifacts/a%00b": (400,),
        f"runs/{run_id}/logs/stdout": (400,),  # log blob reference is a path
        "runs/%2e%2e/artifacts/x": (400,),
        f"runs/{run_id}/logs/%2e%2e": (400,),
    }
    for tail, statuses in attempts.items():
        response = await raw_get(http_server_client, jp_base_url, tail, jp_auth_header)
        assert response.code in statuses, (tail, response.code, response.body)
        assert b"TOP SECRET" not in response.body and b"root:" not in response.body
        if response.code in (400, 404) and response.headers.get("Content-Type", "").startswith("application/json"):
            assert json.loads(response.body)["message"]


async def test_damaged_log_reference_keeps_the_run_readable(jp_fetch, artifact_run):
    run_id, _ = artifact_run
    run = await get_json(jp_fetch, f"runs/{run_id}")
    assert run["logs_text"]["stdout"] == "" and "not a blob reference" in run["logs_text"]["stdout_error"]


# ---- GPUs ----------------------------------------------------------------------------------------------


# The GPU panel over a real Dask cluster: tests/test_server_cluster.py.


async def test_gpus_local_samples_when_a_gpu_is_visible(jp_fetch, jp_serverapp, monkeypatch):
    from pykernel_ext import gpu

    sample = gpu.GpuSample(index=0, uuid="GPU-x", name="Fake H100", utilization_percent=87.0,
                           memory_used_bytes=3 << 30, memory_total_bytes=80 << 30, power_watts=300.0,
                           temperature_c=61.0, timestamp=time.time())
    monkeypatch.setattr(gpu, "gpu_status", lambda: gpu.GpuStatus(True, None, "550.1", [{"index": 0}]))
    monkeypatch.setattr(gpu, "sample_gpus", lambda: [sample])
    monkeypatch.setitem(sys.modules, "pykernel_ext.remote.cluster", None)
    local = (await get_json(jp_fetch, "gpus"))["hosts"][0]
    assert local["available"] is True and local["driver_version"] == "550.1"
    assert local["gpus"] == [sample.to_dict()]


async def test_gpus_without_cluster_module(jp_fetch, jp_serverapp, monkeypatch):
    monkeypatch.setitem(sys.modules, "pykernel_ext.remote.cluster", None)  # import fails
    report = await get_json(jp_fetch, "gpus")
    assert [h["source"] for h in report["hosts"]] == ["local"]


# ---- authentication, event loop ------------------------------------------------------------------------


ENDPOINTS = ["runs", "runs/keys", "runs/abc", "runs/abc/notebook", "runs/abc/artifacts/x", "runs/abc/logs/stdout",
             "compare?ids=a,b", "gpus", "events", "schema"]


async def test_every_endpoint_requires_authentication(http_server_client, jp_base_url, jp_auth_header, server_store):
    for endpoint in ENDPOINTS:
        anonymous = await raw_get(http_server_client, jp_base_url, endpoint)
        assert anonymous.code == 403, endpoint
        wrong = await raw_get(http_server_client, jp_base_url, endpoint, {"Authorization": "token wrong"})
        assert wrong.code == 403, endpoint
    ok = await raw_get(http_server_client, jp_base_url, "runs", jp_auth_header)
    assert ok.code == 200


async def test_token_in_the_query_string_authenticates(http_server_client, jp_base_url, jp_auth_header, server_store):
    token = jp_auth_header["Authorization"].split()[-1]
    ok = await raw_get(http_server_client, jp_base_url, f"runs?limit=1&token={token}")
    assert ok.code == 200 and "runs" in json.loads(ok.body)  # Jupyter's own parameter is not one of ours
    wrong = await raw_get(http_server_client, jp_base_url, "runs?token=wrong")
    assert wrong.code == 403


async def test_store_work_runs_off_the_event_loop(jp_fetch, jp_serverapp, monkeypatch):
    runs_api = jp_serverapp.web_app.settings["pykernel_ext"]["api"]
    threads = []
    original = runs_api.list_runs

    def spy(query):
        threads.append(threading.current_thread())
        return original(query)

    monkeypatch.setattr(runs_api, "list_runs", spy)
    await get_json(jp_fetch, "runs")
    assert threads and threads[0] is not threading.main_thread()
    assert threads[0].name.startswith("pykernel-ext")


# ---- push channel --------------------------------------------------------------------------------------


class _Enough(Exception):
    pass


async def _read_events(http_server_client, url: str, headers: dict, until, timeout: float = 8.0) -> str:
    chunks: list[bytes] = []
    done = []

    def on_chunk(chunk: bytes) -> None:
        chunks.append(chunk)
        if until(b"".join(chunks).decode()):
            done.append(True)
            raise _Enough  # closes the connection: the test has what it waited for

    try:
        await http_server_client.fetch(url, headers=headers, streaming_callback=on_chunk, request_timeout=timeout)
    except Exception:
        if not done:
            raise
    return b"".join(chunks).decode()


async def test_events_push_run_changes_and_gpu_samples(http_server_client, jp_base_url, jp_auth_header,
                                                      jp_serverapp, server_store):
    hub = jp_serverapp.web_app.settings["pykernel_ext"]["hub"]
    ids: list[str] = []
    ended: list[bool] = []

    def finished(text: str) -> bool:
        # Each write waits for the channel to show the state before it: subscribed, then the run running.
        if not ids and text.startswith("retry:"):
            ids.append(add_run(server_store, status="running", name="live"))
        elif ids and not ended and '"status":"running"' in text:
            ended.append(True)
            server_store.finish_run(ids[0], {"status": "ok", "duration_s": 1.0}, {})
        return bool(ids) and '"status":"ok"' in text and "event: gpus" in text

    text = await _read_events(http_server_client, f"{jp_base_url}{API}/events", jp_auth_header, finished)
    assert text.startswith("retry:")
    runs_events = [json.loads(block.split("data: ", 1)[1]) for block in text.split("\n\n")
                   if block.startswith("event: runs")]
    statuses = [r["status"] for event in runs_events for r in event["runs"] if r["id"] == ids[0]]
    assert statuses[0] == "running" and statuses[-1] == "ok"
    gpus = [json.loads(b.split("data: ", 1)[1]) for b in text.split("\n\n") if b.startswith("event: gpus")]
    assert gpus[0]["hosts"][0]["source"] == "local"
    for _ in range(50):  # the closed connection leaves the hub
        if not hub.subscribers:
            break
        await asyncio.sleep(0.1)
    assert not hub.subscribers


async def test_events_topics(http_server_client, jp_base_url, jp_auth_header, jp_serverapp):
    text = await _read_events(http_server_client, f"{jp_base_url}{API}/events?topics=gpus", jp_auth_header,
                              lambda t: "event: gpus" in t)
    assert "event: runs" not in text
    bad = await raw_get(http_server_client, jp_base_url, "events?topics=secrets", jp_auth_header)
    assert bad.code == 400 and "topics" in json.loads(bad.body)["message"]


# ---- logic without a server ----------------------------------------------------------------------------


def test_notebook_paths_translate_between_store_and_server(tmp_path):
    home = tmp_path / "project"
    root = home / "notebooks"
    root.mkdir(parents=True)
    paths = server_api.NotebookPaths(home, root)
    assert paths.server_path("notebooks/exp/a.ipynb") == "exp/a.ipynb"
    assert paths.server_path("other/b.ipynb") is None  # outside the server's root
    assert paths.server_path(str(root / "c.ipynb")) == "c.ipynb"
    assert paths.server_path("/elsewhere/d.ipynb") is None
    assert paths.store_label("exp/a.ipynb") == "notebooks/exp/a.ipynb"
    outside = server_api.NotebookPaths(tmp_path / "elsewhere", root)
    assert outside.store_label("a.ipynb") == (root / "a.ipynb").as_posix()
    with pytest.raises(ValueError):
        paths.store_label("../secret.ipynb")


def test_change_cursor_overlaps_and_progresses():
    cursor = ChangeCursor(start=100.0)
    assert cursor.since == 100.0 - OVERLAP_SECONDS
    first = cursor.take([{"id": "a", "updated_at": 101.0}, {"id": "b", "updated_at": 102.0}], limit=10)
    assert [r["id"] for r in first] == ["a", "b"]
    # A late commit stamped before the last change seen still arrives; what was sent is not sent again.
    again = cursor.take([{"id": "c", "updated_at": 101.5}, {"id": "a", "updated_at": 101.0},
                         {"id": "b", "updated_at": 103.0}], limit=10)
    assert [(r["id"], r["updated_at"]) for r in again] == [("c", 101.5), ("b", 103.0)]
    full = cursor.take([{"id": str(i), "updated_at": 104.0 + i} for i in range(3)], limit=3)
    assert len(full) == 3 and cursor.since == 106.0  # after a full batch: strictly forward, no loop


def test_to_json_and_status_mapping():
    from pykernel_ext.errors import InvalidBlobReference, RunNotFound

    assert json.loads(server_api.to_json({"a": [float("nan"), 1.5, float("-inf")]})) == {"a": [None, 1.5, None]}
    assert server_api.status_for(RunNotFound("x")) == 404
    assert server_api.status_for(server_api.NotFound("x")) == 404
    assert server_api.status_for(server_api.BadRequest("x")) == 400
    assert server_api.status_for(InvalidBlobReference("x")) == 400
    assert server_api.status_for(RuntimeError("x")) == 500


def test_extension_entry_points_and_auto_enable_config():
    import pykernel_ext

    repo = Path(__file__).resolve().parent.parent
    config = json.loads((repo / "jupyter-config/jupyter_server_config.d/pykernel_ext.json").read_text())
    assert config["ServerApp"]["jpserver_extensions"]["pykernel_ext"] is True
    assert pykernel_ext._jupyter_server_extension_points() == [{"module": "pykernel_ext.server"}]
    assert pykernel_ext._jupyter_labextension_paths()[0]["dest"] == "pykernel-ext"


# ---- the analysis table: sorting, the search syntax, keyset paging, keys, groups (issue 11) ------------


def _sweep_runs(store) -> list[str]:
    """Six notebook runs of one sweep (lr x model), an accuracy each, one failed; two loose cell runs."""
    base = time.time() - 500
    ids = []
    for i, (lr, model) in enumerate([(lr, m) for m in ("resnet", "vit") for lr in (0.1, 0.01, 0.001)]):
        ids.append(add_run(store, kind="notebook", name="03_sweep", params={"lr": lr, "model": model},
                           tags={"example": "spirals"}, started_at=base + i, status="failed" if i == 4 else "ok",
                           metrics=[("accuracy", 0, 0.5 + i / 20, base), ("accuracy", 1, 0.6 + i / 20, base)]))
    server_store_finish_summaries(store, ids, [0.6 + i / 20 for i in range(6)])
    store.assign_sweep(ids)
    add_run(store, kind="remote", name="gpu-cell", params={"lr": 0.5}, started_at=base + 20)
    add_run(store, name="plain", started_at=base + 21)
    return ids


def server_store_finish_summaries(store, ids, values) -> None:
    for run_id, value in zip(ids, values):
        store.finish_run(run_id, {"metrics": {"accuracy": value}}, {})


async def test_runs_sort_by_metric_and_param_and_take_the_search_syntax(jp_fetch, server_store):
    ids = _sweep_runs(server_store)
    by_accuracy = await get_json(jp_fetch, "runs", sort="metric:accuracy", order="desc", limit="3")
    assert [r["id"] for r in by_accuracy["runs"]] == [ids[5], ids[4], ids[3]] and by_accuracy["total"] == 8
    lowest_first = await get_json(jp_fetch, "runs", sort="metric:accuracy:min", order="asc", limit="1")
    assert lowest_first["runs"][0]["id"] == ids[0]
    by_lr = await get_json(jp_fetch, "runs", sort="param:lr", order="asc")
    assert [r["params"]["lr"] for r in by_lr["runs"][:2]] == [0.001, 0.001]
    assert by_lr["runs"][-1]["name"] == "plain"  # no lr: after every run that has one

    async def names(q, **extra):
        return sorted(r["name"] + str(r["params"].get("lr", "")) for r in
                      (await get_json(jp_fetch, "runs", q=q, **extra))["runs"])

    assert await names("lr=0.1") == ["03_sweep0.1", "03_sweep0.1"]
    assert await names("lr>0.01") == ["03_sweep0.1", "03_sweep0.1", "gpu-cell0.5"]
    assert len(await names("accuracy<=0.7")) == 3
    assert await names("status:failed") == ["03_sweep0.01"]
    assert await names("kind:remote") == ["gpu-cell0.5"]
    assert len(await names("tag:example=spirals")) == 6 and len(await names("example=spirals")) == 6
    assert await names("spirals vit lr<0.005") == ["03_sweep0.001"]
    bad = await expect_status(jp_fetch, 400, "runs", q="lr>high")
    assert "compares numbers" in bad["message"]
    bad_sort = await expect_status(jp_fetch, 400, "runs", sort="metric:")
    assert "param:NAME" in bad_sort["message"]


async def test_runs_keyset_pages_and_cursor_errors(jp_fetch, server_store):
    _sweep_runs(server_store)
    first = await get_json(jp_fetch, "runs", sort="metric:accuracy", limit="3")
    seen = [r["id"] for r in first["runs"]]
    cursor = first["next_cursor"]
    while cursor:
        page = await get_json(jp_fetch, "runs", sort="metric:accuracy", limit="3", after=cursor, count="false")
        assert page["total"] is None  # a next page does not count again
        seen += [r["id"] for r in page["runs"]]
        cursor = page["next_cursor"]
    whole = await get_json(jp_fetch, "runs", sort="metric:accuracy", limit="100")
    assert seen == [r["id"] for r in whole["runs"]] and len(seen) == 8
    await expect_status(jp_fetch, 400, "runs", after=first["next_cursor"], offset="3")
    await expect_status(jp_fetch, 400, "runs", after=first["next_cursor"], sort="name")
    await expect_status(jp_fetch, 400, "runs", after="garbage")


async def test_runs_group_sweeps_children_keys_and_stats(jp_fetch, server_store):
    ids = _sweep_runs(server_store)
    child = add_run(server_store, name="train-cell", parent_id=ids[0], params={"lr": 0.1})
    grouped = await get_json(jp_fetch, "runs", top_level="true", group_sweeps="true")
    assert [r["name"] for r in grouped["runs"]] == ["plain", "gpu-cell", "03_sweep"] and grouped["total"] == 3
    leader = grouped["runs"][2]
    assert leader["id"] == ids[0] and leader["sweep"] == {"size": 6, "statuses": {"ok": 5, "failed": 1}}
    assert leader["children_count"] == 1 and leader["sweep_id"] == ids[0]
    members = await get_json(jp_fetch, "runs", sweep=ids[0], sort="started_at", order="asc", limit="10")
    assert [r["id"] for r in members["runs"]] == ids
    children = await get_json(jp_fetch, "runs", parent=ids[0])
    assert [r["id"] for r in children["runs"]] == [child]
    picked = await get_json(jp_fetch, "runs", ids=f"{ids[1]},{ids[2]}", stats="true")
    stats = {r["id"]: r["metric_stats"]["accuracy"] for r in picked["runs"]}
    assert picked["total"] == 2 and stats[ids[1]] == {"last": 0.65, "min": 0.55, "max": 0.65, "count": 2}
    keys = await get_json(jp_fetch, "runs/keys", q="kind:notebook")
    assert [(k["key"], k["numeric"]) for k in keys["params"]] == [("lr", True), ("model", False)]
    assert keys["metrics"] == [{"key": "accuracy", "count": 6}] and keys["tags"][0]["key"] == "example"
    await expect_status(jp_fetch, 400, "runs/keys", limit="5")  # a list parameter, not a filter


async def test_run_detail_lists_children_with_their_metrics(jp_fetch, server_store):
    parent = add_run(server_store, kind="notebook", name="nb")
    add_run(server_store, name="prepare", parent_id=parent)
    add_run(server_store, name="train", parent_id=parent, metrics=[("loss", 0, 0.3, time.time())])
    run = await get_json(jp_fetch, f"runs/{parent}")
    assert [(c["name"], c["status"]) for c in run["child_runs"]] == [("prepare", "ok"), ("train", "ok")]
    assert run["executed_notebook_server_path"] is None
    await expect_status(jp_fetch, 404, f"runs/{parent}/notebook")


async def test_executed_notebook_opens_from_its_file_or_its_blob(jp_fetch, server_store, store_home):
    executed = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    out = store_home / "pykernel-ext-runs" / "nb-abc.ipynb"
    out.parent.mkdir()
    out.write_bytes(executed)
    blob = server_store.blobs.put_bytes(executed)
    run_id = add_run(server_store, kind="notebook", name="nb <b>",
                     details={"executed_notebook": {"blob": blob, "path": str(out)}})
    run = await get_json(jp_fetch, f"runs/{run_id}")
    assert run["executed_notebook_server_path"] == "pykernel-ext-runs/nb-abc.ipynb"
    response = await jp_fetch(API, f"runs/{run_id}/notebook")
    assert response.body == executed and "attachment" in response.headers["Content-Disposition"]
    assert "<" not in response.headers["Content-Disposition"]
    out.unlink()
    assert (await get_json(jp_fetch, f"runs/{run_id}"))["executed_notebook_server_path"] is None


async def test_compare_notebook_runs_through_their_children(jp_fetch, server_store):
    parents = []
    for lr in (0.1, 0.2):
        parent = add_run(server_store, kind="notebook", name="nb", params={"lr": lr})
        add_run(server_store, name="train", parent_id=parent,
                metrics=[("loss", i, lr / (i + 1), time.time()) for i in range(3)],
                details={"code": {"source": f"train(lr={lr})\n"},
                         "data": [{"name": "X", "hash": f"hash-{lr}"}]})
        parents.append(parent)
    result = await get_json(jp_fetch, "compare", ids=",".join(parents))
    assert [s["values"][0] for s in result["metric_series"]["loss"]] == [0.1, 0.2]
    assert result["data"]["different"] == ["X"]
    assert result["code"]["same"] is False and "+train(lr=0.2)" in result["code"]["diffs"][0]


# ---- managing runs over HTTP: PATCH and DELETE, authentication and XSRF ----------------------------------


async def _send(http_server_client, jp_base_url, method: str, tail: str, headers: dict, body: dict | None = None):
    return await http_server_client.fetch(
        f"{jp_base_url}{API}/{tail}", method=method, headers={"Content-Type": "application/json", **headers},
        body=json.dumps(body) if body is not None else None, raise_error=False, request_timeout=10,
        allow_nonstandard_methods=True)


async def test_patch_renames_notes_tags_stars_and_archives(http_server_client, jp_base_url, jp_auth_header,
                                                          server_store):
    run_id = add_run(server_store, name="before", tags={"keep": "1", "drop": "2"})
    response = await _send(http_server_client, jp_base_url, "PATCH", f"runs/{run_id[:10]}", jp_auth_header,
                           {"name": "after <i>", "note": "check the lr", "starred": True,
                            "tags": {"set": {"stage": "final"}, "remove": ["drop"]}})
    assert response.code == 200, response.body
    run = json.loads(response.body)
    assert run["name"] == "after <i>" and run["note"] == "check the lr" and run["starred"] is True
    assert run["tags"] == {"keep": "1", "stage": "final"}
    archived = await _send(http_server_client, jp_base_url, "PATCH", f"runs/{run_id}", jp_auth_header,
                           {"archived": True, "note": None})
    assert json.loads(archived.body)["archived"] is True and json.loads(archived.body)["note"] is None
    listed = await raw_get(http_server_client, jp_base_url, "runs", jp_auth_header)
    assert json.loads(listed.body)["total"] == 0  # archived: out of the default list
    kept = await raw_get(http_server_client, jp_base_url, "runs?q=is:archived", jp_auth_header)
    assert json.loads(kept.body)["total"] == 1
    for body, message in [({"name": ""}, "cannot be empty"), ({"starred": "yes"}, "true or false"),
                          ({"owner": "me"}, "unknown field"), ({"tags": {"set": {"a=b": "c"}}}, "without '='"),
                          ({"tags": ["x"]}, "tags must be"), ({}, "JSON object")]:
        bad = await _send(http_server_client, jp_base_url, "PATCH", f"runs/{run_id}", jp_auth_header, body)
        assert bad.code == 400 and message in json.loads(bad.body)["message"], (body, bad.body)
    missing = await _send(http_server_client, jp_base_url, "PATCH", f"runs/{'ab' * 16}", jp_auth_header,
                          {"name": "x"})
    assert missing.code == 404


async def test_writes_need_authentication_and_xsrf_for_cookie_sessions(http_server_client, jp_base_url,
                                                                      jp_auth_header, server_store):
    run_id = add_run(server_store, name="guarded")
    for method, body in (("PATCH", {"name": "hacked"}), ("DELETE", None)):
        anonymous = await _send(http_server_client, jp_base_url, method, f"runs/{run_id}", {}, body)
        assert anonymous.code == 403, method
    # A browser session: the login cookie from a token request, then writes with the cookie alone.
    token = jp_auth_header["Authorization"].split()[-1]
    login = await raw_get(http_server_client, jp_base_url, f"runs?limit=1&token={token}")
    cookies = "; ".join(c.split(";")[0] for c in login.headers.get_list("Set-Cookie"))
    assert cookies, "a token request sets the login cookie"
    forged = await _send(http_server_client, jp_base_url, "PATCH", f"runs/{run_id}", {"Cookie": cookies},
                         {"name": "hacked"})
    assert forged.code == 403  # a cross-site form could send the cookie, never the XSRF header
    with_xsrf = {"Cookie": f"{cookies}; _xsrf=test-xsrf-value", "X-XSRFToken": "test-xsrf-value"}
    allowed = await _send(http_server_client, jp_base_url, "PATCH", f"runs/{run_id}", with_xsrf, {"name": "renamed"})
    assert allowed.code == 200 and json.loads(allowed.body)["name"] == "renamed"
    assert server_store.summary(run_id)["name"] == "renamed"
    deleted = await _send(http_server_client, jp_base_url, "DELETE", f"runs/{run_id}", with_xsrf)
    assert deleted.code == 200 and json.loads(deleted.body)["deleted"] == [run_id]


async def test_delete_removes_the_run_its_children_and_unshared_blobs(http_server_client, jp_base_url,
                                                                     jp_auth_header, server_store):
    shared = server_store.blobs.put_text("shared log")
    own = server_store.blobs.put_text("own log")
    old = time.time() - 3600
    for digest in (shared, own):
        os.utime(server_store.blobs.path_for(digest), (old, old))
    parent = add_run(server_store, kind="notebook", details={"logs": {"stdout_blob": own}})
    child = add_run(server_store, parent_id=parent, details={"logs": {"stdout_blob": shared}})
    other = add_run(server_store, details={"logs": {"stdout_blob": shared}})
    response = await _send(http_server_client, jp_base_url, "DELETE", f"runs/{parent}", jp_auth_header)
    report = json.loads(response.body)
    assert response.code == 200 and set(report["deleted"]) == {parent, child} and report["blobs_removed"] == 1
    assert not server_store.blobs.exists(own) and server_store.blobs.exists(shared)
    assert server_store.summary(other)["id"] == other
    gone = await raw_get(http_server_client, jp_base_url, f"runs/{parent}", jp_auth_header)
    assert gone.code == 404
