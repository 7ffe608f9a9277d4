"""The Redis event bus: events as JSON (``messages.encode_event``) on the pub/sub channel
``EVENTS_CHANNEL``. A subscription outlives a Redis restart: when its connection drops (or stops
answering pings) it subscribes again with backoff and carries on, without raising. Pub/sub is
fire-and-forget, so events published while a subscriber is disconnected are lost to it: a
request waiting for such a job outcome times out (503 with Retry-After) and its retry finds the
result in the index.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator

import redis.exceptions as rexc
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from ... import names
from ...messages import DecodeError, Event, decode_event, encode_event
from ...settings import Settings
from .client import OnRedis, is_unavailable, translated, translated_call

log = logging.getLogger(__name__)


class RedisEventBus(OnRedis):
    """Events as JSON on one pub/sub channel; subscriptions resubscribe after a Redis restart.

    Events published while a subscriber is disconnected are lost to it (pub/sub keeps nothing).
    """

    def __init__(
        self,
        client: Redis,
        settings: Settings,
        *,
        ping_interval: float = 5.0,
        max_backoff: float = 2.0,
    ) -> None:
        super().__init__(client)
        self.channel = names.EVENTS_CHANNEL
        self.ping_interval = ping_interval
        self.max_backoff = max_backoff

    @translated_call
    async def publish(self, event: Event) -> None:
        await self.client.publish(self.channel, encode_event(event))

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Event]]:
        """Subscribed on entry (raises Unavailable if Redis is down then): the iterator yields
        every event published from then on, and keeps going across reconnections."""
        sub = _Subscription(self.client, self.channel, self.ping_interval, self.max_backoff)
        with translated():
            await sub.open()
        try:
            yield sub
        finally:
            await sub.close()


class _Subscription:
    """Events of one channel, as an async iterator that never raises a connection error.

    A dropped connection is noticed at once (Redis closes it when it stops); a connection that
    silently stops answering is noticed by pinging after ``ping_interval`` seconds of quiet.
    Either way the subscription is opened again, with capped exponential backoff.
    """

    PING = b"imgserver-subscription"
    CONFIRM_TIMEOUT = 2.0  # seconds to wait for Redis to confirm a SUBSCRIBE

    def __init__(
        self, client: Redis, channel: str, ping_interval: float, max_backoff: float
    ) -> None:
        self.client = client
        self.channel = channel
        self.ping_interval = ping_interval
        self.max_backoff = max_backoff
        self._pubsub: PubSub | None = None
        self._last_seen = 0.0  # monotonic time anything last arrived
        self._ping_sent: float | None = None  # monotonic time of an unanswered ping

    async def open(self) -> None:
        """Subscribe on a new connection and wait for the confirmation."""
        pubsub = self.client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            deadline = time.monotonic() + self.CONFIRM_TIMEOUT
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise rexc.TimeoutError("no confirmation of SUBSCRIBE")
                message = await pubsub.get_message(timeout=remaining)
                if message is not None and message["type"] == "subscribe":
                    break
        except BaseException:
            await _close_quietly(pubsub)
            raise
        self._pubsub = pubsub
        self._last_seen = time.monotonic()
        self._ping_sent = None

    async def close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            await _close_quietly(pubsub)

    def __aiter__(self) -> _Subscription:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._pubsub is None:
                await self._reopen()
            try:
                event = await self._receive()
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                log.warning("redis: event subscription lost (%s); subscribing again", exc)
                await self.close()
                continue
            if event is not None:
                return event

    async def _receive(self) -> Event | None:
        """The next event, or None after a quiet spell, a ping answer or a bad message."""
        assert self._pubsub is not None
        now = time.monotonic()
        if self._ping_sent is not None and now - self._ping_sent > self.ping_interval:
            raise rexc.TimeoutError(f"no answer to a ping in {self.ping_interval:g} s")
        if self._ping_sent is None and now - self._last_seen > self.ping_interval:
            await self._pubsub.ping(self.PING)
            self._ping_sent = now
        message = await self._pubsub.get_message(timeout=self.ping_interval / 2)
        if message is None:
            return None
        self._last_seen = time.monotonic()
        self._ping_sent = None
        if message["type"] != "message":
            return None  # pong, or the confirmation of a resubscription by redis-py
        try:
            return decode_event(message["data"])
        except DecodeError as exc:
            log.warning(
                "redis: ignored a message that is not an event on %s: %s", self.channel, exc
            )
            return None

    async def _reopen(self) -> None:
        """Subscribe again, retrying with capped exponential backoff until it works."""
        delay = 0.05
        while True:
            try:
                await self.open()
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                log.debug("redis: subscribing again failed (%s); retry in %.2f s", exc, delay)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.max_backoff)
                continue
            log.warning("redis: event subscription restored")
            return


async def _close_quietly(pubsub: PubSub) -> None:
    try:
        await pubsub.aclose()
    except Exception as exc:  # the connection is already broken: nothing to tidy
        log.debug("redis: closing a subscription: %s", exc)
