"""Tornado handlers: thin wrappers over `api` (which has no tornado), with one error mapping.

Every handler requires Jupyter's authentication (`@web.authenticated`, 403 for an API request without a
valid token or cookie) and the authorizer's permission on the `pykernel_ext` resource (`@authorized`).
Store and file work runs on the extension's executor, never on the event loop.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, Callable
from urllib.parse import quote

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.iostream import StreamClosedError

from . import api, params
from .events import HEARTBEAT_SECONDS, EventHub

API_PREFIX = "pykernel-ext/api/v1"
AUTH_RESOURCE = "pykernel_ext"
CHUNK_BYTES = 1024 * 1024


class BaseHandler(APIHandler):
    """Shared plumbing: the API object, the executor, the error mapping."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, runs_api: api.RunsAPI, executor: concurrent.futures.Executor, hub: EventHub) -> None:
        self.runs_api = runs_api
        self.executor = executor
        self.hub = hub
        self.client_gone = False

    def on_connection_close(self) -> None:
        # The browser cancelled (a page of rows that scrolled away): work not started yet is skipped.
        self.client_gone = True
        super().on_connection_close()

    async def off_loop(self, func: Callable[..., Any], *args: Any) -> Any:
        def unless_gone() -> Any:
            if self.client_gone:
                raise ClientGone()
            return func(*args)

        return await asyncio.get_running_loop().run_in_executor(self.executor, unless_gone)

    async def reply(self, func: Callable[..., Any], *args: Any, status: int = 200) -> None:
        """Run `func` off the loop and answer its result as JSON, or the mapped error."""
        try:
            result = await self.off_loop(func, *args)
        except ClientGone:
            return  # nobody to answer
        except Exception as exc:  # noqa: BLE001 - the one place errors become HTTP statuses
            self.fail(exc)
            return
        self.set_status(status)
        self.finish(api.to_json(result))

    def fail(self, exc: BaseException) -> None:
        status = api.status_for(exc)
        if status == 500:
            self.log.error("pykernel-ext API error on %s", self.request.uri, exc_info=exc)
        self.set_status(status)
        self.finish(api.to_json({"message": api.message_for(exc)}))


class ClientGone(Exception):
    """The request's connection closed before its work started."""


class RunsHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            query = params.parse_runs_query(self.request.query_arguments, self.runs_api.paths)
        except ValueError as exc:
            return self.fail(exc)
        await self.reply(self.runs_api.list_runs, query)


class RunKeysHandler(BaseHandler):
    """The parameter, metric and tag keys of the filtered runs (the table's column picker)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            run_filter = params.parse_keys_query(self.request.query_arguments, self.runs_api.paths)
        except ValueError as exc:
            return self.fail(exc)
        await self.reply(self.runs_api.run_keys, run_filter)


class RunHandler(BaseHandler):
    """One run: read it, change it (PATCH), delete it with its child runs (DELETE). Writes pass Jupyter's
    XSRF check for cookie sessions (APIHandler's `check_xsrf_cookie`), token requests need the token."""

    @web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        await self.reply(self.runs_api.get_run, run_id)

    @web.authenticated
    @authorized
    async def patch(self, run_id: str) -> None:
        try:
            patch = params.parse_patch(self.request.body)
        except ValueError as exc:
            return self.fail(exc)
        await self.reply(self.runs_api.update_run, run_id, patch)

    @web.authenticated
    @authorized
    async def delete(self, run_id: str) -> None:
        await self.reply(self.runs_api.delete_run, run_id)


class CompareHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            ids = params.parse_compare_ids(self.request.query_arguments)
        except ValueError as exc:
            return self.fail(exc)
        await self.reply(self.runs_api.compare, ids)


class GpusHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.reply(self.runs_api.gpus)


class SchemaHandler(BaseHandler):
    """The run record's JSON Schema (generated from pykernel_ext/records.py; the front end's types come from it)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.reply(api.record_schema)


class BlobFileHandler(BaseHandler):
    """Streams a blob (artifact or log) in chunks read off the loop."""

    async def send(self, locate: Callable[..., api.BlobFile], *args: Any) -> None:
        try:
            blob = await self.off_loop(locate, *args)
        except ClientGone:
            return
        except Exception as exc:  # noqa: BLE001
            return self.fail(exc)
        disposition = "inline" if blob.inline else "attachment"
        self.set_header("Content-Disposition", f"{disposition}; filename*=UTF-8''{quote(blob.filename)}")
        self.set_header("X-Content-Type-Options", "nosniff")  # never let a browser run an artifact as HTML
        self.set_header("Content-Length", str(blob.size))
        self.set_header("Content-Type", blob.content_type)  # before the first flush sends the headers
        try:
            with open(blob.path, "rb") as f:
                while chunk := await self.off_loop(f.read, CHUNK_BYTES):
                    self.write(chunk)
                    await self.flush()
        except StreamClosedError:
            return  # the client went away mid-download
        self.finish(set_content_type=blob.content_type)


class ArtifactHandler(BlobFileHandler):
    @web.authenticated
    @authorized
    async def get(self, run_id: str, path: str) -> None:
        await self.send(self.runs_api.artifact, run_id, path)


class ExecutedNotebookHandler(BlobFileHandler):
    @web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        await self.send(self.runs_api.executed_notebook, run_id)


class LogHandler(BlobFileHandler):
    @web.authenticated
    @authorized
    async def get(self, run_id: str, stream: str) -> None:
        await self.send(self.runs_api.log_file, run_id, stream)


class EventsHandler(BaseHandler):
    """Server-sent events: `runs` (changed run summaries) and `gpus` (a GPU report every second)."""

    _subscription = None

    @web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            topics = params.parse_topics(self.request.query_arguments)
        except ValueError as exc:
            return self.fail(exc)
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # a proxy must not hold events back
        self._subscription = sub = self.hub.subscribe(topics)
        try:
            self.write(b"retry: 2000\n\n")
            await self.flush()
            while not sub.closed:
                event = await sub.next(HEARTBEAT_SECONDS)
                self.write(event.encode() if event is not None and event.name != "closed" else b": ping\n\n")
                await self.flush()
        except StreamClosedError:
            pass
        finally:
            self.hub.unsubscribe(sub)

    def on_connection_close(self) -> None:
        if self._subscription is not None:
            self.hub.unsubscribe(self._subscription)
        super().on_connection_close()


def handlers(base_url: str, runs_api: api.RunsAPI, executor: concurrent.futures.Executor,
             hub: EventHub) -> list[tuple[str, type, dict]]:
    """The routes under `<base_url>/pykernel-ext/api/v1/`."""
    kwargs = {"runs_api": runs_api, "executor": executor, "hub": hub}
    routes = [
        (r"runs", RunsHandler),
        (r"runs/keys", RunKeysHandler),  # before runs/<id>, which would take "keys" for an id
        (r"runs/(?P<run_id>[^/]+)", RunHandler),
        (r"runs/(?P<run_id>[^/]+)/notebook", ExecutedNotebookHandler),
        (r"runs/(?P<run_id>[^/]+)/artifacts/(?P<path>.+)", ArtifactHandler),
        (r"runs/(?P<run_id>[^/]+)/logs/(?P<stream>[^/]+)", LogHandler),
        (r"compare", CompareHandler),
        (r"gpus", GpusHandler),
        (r"schema", SchemaHandler),
        (r"events", EventsHandler),
    ]
    return [(url_path_join(base_url, API_PREFIX, pattern), handler, kwargs) for pattern, handler in routes]
