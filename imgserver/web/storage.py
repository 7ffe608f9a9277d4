"""``GET /results/{name}`` and ``GET /originals/{name}``: objects of the embedded storage (a
local directory), served by the app itself. Added only when the storage is local; with S3,
result URLs point at the bucket."""

from __future__ import annotations

import re

from aiohttp import web

from ..errors import NotFound
from .state import LOCAL_STORAGE, SETTINGS

routes = web.RouteTableDef()
RESULT_NAME = re.compile(r"^[0-9a-f]{64}$")


@routes.get("/{prefix:results|originals}/{name}")
async def stored_file(request: web.Request) -> web.StreamResponse:
    """Serve a result or original from the local storage directory."""
    name = request.match_info["name"]
    prefix = request.match_info["prefix"]
    if not RESULT_NAME.match(name) and prefix == "results":
        raise NotFound("no such result")
    storage = request.app[LOCAL_STORAGE]
    path = f"{prefix}/{name}"
    head = await storage.head(path)
    if head is None:
        raise NotFound(f"no stored object {path}")
    max_age = request.app[SETTINGS].result_max_age
    headers = {"Content-Type": head[0], "Cache-Control": f"public, max-age={max_age}, immutable"}
    return web.FileResponse(storage.file(path), headers=headers)
