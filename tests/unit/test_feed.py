"""The frontend's one event-bus subscription: where each kind of event goes, and that it
outlives a bus that fails (resubscribing), on the in-process bus and a failing stand-in."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from imgserver import feed as feed_module
from imgserver.backends.memory import MemoryEventBus
from imgserver.errors import Failure, Unavailable
from imgserver.feed import EventFeed
from imgserver.live import Hub
from imgserver.messages import (
    Entry,
    Event,
    ImageChanged,
    JobDone,
    JobFailed,
    Purged,
    TaskChanged,
)
from imgserver.records import ImageRecord, Task

DONE = JobDone("k1", Entry("results/k1", "image/png", 1, 2, 3))
FAILED = JobFailed("k2", Failure("timeout", "late"))
TASK = TaskChanged(Task("t", "g", "upload:x", {}, "jpeg", "k", "d"))
IMAGE = ImageChanged(ImageRecord("i", "t", "png", 10))
PURGED = Purged(["k1"])


class Recorder:
    """Stands in for the coordinator: what the feed handed it."""

    def __init__(self) -> None:
        self.outcomes: list[Any] = []
        self.purges: list[Any] = []

    def on_outcome(self, outcome: Any) -> None:
        self.outcomes.append(outcome)

    def on_purge(self, purged: Any) -> None:
        self.purges.append(purged)


async def until(condition: Any, seconds: float = 2.0) -> None:
    """Poll ``condition`` (what the feed does runs in its own task) until it holds."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 (no event to wait on: state of another module)
            await asyncio.sleep(0.01)


async def test_each_kind_of_event_goes_where_it_belongs() -> None:
    bus, coordinator, hub = MemoryEventBus(), Recorder(), Hub()
    async with EventFeed(bus, coordinator, hub), hub.listen() as listener:  # type: ignore[arg-type]
        for event in (DONE, TASK, FAILED, IMAGE, PURGED):
            await bus.publish(event)
        await until(lambda: len(coordinator.outcomes) == 2 and coordinator.purges)
        assert coordinator.outcomes == [DONE, FAILED]
        assert coordinator.purges == [PURGED]
        assert [await listener.next(1.0), await listener.next(1.0)] == [TASK, IMAGE]
        assert await listener.next(0.05) is None  # nothing else reached the streams


async def test_one_subscription_while_open_none_after() -> None:
    bus = MemoryEventBus()
    async with EventFeed(bus, Recorder(), Hub()):  # type: ignore[arg-type]
        assert len(bus._subscribers) == 1
    assert len(bus._subscribers) == 0


class FlakyBus(MemoryEventBus):
    """Its first subscription breaks after one event, as a Redis restart would."""

    def __init__(self) -> None:
        super().__init__()
        self.subscriptions = 0

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Event]]:
        self.subscriptions += 1
        first = self.subscriptions == 1
        async with super().subscribe() as events:

            async def stream() -> AsyncIterator[Event]:
                async for event in events:
                    yield event
                    if first:
                        raise ConnectionError("the bus went away")

            yield stream()


async def test_a_failed_subscription_is_opened_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed_module, "RESUBSCRIBE_DELAY", 0.01)
    bus, coordinator = FlakyBus(), Recorder()
    async with EventFeed(bus, coordinator, Hub()):  # type: ignore[arg-type]
        await bus.publish(DONE)
        await until(lambda: bus.subscriptions == 2)
        await bus.publish(FAILED)
        await until(lambda: len(coordinator.outcomes) == 2)
    assert coordinator.outcomes == [DONE, FAILED]


class SilentBus(MemoryEventBus):
    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Event]]:
        await asyncio.sleep(3600)  # never subscribed
        yield self  # type: ignore[misc]  # (never reached)


async def test_start_up_fails_clearly_when_the_bus_never_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(feed_module, "SUBSCRIBE_TIMEOUT", 0.1)
    with pytest.raises(Unavailable, match="cannot subscribe to the event bus"):
        async with EventFeed(SilentBus(), Recorder(), Hub()):  # type: ignore[arg-type]
            pass
