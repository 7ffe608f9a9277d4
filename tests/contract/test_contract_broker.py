"""One contract for the job broker, run against the embedded MemoryBroker and against AmqpBroker
on a real RabbitMQ node; then what only RabbitMQ can show: deliveries survive a worker's death,
messages and queues survive a restart, consumers and publishers recover, and the service fails
fast (503) while the node is down."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import msgpack
import pytest

from imgserver import names
from imgserver.backends.amqp import (
    HEADER_ERROR,
    HEADER_ERROR_CODE,
    HEADER_ERROR_MESSAGE,
    HEADER_QUEUE,
    AmqpBroker,
)
from imgserver.backends.memory import MemoryBroker
from imgserver.errors import Failure, Unavailable
from imgserver.messages import Job, decode_job, encode_job
from imgserver.settings import Settings

from ..servers import RabbitServer

URGENT, BACKGROUND = names.URGENT, names.BACKGROUND
ALL_AMQP_QUEUES = (
    *names.AMQP_QUEUE.values(),
    *names.AMQP_RETRY_QUEUE.values(),
    names.AMQP_DEAD_QUEUE,
)
QUIET = 0.3  # seconds we wait to be sure something does NOT arrive


def job(n: int, **kw: Any) -> Job:
    fields: dict[str, Any] = {
        "key": f"key{n:04d}",
        "graph": "resize",
        "digest": "d" * 16,
        "format": "webp",
        "input": f"https://example.com/{n}.jpg",
        "params": {"width": 300 + n, "fit": "cover", "sigma": 2.5, "upscale": n % 2 == 0},
        "task_id": f"task{n}",
        "nocache": n % 2 == 1,
        "queued_at": 1700000000.25 + n,
        "attempt": n % 3,
    }
    fields.update(kw)
    return Job(**fields)


@dataclass
class Harness:
    kind: str
    broker: Any  # MemoryBroker | AmqpBroker
    url: str = ""  # the AMQP URL (vhost included) the broker uses

    async def dead(self) -> list[tuple[str, bytes, str, str]]:
        """What the dead-letter queue holds: (origin queue, body, error code, error message)."""
        if isinstance(self.broker, MemoryBroker):
            return [(q, encode_job(j), e.code, e.message) for q, j, e in self.broker.dead]
        assert self.url
        out = []
        for message in await raw_get_all(self.url, names.AMQP_DEAD_QUEUE):
            h = message.headers
            out.append(
                (h[HEADER_QUEUE], message.body, h[HEADER_ERROR_CODE], h[HEADER_ERROR_MESSAGE])
            )
        return out


async def raw_get_all(url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take (and acknowledge) every message waiting in ``queue``, with a plain client."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        q = await channel.declare_queue(queue, passive=True)
        out = []
        while (message := await q.get(no_ack=True, fail=False)) is not None:
            out.append(message)
        return out


async def raw_publish(url: str, queue: str, body: bytes) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)


async def purge(url: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for name in ALL_AMQP_QUEUES:
            await (await channel.declare_queue(name, passive=True)).purge()


async def amqp_broker(url: str, queue_type: str = "classic", **kw: Any) -> AmqpBroker:
    broker = AmqpBroker(Settings(amqp_url=url, amqp_queue_type=queue_type), **kw)
    await broker.open()
    return broker


async def until_available(broker: AmqpBroker, within: float = 20.0) -> None:
    """Wait for the broker to be reconnected (after a RabbitMQ restart)."""
    deadline = time.monotonic() + within
    while True:
        try:
            await broker.ping()
            return
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


QUORUM_VHOST = "quorum"  # quorum queues (IMGSERVER_AMQP_QUEUE_TYPE=quorum) live apart


@pytest.fixture(params=["memory", "amqp", "amqp-quorum"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "memory":
        yield Harness("memory", MemoryBroker(names.QUEUES))
        return
    rabbit: RabbitServer = request.getfixturevalue("rabbit_server")
    url, queue_type = rabbit.url, "classic"
    if request.param == "amqp-quorum":
        rabbit.ctl("add_vhost", QUORUM_VHOST)  # (already there after the first test)
        rabbit.ctl("set_permissions", "-p", QUORUM_VHOST, "guest", ".*", ".*", ".*")
        url, queue_type = f"{rabbit.url}{QUORUM_VHOST}", "quorum"
    broker = await amqp_broker(url, queue_type)
    try:
        await purge(url)
        yield Harness(request.param, broker, url)
    finally:
        await broker.close()


@pytest.fixture
async def rabbit(rabbit_server: RabbitServer) -> AsyncIterator[RabbitServer]:
    """The session's RabbitMQ node, its queues declared and empty."""
    broker = await amqp_broker(rabbit_server.url)
    await broker.close()
    await purge(rabbit_server.url)
    yield rabbit_server


