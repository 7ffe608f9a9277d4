"""``GET|POST /graph/{spec}`` and the signed ``/graph/{key}/{signature}/{spec}``: a processed
image. GET answers the result (waiting for it on a miss); POST queues it in the background."""

from __future__ import annotations

from aiohttp import web

from ..backends.base import Backends
from ..errors import QuotaExceeded, SignatureRequired, Unavailable
from ..messages import Entry
from ..names import result_path
from ..request import ImageRequest, check_sources, parse_request
from .state import BACKENDS, CATALOGUE, COORDINATOR, KEYS, PARSED, SETTINGS, url_for

routes = web.RouteTableDef()
PATHS = ("/graph/{spec}", "/graph/{apikey}/{signature}/{spec}")


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
    check_sources(req, request.app[SETTINGS])
    coordinator = request.app[COORDINATOR]
    # a POST of a cached URL is a client asking for the result to exist: make sure it does
    entry = await coordinator.lookup(req, check=request.method == "POST")
    if entry is not None:
        return await _deliver(request, req, entry, "HIT")
    if key is not None and key.quota is not None:
        await _spend_quota(request.app[BACKENDS], key.name, key.quota)
    if request.method == "POST":
        task = await coordinator.prefetch(req)
        body = {"task": task.to_json(lambda p: url_for(request, p))}
        future = url_for(request, result_path(req.key))
        return web.json_response(body, status=202, headers={"Location": future})
    entry, cached = await coordinator.compute(req)
    return await _deliver(request, req, entry, "HIT" if cached else "MISS")


for _path in PATHS:
    routes.get(_path)(graph)
    routes.post(_path)(graph)


async def _spend_quota(backends: Backends, name: str, quota: int) -> None:
    if not await backends.quotas.spend(name, quota):
        raise QuotaExceeded(f"API key {name!r} has used its quota of {quota} results")


async def _deliver(
    request: web.Request, req: ImageRequest, entry: Entry, cache: str
) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    headers = {"X-Cache": cache}
    if entry.quality is not None:  # "100; target-not-reached" when quality=auto fell short
        note = f"; {entry.quality_note}" if entry.quality_note else ""
        headers["X-Quality"] = f"{entry.quality}{note}"
    if req.negotiated:
        headers["Vary"] = "Accept"
    if settings.delivery == "redirect":
        headers["Location"] = url_for(request, entry.path)
        # a redirect cached by a client or a CDN must not outlive its object
        max_age = settings.lifetime.max_age(settings.redirect_max_age, entry.created_at)
        headers["Cache-Control"] = f"public, max-age={max_age}"
        return web.Response(status=301, headers=headers)

    etag = f'"{req.key}"'
    headers["ETag"] = etag
    headers["Cache-Control"] = f"public, max-age={settings.result_max_age}, immutable"
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    backends = request.app[BACKENDS]
    stored = await backends.storage.get(entry.path)
    if stored is None:  # indexed but gone from storage: forget it and make it again
        await request.app[COORDINATOR].forget(req.key)
        entry, _ = await request.app[COORDINATOR].compute(req)
        stored = await backends.storage.get(entry.path)
        if stored is None:
            raise Unavailable("the result storage did not return the stored result")
    return web.Response(body=stored.data, content_type=stored.content_type, headers=headers)
