"""HTTP handlers: thin; they parse, call the coordinator or a backend, and shape responses."""

from __future__ import annotations

import asyncio
import importlib.metadata
import platform
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .. import __version__
from ..backends.base import Backends
from ..catalogue import Catalogue
from ..coordinator import Coordinator
from ..errors import InvalidInput, NotFound, QuotaExceeded, SignatureRequired, Unavailable
from ..jobs import Entry
from ..keys import KeyRing
from ..metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ..metrics import METRICS
from ..names import result_path
from ..recent import Recent
from ..request import ImageRequest, canonical_input, check_source, parse_request
from ..settings import Settings
from . import client
from .middleware import error_response


@dataclass
class Services:
    """What the handlers use, opened by app.services_ctx."""

    backends: Backends
    coordinator: Coordinator


SETTINGS = web.AppKey("settings", Settings)
CATALOGUE = web.AppKey("catalogue", Catalogue)
SERVICES = web.AppKey("services", Services)
KEYS = web.AppKey("keys", KeyRing)
PARSED = web.AppKey("parsed", Recent[tuple[str, str, str], ImageRequest])

RESULT_NAME = re.compile(r"^[0-9a-f]{64}$")
READY_TIMEOUT = 1.0


def base_url(request: web.Request) -> str:
    """The origin result URLs are built on: IMGSERVER_PUBLIC_URL, else the request's own."""
    return request.app[SETTINGS].public_url or f"{request.scheme}://{request.host}"


def url_for(request: web.Request, path: str) -> str:
    return request.app[SERVICES].backends.storage.url(path, base_url(request))


# -- /graph ------------------------------------------------------------------------------------


def _parse(request: web.Request) -> ImageRequest:
    """The parsed request, from the app's memory of recent ones when it was seen before: the
    result depends only on the spec, the raw query and (for a negotiated format) ``Accept``,
    and the catalogue and settings do not change while the app runs."""
    spec, query = request.match_info["spec"], request.rel_url.raw_query_string
    accept = request.headers.get("Accept", "") if "." not in spec else ""
    memo = request.app[PARSED]
    req = memo.get((spec, query, accept))
    if req is None:
        req = parse_request(
            spec,
            request.query,
            accept=accept,
            catalogue=request.app[CATALOGUE],
            avif_enabled=request.app[SETTINGS].enable_avif,
        )
        memo.put((spec, query, accept), req)
    return req


async def graph(request: web.Request) -> web.StreamResponse:
    """GET: the result (waiting for it on a miss). POST: queue it in the background.

    Checks run cheapest first: signature, request parsing, source allow-list, cache lookup,
    then the key's quota and the queue depth only when something has to be computed."""
    key = request.app[KEYS].verify(
        request.match_info.get("apikey"),
        request.match_info.get("signature"),
        request.match_info["spec"],
        request.rel_url.raw_query_string,
    )
    req = _parse(request)
    if req.nocache and (key is None or not key.admin):
        raise SignatureRequired("_nocache needs a URL signed with an admin key")
    check_source(req.input, request.app[SETTINGS])
    services = request.app[SERVICES]
    entry = await services.coordinator.lookup(req)
    if entry is not None:
        return await _deliver(request, req, entry, "HIT")
    if key is not None and key.quota is not None:
        await _spend_quota(services, key.name, key.quota)
    if request.method == "POST":
        task = await services.coordinator.prefetch(req)
        body = {"task": task.to_json(lambda p: url_for(request, p))}
        future = url_for(request, result_path(req.key))
        return web.json_response(body, status=202, headers={"Location": future})
    entry, cached = await services.coordinator.compute(req)
    return await _deliver(request, req, entry, "HIT" if cached else "MISS")


async def _spend_quota(services: Services, name: str, quota: int) -> None:
    if not await services.backends.quotas.spend(name, quota):
        raise QuotaExceeded(f"API key {name!r} has used its quota of {quota} results")


async def _deliver(
    request: web.Request, req: ImageRequest, entry: Entry, cache: str
) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    headers = {"X-Cache": cache}
    if req.negotiated:
        headers["Vary"] = "Accept"
    if settings.delivery == "redirect":
        headers["Location"] = url_for(request, entry.path)
        headers["Cache-Control"] = f"public, max-age={settings.redirect_max_age}"
        return web.Response(status=301, headers=headers)

    etag = f'"{req.key}"'
    headers["ETag"] = etag
    headers["Cache-Control"] = f"public, max-age={settings.result_max_age}, immutable"
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    stored = await request.app[SERVICES].backends.storage.get(entry.path)
    if stored is None:  # indexed but gone from storage: forget it and make it again
        await request.app[SERVICES].backends.index.delete(req.key)
        entry, _ = await request.app[SERVICES].coordinator.compute(req)
        stored = await request.app[SERVICES].backends.storage.get(entry.path)
        if stored is None:
            raise Unavailable("the result storage did not return the stored result")
    return web.Response(body=stored.data, content_type=stored.content_type, headers=headers)


# -- catalogue --------------------------------------------------------------------------------


async def list_graphs(request: web.Request) -> web.Response:
    catalogue = request.app[CATALOGUE]
    return web.json_response({"graphs": {n: g.to_json() for n, g in catalogue.items()}})


