"""Backends chosen from settings: each is the embedded default unless its setting is given.

- ``IMGSERVER_S3_BUCKET`` -> S3 storage (``s3.py``), else a local directory
  (``local_storage.py``);
- ``IMGSERVER_REDIS_URL`` -> Redis cache index, task and image stores, events, in-flight
  leases and quotas (``redis/``), else SQLite (``sqlite.py``) and in-process ones
  (``memory.py``);
- ``IMGSERVER_AMQP_URL`` -> RabbitMQ queues (``amqp.py``), else in-process queues, and then
  this process runs the workers too.

``open_backends`` enters each one (they are async context managers) on one ``AsyncExitStack``:
they open in order, and close in reverse order when the block ends, or when a later one fails
to open.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TypeVar

from ..names import QUEUES
from ..settings import Settings
from .base import (
    Backends,
    Broker,
    CacheIndex,
    EventBus,
    ImageStore,
    InFlight,
    Lifecycle,
    Quotas,
    Storage,
    TaskStore,
)

B = TypeVar("B", bound=Lifecycle)


@contextlib.asynccontextmanager
async def open_backends(settings: Settings) -> AsyncIterator[Backends]:
    """Every backend the settings ask for, open for the block."""
    async with contextlib.AsyncExitStack() as stack:
        opener = _Opener(stack)
        storage = await opener.open(_storage(settings))
        state = await (
            _redis(settings, opener) if settings.redis_url else _sqlite(settings, opener)
        )
        broker = await opener.open(_broker(settings))
        yield Backends(
            storage=storage,
            index=state.index,
            tasks=state.tasks,
            images=state.images,
            broker=broker,
            events=state.events,
            inflight=state.inflight,
            quotas=state.quotas,
            embedded=settings.embedded,
        )


@dataclass(frozen=True)
class _Opener:
    stack: contextlib.AsyncExitStack

    async def open(self, backend: B) -> B:
        """``backend`` opened, and closed when the stack unwinds (a backend's ``__aenter__``
        answers the backend itself)."""
        await self.stack.enter_async_context(backend)
        return backend


@dataclass(frozen=True)
class _State:
    """The backends kept together: in Redis, or embedded."""

    index: CacheIndex
    tasks: TaskStore
    images: ImageStore
    events: EventBus
    inflight: InFlight
    quotas: Quotas


def _storage(settings: Settings) -> Storage:
    if settings.s3_bucket:
        from .s3 import S3Storage

        return S3Storage(settings)
    from .local_storage import LocalStorage

    return LocalStorage(settings.storage_dir, settings.lifetime)


async def _redis(settings: Settings, opener: _Opener) -> _State:
    from .redis.client import RedisConnection
    from .redis.events import RedisEventBus
    from .redis.index import RedisIndex
    from .redis.inflight import RedisInFlight
    from .redis.quotas import RedisQuotas
    from .redis.records import RedisImageStore, RedisTaskStore

    client = (await opener.open(RedisConnection(settings))).client
    return _State(
        index=await opener.open(RedisIndex(client, settings)),
        tasks=await opener.open(RedisTaskStore(client, settings)),
        images=await opener.open(RedisImageStore(client)),
        events=await opener.open(RedisEventBus(client, settings)),
        inflight=await opener.open(RedisInFlight(client)),
        quotas=await opener.open(RedisQuotas(client)),
    )


async def _sqlite(settings: Settings, opener: _Opener) -> _State:
    from .memory import MemoryEventBus, MemoryInFlight
    from .sqlite import SqliteDB, SqliteImageStore, SqliteIndex, SqliteQuotas, SqliteTaskStore

    db = await opener.open(SqliteDB(settings.db_path))
    return _State(
        index=await opener.open(SqliteIndex(db, settings.lifetime)),
        tasks=await opener.open(SqliteTaskStore(db)),
        images=await opener.open(SqliteImageStore(db)),
        events=await opener.open(MemoryEventBus()),
        inflight=await opener.open(MemoryInFlight()),
        quotas=await opener.open(SqliteQuotas(db)),
    )


def _broker(settings: Settings) -> Broker:
    if settings.amqp_url:
        from .amqp import AmqpBroker

        return AmqpBroker(settings)
    from .memory import MemoryBroker

    return MemoryBroker(QUEUES)
