"""The app factory: typed state, backends opened in a cleanup context, routes, middlewares."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from .backends import open_backends
from .catalogue import Catalogue
from .coordinator import Coordinator
from .fetch import Fetcher
from .keys import KeyRing
from .live import Hub
from .metrics import METRICS, Metrics
from .names import BACKGROUND, URGENT
from .pool import ProcessPool
from .runtime.execute import init_options
from .settings import Settings
from .uploads import MULTIPART_OVERHEAD
from .web.events import HUB
from .web.handlers import CATALOGUE, KEYS, SERVICES, SETTINGS, Services, add_routes
from .web.middleware import error_middleware
from .worker import Worker

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> web.Application:
    """Build the application. Loading the catalogue here makes a broken graph stop start-up."""
    settings = settings or Settings.from_env()
    catalogue = Catalogue.load(settings.graphs_dir, max_dimension=settings.max_dimension)
    # Uploads are read in chunks under max_source_bytes; this only bounds request.post() & co.
    body_cap = settings.max_source_bytes + MULTIPART_OVERHEAD
    app = web.Application(middlewares=[error_middleware], client_max_size=body_cap)
    app[SETTINGS] = settings
    app[CATALOGUE] = catalogue
    app[KEYS] = KeyRing.from_settings(settings)
    app[METRICS] = Metrics()
    app[HUB] = Hub()
    app.cleanup_ctx.append(services_ctx)
    app.on_shutdown.append(_end_streams)
    add_routes(app)
    return app


async def _end_streams(app: web.Application) -> None:
    """Shutdown: end the open event streams, so waiting for running handlers does not hang."""
    app[HUB].end_all()


async def services_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the backends (and, in the embedded mode, the workers); close them at shutdown."""
    settings, metrics = app[SETTINGS], app[METRICS]
    backends = await open_backends(settings)
    coordinator = Coordinator(backends, settings, metrics)
    await coordinator.start()
    pool: ProcessPool | None = None
    fetcher: Fetcher | None = None
    runners: list[asyncio.Task[None]] = []
    try:
        await app[HUB].start(backends.events)
        if backends.embedded:
            pool = ProcessPool(
                settings.workers,
                settings.threads_per_worker,
                settings.job_deadline,
                memory_limit=settings.worker_memory_limit,
                init_options=init_options(settings),
            )
            await pool.start()
            fetcher = Fetcher(settings)
            await fetcher.start()
            # Background jobs never hold every process: one is always left for urgent work.
            roles = ((URGENT, 2 * settings.workers), (BACKGROUND, max(1, settings.workers - 1)))
            for role, concurrency in roles:
                worker = Worker(
                    role,
                    backends=backends,
                    pool=pool,
                    fetcher=fetcher,
                    catalogue=app[CATALOGUE],
                    settings=settings,
                    metrics=metrics,
                    concurrency=concurrency,
                )
                runners.append(asyncio.create_task(worker.run(), name=f"worker-{role}"))
            requeued = await coordinator.requeue_unfinished()
            if requeued:
                log.info("re-queued %d unfinished task(s)", requeued)
        app[SERVICES] = Services(backends, coordinator)
        yield
    finally:
        for runner in runners:
            runner.cancel()
        for runner in runners:
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        await app[HUB].close()
        await coordinator.close()
        if fetcher is not None:
            await fetcher.close()
        if pool is not None:
            await pool.close()
        await backends.close()
