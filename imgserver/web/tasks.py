"""``GET /tasks/{id}`` and ``GET /tasks/{id}/status`` (its live updates: ``events.py``)."""

from __future__ import annotations

from aiohttp import web

from ..errors import NotFound
from ..records import Task
from .state import BACKENDS, url_for

routes = web.RouteTableDef()


async def _task(request: web.Request) -> Task:
    task = await request.app[BACKENDS].tasks.get(request.match_info["id"])
    if task is None:
        raise NotFound(f"no task {request.match_info['id']}")
    return task


@routes.get("/tasks/{id}")
async def show_task(request: web.Request) -> web.Response:
    task = await _task(request)
    return web.json_response(task.to_json(lambda p: url_for(request, p)))


@routes.get("/tasks/{id}/status")
async def task_status(request: web.Request) -> web.Response:
    task = await _task(request)
    return web.json_response({"id": task.id, "status": task.status})
