"""The frontend's side of jobs: cache lookups, single-flight, waiting for outcomes, prefetches.

Identical concurrent misses share one job: the first publishes it, the others join its future.
Every job outcome arrives on the event bus, so a request is woken whichever worker (and, in
the distributed mode, whichever frontend's job) produced the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from .backends.base import Backends
from .errors import ImgServerError, Timeout
from .jobs import Entry, Job
from .metrics import Metrics
from .names import BACKGROUND, URGENT
from .request import ImageRequest
from .settings import Settings
from .tasks import Task, new_id

log = logging.getLogger(__name__)

RETRY_AFTER = 5  # seconds suggested to a client whose request hit the deadline


class Coordinator:
    def __init__(self, backends: Backends, settings: Settings, metrics: Metrics) -> None:
        self.b = backends
        self.settings = settings
        self.metrics = metrics
        self._inflight: dict[str, tuple[asyncio.Future[dict], float]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        # A job not answered in this long is presumed lost and published again.
        self._stale_after = settings.job_deadline + settings.fetch_total_timeout + 30

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="imgserver-coordinator")
        await self._subscribed.wait()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        for fut, _ in self._inflight.values():
            fut.cancel()

    async def _listen(self) -> None:
        async with self.b.events.subscribe() as events:
            self._subscribed.set()
            async for event in events:
                if event.get("type") != "job":
                    continue
                pending = self._inflight.pop(event["key"], None)
                if pending is not None and not pending[0].done():
                    pending[0].set_result(event)

    async def lookup(self, req: ImageRequest) -> Entry | None:
        entry = None if req.nocache else await self.b.index.get(req.key)
        self.metrics.cache.labels("hit" if entry else "miss").inc()
        return entry

    async def compute(self, req: ImageRequest) -> Entry:
        """Run (or join) the urgent job for ``req`` and wait up to the request deadline."""
        key = req.key
        pending = self._inflight.get(key)
        if pending is None or time.monotonic() - pending[1] > self._stale_after:
            fut: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
            self._inflight[key] = (fut, time.monotonic())
            try:
                await self.b.broker.publish(URGENT, Job.for_request(req))
            except BaseException:
                self._inflight.pop(key, None)
                raise
            self.metrics.published.labels(URGENT).inc()
        else:
            fut = pending[0]
            self.metrics.joined.inc()
        try:
            event = await asyncio.wait_for(asyncio.shield(fut), self.settings.request_deadline)
        except TimeoutError:
            raise Timeout(
                f"the result was not ready within {self.settings.request_deadline:g} s; "
                "it is still being made: retry shortly",
                headers={"Retry-After": str(RETRY_AFTER)},
            ) from None
        if not event["ok"]:
            raise ImgServerError.from_dict(event["error"])
        return Entry.from_dict(event["entry"])

    async def prefetch(self, req: ImageRequest, image_id: str | None = None) -> Task:
        """Create a task for ``req`` and queue its job in the background."""
        task = Task(new_id(), req.graph.name, req.input, dict(req.params), req.format, req.key,
                    req.graph.digest, image_id=image_id)  # fmt: skip
        await self.b.tasks.create(task)
        await self.b.events.publish({"type": "task", "task": task.to_record()})
        await self.b.broker.publish(BACKGROUND, Job.for_request(req, task.id))
        self.metrics.published.labels(BACKGROUND).inc()
        return task

    async def requeue_unfinished(self) -> int:
        """Embedded mode: queue again the jobs of tasks a previous run did not finish."""
        tasks = await self.b.tasks.unfinished()
        for task in tasks:
            job = Job(task.key, task.graph, task.digest, task.format, task.input, task.params,
                      task.id)  # fmt: skip
            await self.b.broker.publish(BACKGROUND, job)
        return len(tasks)
