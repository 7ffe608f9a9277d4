"""Live updates: the task and image changes the frontend's event-bus subscription hears
(``feed.py``), fanned out to its open event streams (``web/events.py``).

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

from .messages import ImageChanged, TaskChanged

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1000  # events waiting for one slow listener before its stream is ended
Change = TaskChanged | ImageChanged  # what a stream shows


class Ended(Exception):
    """The listener was ended: the app is stopping, or it fell too far behind."""


class Listener:
    """The events one stream has not read yet."""

    def __init__(self, limit: int) -> None:
        self._queue: asyncio.Queue[Change | None] = asyncio.Queue()
        self._limit = limit
        self.ended = False

    def offer(self, event: Change) -> None:
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
            self._queue.put_nowait(None)

    async def next(self, wait: float) -> Change | None:
        """The next event, or None after ``wait`` seconds without one; Ended once ended."""
        try:
            item = await asyncio.wait_for(self._queue.get(), wait)
        except TimeoutError:
            return None
        if item is None:  # what end() queued
            raise Ended
        return item


class Hub:
    """Task and image events of the whole deployment, fanned out to this process's listeners
    (the frontend's one event-bus subscription, ``feed.py``, offers them)."""

    def __init__(self, queue_limit: int = QUEUE_LIMIT) -> None:
        self.queue_limit = queue_limit
        self._listeners: set[Listener] = set()
        self._closed = False

    def offer(self, event: Change) -> None:
        """Give ``event`` to every open listener."""
        for listener in list(self._listeners):
            listener.offer(event)

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
