"""The Redis backends of the distributed mode: cache index, task store, event bus and in-flight
markers, all on one client (``connect``).

Every Redis connection error or timeout is translated here into ``errors.Unavailable`` (503),
so a Redis that is down or restarting never surfaces as a 500.

- Cache index: each entry is JSON under ``REDIS_RESULT`` (expiring after ``index_ttl`` if set),
  plus a set of keys per input (``REDIS_INPUT``, named by the input's SHA-256) written in the
  same MULTI, for ``keys_for_input``. Members whose entry expired are pruned when read.
- Task store: each task is JSON under ``REDIS_TASK``, expiring ``task_ttl`` after its last
  change; ids of tasks not yet final are in the sorted set ``REDIS_UNFINISHED`` (score:
  ``created_at``). ``update`` is an optimistic WATCH/MULTI transaction that runs
  ``tasks.apply`` in Python, so the transition rules live in one place and it is atomic across
  processes: a record changed by someone else between our read and our write makes EXEC fail,
  and we read it again.
- Events: JSON messages on the pub/sub channel ``EVENTS_CHANNEL``. A subscription outlives a
  Redis restart: when its connection drops (or stops answering pings) it subscribes again with
  backoff and carries on, without raising. Pub/sub is fire-and-forget, so events published
  while a subscriber is disconnected are lost to it: a request waiting for such a job outcome
  times out (503 with Retry-After) and its retry finds the result in the index.
- In-flight markers: ``SET NX PX`` under ``REDIS_INFLIGHT``; release is ``DEL``.
- Image store: each image is JSON under ``REDIS_IMAGE`` (no expiry: images are kept), and its
  id is a member of the sorted set ``REDIS_IMAGES`` with score 0, so the set is ordered by id
  (ids sort by creation time) and a page is one ``ZREVRANGEBYLEX`` below the cursor, then one
  ``MGET``. ``update`` is a WATCH/MULTI transaction running ``images.apply``, like tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, ParamSpec, TypeVar, cast

import redis.exceptions as rexc
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline, PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .. import images, names
from ..errors import Unavailable
from ..images import Image
from ..jobs import Entry
from ..settings import Settings
from ..tasks import Task, apply
from .base import Event

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

SOCKET_TIMEOUT = 0.5  # seconds: a Redis that is down fails a request within a second
CONNECT_TIMEOUT = 0.5
HEALTH_CHECK_INTERVAL = 15  # seconds idle after which a pooled connection is PINGed before use
MAX_CONNECTIONS = 256
POOL_TIMEOUT = 1.0  # seconds to wait for a free pooled connection before giving up

# Errors that mean "Redis cannot serve us now", as opposed to bugs (wrong type, bad command).
_ERRORS: tuple[type[BaseException], ...] = (
    rexc.ConnectionError,  # also BusyLoading (LOADING), authentication, pool exhausted
    rexc.TimeoutError,
    rexc.OutOfMemoryError,
    rexc.ReadOnlyError,
    rexc.ClusterDownError,  # also MASTERDOWN
    OSError,  # includes the builtin TimeoutError
)


def connect(settings: Settings) -> Redis:
    """A client for ``settings.redis_url``; connections are opened lazily, on first use.

    Short timeouts make a Redis that is down fail fast (503). A connection error is retried
    once at once, on a new connection, so a pooled connection left stale by a Redis restart
    does not fail a request; timeouts are not retried.
    """
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        retry=Retry(NoBackoff(), 1, (rexc.ConnectionError,)),  # timeouts: not retried
        decode_responses=False,
        client_name="imgserver",
    )
    return Redis.from_pool(pool)


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _ERRORS):
        return True
    return isinstance(exc, rexc.ResponseError) and str(exc).startswith("MISCONF")


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Turn Redis connection errors and timeouts into ``Unavailable``."""
    try:
        yield
    except rexc.RedisError as exc:
        if not _is_unavailable(exc):
            raise
        kind = "timed out" if isinstance(exc, rexc.TimeoutError) else "unavailable"
        raise Unavailable(f"redis: {kind}") from exc
    except OSError as exc:
        kind = "timed out" if isinstance(exc, TimeoutError) else "connection failed"
        raise Unavailable(f"redis: {kind}") from exc


