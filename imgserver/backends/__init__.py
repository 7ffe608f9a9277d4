"""Backends chosen from settings: each is the embedded default unless its setting is given.

- ``IMGSERVER_S3_BUCKET`` -> S3 storage (``s3.py``), else a local directory;
- ``IMGSERVER_REDIS_URL`` -> Redis cache index, task and image stores, events, in-flight
  markers (``redis.py``), else SQLite and in-process ones;
- ``IMGSERVER_AMQP_URL`` -> RabbitMQ queues (``amqp.py``), else in-process queues, and then
  this process runs the workers too.
"""

from __future__ import annotations

from typing import Any

from ..names import QUEUES
from ..settings import Settings
from .base import Backends, Broker, Closer, Storage
from .local import (
    LocalEventBus,
    LocalImageStore,
    LocalIndex,
    LocalInFlight,
    LocalQuotas,
    LocalStorage,
    LocalTaskStore,
    MemoryBroker,
    SqliteDB,
)


async def open_backends(settings: Settings) -> Backends:
    """Open every backend the settings ask for; ``Backends.close()`` closes them."""
    closers: list[Closer] = []
    try:
        storage = await _storage(settings, closers)
        state = await _state(settings, closers)
        broker = await _broker(settings, closers)
    except BaseException:
        for close in reversed(closers):
            await close()
        raise
    return Backends(
        storage=storage, broker=broker, closers=closers, embedded=settings.embedded, **state
    )


async def _storage(settings: Settings, closers: list[Closer]) -> Storage:
    if settings.s3_bucket:
        from .s3 import S3Storage

        s3 = S3Storage(settings)
        closers.append(s3.close)
        await s3.open()
        return s3
    local = LocalStorage(settings.storage_dir)
    await local.ping()
    return local


async def _state(settings: Settings, closers: list[Closer]) -> dict[str, Any]:
    """index, tasks, images, events, inflight and quotas: in Redis, or embedded."""
    if settings.redis_url:
        from .redis import (
            RedisEventBus,
            RedisImageStore,
            RedisIndex,
            RedisInFlight,
            RedisQuotas,
            RedisTaskStore,
            connect,
        )

        client = connect(settings)
        closers.append(client.aclose)
        index = RedisIndex(client, settings)
        await index.ping()  # a wrong URL or a Redis that is down stops start-up, clearly
        return {
            "index": index,
            "tasks": RedisTaskStore(client, settings),
            "images": RedisImageStore(client),
            "events": RedisEventBus(client, settings),
            "inflight": RedisInFlight(client),
            "quotas": RedisQuotas(client),
        }
    db = SqliteDB(settings.db_path)
    closers.append(db.close)
    await db.open()
    return {
        "index": LocalIndex(db),
        "tasks": LocalTaskStore(db),
        "images": LocalImageStore(db),
        "events": LocalEventBus(),
        "inflight": LocalInFlight(),
        "quotas": LocalQuotas(db),
    }


async def _broker(settings: Settings, closers: list[Closer]) -> Broker:
    if settings.amqp_url:
        from .amqp import AmqpBroker

        amqp = AmqpBroker(settings)
        closers.append(amqp.close)
        await amqp.open()
        return amqp
    return MemoryBroker(QUEUES)
