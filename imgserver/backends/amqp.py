"""The RabbitMQ broker: a durable queue per role, a delay queue per role for retries, one
dead-letter queue.

Topology (declared on open, idempotently, and again by aio-pika after every reconnection):

- ``names.AMQP_QUEUE[role]``: durable; jobs are persistent messages (``messages.encode_job``);
- ``names.AMQP_RETRY_QUEUE[role]``: durable, no consumer; a message published there with a
  per-message ``expiration`` is dead-lettered (exchange ``""``) back into the role's queue when
  it expires. Expiry happens at the head of the queue only, so a long delay ahead of a short one
  holds the short one back: retries are never early, sometimes late;
- ``names.AMQP_DEAD_QUEUE``: durable; jobs that used up their attempts, and message bodies that
  are not jobs, with the origin queue and the error in their headers.

Publishing uses a channel with publisher confirms: ``publish`` returns once RabbitMQ has taken
the message, and raises ``errors.Unavailable`` within ``timeout`` seconds when it cannot (down,
reconnecting, refused). Each ``consume`` gets its own channel with ``prefetch`` as its QoS;
the connection and channels are aio-pika's robust ones, so after a reconnection the queues are
declared again and the consumer is restored on a new channel, and the iterator carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator

import aio_pika
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import (
    CONNECTION_EXCEPTIONS,
    ChannelInvalidStateError,
    ProbableAuthenticationError,
)
from yarl import URL

from ..errors import Failure, Unavailable
from ..messages import DecodeError, Job, decode_job, encode_job
from ..names import AMQP_DEAD_QUEUE, AMQP_QUEUE, AMQP_RETRY_QUEUE
from ..settings import Settings
from .base import Managed

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-msgpack"
# Failures of the client or the connection; asyncio's TimeoutError is an OSError subclass.
_FAILURES: tuple[type[BaseException], ...] = (*CONNECTION_EXCEPTIONS, TimeoutError)

# Headers of a dead-lettered message.
HEADER_QUEUE = "imgserver-queue"  # the role it was queued for
HEADER_ERROR_CODE = "imgserver-error-code"
HEADER_ERROR_MESSAGE = "imgserver-error-message"
HEADER_ERROR = "imgserver-error"  # the whole error dict, as JSON


def _why(exc: BaseException) -> str:
    """An exception as a message (some of aiormq's have no text)."""
    return str(exc) or type(exc).__name__


def _stale(message: AbstractIncomingMessage) -> bool:
    """Delivered on a channel that has closed since (a reconnection): RabbitMQ has put it back
    and delivers it again on the restored channel, so this copy can only be dropped."""
    try:
        return message.channel.is_closed
    except ChannelInvalidStateError:  # aio-pika's way of saying the channel is closed
        return True


class AmqpDelivery:
    """One message taken from a role queue. Settling it twice does nothing."""

    def __init__(self, message: AbstractIncomingMessage, job: Job) -> None:
        self.job = job
        self.redelivered = bool(message.redelivered)
        self.message = message
        self._settled = False

    async def ack(self) -> None:
        if not self._settled:
            self._settled = True
            await _settle(self.message, self.job.key, requeue=None)

    async def reject(self, requeue: bool) -> None:
        if not self._settled:
            self._settled = True
            await _settle(self.message, self.job.key, requeue=requeue)


async def _settle(message: AbstractIncomingMessage, label: str, requeue: bool | None) -> None:
    """Ack (``requeue`` None) or reject a message. If its channel is gone, RabbitMQ has already
    put the message back and will deliver it again (at least once): nothing is left to do."""
    try:
        if requeue is None:
            await message.ack()
        else:
            await message.reject(requeue=requeue)
    except _FAILURES as exc:
        what = "ack" if requeue is None else "reject"
        log.warning(
            "rabbitmq: %s of %s lost (%s); it will be delivered again", what, label, _why(exc)
        )


class AmqpBroker(Managed):
    """Job queues on RabbitMQ (see the module docstring)."""

    CONNECT_TIMEOUT = 15.0  # seconds open() keeps trying to reach RabbitMQ
    RECONNECT_INTERVAL = 1.0  # seconds between reconnection attempts once connected

    def __init__(
        self,
        settings: Settings,
        *,
        timeout: float = 2.0,  # seconds publish/depth/ping may take before Unavailable
        connect_timeout: float | None = None,
    ) -> None:
        if not settings.amqp_url:
            raise ValueError("AmqpBroker needs settings.amqp_url")
        self.url = settings.amqp_url
        # Quorum queues (replicated, Raft): every queue is declared with x-queue-type, which
        # only a declaration can set (not a policy) and nothing can change afterwards: to switch
        # a broker, delete its imgserver.* queues. Classic: declared as before, no argument.
        quorum = settings.amqp_queue_type == "quorum"
        self._queue_args: dict[str, str] = {"x-queue-type": "quorum"} if quorum else {}
        self.timeout = timeout
        self.connect_timeout = self.CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractRobustChannel | None = None  # confirms on
        self._control: AbstractRobustChannel | None = None  # depth and ping
        self._consumers: set[asyncio.Queue[AbstractIncomingMessage | None]] = set()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def where(self) -> str:
        """The broker's address without credentials, for messages."""
        url = URL(self.url)
        return f"{url.host}:{url.port}{url.path}"

    # -- life cycle

    async def open(self) -> None:
        """Connect (retrying for up to ``connect_timeout`` s) and declare the topology."""
        if self._connection is not None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        while True:
            try:
                connection = await aio_pika.connect_robust(
                    self.url,
                    reconnect_interval=self.RECONNECT_INTERVAL,
                    timeout=max(1.0, min(5.0, deadline - loop.time())),
                    client_properties={"connection_name": f"imgserver pid {os.getpid()}"},
                )
                break
            except ProbableAuthenticationError as exc:
                raise Unavailable(
                    f"rabbitmq: {self.where} refused the credentials: {_why(exc)}"
                ) from None
            except _FAILURES as exc:
                if loop.time() >= deadline:
                    raise Unavailable(
                        f"rabbitmq: cannot connect to {self.where}: {_why(exc)}"
                    ) from None
                log.info("rabbitmq: %s not reachable yet (%s), retrying", self.where, _why(exc))
                await asyncio.sleep(0.5)
        self._connection = connection
        try:
            self._publisher = await connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
            self._control = await connection.channel(publisher_confirms=False)
            await self._declare(self._publisher)
        except _FAILURES as exc:
            await self.close()
            raise Unavailable(f"rabbitmq: cannot declare the queues: {_why(exc)}") from None

    async def _declare(self, channel: AbstractRobustChannel) -> None:
        for role, name in AMQP_QUEUE.items():
            await channel.declare_queue(name, durable=True, arguments=self._queue_args)
            await channel.declare_queue(
                AMQP_RETRY_QUEUE[role],
                durable=True,
                arguments={
                    **self._queue_args,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": name,
                },
            )
        await channel.declare_queue(AMQP_DEAD_QUEUE, durable=True, arguments=self._queue_args)

    async def close(self) -> None:
        """Close the connection; unacknowledged deliveries go back to their queues."""
        self._closed = True
        for buffer in self._consumers:
            buffer.put_nowait(None)  # ends the consume() iterators
        connection, self._connection = self._connection, None
        self._publisher = self._control = None
        if connection is not None:
            with contextlib.suppress(*_FAILURES):
                await connection.close()

    # -- Broker

    async def publish(self, queue: str, job: Job, delay: float = 0.0) -> None:
        target = AMQP_QUEUE[queue] if delay <= 0 else AMQP_RETRY_QUEUE[queue]
        message = aio_pika.Message(
            encode_job(job),
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            expiration=delay if delay > 0 else None,
        )
        await self._publish(message, target, "publish")

    async def dead_letter(self, queue: str, job: Job, error: Failure) -> None:
        await self._publish(
            self._dead_message(queue, encode_job(job), error), AMQP_DEAD_QUEUE, "dead-letter"
        )

    @staticmethod
    def _dead_message(queue: str, body: bytes, error: Failure) -> aio_pika.Message:
        return aio_pika.Message(
            body,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={
                HEADER_QUEUE: queue,
                HEADER_ERROR_CODE: error.code,
                HEADER_ERROR_MESSAGE: error.message,
                HEADER_ERROR: json.dumps(error.to_api(), default=str),
            },
        )

    async def _publish(self, message: aio_pika.Message, routing_key: str, what: str) -> None:
        channel = self._channel(self._publisher)
        try:
            async with asyncio.timeout(self.timeout):
                await channel.default_exchange.publish(message, routing_key=routing_key)
        except _FAILURES as exc:
            raise Unavailable(f"rabbitmq: {what} to {routing_key} failed: {_why(exc)}") from None

    async def consume(self, queue: str, prefetch: int) -> AsyncIterator[AmqpDelivery]:
        """Deliveries from the role's queue on a channel of its own, across reconnections;
        ends when the broker is closed. A body that is not a job is moved to the dead queue."""
        name = AMQP_QUEUE[queue]
        connection = self._connection
        if connection is None or self._closed:
            raise Unavailable("rabbitmq: the broker is not open")
        buffer: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()

        async def on_message(message: AbstractIncomingMessage) -> None:
            buffer.put_nowait(message)

        self._consumers.add(buffer)
        channel: AbstractRobustChannel | None = None
        try:
            while channel is None:  # robust from here on: aio-pika restores it all
                try:
                    channel = await connection.channel(publisher_confirms=False)
                    await channel.set_qos(prefetch_count=prefetch)
                    amqp_queue = await channel.declare_queue(
                        name, durable=True, arguments=self._queue_args
                    )
                    await amqp_queue.consume(on_message)
                except _FAILURES as exc:
                    if self.closed:  # (closed meanwhile, by another task)
                        return
                    log.warning("rabbitmq: cannot consume %s yet (%s), retrying", name, _why(exc))
                    if channel is not None:
                        with contextlib.suppress(*_FAILURES):
                            await channel.close()
                        channel = None
                    await asyncio.sleep(self.RECONNECT_INTERVAL)
            while True:
                message = await buffer.get()
                if message is None:
                    return
                if _stale(message):
                    continue
                try:
                    job = decode_job(message.body)
                except DecodeError as exc:  # untrusted bytes: not a job
                    await self._park(queue, message, exc)
                    continue
                yield AmqpDelivery(message, job)
        finally:
            self._consumers.discard(buffer)
            if channel is not None:
                with contextlib.suppress(*_FAILURES):
                    await channel.close()

    async def _park(self, queue: str, message: AbstractIncomingMessage, exc: Exception) -> None:
        """Move a message that is not a job to the dead queue (or drop it if that fails)."""
        error = Failure("invalid_message", f"not a job: {type(exc).__name__} {exc}")
        log.error(
            "rabbitmq: moving a message from %s to %s: %s", queue, AMQP_DEAD_QUEUE, error.message
        )
        try:
            await self._publish(
                self._dead_message(queue, message.body, error), AMQP_DEAD_QUEUE, "dead-letter"
            )
        except Unavailable:
            await _settle(message, "a message that is not a job", requeue=False)
            return
        await _settle(message, "a message that is not a job", requeue=None)

    async def depth(self, queue: str) -> int:
        name = AMQP_QUEUE[queue]
        channel = self._channel(self._control)
        try:
            async with asyncio.timeout(self.timeout):
                underlay = await channel.get_underlay_channel()
                ok = await underlay.queue_declare(name, passive=True)
        except _FAILURES as exc:
            raise Unavailable(f"rabbitmq: cannot read the depth of {name}: {_why(exc)}") from None
        return int(ok.message_count or 0)

    async def ping(self) -> None:
        connection = self._connection
        if connection is None or connection.is_closed:
            raise Unavailable("rabbitmq: not connected")
        if not connection.connected.is_set():  # answer a health check at once
            raise Unavailable(f"rabbitmq: reconnecting to {self.where}")
        await self.depth(next(iter(AMQP_QUEUE)))

    def _channel(self, channel: AbstractRobustChannel | None) -> AbstractRobustChannel:
        if channel is None or self._closed:
            raise Unavailable("rabbitmq: the broker is not open")
        return channel