def _translated(fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        with translated():
            return await fn(*args, **kwargs)

    return call


def _dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def input_digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


class RedisIndex:
    """Cache key -> Entry, with a set of keys per input."""

    def __init__(self, client: Redis, settings: Settings) -> None:
        self.client = client
        self.ttl = settings.index_ttl if settings.index_ttl > 0 else None

    @staticmethod
    def _key(key: str) -> str:
        return names.REDIS_RESULT.format(key=key)

    @staticmethod
    def _input_key(source: str) -> str:
        return names.REDIS_INPUT.format(digest=input_digest(source))

    @_translated
    async def get(self, key: str) -> Entry | None:
        raw = await self.client.get(self._key(key))
        return Entry.from_dict(json.loads(raw)) if raw is not None else None

    @_translated
    async def set(self, key: str, entry: Entry) -> None:
        members = self._input_key(entry.input)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self._key(key), _dumps(entry.to_dict()), ex=self.ttl)
            pipe.sadd(members, key)
            if self.ttl:  # the set lives as long as its newest entry
                pipe.expire(members, self.ttl)
            await pipe.execute()

    @_translated
    async def delete(self, key: str) -> None:
        raw = await self.client.get(self._key(key))
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(key))
            if raw is not None:
                pipe.srem(self._input_key(Entry.from_dict(json.loads(raw)).input), key)
            await pipe.execute()

    @_translated
    async def keys_for_input(self, source: str) -> list[str]:
        members = self._input_key(source)
        keys = sorted(_text(k) for k in await self.client.smembers(members))
        if not keys:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.exists(self._key(key))
            exists = await pipe.execute()
        stale = [k for k, e in zip(keys, exists, strict=True) if not e]
        if stale:  # their entries expired (index_ttl)
            await self._prune(members, stale)
        return [k for k, e in zip(keys, exists, strict=True) if e]

    async def _prune(self, members: str, stale: list[str]) -> None:
        """Forget keys whose entries are gone, unless one is set again meanwhile."""
        entries = [self._key(k) for k in stale]
        with contextlib.suppress(rexc.WatchError):  # one was set again: prune another time
            async with self.client.pipeline(transaction=True) as pipe:
                await pipe.watch(*entries)
                if await pipe.exists(*entries):
                    return
                pipe.multi()
                pipe.srem(members, *stale)
                await pipe.execute()

    @_translated
    async def ping(self) -> None:
        await self.client.ping()


class RedisTaskStore:
    """Task records with an expiry, and a sorted set of the unfinished ones."""

    def __init__(self, client: Redis, settings: Settings) -> None:
        self.client = client
        self.ttl = settings.task_ttl if settings.task_ttl > 0 else None

    @staticmethod
    def _key(task_id: str) -> str:
        return names.REDIS_TASK.format(id=task_id)

    def _save(self, pipe: Pipeline, task: Task) -> None:
        """Queue the writes of ``task`` (record and unfinished set) on a MULTI pipeline."""
        pipe.set(self._key(task.id), _dumps(task.to_record()), ex=self.ttl)
        if task.final:
            pipe.zrem(names.REDIS_UNFINISHED, task.id)
        else:
            pipe.zadd(names.REDIS_UNFINISHED, {task.id: task.created_at})

    @_translated
    async def create(self, task: Task) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            self._save(pipe, task)
            await pipe.execute()

    @_translated
    async def get(self, task_id: str) -> Task | None:
        raw = await self.client.get(self._key(task_id))
        return Task.from_record(json.loads(raw)) if raw is not None else None

    @_translated
    async def update(self, task_id: str, changes: dict[str, Any]) -> Task | None:
        key = self._key(task_id)
        conflicts = 0
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        return None
                    task = Task.from_record(json.loads(raw))
                    if not apply(task, changes):
                        return task  # final, or it would go back: unchanged
                    pipe.multi()
                    self._save(pipe, task)
                    await pipe.execute()
                    return task
                except rexc.WatchError:  # changed since we read it: read it again
                    conflicts += 1
                    await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * conflicts)))

    @_translated
    async def unfinished(self) -> list[Task]:
        members = await self.client.zrange(names.REDIS_UNFINISHED, 0, -1)
        ids = [_text(cast(bytes, i)) for i in members]
        if not ids:
            return []
        records = await self.client.mget([self._key(i) for i in ids])
        tasks, expired = [], []
        for task_id, raw in zip(ids, records, strict=True):
            if raw is None:
                expired.append(task_id)  # its record expired (task_ttl)
                continue
            task = Task.from_record(json.loads(raw))
            if not task.final:  # (a final one is being removed by its own update)
                tasks.append(task)
        if expired:
            await self.client.zrem(names.REDIS_UNFINISHED, *expired)
        return tasks

    @_translated
    async def ping(self) -> None:
        await self.client.ping()


