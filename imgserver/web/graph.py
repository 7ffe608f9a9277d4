"""``GET|HEAD|POST /graph/{spec}`` and the signed ``/graph/{key}/{signature}/{spec}``: a
processed image. GET answers the result (waiting for it on a miss); HEAD answers exactly as GET
(aiohttp routes it to the GET handler and sends no body); POST queues it in the background.

Answers are made for a CDN in front: results and errors name their source and graph in
``Surrogate-Key`` / ``Cache-Tag``; errors say how long they may be kept (``errors.cache_control``);
a source whose failure is remembered is answered at once (``Coordinator.remembered``)."""

from __future__ import annotations

from aiohttp import web

from ..backends.base import Backends
from ..errors import ImgServerError, QuotaExceeded, SignatureRequired, Unavailable, cache_control
from ..messages import Entry
from ..names import result_path
from ..request import ImageRequest, check_sources, parse_request
from ..settings import Settings
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
            jxl_enabled=request.app[SETTINGS].enable_jxl,
        )
        memo.put((spec, query, accept), req)
    return req


def surrogate_headers(req: ImageRequest) -> dict[str, str]:
    """``Surrogate-Key`` (Fastly, space-separated) and ``Cache-Tag`` (Cloudflare, Akamai,
    comma-separated): the request's source (``src-<16 hex of SHA-256(input)>``) and graph
    (``graph-<name>``), so a CDN purges by source as ``DELETE /cache`` does, or by graph."""
    keys = req.surrogate_keys
    return {"Surrogate-Key": " ".join(keys), "Cache-Tag": ",".join(keys)}


def result_cache_control(settings: Settings, max_age: int, immutable: bool = False) -> str:
    """A result's ``Cache-Control``, with RFC 5861's ``stale-while-revalidate`` and
    ``stale-if-error`` when they are set."""
    parts = ["public", f"max-age={max_age}"]
    if immutable:
        parts.append("immutable")
    if settings.stale_while_revalidate:
        parts.append(f"stale-while-revalidate={settings.stale_while_revalidate}")
    if settings.stale_if_error:
        parts.append(f"stale-if-error={settings.stale_if_error}")
    return ", ".join(parts)


async def graph(request: web.Request) -> web.StreamResponse:
    """The answer of ``_answer``; an error says how long a cache may keep it, and names the
    request's source and graph when the request was understood."""
    parsed: list[ImageRequest] = []
    try:
        return await _answer(request, parsed)
    except ImgServerError as exc:
        headers = surrogate_headers(parsed[0]) if parsed else {}
        policy = cache_control(exc.status, request.app[SETTINGS].failure_ttl)
        if policy is not None:
            headers["Cache-Control"] = policy
        exc.headers = {**headers, **exc.headers}
        raise


async def _answer(request: web.Request, parsed: list[ImageRequest]) -> web.StreamResponse:
    """GET (and HEAD): the result (waiting for it on a miss). POST: queue it in the
    background. A remembered failure is answered at once, to both.

    Checks run cheapest first: signature, request parsing, source allow-list, cache lookup,
    the failure memory, then the key's quota and the queue depth only when something has to
    be computed."""
    key = request.app[KEYS].verify(
        request.match_info.get("apikey"),
        request.match_info.get("signature"),
        request.match_info["spec"],
        request.rel_url.raw_query_string,
    )
    req = _parse(request)
    parsed.append(req)
    if req.nocache and (key is None or not key.admin):
        raise SignatureRequired("_nocache needs a URL signed with an admin key")
    check_sources(req, request.app[SETTINGS])
    coordinator = request.app[COORDINATOR]
    # a POST of a cached URL is a client asking for the result to exist: make sure it does
    entry = await coordinator.lookup(req, check=request.method == "POST")
    if entry is not None:
        return await _deliver(request, req, entry, "HIT")
    failure = await coordinator.remembered(req)
    if failure is not None:
        raise failure.to_error()
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
    headers = {"X-Cache": cache, **surrogate_headers(req)}
    if entry.quality is not None:  # "100; target-not-reached" when quality=auto fell short
        note = f"; {entry.quality_note}" if entry.quality_note else ""
        headers["X-Quality"] = f"{entry.quality}{note}"
    if req.negotiated:
        headers["Vary"] = "Accept"
    if settings.delivery == "redirect":
        headers["Location"] = url_for(request, entry.path)
        # a redirect cached by a client or a CDN must not outlive its object
        max_age = settings.lifetime.max_age(settings.redirect_max_age, entry.created_at)
        headers["Cache-Control"] = result_cache_control(settings, max_age)
        # said outright: aiohttp leaves it out of a HEAD answer without a body, and a HEAD
        # answers exactly as the GET would
        headers["Content-Length"] = "0"
        return web.Response(status=301, headers=headers)

    etag = f'"{req.key}"'
    headers["ETag"] = etag
    headers["Cache-Control"] = result_cache_control(settings, settings.result_max_age, True)
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
