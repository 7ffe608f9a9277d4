"""The EventBus contract, run against the embedded (in-process) and the Redis event bus.

``buses`` holds a publishing and a subscribing bus: the same one in the embedded mode, two on
separate Redis clients for Redis (a worker publishing, a frontend listening).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from imgserver.backends.base import EventBus
from imgserver.backends.memory import MemoryEventBus
from imgserver.backends.redis.events import RedisEventBus
from imgserver.errors import Failure, Unavailable
from imgserver.messages import (
    Entry,
    Event,
    ImageChanged,
    JobDone,
    JobFailed,
    Purged,
    TaskChanged,
    encode_event,
)
from imgserver.records import ImageRecord, Task

from ..backend_fixtures import BACKENDS, RedisEnv, redis_env, redis_stopped, within
from ..servers import RedisServer

__all__ = ["redis_env"]  # fixtures

WAIT = 5.0  # seconds an expected event may take


@pytest.fixture(params=BACKENDS)
def buses(request: pytest.FixtureRequest) -> tuple[EventBus, EventBus]:
    if request.param == "local":
        bus = MemoryEventBus()
        return bus, bus
    env: RedisEnv = request.getfixturevalue("redis_env")
    publisher, subscriber = (RedisEventBus(env.client(), env.settings()) for _ in range(2))
    return publisher, subscriber


async def receive(events: AsyncIterator[Event], seconds: float = WAIT) -> Event:
    return await asyncio.wait_for(anext(events), seconds)


def job_event(i: int) -> Event:
    entry = Entry(f"results/key{i}", "image/webp", i, 15, 16, input="ü", created_at=1.5)
    return JobDone(f"key{i}", entry, cached=i % 2 == 0)


async def test_every_event_in_order(buses: tuple[EventBus, EventBus]) -> None:
    publisher, bus = buses
    async with bus.subscribe() as events:
        for i in range(100):
            await publisher.publish(job_event(i))
        for i in range(100):
            assert await receive(events) == job_event(i)


async def test_only_events_published_after_subscribing(buses: tuple[EventBus, EventBus]) -> None:
    publisher, bus = buses
    await publisher.publish(job_event(0))
    async with bus.subscribe() as events:
        await publisher.publish(job_event(1))
        assert await receive(events) == job_event(1)


async def test_two_subscribers_both_get_every_event(buses: tuple[EventBus, EventBus]) -> None:
    publisher, bus = buses
    async with bus.subscribe() as first, bus.subscribe() as second:
        for i in range(20):
            await publisher.publish(job_event(i))
        for events in (first, second):
            assert [await receive(events) for _ in range(20)] == [job_event(i) for i in range(20)]


async def test_a_subscriber_that_left_does_not_block(buses: tuple[EventBus, EventBus]) -> None:
    publisher, bus = buses
    async with bus.subscribe() as staying:
        async with bus.subscribe():
            pass
        await publisher.publish(job_event(1))
        assert await receive(staying) == job_event(1)


TASK = Task(
    "t1",
    "resize",
    "https://example.com/ü.jpg",
    {"w": 3, "q": 1.5, "crop": True, "gravity": "north"},
    "webp",
    "k" * 64,
    "d" * 64,
    status="failed",
    error=Failure("source_unreachable", "the source answered 503", {"upstream_status": 503}),
    warnings=["one"],
    created_at=1700000000.123456,
)
EVERY_KIND: list[Event] = [
    job_event(1),
    JobFailed("key2", Failure("too_many_pixels", "over", {"limit": 5, "width": 6})),
    TaskChanged(TASK),
    ImageChanged(ImageRecord("i1", "t1", "png", 10, width=3, height=None, created_at=2.25)),
    Purged(["a", "b"]),
]


@pytest.mark.parametrize("event", EVERY_KIND, ids=lambda e: type(e).__name__)
async def test_every_kind_of_event_round_trips(
    buses: tuple[EventBus, EventBus], event: Event
) -> None:
    publisher, bus = buses
    async with bus.subscribe() as events:
        await publisher.publish(event)
        assert await receive(events) == event


async def test_a_message_that_is_not_an_event_is_skipped(redis_env: RedisEnv) -> None:
    """Whatever else lands on the channel (another version, a stray PUBLISH) is logged and
    skipped: the subscription goes on with the next event."""
    from imgserver import names

    bus = RedisEventBus(redis_env.client(), redis_env.settings())
    raw = redis_env.client()
    async with bus.subscribe() as events:
        for junk in (b"not json", b"[1, 2]", b'{"type": "job", "key": 1}', b'{"type": "nope"}'):
            await raw.publish(names.EVENTS_CHANNEL, junk)
        await raw.publish(names.EVENTS_CHANNEL, encode_event(job_event(7)))
        assert await receive(events) == job_event(7)


async def test_ping(buses: tuple[EventBus, EventBus]) -> None:
    for bus in buses:
        await bus.ping()


# -- Redis only


async def publish_until_received(
    publisher: EventBus, events: AsyncIterator[Event], seconds: float = 15.0
) -> int:
    """Publish numbered events until one arrives (those sent while reconnecting are lost)."""
    deadline = time.monotonic() + seconds
    receiving = asyncio.ensure_future(anext(events))
    try:
        i = 0
        while time.monotonic() < deadline:
            i += 1
            with contextlib.suppress(Unavailable):
                await publisher.publish(job_event(i))
            done, _ = await asyncio.wait({receiving}, timeout=0.1)
            if done:
                got = receiving.result()
                assert isinstance(got, JobDone)
                return int(got.key.removeprefix("key"))
        raise AssertionError(f"no event received within {seconds} s")
    finally:
        receiving.cancel()


async def test_redis_subscription_survives_restarts(
    redis_env: RedisEnv, redis_server: RedisServer
) -> None:
    publisher, bus = (RedisEventBus(redis_env.client(), redis_env.settings()) for _ in range(2))
    async with bus.subscribe() as events:
        await publisher.publish(job_event(0))
        assert await receive(events) == job_event(0)

        redis_server.restart()
        await publish_until_received(publisher, events)

        with redis_stopped(redis_server):
            await asyncio.sleep(1.5)  # the subscription retries meanwhile, without raising
        await publish_until_received(publisher, events)

        # And it is an ordinary subscription again: every event, in order.
        for i in range(100, 120):
            await publisher.publish(job_event(i))
        assert [await receive(events) for _ in range(20)] == [job_event(i) for i in range(100, 120)]


class FreezingProxy:
    """A TCP proxy to Redis that can freeze its open connections: they stay open but carry
    nothing more either way, like a peer gone silent. New connections pass through."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.live: list[asyncio.Event] = []  # one per connection, clear while frozen
        self.writers: list[asyncio.StreamWriter] = []
        self.handlers: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        live = asyncio.Event()
        live.set()
        self.live.append(live)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                await live.wait()
                dst.write(data)
                await dst.drain()

        # (a handler must not end cancelled: Python 3.11's start_server would log it)
        with contextlib.suppress(OSError, asyncio.CancelledError):
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.writers += [writer, up_writer]
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def freeze(self) -> None:
        for live in self.live:
            live.clear()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self.writers:
            writer.close()
        for task in self.handlers:
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)


