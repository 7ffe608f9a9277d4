"""Task and image records in Redis, each JSON under its own key (``records.encode``).

- Tasks live under ``REDIS_TASK``, expiring ``task_ttl`` after their last change (a provisional
  one, ``create(lease=…)``, after its lease, unless changed before); ids of tasks not yet final
  are in the sorted set ``REDIS_UNFINISHED`` (score: ``created_at``).
- Images live under ``REDIS_IMAGE`` (no expiry: images are kept), and each id is a member of the
  sorted set ``REDIS_IMAGES`` with score 0, so the set is ordered by id (ids sort by creation
  time) and a page is one ``ZREVRANGEBYLEX`` below the cursor, then one ``MGET``.

``update`` of either is ``client.update_record``: one optimistic transaction around
``records.advance``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from ... import names
from ...records import ImageRecord, Task, decode_image, decode_task, encode
from ...settings import Settings
from .client import OnRedis, text, translated_call, update_record


class RedisTaskStore(OnRedis):
    """Task records with an expiry, and a sorted set of the unfinished ones."""

    def __init__(self, client: Redis, settings: Settings) -> None:
        super().__init__(client)
        self.ttl = settings.task_ttl if settings.task_ttl > 0 else None

    @staticmethod
    def _key(task_id: str) -> str:
        return names.REDIS_TASK.format(id=task_id)

    def _save(self, pipe: Pipeline, task: Task, lease: float | None = None) -> None:
        """Queue the writes of ``task`` (record and unfinished set) on a MULTI pipeline; with
        ``lease``, the record expires after that many seconds instead of ``task_ttl``."""
        if lease is None:
            pipe.set(self._key(task.id), encode(task), ex=self.ttl)
        else:
            pipe.set(self._key(task.id), encode(task), px=max(1, round(lease * 1000)))
        if task.final:
            pipe.zrem(names.REDIS_UNFINISHED, task.id)
        else:
            pipe.zadd(names.REDIS_UNFINISHED, {task.id: task.created_at})

    @translated_call
    async def create(self, task: Task, lease: float | None = None) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            self._save(pipe, task, lease)
            await pipe.execute()

    @translated_call
    async def get(self, task_id: str) -> Task | None:
        raw = await self.client.get(self._key(task_id))
        return decode_task(raw) if raw is not None else None

    @translated_call
    async def update(self, task_id: str, changes: Mapping[str, Any]) -> Task | None:
        return await update_record(
            self.client, self._key(task_id), decode_task, changes, self._save
        )

    @translated_call
    async def unfinished(self) -> list[Task]:
        members = await self.client.zrange(names.REDIS_UNFINISHED, 0, -1)
        ids = [text(cast(bytes, i)) for i in members]
        if not ids:
            return []
        records = await self.client.mget([self._key(i) for i in ids])
        tasks, expired = [], []
        for task_id, raw in zip(ids, records, strict=True):
            if raw is None:
                expired.append(task_id)  # its record expired (task_ttl)
                continue
            task = decode_task(raw)
            if not task.final:  # (a final one is being removed by its own update)
                tasks.append(task)
        if expired:
            await self.client.zrem(names.REDIS_UNFINISHED, *expired)
        return tasks


class RedisImageStore(OnRedis):
    """Image records, and one sorted set of their ids for newest-first pages."""

    @staticmethod
    def _key(image_id: str) -> str:
        return names.REDIS_IMAGE.format(id=image_id)

    def _save(self, pipe: Pipeline, image: ImageRecord) -> None:
        pipe.set(self._key(image.id), encode(image))

    @translated_call
    async def create(self, image: ImageRecord) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            self._save(pipe, image)
            pipe.zadd(names.REDIS_IMAGES, {image.id: 0})
            await pipe.execute()

    @translated_call
    async def get(self, image_id: str) -> ImageRecord | None:
        raw = await self.client.get(self._key(image_id))
        return decode_image(raw) if raw is not None else None

    @translated_call
    async def list_page(self, limit: int, before: str | None = None) -> list[ImageRecord]:
        top = f"({before}" if before is not None else "+"
        members = await self.client.zrevrangebylex(names.REDIS_IMAGES, top, "-", 0, limit)
        ids = [text(cast(bytes, m)) for m in members]
        if not ids:
            return []
        records = await self.client.mget([self._key(i) for i in ids])
        # (a record deleted between the two reads is left out)
        return [decode_image(raw) for raw in records if raw is not None]

    @translated_call
    async def update(self, image_id: str, changes: Mapping[str, Any]) -> ImageRecord | None:
        return await update_record(
            self.client, self._key(image_id), decode_image, changes, self._save
        )

    @translated_call
    async def delete(self, image_id: str) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(image_id))
            pipe.zrem(names.REDIS_IMAGES, image_id)
            await pipe.execute()