class Consumer:
    """A broker's consume() iterator, with a peek at whether the next delivery has come."""

    def __init__(self, broker: Any, queue: str, prefetch: int) -> None:
        self.it = broker.consume(queue, prefetch)
        self.pending: asyncio.Future | None = None

    def _next(self) -> asyncio.Future:
        if self.pending is None:
            self.pending = asyncio.ensure_future(anext(self.it))
        return self.pending

    async def get(self, within: float = 5.0) -> Any:
        fut = self._next()
        await asyncio.wait({fut}, timeout=within)
        assert fut.done(), f"no delivery within {within} s"
        self.pending = None
        return fut.result()

    async def nothing(self, wait: float = QUIET) -> bool:
        """True if no delivery arrives within ``wait`` seconds (it stays pending)."""
        fut = self._next()
        await asyncio.wait({fut}, timeout=wait)
        return not fut.done()

    async def close(self) -> None:
        if self.pending is not None:
            self.pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await self.pending
        await self.it.aclose()


@pytest.fixture
async def consumers() -> AsyncIterator[Any]:
    made: list[Consumer] = []

    def make(broker: Any, queue: str, prefetch: int = 10) -> Consumer:
        made.append(Consumer(broker, queue, prefetch))
        return made[-1]

    yield make
    for c in made:
        await c.close()


# -- the contract, for both brokers


async def test_publish_then_consume_gives_the_same_jobs_in_order(harness, consumers):
    jobs = [job(n) for n in range(5)]
    for j in jobs:
        await harness.broker.publish(URGENT, j)
    c = consumers(harness.broker, URGENT)
    for expected in jobs:
        d = await c.get()
        assert d.job == expected  # every field survives the trip
        assert d.redelivered is False
        await d.ack()
        await d.ack()  # settling twice is harmless
    assert await c.nothing()
    assert await harness.broker.depth(URGENT) == 0


async def test_queues_are_separate(harness, consumers):
    await harness.broker.publish(URGENT, job(1))
    await harness.broker.publish(BACKGROUND, job(2))
    d = await consumers(harness.broker, BACKGROUND).get()
    assert d.job == job(2)
    await d.ack()
    assert await harness.broker.depth(URGENT) == 1
    assert await harness.broker.depth(BACKGROUND) == 0
    d = await consumers(harness.broker, URGENT).get()
    assert d.job == job(1)
    await d.ack()


async def test_prefetch_limits_unacknowledged_deliveries(harness, consumers):
    for n in range(5):
        await harness.broker.publish(BACKGROUND, job(n))
    c = consumers(harness.broker, BACKGROUND, prefetch=2)
    first, second = await c.get(), await c.get()
    assert [first.job, second.job] == [job(0), job(1)]
    assert await c.nothing()  # two unacknowledged: the third waits
    assert await harness.broker.depth(BACKGROUND) == 3
    await first.ack()
    third = await c.get()
    assert third.job == job(2)
    assert await c.nothing()
    await second.reject(requeue=False)
    await third.ack()
    assert (await c.get()).job == job(3)


