"""A worker role: takes jobs from its queue, fetches the source, runs the graph in a worker
process, stores the result, records it in the cache index, and announces the outcome.

The same code runs in the embedded mode (both roles inside the server process, sharing one
process pool) and in ``python -m workers urgent|background``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any

import msgspec

from . import logs
from .backends.base import Backends, Delivery, InFlight
from .catalogue import Catalogue, Graph
from .errors import (
    REMEMBERED,
    Failure,
    ImgServerError,
    Internal,
    InvalidInput,
    NotFound,
    SourceTimeout,
    SourceUnreachable,
    Timeout,
    Unavailable,
    UndecodableSource,
)
from .fetch import Fetcher
from .formats import mime_of, require_source_format
from .graphdef import Definition
from .messages import (
    Entry,
    Job,
    JobDone,
    JobFailed,
    JobOutcome,
    Limits,
    Rendered,
    RenderFailed,
    RenderJob,
    RenderOutcome,
    TaskChanged,
)
from .metrics import Metrics
from .names import ORIGINALS_PREFIX, PRIORITY, result_path, result_scope, source_scope
from .pool import JobDeadline, ProcessPool, WorkerCrashed
from .probe import check_pixels, require_codec
from .recent import Recent
from .records import COMPLETED, COMPLETED_WITH_ERRORS, FAILED, PROCESSING
from .request import CHAIN_PREFIX, UPLOAD_PREFIX
from .retries import answer_by, retry_delay, settle_delay
from .settings import Settings
from .shared import SharedBytes
from .uploads import follow_task

RenderPool = ProcessPool[RenderJob, RenderOutcome]

log = logging.getLogger(__name__)
SNIFF_BYTES = 4096  # enough for every format's signature (and an SVG's root element)
ASSET_CACHE_SIZE = 32  # watermarks and the like kept in memory, by URL
ASSET_CACHE_BYTES = 4 * 1024 * 1024  # larger ones are fetched each time
ASSET_CACHE_TTL = 3600.0  # seconds one is trusted


class SourceFailed(Exception):
    """Fetching or checking a source failed: the failure is the source's (every request of it
    would meet it), not only this job's. Carries the source and the error."""

    def __init__(self, source: str, error: ImgServerError) -> None:
        super().__init__(error.message)
        self.source = source
        self.error = error


def _budget(due: float | None) -> float | None:
    """Seconds left until ``due`` (an urgent job's answer is due: ``retries.answer_by``)."""
    return None if due is None else max(0.0, due - time.time())


def is_transient(error: ImgServerError) -> bool:
    """Worth retrying: the source or a backend may answer next time; bad input will not."""
    if isinstance(error, SourceTimeout | Unavailable):
        return True
    status = error.details.get("upstream_status")
    return (
        isinstance(error, SourceUnreachable)
        and isinstance(status, int)
        and (status >= 500 or status == 429)
    )


def _drop(reading: asyncio.Task[bytes | SharedBytes]) -> None:
    """A source read that is no longer needed: cancel it, or release what it read (a read
    that failed has nothing to release; its error is the awaiting code's to report)."""
    if not reading.done():
        reading.cancel()
    elif not reading.cancelled() and reading.exception() is None:
        result = reading.result()
        if isinstance(result, SharedBytes):
            result.release()


async def _quietly(call: Awaitable[object]) -> None:
    """Best effort: the job's outcome is settled; a backend hiccup here is only logged."""
    try:
        await call
    except ImgServerError as exc:
        log.warning("after a job: %s", exc.message)


def worker_token(lease: str) -> str:
    """The token a worker holds a job's lease under: derived from its publisher's, so a job
    delivered again (its worker died) takes its lease straight back."""
    return lease + ".worker"


