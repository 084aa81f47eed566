"""Jupyter server extension: a REST API and a push channel over the run store, GPUs and the cluster.

Enabled on install by `jupyter-config/jupyter_server_config.d/pykernel_ext.json`; routes live under
`<base_url>/pykernel-ext/api/v1/` (see the README's API section).
"""
from __future__ import annotations

import concurrent.futures
from typing import Any

from .api import RunsAPI
from .events import EventHub
from .handlers import handlers

_EXTENSION_KEY = "pykernel_ext"


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the handlers; open the store now so kernels started under the root find it."""
    runs_api = RunsAPI.for_server(serverapp.root_dir)
    try:
        runs_api.store()
    except Exception as exc:  # noqa: BLE001 - a store that cannot open yet must not stop JupyterLab
        serverapp.log.warning("pykernel-ext: run store not opened yet (%s); the API retries per request", exc)
    # Store reads serialize on the store's lock; a few threads keep a slow GPU or cluster query from
    # holding up a run-list request.
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="pykernel-ext")
    hub = EventHub(runs_api, executor)
    web_app = serverapp.web_app
    web_app.add_handlers(".*$", handlers(web_app.settings["base_url"], runs_api, executor, hub))
    web_app.settings[_EXTENSION_KEY] = {"api": runs_api, "executor": executor, "hub": hub}
    serverapp.log.info("pykernel-ext: run store %s, API at %spykernel-ext/api/v1/", runs_api.store_dir,
                       web_app.settings["base_url"])

