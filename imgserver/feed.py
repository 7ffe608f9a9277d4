"""The one event-bus subscription of a frontend, and where each event goes: job outcomes wake
the requests waiting for them (``Coordinator.on_outcome``), purges drop results from its memory
(``Coordinator.on_purge``), task and image changes go to the open event streams (``Hub``).

The subscription is open before the app serves (so no change made after is missed) and
outlives a bus that goes away: it subscribes again after ``RESUBSCRIBE_DELAY``. Events published
meanwhile are lost to it; waiting requests then time out (503 with Retry-After) and event streams
re-read their task at their next heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import assert_never

from .backends.base import EventBus
from .coordinator import Coordinator
from .errors import Unavailable
from .lifecycle import Managed
from .live import Hub
from .messages import Event, ImageChanged, JobDone, JobFailed, Purged, TaskChanged

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT = 15.0  # seconds start-up waits for the event bus
RESUBSCRIBE_DELAY = 1.0


class EventFeed(Managed):
    """``async with EventFeed(bus, coordinator, hub)``: subscribed for the block."""

    def __init__(self, bus: EventBus, coordinator: Coordinator, hub: Hub) -> None:
        self.bus = bus
        self.coordinator = coordinator
        self.hub = hub
        self._subscribed = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="imgserver-events")
        try:
            await asyncio.wait_for(self._subscribed.wait(), SUBSCRIBE_TIMEOUT)
        except TimeoutError:
            await self.close()
            raise Unavailable("cannot subscribe to the event bus") from None

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    async def _run(self) -> None:
        while True:
            try:
                async with self.bus.subscribe() as events:
                    self._subscribed.set()
                    async for event in events:
                        self.dispatch(event)
            except asyncio.CancelledError:
                raise
            except Exception:  # the bus went away: subscribe again
                log.exception("event subscription failed; subscribing again")
                await asyncio.sleep(RESUBSCRIBE_DELAY)

    def dispatch(self, event: Event) -> None:
        match event:
            case JobDone() | JobFailed():
                self.coordinator.on_outcome(event)
            case Purged():
                self.coordinator.on_purge(event)
            case TaskChanged() | ImageChanged():
                self.hub.offer(event)
            case _:
                assert_never(event)
