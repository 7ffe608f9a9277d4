"""The web client: ``GET /`` (the page, revalidated on every load) and ``/static/{version}/{name}``
(its files, immutable under the current version); see ``bundle.py``."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from ..errors import NotFound
from .bundle import IMMUTABLE, PAGE_HEADERS, REVALIDATE, Asset, Bundle
from .state import BUNDLE

routes = web.RouteTableDef()


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    """The page (revalidated on every load: it names the current assets)."""
    return serve(request, request.app[BUNDLE].page, REVALIDATE, PAGE_HEADERS)


@routes.get("/static/{version}/{name}")
async def asset(request: web.Request) -> web.Response:
    """``/static/{version}/{name}``: immutable under the current version."""
    return serve_asset(request, request.app[BUNDLE], "the web client")


def serve_asset(request: web.Request, bundle: Bundle, what: str) -> web.Response:
    """The file ``{name}`` of ``bundle`` asked for at ``…/{version}/{name}``: immutable under
    the current version, revalidated under another."""
    name = request.match_info["name"]
    found = bundle.assets.get(name)
    if found is None:
        raise NotFound(f"no file {name} in {what}")
    current = request.match_info["version"] == bundle.version
    return serve(request, found, IMMUTABLE if current else REVALIDATE, {})


def serve(
    request: web.Request, found: Asset, cache_control: str, extra: Mapping[str, str]
) -> web.Response:
    headers = {"Cache-Control": cache_control, "ETag": found.etag, **extra}
    if found.gzipped is not None:
        headers["Vary"] = "Accept-Encoding"
    if found.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    body = found.body
    if found.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
        body = found.gzipped
        headers["Content-Encoding"] = "gzip"
    headers["Content-Type"] = found.content_type
    return web.Response(body=body, headers=headers)
