"""``GET /openapi.json`` (the API's OpenAPI 3.1 description, generated once when the app is
built: ``openapi.py``) and ``GET /docs`` (it, rendered for people by the vendored Swagger UI,
whose files are served from ``/docs/{version}/{name}`` like the web client's)."""

from __future__ import annotations

from aiohttp import web

from .bundle import DOCS_HEADERS, REVALIDATE
from .client import serve, serve_asset
from .state import DOCS, OPENAPI

routes = web.RouteTableDef()


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    # any origin may read it: API tools (editors, client generators) fetch it from theirs
    cors = {"Access-Control-Allow-Origin": "*"}
    return serve(request, request.app[OPENAPI], REVALIDATE, cors)


@routes.get("/docs")
async def docs(request: web.Request) -> web.Response:
    return serve(request, request.app[DOCS].page, REVALIDATE, DOCS_HEADERS)


@routes.get("/docs/{version}/{name}")
async def docs_file(request: web.Request) -> web.Response:
    return serve_asset(request, request.app[DOCS], "the API reference page")