class RedisImageStore:
    """Image records, and one sorted set of their ids for newest-first pages."""

    def __init__(self, client: Redis) -> None:
        self.client = client

    @staticmethod
    def _key(image_id: str) -> str:
        return names.REDIS_IMAGE.format(id=image_id)

    @_translated
    async def create(self, image: Image) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self._key(image.id), _dumps(image.to_record()))
            pipe.zadd(names.REDIS_IMAGES, {image.id: 0})
            await pipe.execute()

    @_translated
    async def get(self, image_id: str) -> Image | None:
        raw = await self.client.get(self._key(image_id))
        return Image.from_record(json.loads(raw)) if raw is not None else None

    @_translated
    async def list_page(self, limit: int, before: str | None = None) -> list[Image]:
        top = f"({before}" if before is not None else "+"
        members = await self.client.zrevrangebylex(names.REDIS_IMAGES, top, "-", 0, limit)
        ids = [_text(cast(bytes, m)) for m in members]
        if not ids:
            return []
        records = await self.client.mget([self._key(i) for i in ids])
        # (a record deleted between the two reads is left out)
        return [Image.from_record(json.loads(raw)) for raw in records if raw is not None]

    @_translated
    async def update(self, image_id: str, changes: dict[str, Any]) -> Image | None:
        key = self._key(image_id)
        conflicts = 0
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        return None
                    image = Image.from_record(json.loads(raw))
                    if not images.apply(image, changes):
                        return image  # final, or it would go back: unchanged
                    pipe.multi()
                    pipe.set(key, _dumps(image.to_record()))
                    await pipe.execute()
                    return image
                except rexc.WatchError:  # changed since we read it: read it again
                    conflicts += 1
                    await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * conflicts)))

    @_translated
    async def delete(self, image_id: str) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(image_id))
            pipe.zrem(names.REDIS_IMAGES, image_id)
            await pipe.execute()

    @_translated
    async def ping(self) -> None:
        await self.client.ping()


class RedisInFlight:
    """Single-flight markers shared by every frontend, expiring by themselves."""

    def __init__(self, client: Redis) -> None:
        self.client = client

    @_translated
    async def claim(self, key: str, ttl: float) -> bool:
        name = names.REDIS_INFLIGHT.format(key=key)
        return bool(await self.client.set(name, b"1", nx=True, px=max(1, round(ttl * 1000))))

    @_translated
    async def release(self, key: str) -> None:
        await self.client.delete(names.REDIS_INFLIGHT.format(key=key))


class RedisEventBus:
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
        self.client = client
        self.channel = names.EVENTS_CHANNEL
        self.ping_interval = ping_interval
        self.max_backoff = max_backoff

    @_translated
    async def publish(self, event: Event) -> None:
        await self.client.publish(self.channel, _dumps(event))

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

    @_translated
    async def ping(self) -> None:
        await self.client.ping()


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
                if not _is_unavailable(exc):
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
            event = json.loads(message["data"])
        except ValueError:
            log.warning("redis: ignored a message that is not JSON on %s", self.channel)
            return None
        if not isinstance(event, dict):
            log.warning("redis: ignored a message that is not an object on %s", self.channel)
            return None
        return event

    async def _reopen(self) -> None:
        """Subscribe again, retrying with capped exponential backoff until it works."""
        delay = 0.05
        while True:
            try:
                await self.open()
            except Exception as exc:
                if not _is_unavailable(exc):
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


# Increment unless the limit is reached; returns 1 when spent, 0 when over the quota.
_SPEND_QUOTA = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
return 1
"""


class RedisQuotas:
    def __init__(self, client: Redis) -> None:
        self.client = client
        self._spend = client.register_script(_SPEND_QUOTA)

    async def spend(self, name: str, limit: int) -> bool:
        with translated():
            return bool(await self._spend(keys=[names.REDIS_QUOTA.format(name=name)], args=[limit]))

    async def used(self, name: str) -> int:
        with translated():
            value = await self.client.get(names.REDIS_QUOTA.format(name=name))
        return int(value or 0)