async def show_graph(request: web.Request) -> web.Response:
    return web.json_response(request.app[CATALOGUE].get_graph(request.match_info["name"]).to_json())


# -- tasks ------------------------------------------------------------------------------------


async def _task(request: web.Request) -> Any:
    task = await request.app[SERVICES].backends.tasks.get(request.match_info["id"])
    if task is None:
        raise NotFound(f"no task {request.match_info['id']}")
    return task


async def show_task(request: web.Request) -> web.Response:
    task = await _task(request)
    return web.json_response(task.to_json(lambda p: url_for(request, p)))


async def task_status(request: web.Request) -> web.Response:
    task = await _task(request)
    return web.json_response({"id": task.id, "status": task.status})


# -- embedded storage -------------------------------------------------------------------------


async def stored_file(request: web.Request) -> web.StreamResponse:
    """Serve a result or original from the local storage directory."""
    name = request.match_info["name"]
    prefix = request.match_info["prefix"]
    storage = request.app[SERVICES].backends.storage
    if not RESULT_NAME.match(name) and prefix == "results":
        raise NotFound("no such result")
    head = await storage.head(f"{prefix}/{name}")
    file = getattr(storage, "file", None)
    if head is None or file is None:
        raise NotFound(f"no stored object {prefix}/{name}")
    max_age = request.app[SETTINGS].result_max_age
    headers = {"Content-Type": head[0], "Cache-Control": f"public, max-age={max_age}, immutable"}
    return web.FileResponse(file(f"{prefix}/{name}"), headers=headers)


# -- operations -------------------------------------------------------------------------------


async def purge_cache(request: web.Request) -> web.Response:
    """``DELETE /cache/{key}/{signature}?input={source}``: drop every result made from a source.

    Needs an admin key; the signature covers ``cache?{query}`` like a graph URL's."""
    key = request.app[KEYS].verify(
        request.match_info.get("apikey"),
        request.match_info.get("signature"),
        "cache",
        request.rel_url.raw_query_string,
    )
    if key is None or not key.admin:
        raise SignatureRequired("purging the cache needs a URL signed with an admin key")
    sources = request.query.getall("input", [])
    if len(sources) != 1 or set(request.query) != {"input"}:
        raise InvalidInput("give exactly one 'input', and nothing else")
    source = canonical_input(sources[0])
    keys = await request.app[SERVICES].coordinator.purge(source)
    return web.json_response({"input": source, "deleted": len(keys), "keys": keys})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    components = request.app[SERVICES].backends.components()

    async def check(component: Any) -> str:
        try:
            await asyncio.wait_for(component.ping(), READY_TIMEOUT)
        except Exception as exc:
            return f"down: {type(exc).__name__}: {exc}"[:200]
        return "ok"

    states = dict(
        zip(components, await asyncio.gather(*map(check, components.values())), strict=True)
    )
    down = sorted(name for name, state in states.items() if state != "ok")
    if down:
        return error_response(
            Unavailable(f"backend(s) not answering: {', '.join(down)}", backends=states)
        )
    return web.json_response({"status": "ready", "backends": states})


async def metrics(request: web.Request) -> web.Response:
    m = request.app[METRICS]
    broker = request.app[SERVICES].backends.broker
    for queue in ("urgent", "background"):
        try:
            m.queue_depth.labels(queue).set(await broker.depth(queue))
        except Exception:  # a down broker must not break the metrics page
            m.queue_depth.labels(queue).set(float("nan"))
    resp = web.Response(body=m.render())
    resp.headers["Content-Type"] = METRICS_CONTENT_TYPE
    return resp


async def version(request: web.Request) -> web.Response:
    libs = {}
    for dist in ("aiohttp", "pyvips", "pyvips-binary", "Pillow"):
        try:
            libs[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            libs[dist] = None
    return web.json_response(
        {"version": __version__, "python": platform.python_version(), "libraries": libs}
    )


def add_routes(app: web.Application) -> None:
    from . import events, uploads  # (they import this module's app keys)

    r = app.router
    app[PARSED] = Recent(app[SETTINGS].hit_cache_size)
    app[client.BUNDLE] = client.Bundle.load()
    r.add_get("/", client.index)
    r.add_get("/static/{version}/{name}", client.asset)
    for path in ("/graph/{spec}", "/graph/{apikey}/{signature}/{spec}"):
        r.add_get(path, graph)
        r.add_post(path, graph)
    r.add_get("/graphs", list_graphs)
    r.add_get("/graphs/{name}", show_graph)
    r.add_get("/tasks/{id}", show_task)
    r.add_get("/tasks/{id}/status", task_status)
    r.add_get("/tasks/{id}/events", events.task_events, allow_head=False)
    r.add_get("/events", events.all_events, allow_head=False)
    r.add_post("/images", uploads.create_image)
    r.add_get("/images", uploads.list_images)
    r.add_get("/images/{id}", uploads.show_image)
    r.add_get("/{prefix:results|originals}/{name}", stored_file)
    r.add_get("/healthz", healthz)
    r.add_get("/readyz", readyz)
    r.add_get("/metrics", metrics)
    r.add_get("/version", version)
    for path in ("/cache", "/cache/{apikey}/{signature}"):
        r.add_delete(path, purge_cache)