async def test_reject_with_requeue_delivers_again(harness, consumers):
    await harness.broker.publish(URGENT, job(1))
    c = consumers(harness.broker, URGENT)
    d = await c.get()
    assert d.redelivered is False
    await d.reject(requeue=True)
    again = await c.get()
    assert again.job == job(1)
    assert again.redelivered is True
    await again.ack()
    assert await c.nothing()


async def test_reject_without_requeue_drops(harness, consumers):
    await harness.broker.publish(URGENT, job(1))
    await harness.broker.publish(URGENT, job(2))
    c = consumers(harness.broker, URGENT, prefetch=1)
    d = await c.get()
    await d.reject(requeue=False)
    d = await c.get()
    assert d.job == job(2)
    await d.ack()
    assert await c.nothing()
    assert await harness.broker.depth(URGENT) == 0


async def test_delayed_publish_arrives_after_the_delay(harness, consumers):
    c = consumers(harness.broker, URGENT)
    started = time.monotonic()
    await harness.broker.publish(URGENT, job(1), delay=0.8)
    await harness.broker.publish(URGENT, job(2))  # not delayed: overtakes it
    d = await c.get()
    assert d.job == job(2)
    await d.ack()
    assert await c.nothing(0.5)  # not before its time
    d = await c.get(within=5)
    elapsed = time.monotonic() - started
    assert d.job == job(1)
    assert 0.75 <= elapsed < 3.0
    await d.ack()


async def test_dead_letter_parks_the_job_with_its_error(harness, consumers):
    error = Failure("source_timeout", "the source took too long", {"attempts": 4})
    await harness.broker.dead_letter(BACKGROUND, job(7), error)
    assert await harness.dead() == [
        (BACKGROUND, encode_job(job(7)), "source_timeout", "the source took too long")
    ]
    assert await harness.broker.depth(BACKGROUND) == 0
    assert await consumers(harness.broker, BACKGROUND).nothing()


async def test_depth_counts_waiting_jobs(harness):
    assert await harness.broker.depth(URGENT) == 0
    for n in range(3):
        await harness.broker.publish(BACKGROUND, job(n))
    await harness.broker.publish(BACKGROUND, job(9), delay=30)  # not waiting yet: delayed
    assert await harness.broker.depth(BACKGROUND) == 3
    assert await harness.broker.depth(URGENT) == 0
    await harness.broker.ping()


# -- RabbitMQ only


async def test_amqp_dead_letter_headers_carry_the_whole_error(rabbit):
    broker = await amqp_broker(rabbit.url)
    try:
        error = Failure("unavailable", "redis is down", {"attempts": 4})
        await broker.dead_letter(URGENT, job(3), error)
    finally:
        await broker.close()
    [message] = await raw_get_all(rabbit.url, names.AMQP_DEAD_QUEUE)
    assert decode_job(message.body) == job(3)
    assert message.headers[HEADER_QUEUE] == URGENT
    assert message.headers[HEADER_ERROR] == (
        '{"code": "unavailable", "message": "redis is down", "attempts": 4}'
    )
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.content_type == "application/x-msgpack"


async def test_amqp_unacknowledged_job_returns_when_its_worker_dies(rabbit, consumers):
    survivor = await amqp_broker(rabbit.url)
    doomed = await amqp_broker(rabbit.url)
    try:
        await survivor.publish(URGENT, job(1))
        taken = await consumers(doomed, URGENT).get()
        assert taken.job == job(1)
        c = consumers(survivor, URGENT)
        assert await c.nothing()  # held by the doomed worker
        await doomed.close()  # its connection goes, as when the process is killed
        d = await c.get()
        assert d.job == job(1)
        assert d.redelivered is True
        await d.ack()
    finally:
        await doomed.close()
        await survivor.close()