async def test_redis_silent_connection_is_replaced(
    redis_env: RedisEnv, redis_server: RedisServer
) -> None:
    """A connection that goes silent (no close, no data) is noticed by the pings."""
    proxy = FreezingProxy(redis_server.port)
    port = await proxy.start()
    try:
        publisher = RedisEventBus(redis_env.client(), redis_env.settings())
        settings = redis_env.settings(redis_url=f"redis://127.0.0.1:{port}/0")
        bus = RedisEventBus(redis_env.client(settings), settings, ping_interval=0.3)
        async with bus.subscribe() as events:
            await publisher.publish(job_event(0))
            assert await receive(events) == job_event(0)
            proxy.freeze()
            await publish_until_received(publisher, events, seconds=10.0)
    finally:
        await proxy.close()


async def test_redis_down_is_unavailable(redis_env: RedisEnv, redis_server: RedisServer) -> None:
    bus = RedisEventBus(redis_env.client(), redis_env.settings())
    await bus.ping()
    with redis_stopped(redis_server):
        with within(1.0), pytest.raises(Unavailable, match=r"^redis: "):
            await bus.publish(job_event(1))
        with within(1.0), pytest.raises(Unavailable, match=r"^redis: "):
            await bus.ping()
        with within(3.0), pytest.raises(Unavailable, match=r"^redis: "):
            async with bus.subscribe():
                pass
    await bus.publish(job_event(2))
