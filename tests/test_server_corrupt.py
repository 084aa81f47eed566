"""A corrupt record in the store is the server's problem, not the request's: 500, with a JSON message,
over a real Jupyter server and a real store."""
from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from tornado.httpclient import HTTPClientError

from pykernel_ext.server import api as server_api

API = "pykernel-ext/api/v1"


@pytest.fixture
def server_store(jp_serverapp):
    return jp_serverapp.web_app.settings["pykernel_ext"]["api"].store()


def _run(store) -> str:
    run_id = uuid.uuid4().hex
    store.begin_run({"id": run_id, "kind": "cell", "name": "r", "started_at": time.time(), "owner_pid": os.getpid()},
                    {"code": {"source": "x = 1"}})
    return run_id


async def _status(jp_fetch, *path: str) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(API, *path)
    return info.value.code, json.loads(info.value.response.body)


async def test_corrupt_details_answer_500(jp_fetch, server_store):
    run_id = _run(server_store)
    with server_store.transaction() as conn:  # a disk error or a hand edit left half a record
        conn.execute("UPDATE run_details SET record_json = ? WHERE run_id = ?", ('{"code": {"sour', run_id))
    code, body = await _status(jp_fetch, "runs", run_id)
    assert code == 500 and "JSONDecodeError" in body["message"]


async def test_corrupt_summary_answers_500_for_the_list(jp_fetch, server_store):
    run_id = _run(server_store)
    with server_store.transaction() as conn:
        conn.execute("UPDATE runs SET params_json = 'not json' WHERE id = ?", (run_id,))
    code, body = await _status(jp_fetch, "runs")
    assert code == 500 and "internal error" in body["message"]
    bad_request, _ = await _status(jp_fetch, "runs/zz-not-hex")
    assert bad_request == 400  # the request's own mistakes stay 400


def test_the_mapping():
    assert server_api.status_for(json.JSONDecodeError("Expecting value", "x", 0)) == 500
    assert server_api.status_for(server_api.BadRequest("limit=x")) == 400
