"""The app factory: typed state (``web/state.py``), the routes of each route module, the one
middleware, and one cleanup context per resource, opened in order at start-up and closed in
reverse order at shutdown:

1. ``backends_ctx``: every backend (``open_backends``);
2. ``coordinator_ctx``: the coordinator (cache lookups, single-flight, queueing) and uploads;
3. ``events_ctx``: the frontend's one event-bus subscription (``feed.py``);
4. ``workers_ctx``: in the embedded mode, the workers of both roles (``processing.py``), and
   the tasks a previous run left unfinished, queued again;
5. ``sweep_ctx``: with a results lifetime, expired results swept from local storage and the
   SQLite index (S3 and Redis expire them by themselves), at start-up and every
   ``SWEEP_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator

from aiohttp import web

from . import openapi
from .apikeys import KeyRing
from .backends.factory import open_backends
from .backends.local_storage import LocalStorage
from .backends.sqlite import SqliteIndex
from .catalogue import Catalogue
from .coordinator import Coordinator
from .feed import EventFeed
from .live import Hub
from .logs import RequestIds
from .metrics import Metrics
from .names import BACKGROUND, URGENT
from .processing import running_workers
from .recent import Recent
from .settings import Settings
from .uploads import MULTIPART_OVERHEAD, Uploads
from .web import client, docs, events, graph, graphs, operations, storage, tasks, uploads
from .web.bundle import STATIC_DIR, Bundle, make_asset
from .web.middleware import error_middleware
from .web.state import (
    BACKENDS,
    BUNDLE,
    CATALOGUE,
    COORDINATOR,
    DOCS,
    HUB,
    IDS,
    KEYS,
    LOCAL_STORAGE,
    METRICS,
    OPENAPI,
    PARSED,
    SETTINGS,
    UPLOADS,
)

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 3600.0  # seconds between sweeps of expired results (embedded backends)
# The longest request line (method, URL, version) read: an input URL may be 4096 characters,
# percent-encoded, with the graph's parameters besides. A longer line is refused by aiohttp's
# parser (a plain-text 400) before it reaches the app; a shorter one gets the API's JSON errors.
MAX_REQUEST_LINE = 65536


def create_app(settings: Settings | None = None) -> web.Application:
    """Build the application. Loading the catalogue here makes a broken graph stop start-up."""
    settings = settings or Settings.from_env()
    # Uploads are read in chunks under max_source_bytes; this only bounds request.post() & co.
    body_cap = settings.max_source_bytes + MULTIPART_OVERHEAD
    app = web.Application(
        middlewares=[error_middleware],
        client_max_size=body_cap,
        handler_args={"max_line_size": MAX_REQUEST_LINE},
    )
    app[SETTINGS] = settings
    app[IDS] = RequestIds()
    app[CATALOGUE] = Catalogue.load(
        settings.graphs_dir,
        max_dimension=settings.max_dimension,
        auto_target=settings.auto_quality_target,
    )
    app[KEYS] = KeyRing.from_settings(settings)
    app[METRICS] = Metrics()
    app[HUB] = Hub()
    app[BUNDLE] = Bundle.load()
    app[DOCS] = Bundle.load(STATIC_DIR / "docs", STATIC_DIR / "vendor" / "swagger-ui")
    app[PARSED] = Recent(settings.hit_cache_size)
    for module in (client, graph, graphs, tasks, events, uploads, docs):
        app.router.add_routes(module.routes)
    app.router.add_routes(operations.probes)
    app.router.add_routes(operations.routes)
    if not settings.s3_bucket:  # the embedded storage is served by the app itself
        app.router.add_routes(storage.routes)
    routes = [(r.method, r.resource.canonical) for r in app.router.routes() if r.resource]
    app[OPENAPI] = make_asset("openapi.json", openapi.document(routes, app[CATALOGUE], settings))
    app.cleanup_ctx.extend((backends_ctx, coordinator_ctx, events_ctx, workers_ctx, sweep_ctx))
    app.on_shutdown.append(_end_streams)
    return app


async def _end_streams(app: web.Application) -> None:
    """Shutdown: end the open event streams, so waiting for running handlers does not hang."""
    app[HUB].end_all()


async def backends_ctx(app: web.Application) -> AsyncIterator[None]:
    async with open_backends(app[SETTINGS]) as backends:
        app[BACKENDS] = backends
        if isinstance(backends.storage, LocalStorage):
            app[LOCAL_STORAGE] = backends.storage
        yield


async def coordinator_ctx(app: web.Application) -> AsyncIterator[None]:
    coordinator = Coordinator(app[BACKENDS], app[SETTINGS], app[METRICS])
    app[COORDINATOR] = coordinator
    app[UPLOADS] = Uploads(app[BACKENDS], coordinator, app[CATALOGUE], app[SETTINGS])
    try:
        yield
    finally:
        coordinator.close()


async def events_ctx(app: web.Application) -> AsyncIterator[None]:
    async with EventFeed(app[BACKENDS].events, app[COORDINATOR], app[HUB]):
        yield


async def workers_ctx(app: web.Application) -> AsyncIterator[None]:
    """Embedded mode: this process runs both worker roles. Background jobs never hold every
    image process: one is always left for urgent work."""
    settings, backends = app[SETTINGS], app[BACKENDS]
    if not backends.embedded:
        yield
        return
    roles = {URGENT: 2 * settings.workers, BACKGROUND: max(1, settings.workers - 1)}
    async with running_workers(settings, backends, app[CATALOGUE], app[METRICS], roles):
        requeued = await app[COORDINATOR].requeue_unfinished()
        if requeued:
            log.info("re-queued %d unfinished task(s)", requeued)
        yield


async def sweep_ctx(app: web.Application) -> AsyncIterator[None]:
    """With a results lifetime: sweep expired results from the embedded backends, the index
    first (so it never points at a swept file), now and every SWEEP_INTERVAL."""
    backends = app[BACKENDS]
    swept = [
        part
        for part in (backends.index, backends.storage)
        if isinstance(part, SqliteIndex | LocalStorage)
    ]
    if not app[SETTINGS].results_lifetime or not swept:
        yield
        return

    async def sweep_forever() -> None:
        while True:
            for part in swept:
                try:
                    count = await part.sweep()
                except (OSError, sqlite3.Error) as exc:
                    log.warning("sweeping expired results: %s", exc)
                else:
                    if count:
                        log.info("swept %d expired result(s) from %s", count, type(part).__name__)
            await asyncio.sleep(SWEEP_INTERVAL)

    sweeper = asyncio.create_task(sweep_forever(), name="imgserver-sweep")
    try:
        yield
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