@contextlib.asynccontextmanager
async def leased(inflight: InFlight, job: Job, settings: Settings) -> AsyncIterator[None]:
    """Hold the job's in-flight lease while the block runs (coordinator.py says why): take it
    over from the frontend that queued the job, then renew it every lease interval. A lease
    not taken, or lost (taken over, or lapsed while Redis was away), is not fought for: the job
    goes on, its result still useful. ``Worker._settle`` releases it once the outcome is
    announced; a job retried or cancelled keeps it until it lapses or the job's next delivery
    takes it back."""
    token, ttl = worker_token(job.lease), settings.lease_ttl
    try:
        held = bool(job.lease) and await inflight.claim(job.key, token, ttl, job.lease)
    except ImgServerError as exc:
        log.warning("job %s: taking its lease over: %s", job.key, exc.message)
        held = False
    if not held:  # no lease (a prefetch, a _nocache job), or another holds it: go on
        yield
        return

    async def keep() -> None:
        while True:
            await asyncio.sleep(settings.lease_interval)
            try:
                if not await inflight.renew(job.key, token, ttl):
                    log.warning("job %s: lost its lease; going on without it", job.key)
                    return
            except ImgServerError as exc:  # Redis is away: try again next time
                log.warning("job %s: renewing its lease: %s", job.key, exc.message)

    keeper = asyncio.create_task(keep(), name=f"lease {job.key}")
    try:
        yield
    finally:
        keeper.cancel()


