"""Live updates: one subscription to the event bus per frontend, fanned out to its open event
streams (``web/events.py``).

In the distributed mode the bus is Redis pub/sub, so every frontend hears every task and image
change whichever process made it. Each listener has a bounded queue: a client too slow to keep
up has its stream ended (an ``EventSource`` reconnects and starts again from the current state)
instead of growing this process's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from .backends.base import Event, EventBus
from .errors import Unavailable

log = logging.getLogger(__name__)

KINDS = frozenset({"task", "image"})  # event types worth streaming (not job outcomes)
QUEUE_LIMIT = 1000  # events waiting for one slow listener before its stream is ended
SUBSCRIBE_TIMEOUT = 15.0  # seconds start-up waits for the event bus
RESUBSCRIBE_DELAY = 1.0


class Ended(Exception):
    """The listener was ended: the app is stopping, or it fell too far behind."""


_END = object()


class Listener:
    """The events one stream has not read yet."""

    def __init__(self, limit: int) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._limit = limit
        self.ended = False

    def offer(self, event: Event) -> None:
        if self.ended:
            return
        if self._queue.qsize() >= self._limit:
            log.warning("an event stream fell %d events behind; ending it", self._limit)
            self.end()
            return
        self._queue.put_nowait(event)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self._queue.put_nowait(_END)

    async def next(self, wait: float) -> Event | None:
        """The next event, or None after ``wait`` seconds without one; Ended once ended."""
        try:
            item = await asyncio.wait_for(self._queue.get(), wait)
        except TimeoutError:
            return None
        if item is _END:
            raise Ended
        assert isinstance(item, dict)
        return item


class Hub:
    """Task and image events of the whole deployment, for this process's listeners."""

    def __init__(self, queue_limit: int = QUEUE_LIMIT) -> None:
        self.queue_limit = queue_limit
        self._listeners: set[Listener] = set()
        self._runner: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._closed = False

    async def start(self, bus: EventBus) -> None:
        """Subscribe to ``bus``; returns once subscribed, so no later change is missed."""
        self._runner = asyncio.create_task(self._run(bus), name="imgserver-live")
        try:
            await asyncio.wait_for(self._subscribed.wait(), SUBSCRIBE_TIMEOUT)
        except TimeoutError:
            await self.close()
            raise Unavailable("cannot subscribe to the event bus for live updates") from None

    async def _run(self, bus: EventBus) -> None:
        while True:
            try:
                async with bus.subscribe() as events:
                    self._subscribed.set()
                    async for event in events:
                        if event.get("type") in KINDS:
                            for listener in list(self._listeners):
                                listener.offer(event)
            except asyncio.CancelledError:
                raise
            except Exception:  # the bus went away: streams re-read state at their heartbeat
                log.exception("live updates: subscription failed; subscribing again")
                await asyncio.sleep(RESUBSCRIBE_DELAY)

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[Listener]:
        """A listener receiving every event from now on, until the block ends."""
        listener = Listener(self.queue_limit)
        if self._closed:
            listener.end()
        self._listeners.add(listener)
        try:
            yield listener
        finally:
            self._listeners.discard(listener)

    def end_all(self) -> None:
        """End every stream (and any opened later): the app is shutting down."""
        self._closed = True
        for listener in self._listeners:
            listener.end()

    async def close(self) -> None:
        self.end_all()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
