"""The embedded broker, in-flight leases and event bus: in this process only (the embedded
mode has one frontend, and it runs the workers)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from ..errors import Failure
from ..messages import Event, Job
from .base import Managed


class _MemoryDelivery:
    def __init__(
        self,
        job: Job,
        release: Callable[[], None],
        requeue: Callable[[Job], None],
        redelivered: bool = False,
    ) -> None:
        self.job = job
        self.redelivered = redelivered
        self._release = release
        self._requeue = requeue
        self._done = False

    async def ack(self) -> None:
        self._settle()

    async def reject(self, requeue: bool) -> None:
        if requeue and not self._done:
            self._requeue(self.job)
        self._settle()

    def _settle(self) -> None:
        if not self._done:
            self._done = True
            self._release()


class MemoryBroker(Managed):
    """In-process queues. Jobs live only as long as the process (tasks are re-queued)."""

    def __init__(self, queues: tuple[str, ...]) -> None:
        # (job, redelivered): a job put back by reject(requeue=True) is marked redelivered
        self._queues: dict[str, asyncio.Queue[tuple[Job, bool]]] = {
            q: asyncio.Queue() for q in queues
        }
        self.dead: list[tuple[str, Job, Failure]] = []
        self._timers: set[asyncio.TimerHandle] = set()

    async def publish(self, queue: str, job: Job, delay: float = 0.0) -> None:
        q = self._queues[queue]
        if delay <= 0:
            q.put_nowait((job, False))
            return
        loop = asyncio.get_running_loop()

        def due() -> None:
            self._timers.discard(handle)
            q.put_nowait((job, False))

        handle = loop.call_later(delay, due)
        self._timers.add(handle)

    async def dead_letter(self, queue: str, job: Job, error: Failure) -> None:
        self.dead.append((queue, job, error))

    async def consume(self, queue: str, prefetch: int) -> AsyncIterator[_MemoryDelivery]:
        unacked = asyncio.Semaphore(prefetch)
        q = self._queues[queue]

        def requeue(job: Job) -> None:
            q.put_nowait((job, True))

        while True:
            await unacked.acquire()
            try:
                job, redelivered = await q.get()
            except BaseException:
                unacked.release()
                raise
            yield _MemoryDelivery(job, unacked.release, requeue, redelivered)

    async def depth(self, queue: str) -> int:
        return self._queues[queue].qsize()

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        for timer in self._timers:  # delayed jobs die with the process (tasks are re-queued)
            timer.cancel()
        self._timers.clear()


class MemoryInFlight(Managed):
    """Leases in this process (the embedded mode has one frontend, running the workers)."""

    def __init__(self) -> None:
        self._leases: dict[str, tuple[str, float]] = {}  # key -> (token, lapses at)

    def _held(self, key: str) -> str | None:
        lease = self._leases.get(key)
        if lease is None:
            return None
        if lease[1] <= time.monotonic():
            del self._leases[key]
            return None
        return lease[0]

    async def claim(self, key: str, token: str, ttl: float, succeeding: str = "") -> bool:
        held = self._held(key)
        if held is not None and held != token and not (succeeding and held == succeeding):
            return False
        self._leases[key] = (token, time.monotonic() + ttl)
        return True

    async def renew(self, key: str, token: str, ttl: float) -> bool:
        if self._held(key) != token:
            return False
        self._leases[key] = (token, time.monotonic() + ttl)
        return True

    async def holder(self, key: str) -> str | None:
        return self._held(key)

    async def release(self, key: str, token: str) -> None:
        if self._held(key) == token:
            del self._leases[key]

    async def ping(self) -> None:
        return None


class MemoryEventBus(Managed):
    """Broadcast to the subscribers of this process: the events themselves, not encoded."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[Event]] = set()

    async def publish(self, event: Event) -> None:
        for q in self._subscribers:
            q.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Event]]:
        q: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.add(q)

        async def stream() -> AsyncIterator[Event]:
            while True:
                yield await q.get()

        try:
            yield stream()
        finally:
            self._subscribers.discard(q)

    async def ping(self) -> None:
        return None
