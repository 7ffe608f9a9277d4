"""The frontend's side of jobs: cache lookups, single-flight, waiting for outcomes, prefetches.

Identical concurrent misses share one job: in this process the requests for a key share one
``_Flight`` (the first one starts it, the others join it); across frontends and workers, an
in-flight *lease* on the key (``backends.base.InFlight``: a holder's token with a short expiry,
``IMGSERVER_LEASE_TTL``) says who answers for its job right now:

- the frontend that claims the lease publishes the job (with the lease's token in it), and
  renews the lease while the job waits in the queue and requests wait for it here;
- the worker that takes the job takes the lease over from that token (``worker.leased``),
  renews it while it works, and releases it once the outcome is announced;
- every frontend with requests waiting for the key looks at the lease every
  ``Settings.lease_interval`` (2 s). When no one holds it any more and the index has no result,
  the job's outcome was lost or its holder died or stalled: one of them claims the lease and
  publishes the job again (a take-over), within the requests' deadline.

So a key is blocked by a dead frontend, a killed or frozen worker, or a Redis freeze that lost
the outcome's announcement or the lease's release, for at most a lease and an interval. A job
taken over may still be in the queue, or still running on a frozen worker that wakes up: it is
done again only if its result is not in the index yet (the worker looks first), and a job whose
lease was taken over does not announce its failure (the job that took over will announce).
With no request waiting, no frontend renews a queued job's lease: a later request for the key
may then queue it again, which costs a queue trip, not a computation. ``_nocache`` jobs take no
lease (each one is meant to run) and are waited for up to the deadline.

Every job outcome arrives on the event bus (the frontend's one subscription, ``feed.py``, hands
it to ``on_outcome``), so a request is woken whichever worker, and whichever frontend's job,
produced the result.

The index is trusted on the hit path, but checked: a sampled fraction of hits
(``IMGSERVER_VERIFY_HITS``) is followed by a HEAD of its object in storage, in the background
after the answer, and a POST of a cached URL checks before answering. A result found gone
(expired by a lifecycle rule, deleted by hand) is forgotten everywhere (``forget``: the index
entry, and every frontend's memory through a ``Purged`` event), so the next request makes it
again, at the same storage path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec

from . import logs
from .backends.base import Backends
from .errors import Failure, ImgServerError, Overloaded, Timeout
from .messages import Entry, Job, JobDone, JobOutcome, Purged, TaskChanged
from .metrics import Metrics
from .names import BACKGROUND, URGENT, result_path
from .recent import RecentEntries
from .records import FAILED, Task, new_id
from .request import CHAIN_PREFIX, MAX_CHAIN, ImageRequest
from .settings import Settings

log = logging.getLogger(__name__)

RETRY_AFTER = 5  # seconds suggested to a client whose request hit the deadline
DEPTH_REFRESH = 0.25  # seconds a queue depth read from the broker is reused
PROVISIONAL = 60.0  # seconds a prefetch's task record lives until its job is queued
MAX_CHECKS = 16  # hit checks running at once in a process; more sampled hits go unchecked


def new_token() -> str:
    """A lease holder's token: unique to one claim."""
    return secrets.token_hex(8)


@dataclass(eq=False)
class _Flight:
    """The job of one key, as the requests of this process waiting for it see it."""

    req: ImageRequest
    outcome: asyncio.Future[JobOutcome]
    waiters: int = 0
    lease: str = ""  # our lease's token while we hold it (we queued the job)
    watcher: asyncio.Task[None] | None = None


