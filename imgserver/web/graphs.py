"""The catalogue: ``GET /graphs``, ``GET /graphs/{name}`` (what a client needs to build a form
for a graph) and ``GET /ops`` (the operations a graph file may use)."""

from __future__ import annotations

from aiohttp import web

from ..runtime.registry import ops_json
from .state import CATALOGUE

routes = web.RouteTableDef()


@routes.get("/graphs")
async def list_graphs(request: web.Request) -> web.Response:
    catalogue = request.app[CATALOGUE]
    return web.json_response({"graphs": {n: g.to_json() for n, g in catalogue.items()}})


@routes.get("/graphs/{name}")
async def show_graph(request: web.Request) -> web.Response:
    return web.json_response(request.app[CATALOGUE].get_graph(request.match_info["name"]).to_json())


@routes.get("/ops")
async def list_ops(request: web.Request) -> web.Response:
    return web.json_response(ops_json())