class Worker:
    def __init__(
        self,
        role: str,
        *,
        backends: Backends,
        pool: RenderPool,
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
        self._stopping = False
        self._assets: Recent[str, bytes] = Recent(ASSET_CACHE_SIZE, ASSET_CACHE_TTL)

    async def run(self) -> None:
        """Consume until cancelled; at most ``concurrency`` jobs at once."""
        try:
            async for delivery in self.b.broker.consume(self.role, self.concurrency):
                if self._stopping:  # draining: give it back for another worker
                    await _quietly(delivery.reject(requeue=True))
                    continue
                task = asyncio.create_task(self.handle_leased(delivery))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
        finally:
            for task in self._running:
                task.cancel()

    async def drain(self, grace: float) -> None:
        """Stop taking jobs and let the running ones finish (up to ``grace`` s); the rest stay
        unacknowledged, so the broker delivers them again."""
        self._stopping = True
        if self._running:
            await asyncio.wait(set(self._running), timeout=grace)

    async def handle_leased(self, delivery: Delivery) -> None:
        """``handle``, holding the job's in-flight lease until its outcome is announced."""
        with logs.serving(delivery.job.request_id):
            async with leased(self.b.inflight, delivery.job, self.settings):
                await self.handle(delivery)

    async def handle(self, delivery: Delivery) -> None:
        """Process one delivery; acknowledge it only once its outcome is settled.

        Cancelled (shutdown) or killed, it stays unacknowledged and the broker delivers it
        again. A transient failure (source 5xx or timeout, a backend down) is retried with
        backoff (``retries.py``: a few tries for a source, a time budget for a backend), then
        dead-lettered; a permanent one fails at once. A failure is settled only once the task
        records it (``_fail``).
        """
        job = delivery.job
        started = time.monotonic()
        if job.failure is not None:  # decided before: only its record is left to write
            await self._fail(delivery, job, job.failure, started)
            return
        try:
            entry, cached = await self.process(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # where a failure is remembered: under its source when fetching or checking that
            # failed (every request of the source), else under this job's cache key
            scope, source = result_scope(job.key), job.input
            if isinstance(exc, SourceFailed):
                scope, source, exc = source_scope(exc.source), exc.source, exc.error
            if isinstance(exc, ImgServerError):
                error = exc
            else:
                log.exception("job %s failed unexpectedly", job.key)
                error = Internal("the job failed unexpectedly")
            if error.detail:  # a library's or a backend's own words: the log's, not the client's
                log.warning("job %s: %s: %s", job.key, error.message, error.detail)
            failure = error.failure()
            if is_transient(error):
                now = time.time()
                outage = isinstance(error, Unavailable)
                delay = retry_delay(
                    self.settings, self.role, job, outage=outage, now=now, rand=random.random()
                )
                since = now if job.failing_since is None else job.failing_since
                if delay is not None:
                    again = msgspec.structs.replace(
                        job, attempt=job.attempt + 1, failing_since=since
                    )
                    await self._retry(delivery, again, delay, f"{error.code} ({error.message})")
                    return
                tries = job.attempt + 1
                failure = Failure(
                    error.code,
                    f"{error.message}; given up after {tries} tries in {now - since:.0f} s",
                    {**error.details, "attempts": tries},
                )
                await _quietly(self.b.broker.dead_letter(self.role, job, failure))
            await self._remember(scope, failure, source)
            await self._fail(delivery, job, failure, started)
            return
        done = JobDone(job.key, entry, cached)
        await self._settle(delivery, done, "cached" if cached else "ok", started)

    async def _remember(self, scope: str, failure: Failure, source: str) -> None:
        """Keep a failure of a source in the index's failure memory, so that every frontend
        answers it at once for ``failure_ttl`` seconds (best effort: without it, the next
        request only tries again)."""
        if failure.code not in REMEMBERED or not self.settings.failure_ttl:
            return
        ttl = self.settings.failure_ttl
        await _quietly(self.b.index.remember_failure(scope, failure, ttl, source))
        self.metrics.count(self.metrics.failures_remembered, failure.code)

    async def _fail(self, delivery: Delivery, job: Job, failure: Failure, started: float) -> None:
        """Record the job's failure in its task, then settle it. When the store is down the
        failure must not be lost with the delivery: the job goes back to the broker carrying
        it (``Job.failure``, delayed with backoff), and comes back until the write lands; only
        then is it acknowledged and announced."""
        try:
            await self._task(job, {"status": FAILED, "error": failure})
        except ImgServerError as exc:
            now = time.time()
            settling = (
                job
                if job.failure is not None
                else msgspec.structs.replace(job, failure=failure, attempt=0, queued_at=now)
            )
            delay = settle_delay(self.settings, settling, now=now, rand=random.random())
            if delay is not None:
                again = msgspec.structs.replace(settling, attempt=settling.attempt + 1)
                why = f"its failure is not recorded: {exc.message}"
                await self._retry(delivery, again, delay, why)
                return
            log.error("job %s: its failure could not be recorded; giving up", job.key)
        await self._settle(delivery, JobFailed(job.key, failure), failure.code, started)

    async def _retry(self, delivery: Delivery, again: Job, delay: float, why: str) -> None:
        """Queue ``again`` after ``delay`` s, then acknowledge the delivery; if the broker
        cannot take it, the delivery goes back to its queue instead (or, its channel gone,
        is delivered again after the reconnection)."""
        log.warning("job %s: %s; try %d in %.2f s", again.key, why, again.attempt + 1, delay)
        try:
            await self.b.broker.publish(self.role, again, delay)
        except ImgServerError:  # the broker itself is down: leave the job where it was
            await _quietly(delivery.reject(requeue=True))
            return
        await delivery.ack()
        self.metrics.jobs.labels(self.role, "retried").inc()

    async def _settle(
        self, delivery: Delivery, outcome: JobOutcome, label: str, started: float
    ) -> None:
        await delivery.ack()
        seconds = time.monotonic() - started
        self.metrics.jobs.labels(self.role, label).inc()
        self.metrics.job_seconds.labels(self.role).observe(seconds)
        job = delivery.job
        log.info(
            "job %s (%s): %s in %.3f s",
            job.key,
            job.graph,
            label,
            seconds,
            extra={"job": job.key, "role": self.role, "outcome": label, "seconds": seconds},
        )
        if isinstance(outcome, JobFailed) and await self._taken_over(job):
            log.info("job %s failed, but was taken over: the job taking over answers", job.key)
        else:
            await _quietly(self.b.events.publish(outcome))
        if job.lease:  # after the announcement, so no one takes the job over in between
            await _quietly(self.b.inflight.release(job.key, worker_token(job.lease)))

    async def _taken_over(self, job: Job) -> bool:
        """Whether another claim holds the job's lease (a frontend queued the job again)."""
        if not job.lease:
            return False
        try:
            holder = await self.b.inflight.holder(job.key)
        except ImgServerError:
            return False
        return holder not in (None, job.lease, worker_token(job.lease))

    async def process(self, job: Job) -> tuple[Entry, bool]:
        """Make the job's result; (entry, True) when it already existed and nothing was made."""
        await self._task(job, {"status": PROCESSING, "timings": {"started": time.time()}})
        path = result_path(job.key)
        if not job.nocache:
            existing = await self.b.index.get(job.key)
            if existing is not None:
                await self._done(job, existing, [])
                return existing, True
        graph = self.catalogue.get_graph(job.graph)
        if graph.digest != job.digest:
            raise Unavailable(f"graph '{job.graph}' changed while the job was queued; retry")
        # a GET miss's client waits: its sources are fetched (retries too) by the time it is due
        due = answer_by(self.settings, self.role, job, time.time())
        assets = {url: await self._asset(url, due) for url in _urls(graph, job)}

        if graph.definition.needs_source:
            fetched = await self._fetch(job, path, due)
            if isinstance(fetched, Entry):
                return fetched, True
            source, source_format = fetched
        else:  # a graph that draws its image: nothing to fetch
            stored = None if job.nocache else await self._stored(job, path)
            if stored is not None:
                return stored, True
            source, source_format = b"", ""
        # the pool owns a shared source from here, and releases it when the job ends
        result = await self.run_graph(job, graph.definition, source, source_format, assets)
        await self._task(job, {"timings": {"processed": time.time()}})

        content_type = mime_of(result.format)
        made = time.time()  # no later than storage dates the object: its entry expires first
        await self.b.storage.put(path, result.data, content_type)
        size = len(result.data)
        entry = Entry(
            path,
            content_type,
            size,
            result.width,
            result.height,
            job.input,
            made,
            result.quality,
            result.quality_note,
        )
        await self.b.index.set(job.key, entry)
        await self._done(job, entry, result.warnings)
        return entry, False

    async def _stored(self, job: Job, path: str) -> Entry | None:
        """The result, found in storage (and indexed again, until the object expires), or
        None; also when the object has outlived the results lifetime (its deletion is due)."""
        stored = await self.b.storage.head(path)
        if stored is None or self.settings.lifetime.expired(stored.modified):
            return None
        entry = Entry(path, stored.content_type, stored.size, 0, 0, job.input, stored.modified)
        await self.b.index.set(job.key, entry)
        await self._done(job, entry, [])
        return entry

    async def _fetch(
        self, job: Job, path: str, due: float | None = None
    ) -> Entry | tuple[bytes | SharedBytes, str]:
        """The source and its sniffed format; or the result, when storage has it already.

        Storage is the source of truth: an index that was flushed or expired must not cost a
        recompute. Storage is asked while the source downloads, so the check adds no latency.
        A shared source is the caller's to release. The source's own failures (fetching it,
        sniffing it, its header) come as ``SourceFailed``."""
        fetching = asyncio.create_task(self.read_source(job, due))
        source: bytes | SharedBytes | None = None
        try:
            stored = None if job.nocache else await self._stored(job, path)
            if stored is not None:
                return stored
            try:
                source = await fetching
            except ImgServerError as exc:
                raise SourceFailed(job.input, exc) from None
        finally:
            if source is None:
                _drop(fetching)
        try:
            data = source.view() if isinstance(source, SharedBytes) else source
            try:
                source_format = require_source_format(
                    bytes(data[:SNIFF_BYTES]), svg=self.settings.enable_svg
                )
                require_codec(data, source_format)
                check_pixels(data, source_format, self.settings.max_source_pixels)
            except ImgServerError as exc:
                raise SourceFailed(job.input, exc) from None
            finally:
                if isinstance(data, memoryview):
                    with contextlib.suppress(BufferError):  # a slice still held: collected
                        data.release()
            await self._task(job, {"timings": {"fetched": time.time()}})
        except BaseException:
            if isinstance(source, SharedBytes):
                source.release()
            raise
        return source, source_format

    async def _asset(self, url: str, due: float | None = None) -> bytes:
        """Another image a graph reads (a watermark): fetched under the input's rules and
        limits, checked like it, and kept in this worker's memory, so an image used on every
        request is fetched once (while it is recently used). Its failures are its own
        (``SourceFailed``)."""
        cached = self._assets.get(url)
        if cached is not None:
            return cached
        try:
            data = await self._read_asset(url, due)
        except ImgServerError as exc:
            raise SourceFailed(url, exc) from None
        if len(data) <= ASSET_CACHE_BYTES:
            self._assets.put(url, data)
        return data

    async def _read_asset(self, url: str, due: float | None) -> bytes:
        if url.startswith(UPLOAD_PREFIX):
            stored = await self.b.storage.get(ORIGINALS_PREFIX + url[len(UPLOAD_PREFIX) :])
            if stored is None:
                raise NotFound(f"no uploaded image {url}")
            data = stored.data
        else:
            data = await self.fetcher.fetch(url, _budget(due))
        fmt = require_source_format(data[:SNIFF_BYTES], svg=self.settings.enable_svg)
        require_codec(data, fmt)
        check_pixels(data, fmt, self.settings.max_source_pixels)
        return data

    async def read_source(self, job: Job, due: float | None = None) -> bytes | SharedBytes:
        """The job's source: an upload's bytes or a chained request's result from storage, or
        a fetched source in one of the pool's blocks (by ``due``, if given)."""
        source = job.input
        if source.startswith(UPLOAD_PREFIX):
            stored = await self.b.storage.get(ORIGINALS_PREFIX + source[len(UPLOAD_PREFIX) :])
            if stored is None:
                raise NotFound(f"no uploaded image {source}")
            return stored.data
        if source.startswith(CHAIN_PREFIX):
            return await self._chained(job)
        return await self.fetcher.fetch_shared(source, self.pool.blocks, _budget(due))

    async def _chained(self, job: Job) -> bytes:
        """The result of the job's inner request (a chained input): from storage, or made here
        first, like any job (cached for everyone, announced to whoever waits for it). Two
        workers that need the same missing inner result at once may both make it."""
        inner = job.inner
        if inner is None or CHAIN_PREFIX + inner.key != job.input:
            raise InvalidInput("a chained input came without its inner request")
        stored = await self.b.storage.get(result_path(inner.key))
        if stored is None:
            await self.b.index.delete(inner.key)  # it may still be indexed: make it again
            entry, cached = await self.process(inner)
            await _quietly(self.b.events.publish(JobDone(inner.key, entry, cached)))
            stored = await self.b.storage.get(entry.path)
            if stored is None:
                raise Unavailable("the storage did not return a chained input's result")
        return stored.data

    async def run_graph(
        self,
        job: Job,
        definition: Definition,
        source: bytes | SharedBytes,
        source_format: str,
        assets: dict[str, bytes] | None = None,
    ) -> Rendered:
        """Run the graph in a worker process; its error as an exception."""
        s = self.settings
        render = RenderJob(
            job.graph,
            definition,
            job.params,
            job.format,
            source_format,
            Limits(s.max_source_pixels, s.max_output_pixels, s.max_frames),
            assets or {},
        )
        self.metrics.pool_busy.set(self.pool.busy)
        try:
            outcome = await self.pool.run(render, source, priority=PRIORITY[self.role])
        except WorkerCrashed as exc:
            raise UndecodableSource(f"processing this image crashed its worker: {exc}") from None
        except JobDeadline as exc:
            raise Timeout(f"processing stopped: {exc}") from None
        finally:
            self.metrics.pool_busy.set(self.pool.busy)
        if isinstance(outcome, RenderFailed):
            raise outcome.error.to_error()
        return outcome

    async def _done(self, job: Job, entry: Entry, warnings: list[str]) -> None:
        status = COMPLETED_WITH_ERRORS if warnings else COMPLETED
        await self._task(
            job,
            {
                "status": status,
                "result_path": entry.path,
                "warnings": warnings,
                "timings": {"stored": time.time()},
            },
            entry,
        )

    async def _task(self, job: Job, changes: Mapping[str, Any], entry: Entry | None = None) -> None:
        """Update the job's task (if it has one), announce it, and bring an upload's image
        record along (a redelivered job repeats this, so a crash between the writes heals)."""
        if job.task_id is None:
            return
        task = await self.b.tasks.update(job.task_id, changes)
        if task is not None:
            await self.b.events.publish(TaskChanged(task))
            await follow_task(self.b, task, entry)


def _urls(graph: Graph, job: Job) -> list[str]:
    """The other images the job's graph reads (its parameters naming a source), in order."""
    urls = (job.params.get(name) for name in graph.source_params)
    return [url for url in urls if isinstance(url, str) and url]
