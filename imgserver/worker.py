"""A worker role: takes jobs from its queue, fetches the source, runs the graph in a worker
process, stores the result, records it in the cache index, and announces the outcome.

The same code runs in the embedded mode (both roles inside the server process, sharing one
process pool) and in ``python -m workers urgent|background``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .backends.base import Backends, Delivery
from .catalogue import Catalogue
from .errors import ImgServerError, Internal, NotFound, Timeout, Unavailable, UndecodableSource
from .fetch import Fetcher
from .formats import mime_of, require_source_format
from .jobs import Entry, Job
from .metrics import Metrics
from .names import ORIGINALS_PREFIX, PRIORITY, result_path
from .pool import JobDeadline, ProcessPool, WorkerCrashed
from .probe import check_pixels
from .request import UPLOAD_PREFIX
from .settings import Settings
from .tasks import COMPLETED, COMPLETED_WITH_ERRORS, FAILED, PROCESSING

log = logging.getLogger(__name__)


def job_event(key: str, entry: Entry | None = None, error: ImgServerError | None = None) -> dict:
    if error is not None:
        return {"type": "job", "key": key, "ok": False, "error": error.to_dict()}
    assert entry is not None
    return {"type": "job", "key": key, "ok": True, "entry": entry.to_dict()}


class Worker:
    def __init__(
        self,
        role: str,
        *,
        backends: Backends,
        pool: ProcessPool,
        fetcher: Fetcher,
        catalogue: Catalogue,
        settings: Settings,
        metrics: Metrics,
        concurrency: int,
    ) -> None:
        self.role = role
        self.b = backends
        self.pool = pool
        self.fetcher = fetcher
        self.catalogue = catalogue
        self.settings = settings
        self.metrics = metrics
        self.concurrency = concurrency
        self._running: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Consume forever (until cancelled); at most ``concurrency`` jobs at once."""
        try:
            async for delivery in self.b.broker.consume(self.role, self.concurrency):
                task = asyncio.create_task(self.handle(delivery))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
        finally:
            for task in self._running:
                task.cancel()

    async def handle(self, delivery: Delivery) -> None:
        job = delivery.job
        started = time.monotonic()
        try:
            entry = await self.process(job)
            event = job_event(job.key, entry=entry)
            outcome = "ok"
        except ImgServerError as exc:
            event = job_event(job.key, error=exc)
            outcome = exc.code
            await self._task(job, {"status": FAILED, "error": exc.to_dict()})
        except Exception:
            log.exception("job %s failed unexpectedly", job.key)
            exc = Internal("the job failed unexpectedly")
            event = job_event(job.key, error=exc)
            outcome = exc.code
            await self._task(job, {"status": FAILED, "error": exc.to_dict()})
        finally:
            await delivery.ack()
        self.metrics.jobs.labels(self.role, outcome).inc()
        self.metrics.job_seconds.labels(self.role).observe(time.monotonic() - started)
        await self.b.events.publish(event)

    async def process(self, job: Job) -> Entry:
        await self._task(job, {"status": PROCESSING, "timings": {"started": time.time()}})
        if not job.nocache:
            existing = await self.b.index.get(job.key)
            if existing is not None:
                await self._done(job, existing, [])
                return existing
        graph = self.catalogue.get_graph(job.graph)
        if graph.digest != job.digest:
            raise Unavailable(f"graph '{job.graph}' changed while the job was queued; retry")

        data = await self.read_source(job.input)
        source_format = require_source_format(data)
        check_pixels(data, source_format, self.settings.max_source_pixels)
        await self._task(job, {"timings": {"fetched": time.time()}})

        result = await self.run_graph(job, graph.definition, data, source_format)
        await self._task(job, {"timings": {"processed": time.time()}})

        path = result_path(job.key)
        content_type = mime_of(result["format"])
        await self.b.storage.put(path, result["data"], content_type)
        entry = Entry(path, content_type, len(result["data"]), result["width"], result["height"],
                      job.input, time.time())  # fmt: skip
        await self.b.index.set(job.key, entry)
        await self._done(job, entry, result["warnings"])
        return entry

    async def read_source(self, source: str) -> bytes:
        if source.startswith(UPLOAD_PREFIX):
            stored = await self.b.storage.get(ORIGINALS_PREFIX + source[len(UPLOAD_PREFIX) :])
            if stored is None:
                raise NotFound(f"no uploaded image {source}")
            return stored.data
        return await self.fetcher.fetch(source)

    async def run_graph(
        self, job: Job, definition: Any, data: bytes, source_format: str
    ) -> dict[str, Any]:
        s = self.settings
        payload = {
            "graph": job.graph,
            "definition": dict(definition),
            "params": job.params,
            "format": job.format,
            "source": data,
            "source_format": source_format,
            "limits": {"max_source_pixels": s.max_source_pixels,
                       "max_output_pixels": s.max_output_pixels, "max_frames": s.max_frames},
        }  # fmt: skip
        self.metrics.pool_busy.set(self.pool.busy)
        try:
            result = await self.pool.run(payload, PRIORITY[self.role])
        except WorkerCrashed as exc:
            raise UndecodableSource(f"processing this image crashed its worker: {exc}") from None
        except JobDeadline as exc:
            raise Timeout(f"processing stopped: {exc}") from None
        finally:
            self.metrics.pool_busy.set(self.pool.busy)
        if not result["ok"]:
            raise ImgServerError.from_dict(result["error"])
        return result

    async def _done(self, job: Job, entry: Entry, warnings: list[str]) -> None:
        status = COMPLETED_WITH_ERRORS if warnings else COMPLETED
        await self._task(job, {"status": status, "result_path": entry.path, "warnings": warnings,
                               "timings": {"stored": time.time()}})  # fmt: skip

    async def _task(self, job: Job, changes: dict[str, Any]) -> None:
        if job.task_id is None:
            return
        task = await self.b.tasks.update(job.task_id, changes)
        if task is not None:
            await self.b.events.publish({"type": "task", "task": task.to_record()})
