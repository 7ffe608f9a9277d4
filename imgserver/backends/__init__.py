"""Backends chosen from settings: the embedded default, or Redis/RabbitMQ/S3 when configured."""

from __future__ import annotations

from ..names import QUEUES
from ..settings import Settings
from .base import Backends
from .local import LocalEventBus, LocalIndex, LocalStorage, LocalTaskStore, MemoryBroker, SqliteDB


async def open_backends(settings: Settings) -> Backends:
    """Open every backend the settings ask for; ``Backends.close()`` closes them."""
    db = SqliteDB(settings.db_path)
    await db.open()
    storage = LocalStorage(settings.storage_dir)
    await storage.ping()
    return Backends(
        storage=storage,
        index=LocalIndex(db),
        tasks=LocalTaskStore(db),
        broker=MemoryBroker(QUEUES),
        events=LocalEventBus(),
        closers=[db.close],
        embedded=True,
    )
