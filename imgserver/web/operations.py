"""Operations: the probes and metrics (``probes``: ``/healthz``, ``/readyz``, ``/metrics``, served
by worker roles too), and ``/version`` and ``DELETE /cache`` (``routes``)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import platform

from aiohttp import web

from .. import __version__
from ..backends.base import Backends, Lifecycle
from ..errors import InvalidInput, SignatureRequired, Unavailable
from ..metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ..names import QUEUES, source_surrogate
from ..request import canonical_input
from .middleware import error_response
from .state import BACKENDS, COORDINATOR, KEYS, METRICS

probes = web.RouteTableDef()
routes = web.RouteTableDef()
READY_TIMEOUT = 1.0  # seconds each backend has to answer /readyz


@probes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def backend_states(backends: Backends) -> dict[str, str]:
    """ "ok" or "down: why" for every backend the process uses, asked at once."""

    async def check(component: Lifecycle) -> str:
        try:
            await asyncio.wait_for(component.ping(), READY_TIMEOUT)
        except Exception as exc:
            return f"down: {type(exc).__name__}: {exc}"[:200]
        return "ok"

    components = backends.components()
    states = await asyncio.gather(*map(check, components.values()))
    return dict(zip(components, states, strict=True))


@probes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    states = await backend_states(request.app[BACKENDS])
    down = sorted(name for name, state in states.items() if state != "ok")
    if down:
        return error_response(
            Unavailable(f"backend(s) not answering: {', '.join(down)}", backends=states)
        )
    return web.json_response({"status": "ready", "backends": states})


@probes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    m = request.app[METRICS]
    backends = request.app[BACKENDS]
    for queue in QUEUES:
        try:
            m.queue_depth.labels(queue).set(await backends.broker.depth(queue))
        except Exception:  # a down broker must not break the metrics page
            m.queue_depth.labels(queue).set(float("nan"))
    for name, state in (await backend_states(backends)).items():
        m.backend_up.labels(name).set(1.0 if state == "ok" else 0.0)
    resp = web.Response(body=m.render())
    resp.headers["Content-Type"] = METRICS_CONTENT_TYPE
    return resp


@routes.get("/version")
async def version(request: web.Request) -> web.Response:
    libs: dict[str, str | None] = {}
    for dist in ("aiohttp", "pyvips", "pyvips-binary", "Pillow"):
        try:
            libs[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            libs[dist] = None
    return web.json_response(
        {"version": __version__, "python": platform.python_version(), "libraries": libs}
    )


async def purge_cache(request: web.Request) -> web.Response:
    """``DELETE /cache/{key}/{signature}?input={source}``: drop every result made from a source
    (and the failures remembered for it); the answer names the surrogate key to purge a CDN by.

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
    keys = await request.app[COORDINATOR].purge(source)
    body = {
        "input": source,
        "deleted": len(keys),
        "keys": keys,
        "surrogate_keys": [source_surrogate(source)],
    }
    return web.json_response(body)


for _path in ("/cache", "/cache/{apikey}/{signature}"):
    routes.delete(_path)(purge_cache)