class Coordinator:
    def __init__(self, backends: Backends, settings: Settings, metrics: Metrics) -> None:
        self.b = backends
        self.settings = settings
        self.metrics = metrics
        self._flights: dict[str, _Flight] = {}
        self._caps = {URGENT: settings.max_queue_urgent, BACKGROUND: settings.max_queue_background}
        # queue -> (depth the broker last reported, when, jobs this process queued since)
        self._depths: dict[str, tuple[int, float, int]] = {}
        # queue -> jobs admitted under its cap that are still being queued
        self._reserved: dict[str, int] = {}
        ttl = settings.hit_cache_ttl
        if settings.index_ttl:
            ttl = min(ttl, settings.index_ttl)
        self._recent = RecentEntries(settings.hit_cache_size, ttl, settings.lifetime)
        self._sampler = random.Random()
        self._checks: dict[str, asyncio.Task[None]] = {}  # hit checks running, by key

    def close(self) -> None:
        """Stop waiting: the requests still waiting are cancelled (the app is stopping)."""
        for flight in self._flights.values():
            flight.outcome.cancel()
            self._stop_watching(flight)
        for check in self._checks.values():
            check.cancel()

    def on_outcome(self, outcome: JobOutcome) -> None:
        """A job finished, here or elsewhere: wake the requests waiting for it."""
        flight = self._flights.pop(outcome.key, None)
        if flight is not None:
            self._stop_watching(flight)
            if not flight.outcome.done():
                flight.outcome.set_result(outcome)

    def on_purge(self, purged: Purged) -> None:
        """Results were dropped: stop serving them from memory."""
        self._recent.drop(purged.keys)

    async def lookup(self, req: ImageRequest, *, check: bool = False) -> Entry | None:
        """The indexed result, or None. ``check``: only if storage still has it (a HEAD);
        otherwise a sampled fraction of hits is checked in the background. (On an index miss
        the worker asks storage before it computes anything, so a flushed index costs a queue
        trip, never a recompute.)"""
        entry = None
        if not req.nocache:
            entry = self._recent.get(req.key)
            if entry is None:
                entry = await self.b.index.get(req.key)
                if entry is not None:
                    self._recent.put(req.key, entry)
        if entry is not None:
            if check:
                entry = entry if await self._check(req.key, entry) else None
            elif self._sampler.random() < self.settings.verify_hits:
                self._check_later(req.key, entry)
        self.metrics.count(self.metrics.cache, "hit" if entry else "miss")
        return entry

    async def remembered(self, req: ImageRequest) -> Failure | None:
        """The failure remembered for ``req`` (its source's, or its own), if any: answered at
        once, without fetching or queueing. ``_nocache`` requests do not look."""
        if req.nocache or not self.settings.failure_ttl:
            return None
        failure = await self.b.index.failure(req.failure_scopes())
        if failure is not None:
            self.metrics.count(self.metrics.failure_hits, failure.code)
        return failure

    async def forget(self, key: str) -> None:
        """An indexed result whose object is gone: drop its entry from the index and from every
        frontend's memory, so the next request makes it again."""
        self._recent.drop([key])
        await self.b.index.delete(key)
        await self.b.events.publish(Purged([key]))

    async def _check(self, key: str, entry: Entry) -> bool:
        """Whether storage still has ``entry``'s object; if not, it is forgotten. A storage
        that does not answer proves nothing: the index is trusted."""
        try:
            present = await self.b.storage.head(entry.path) is not None
        except ImgServerError as exc:
            log.warning("checking the stored result %s: %s", key, exc.message)
            self.metrics.count(self.metrics.hit_checks, "error")
            return True
        self.metrics.count(self.metrics.hit_checks, "present" if present else "missing")
        if not present:
            log.warning("result %s is indexed but gone from storage: made again on demand", key)
            await self.forget(key)
        return present

    def _check_later(self, key: str, entry: Entry) -> None:
        """Check a hit in the background (at most MAX_CHECKS at once, one per key)."""
        if key in self._checks or len(self._checks) >= MAX_CHECKS:
            return
        check = asyncio.create_task(self._check_quietly(key, entry), name="imgserver-hit-check")
        self._checks[key] = check
        check.add_done_callback(lambda _: self._checks.pop(key, None))

    async def _check_quietly(self, key: str, entry: Entry) -> None:
        try:
            await self._check(key, entry)
        except ImgServerError as exc:  # forgetting it failed: the next check tries again
            log.warning("forgetting the missing result %s: %s", key, exc.message)

    async def compute(self, req: ImageRequest) -> tuple[Entry, bool]:
        """Run (or join) the urgent job for ``req`` and wait up to the request deadline.

        Returns the entry and whether it already existed in storage (nothing was computed)."""
        key = req.key
        flight = self._flights.get(key)
        starting = flight is None
        if flight is None:
            loop = asyncio.get_running_loop()
            flight = self._flights[key] = _Flight(req, loop.create_future())
        else:
            self.metrics.joined.inc()
        flight.waiters += 1
        started, result = time.monotonic(), "failed"
        try:
            if starting:
                await self._start(flight)
            outcome = await asyncio.wait_for(
                asyncio.shield(flight.outcome), self.settings.request_deadline
            )
            if isinstance(outcome, JobDone):
                result = "done"
        except TimeoutError:
            result = "timeout"
            raise Timeout(
                f"the result was not ready within {self.settings.request_deadline:g} s; "
                "it is still being made: retry shortly",
                headers={"Retry-After": str(RETRY_AFTER)},
            ) from None
        finally:
            self.metrics.miss_seconds.labels(result).observe(time.monotonic() - started)
            flight.waiters -= 1
            if not flight.waiters and self._flights.get(key) is flight:
                # no one waits here any more: the job goes on, its lease renewed by the worker
                # that has it (a queued job's lapses; a later request may queue it again)
                del self._flights[key]
                self._stop_watching(flight)
        if not isinstance(outcome, JobDone):
            raise outcome.error.to_error()
        self._recent.put(key, outcome.entry)
        return outcome.entry, outcome.cached

    async def _start(self, flight: _Flight) -> None:
        """Publish the flight's urgent job, or join the one another frontend leads; then watch
        its lease. A failure (429, 503) is every waiting request's: it ends the flight."""
        req = flight.req
        try:
            if req.nocache:
                await self._publish(URGENT, req.job())
                return
            if not await self._claim_and_publish(flight):
                self.metrics.joined.inc()
                # It may have finished between our lookup and the claim: then no event will come.
                await self._done_if_indexed(flight)
        except Exception as exc:
            if self._flights.get(req.key) is flight:
                del self._flights[req.key]
            if not flight.outcome.done():
                flight.outcome.set_exception(exc)
            return
        if not flight.outcome.done():
            flight.watcher = asyncio.create_task(self._watch(flight), name=f"lease {req.key}")

    async def _claim_and_publish(self, flight: _Flight) -> bool:
        """Claim the key's lease and publish its job; False if someone else holds the lease."""
        key, token = flight.req.key, new_token()
        if not await self.b.inflight.claim(key, token, self.settings.lease_ttl):
            return False
        try:
            await self._publish(URGENT, msgspec.structs.replace(flight.req.job(), lease=token))
        except BaseException:
            with contextlib.suppress(ImgServerError):  # else it lapses by itself
                await self.b.inflight.release(key, token)
            raise
        flight.lease = token
        return True

    async def _done_if_indexed(self, flight: _Flight) -> bool:
        entry = await self.b.index.get(flight.req.key)
        if entry is not None:
            self.on_outcome(JobDone(flight.req.key, entry, cached=True))
        return entry is not None

    async def _watch(self, flight: _Flight) -> None:
        """While requests wait here for the flight's job: every lease interval, renew our lease
        on it, or see that someone holds it; when no one does, take the job over."""
        key = flight.req.key
        while True:
            await asyncio.sleep(self.settings.lease_interval)
            try:
                if flight.lease and await self.b.inflight.renew(
                    key, flight.lease, self.settings.lease_ttl
                ):
                    continue  # still queued, kept alive by us
                flight.lease = ""  # a worker took it over (or it lapsed)
                if await self.b.inflight.holder(key) is not None:
                    continue  # a worker, or another frontend, answers for the job
                # No one does: the outcome's announcement was lost, or the holder died or
                # stalled. Unless the result is there, the job is taken over.
                if await self._done_if_indexed(flight):
                    return
                if await self._claim_and_publish(flight):
                    self.metrics.takeovers.inc()
                    log.warning("job %s: no one held its lease; queued it again", key)
            except ImgServerError as exc:  # a backend is down: look again next time
                log.warning("job %s: watching its lease: %s", key, exc.message)

    def _stop_watching(self, flight: _Flight) -> None:
        if flight.watcher is not None and flight.watcher is not asyncio.current_task():
            flight.watcher.cancel()

    async def prefetch(
        self, req: ImageRequest, image_id: str | None = None, task_id: str | None = None
    ) -> Task:
        """Create a task for ``req`` (with ``task_id`` if given) and queue its job in the
        background."""
        task = Task(
            task_id or new_id(),
            req.graph.name,
            req.input,
            dict(req.params),
            req.format,
            req.key,
            req.graph.digest,
            image_id=image_id,
        )
        async with self._admission(BACKGROUND):
            # Provisional until its job is queued: a prefetch answered 503 leaves no task that
            # would never end, even if the store fails as the broker did.
            await self.b.tasks.create(task, lease=PROVISIONAL)
            try:
                await self.b.events.publish(TaskChanged(task))
                await self._enqueue(BACKGROUND, req.job(task.id))
            except ImgServerError as exc:
                await self._not_queued(task, exc)
                raise
            await self.b.tasks.update(task.id, {})  # confirmed: it lives for task_ttl now
        return task

    async def _not_queued(self, task: Task, exc: ImgServerError) -> None:
        """A task whose job could not be queued: failed (and announced), or, if the store
        fails too, left to vanish when its lease ends."""
        failure = Failure(
            exc.code, f"the job could not be queued ({exc.message}); nothing was done: retry"
        )
        try:
            failed = await self.b.tasks.update(task.id, {"status": FAILED, "error": failure})
            if failed is not None:
                await self.b.events.publish(TaskChanged(failed))
        except ImgServerError as again:
            log.warning(
                "task %s: its job was not queued, and it could not be marked failed (%s); "
                "it is gone in %g s",
                task.id,
                again.message,
                PROVISIONAL,
            )

    async def _publish(self, queue: str, job: Job) -> None:
        async with self._admission(queue):
            await self._enqueue(queue, job)

    async def _enqueue(self, queue: str, job: Job) -> None:
        if not job.request_id and (request_id := logs.current.get()):
            job = msgspec.structs.replace(job, request_id=request_id)  # for the worker's logs
        await self.b.broker.publish(queue, job)
        depth, at, since = self._depths.get(queue, (0, 0.0, 0))
        self._depths[queue] = (depth, at, since + 1)
        self.metrics.published.labels(queue).inc()

    @contextlib.asynccontextmanager
    async def _admission(self, queue: str) -> AsyncIterator[None]:
        """Hold a place under the queue's cap while a job is queued; 429 overloaded when the
        queue already holds its cap of waiting jobs.

        The broker's count is asked at most every DEPTH_REFRESH seconds; the jobs this process
        queued since, and those it admitted and is still queueing (creating the task record,
        publishing), are added to it. The check and the reservation happen with no pause
        between them, so concurrent requests cannot all pass the check before any counts."""
        depth, at, since = self._depths.get(queue, (0, 0.0, 0))
        if time.monotonic() - at > DEPTH_REFRESH:
            fresh = await self.b.broker.depth(queue)
            self._depths[queue] = (fresh, time.monotonic(), 0)
            depth, at, since = self._depths[queue]
        reserved = self._reserved.get(queue, 0)
        if depth + since + reserved >= self._caps[queue]:
            raise Overloaded(
                f"the {queue} queue is full ({self._caps[queue]} jobs waiting); retry later",
                headers={"Retry-After": str(RETRY_AFTER)},
            )
        self._reserved[queue] = reserved + 1
        try:
            yield
        finally:
            self._reserved[queue] -= 1

    async def purge(self, source: str) -> list[str]:
        """Drop every result made from ``source`` (storage and index), and every result chained
        from those (whose input is ``graph:{key}``), and the failures remembered for them; the
        keys dropped.

        Results are found through the index's input -> keys set; every frontend hears a
        ``purge`` event so nothing keeps serving them from a local cache."""
        keys: list[str] = []
        level = [source]
        for _ in range(MAX_CHAIN):
            for s in level:
                await self.b.index.forget_failures(s)
            found = [k for s in level for k in await self.b.index.keys_for_input(s)]
            keys += [k for k in found if k not in keys]
            level = [CHAIN_PREFIX + k for k in found]
            if not level:
                break
        self._recent.drop(keys)
        for key in keys:
            await self.b.storage.delete(result_path(key))
            await self.b.index.delete(key)
        await self.b.events.publish(Purged(keys))
        return keys

    async def requeue_unfinished(self) -> int:
        """Embedded mode: queue again the jobs of tasks a previous run did not finish."""
        tasks = await self.b.tasks.unfinished()
        for task in tasks:
            job = Job(
                task.key, task.graph, task.digest, task.format, task.input, task.params, task.id
            )
            await self.b.broker.publish(BACKGROUND, job)
        return len(tasks)