async def test_amqp_not_a_job_goes_to_the_dead_queue_and_consumption_goes_on(rabbit, consumers):
    broker = await amqp_broker(rabbit.url)
    try:
        queue = names.AMQP_QUEUE[URGENT]
        garbage = [b"\xc1 not msgpack", msgpack.packb(42), msgpack.packb({"key": "only"})]
        for body in garbage:
            await raw_publish(rabbit.url, queue, body)
        await broker.publish(URGENT, job(5))
        c = consumers(broker, URGENT, prefetch=1)
        d = await c.get()
        assert d.job == job(5)
        await d.ack()
        assert await c.nothing()
        dead = await raw_get_all(rabbit.url, names.AMQP_DEAD_QUEUE)
        assert [m.body for m in dead] == garbage
        assert {m.headers[HEADER_ERROR_CODE] for m in dead} == {"invalid_message"}
        assert await broker.depth(URGENT) == 0
    finally:
        await broker.close()


async def test_amqp_open_fails_with_unavailable_when_nothing_listens():
    from ..servers import free_port

    broker = AmqpBroker(
        Settings(amqp_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/"), connect_timeout=1.0
    )
    started = time.monotonic()
    with pytest.raises(Unavailable, match="rabbitmq: cannot connect"):
        await broker.open()
    assert time.monotonic() - started < 5


async def test_amqp_open_fails_fast_on_bad_credentials(rabbit):
    url = rabbit.url.replace("guest:guest", "guest:wrong")
    started = time.monotonic()
    with pytest.raises(Unavailable, match="refused the credentials"):
        await amqp_broker(url)
    assert time.monotonic() - started < 5


async def test_amqp_dropped_connection_redelivers_each_job_once(rabbit, consumers):
    """The connection drops (RabbitMQ closes it) with one job taken and one prefetched in the
    client's buffer: after the reconnection each comes back exactly once, marked redelivered
    (the stale buffered copy is not handed out)."""
    broker = await amqp_broker(rabbit.url)
    try:
        await broker.publish(URGENT, job(0))
        await broker.publish(URGENT, job(1))
        c = consumers(broker, URGENT, prefetch=2)
        held = await c.get()
        assert held.job == job(0)
        assert rabbit.ctl("close_all_connections", "test").returncode == 0
        await asyncio.sleep(0.5)
        await until_available(broker)
        await held.ack()  # on the old channel: harmless
        got = [await c.get(within=10), await c.get(within=10)]
        assert [(d.job, d.redelivered) for d in got] == [(job(0), True), (job(1), True)]
        for d in got:
            await d.ack()
        assert await c.nothing()
    finally:
        await broker.close()


async def test_amqp_down_fails_fast_then_everything_recovers(rabbit, consumers):
    """One stop/start of the node: while it is down, calls fail fast with Unavailable; after,
    persistent jobs are still queued, and the consumer and publisher carry on by themselves."""
    broker = await amqp_broker(rabbit.url)
    try:
        await broker.publish(BACKGROUND, job(1))  # waits through the restart (no consumer)
        await broker.publish(URGENT, job(2))
        c = consumers(broker, URGENT, prefetch=1)
        held = await c.get()  # taken, not acknowledged when the node goes down
        assert held.job == job(2)
        assert await c.nothing()  # the consumer now waits across the restart

        rabbit.stop()
        try:
            for call in (broker.publish(URGENT, job(3)), broker.depth(URGENT), broker.ping()):
                started = time.monotonic()
                with pytest.raises(Unavailable, match="rabbitmq"):
                    await call
                assert time.monotonic() - started < 4
        finally:
            rabbit.start()
        await until_available(broker)

        assert await broker.depth(BACKGROUND) == 1  # durable queue, persistent message
        await held.ack()  # its channel is gone: harmless, the job comes back instead
        again = await c.get(within=15)  # the iterator started before the restart
        assert again.job == job(2)
        assert again.redelivered is True
        await again.ack()
        await broker.publish(URGENT, job(4))  # the publisher works again
        d = await c.get(within=10)
        assert d.job == job(4)
        await d.ack()
        d = await consumers(broker, BACKGROUND).get()
        assert d.job == job(1)
        await d.ack()
    finally:
        await broker.close()
