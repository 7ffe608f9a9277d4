"""The image-processing side of a process: the pool of image processes, the source fetcher,
and the worker roles that feed them, opened and closed together by ``running_workers``.

The embedded server (``app.py``: both roles, sharing one pool) and a worker role of the
distributed mode (``python -m workers urgent|background``: one role) build them here, the same
way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from .backends.base import Backends
from .catalogue import Catalogue
from .fetch import Fetcher
from .messages import RenderJob, RenderOutcome
from .metrics import Metrics
from .names import BACKGROUND, URGENT
from .pool import ProcessPool
from .runtime.execute import init_options
from .settings import Settings
from .worker import RenderPool, Worker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Crew:
    """The running workers of a process, each consuming its role's queue."""

    pool: RenderPool
    workers: tuple[Worker, ...]
    runners: tuple[asyncio.Task[None], ...]

    async def drain(self, grace: float) -> None:
        """Stop taking jobs; let the running ones finish (up to ``grace`` s in all)."""
        await asyncio.gather(*(worker.drain(grace) for worker in self.workers))


def niced(settings: Settings, roles: Mapping[str, int]) -> int:
    """How many of the pool's processes run background jobs, at a lower CPU priority: all of
    a background worker role's; in a process running both roles (the embedded server) all but
    one, which background jobs never hold anyway; none without background jobs or without a
    ``background_nice``."""
    if not settings.background_nice or BACKGROUND not in roles:
        return 0
    return settings.workers - 1 if URGENT in roles else settings.workers


@contextlib.asynccontextmanager
async def running_workers(
    settings: Settings,
    backends: Backends,
    catalogue: Catalogue,
    metrics: Metrics,
    roles: Mapping[str, int],
) -> AsyncIterator[Crew]:
    """A pool and a fetcher, and a worker per role (``roles``: role -> jobs in flight),
    consuming until the block ends; then the workers are cancelled (their jobs, not
    acknowledged, are delivered again), and the fetcher and the pool are closed."""
    pool: RenderPool = ProcessPool[RenderJob, RenderOutcome](
        settings.workers,
        settings.threads_per_worker,
        settings.job_deadline,
        memory_limit=settings.worker_memory_limit,
        init_options=init_options(settings),
        niced=niced(settings, roles),
        nice=settings.background_nice,
    )
    async with pool, Fetcher(settings) as fetcher:
        metrics.watch_pool(lambda: pool.pids)
        workers = tuple(
            Worker(
                role,
                backends=backends,
                pool=pool,
                fetcher=fetcher,
                catalogue=catalogue,
                settings=settings,
                metrics=metrics,
                concurrency=concurrency,
            )
            for role, concurrency in roles.items()
        )
        runners = tuple(asyncio.create_task(w.run(), name=f"worker-{w.role}") for w in workers)
        try:
            yield Crew(pool, workers, runners)
        finally:
            for runner in runners:
                runner.cancel()
            for runner in runners:
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
