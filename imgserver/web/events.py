"""Server-Sent Events: ``GET /tasks/{id}/events`` (one task, until it is final) and
``GET /events`` (every task and image change, for the web client).

Each stream listens to the hub *before* it reads any state, so no change made in between is
missed (a change seen twice is dropped by comparing ``updated_at``). A comment line every
``HEARTBEAT`` seconds keeps proxies from closing an idle stream; on a task stream the task is
also re-read then, in case a change was lost while the event bus reconnected. A client that
went away is noticed within ``POLL`` seconds. Streams end when the app shuts down (the hub ends
every listener from ``on_shutdown``), so they never hold up its exit.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any

from aiohttp import web

from .. import logs
from ..backends.base import TaskStore
from ..errors import ImgServerError, NotFound
from ..live import Change, Ended, Listener
from ..messages import TaskChanged
from ..records import STATUSES, Task, UrlFor
from .state import BACKENDS, HUB, url_for

log = logging.getLogger(__name__)

routes = web.RouteTableDef()
HEARTBEAT = 15.0  # seconds between comment lines on a quiet stream
POLL = 1.0  # seconds between checks that the client is still connected
RETRY_MS = 2000  # how long an EventSource waits before reconnecting
HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass every event on at once
}


class EventStream:
    """One ``text/event-stream`` response; writes say False once the client has gone."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        # prepared here, inside the handler: the request's id is added now (logs.py)
        self.response = web.StreamResponse(headers={**HEADERS, logs.HEADER: logs.current.get()})
        self.open = True
        self._sent = 0

    async def start(self) -> None:
        await self.response.prepare(self.request)
        await self._write(f"retry: {RETRY_MS}\n\n")

    async def send(self, event: str, data: dict[str, Any]) -> bool:
        self._sent += 1
        payload = json.dumps(data, separators=(",", ":"))  # one line: JSON escapes newlines
        return await self._write(f"event: {event}\nid: {self._sent}\ndata: {payload}\n\n")

    async def heartbeat(self) -> bool:
        return await self._write(": heartbeat\n\n")

    @property
    def gone(self) -> bool:
        """The client closed the connection (or a write to it failed)."""
        transport = self.request.transport
        return not self.open or transport is None or transport.is_closing()

    async def next(self, listener: Listener) -> Change | None:
        """The next event, or None when a heartbeat is due; Ended when the client has gone
        (noticed within ``POLL`` seconds) or the listener was ended."""
        deadline = time.monotonic() + HEARTBEAT
        while not self.gone:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            event = await listener.next(min(POLL, left))
            if event is not None:
                return event
        raise Ended

    async def _write(self, text: str) -> bool:
        if self.gone:
            self.open = False
            return False
        try:
            await self.response.write(text.encode())
        except ConnectionError:
            self.open = False
        return self.open

    async def finish(self) -> web.StreamResponse:
        if not self.gone:
            try:
                await self.response.write_eof()
            except ConnectionError:
                self.open = False
        return self.response


@routes.get("/tasks/{id}/events", allow_head=False)
async def task_events(request: web.Request) -> web.StreamResponse:
    """The task's current state, then each change, ending after a final status."""
    task_id = request.match_info["id"]
    tasks = request.app[BACKENDS].tasks
    url = functools.partial(url_for, request)
    async with request.app[HUB].listen() as listener:
        task = await tasks.get(task_id)
        if task is None:
            raise NotFound(f"no task {task_id}")
        stream = EventStream(request)
        await stream.start()
        sent = await stream.send("task", task.to_json(url))
        while sent and not task.final:
            try:
                event = await stream.next(listener)
            except Ended:
                break
            if event is None:
                if not await stream.heartbeat():
                    break
                fresh = await _reread(tasks, task_id)
            else:
                fresh = _task_of(event, task_id)
            if fresh is not None and _newer(fresh, task):
                task = fresh
                sent = await stream.send("task", task.to_json(url))
        return await stream.finish()


@routes.get("/events", allow_head=False)
async def all_events(request: web.Request) -> web.StreamResponse:
    """Every task change (``event: task``) and image change (``event: image``) from now on."""
    url = functools.partial(url_for, request)
    async with request.app[HUB].listen() as listener:
        stream = EventStream(request)
        await stream.start()
        alive = True
        while alive:
            try:
                event = await stream.next(listener)
            except Ended:
                break
            if event is None:
                alive = await stream.heartbeat()
                continue
            alive = await stream.send(*_render(event, url))
        return await stream.finish()


def _render(event: Change, url: UrlFor) -> tuple[str, dict[str, Any]]:
    if isinstance(event, TaskChanged):
        return "task", event.task.to_json(url)
    return "image", event.image.to_json(url)


def _task_of(event: Change, task_id: str) -> Task | None:
    if isinstance(event, TaskChanged) and event.task.id == task_id:
        return event.task
    return None


async def _reread(tasks: TaskStore, task_id: str) -> Task | None:
    """A fresh read of the task; None (wait for the next event) if its store is down now."""
    try:
        return await tasks.get(task_id)
    except ImgServerError as exc:
        log.warning("event stream: re-reading a task: %s", exc.message)
        return None


def _newer(candidate: Task, current: Task) -> bool:
    """A later state than the one sent (events can repeat, and arrive after a re-read)."""
    return candidate.updated_at > current.updated_at and STATUSES.index(
        candidate.status
    ) >= STATUSES.index(current.status)
