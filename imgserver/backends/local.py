"""The embedded backends: a local directory, SQLite (index and tasks), an in-process broker
and event bus. Files and the database survive a restart; queued jobs are re-queued from the
task records at start-up (see app.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .. import images
from ..formats import mime_of, sniff
from ..images import Image
from ..jobs import Entry, Job
from ..tasks import FINAL, Task, apply
from .base import Event, StoredObject

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY, entry TEXT NOT NULL, input TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_input ON cache (input);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, record TEXT NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status);
CREATE TABLE IF NOT EXISTS quotas (name TEXT PRIMARY KEY, used INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY, record TEXT NOT NULL, created_at REAL NOT NULL
);
"""


class LocalStorage:
    """Objects as files under ``root``; served by the app at ``/{path}``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def file(self, path: str) -> Path:
        """The file of a storage path, sharded: results/ab/abcdef..."""
        prefix, _, name = path.rpartition("/")
        if not name or name.startswith(".") or ".." in path or "\\" in path:
            raise ValueError(f"bad storage path {path!r}")
        return self.root / prefix / name[:2] / name

    async def put(self, path: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, self.file(path), data)

    @staticmethod
    def _write(target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)  # readers see the whole file or none
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    async def get(self, path: str) -> StoredObject | None:
        try:
            data = await asyncio.to_thread(self.file(path).read_bytes)
        except (FileNotFoundError, ValueError):
            return None
        return StoredObject(data, content_type_of(data))

    async def head(self, path: str) -> tuple[str, int] | None:
        return await asyncio.to_thread(self._head, path)

    def _head(self, path: str) -> tuple[str, int] | None:
        try:
            target = self.file(path)
            with target.open("rb") as f:
                head = f.read(64)
            return content_type_of(head), target.stat().st_size
        except (FileNotFoundError, ValueError):
            return None

    async def delete(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            await asyncio.to_thread(self.file(path).unlink)

    def url(self, path: str, base: str) -> str:
        return f"{base.rstrip('/')}/{path}"

    async def ping(self) -> None:
        await asyncio.to_thread(self._ping)

    def _ping(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise OSError(f"{self.root} is not writable")


def content_type_of(head: bytes) -> str:
    fmt = sniff(head)
    return mime_of(fmt) if fmt else "application/octet-stream"


class SqliteDB:
    """One SQLite connection used from one thread, so calls never block the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="imgserver-sqlite")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        self._conn = await self.call(self._connect)

    def _connect(self, _: Any = None) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        return conn

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, self._conn)  # type: ignore[arg-type]

    async def close(self) -> None:
        if self._conn is not None:
            await self.call(lambda c: c.close())
            self._conn = None
        self._executor.shutdown(wait=True)

    async def ping(self) -> None:
        await self.call(lambda c: c.execute("SELECT 1").fetchone())


class LocalIndex:
    def __init__(self, db: SqliteDB) -> None:
        self.db = db

    async def get(self, key: str) -> Entry | None:
        row = await self.db.call(
            lambda c: c.execute("SELECT entry FROM cache WHERE key = ?", (key,)).fetchone()
        )
        return Entry.from_dict(json.loads(row[0])) if row else None

    async def set(self, key: str, entry: Entry) -> None:
        record = json.dumps(entry.to_dict())
        await self.db.call(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO cache (key, entry, input, created_at) VALUES (?, ?, ?, ?)",
                (key, record, entry.input, time.time()),
            )
        )

    async def delete(self, key: str) -> None:
        await self.db.call(lambda c: c.execute("DELETE FROM cache WHERE key = ?", (key,)))

    async def keys_for_input(self, source: str) -> list[str]:
        rows = await self.db.call(
            lambda c: c.execute("SELECT key FROM cache WHERE input = ?", (source,)).fetchall()
        )
        return [r[0] for r in rows]

    async def ping(self) -> None:
        await self.db.ping()


class LocalTaskStore:
    def __init__(self, db: SqliteDB) -> None:
        self.db = db

    async def create(self, task: Task) -> None:
        await self.db.call(lambda c: self._save(c, task))

    @staticmethod
    def _save(c: sqlite3.Connection, task: Task) -> None:
        c.execute(
            "INSERT OR REPLACE INTO tasks (id, record, status, created_at) VALUES (?, ?, ?, ?)",
            (task.id, json.dumps(task.to_record()), task.status, task.created_at),
        )

    @staticmethod
    def _load(c: sqlite3.Connection, task_id: str) -> Task | None:
        row = c.execute("SELECT record FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return Task.from_record(json.loads(row[0])) if row else None

    async def get(self, task_id: str) -> Task | None:
        return await self.db.call(lambda c: self._load(c, task_id))

    async def update(self, task_id: str, changes: dict[str, Any]) -> Task | None:
        def txn(c: sqlite3.Connection) -> Task | None:
            task = self._load(c, task_id)
            if task is not None and apply(task, dict(changes)):
                self._save(c, task)
            return task

        return await self.db.call(txn)

    async def unfinished(self) -> list[Task]:
        final = tuple(FINAL)
        rows = await self.db.call(
            lambda c: c.execute(
                f"SELECT record FROM tasks WHERE status NOT IN ({','.join('?' * len(final))}) "
                "ORDER BY created_at",
                final,
            ).fetchall()
        )
        return [Task.from_record(json.loads(r[0])) for r in rows]

    async def ping(self) -> None:
        await self.db.ping()


class LocalImageStore:
    """Image records in SQLite, listed by id (the primary key), newest first."""

    def __init__(self, db: SqliteDB) -> None:
        self.db = db

    async def create(self, image: Image) -> None:
        await self.db.call(lambda c: self._save(c, image))

    @staticmethod
    def _save(c: sqlite3.Connection, image: Image) -> None:
        c.execute(
            "INSERT OR REPLACE INTO images (id, record, created_at) VALUES (?, ?, ?)",
            (image.id, json.dumps(image.to_record()), image.created_at),
        )

    @staticmethod
    def _load(c: sqlite3.Connection, image_id: str) -> Image | None:
        row = c.execute("SELECT record FROM images WHERE id = ?", (image_id,)).fetchone()
        return Image.from_record(json.loads(row[0])) if row else None

    async def get(self, image_id: str) -> Image | None:
        return await self.db.call(lambda c: self._load(c, image_id))

    async def list_page(self, limit: int, before: str | None = None) -> list[Image]:
        where, args = ("WHERE id < ?", [before]) if before is not None else ("", [])

        def page(c: sqlite3.Connection) -> list[Any]:
            query = f"SELECT record FROM images {where} ORDER BY id DESC LIMIT ?"
            return c.execute(query, [*args, limit]).fetchall()

        return [Image.from_record(json.loads(r[0])) for r in await self.db.call(page)]

    async def update(self, image_id: str, changes: dict[str, Any]) -> Image | None:
        def txn(c: sqlite3.Connection) -> Image | None:
            image = self._load(c, image_id)
            if image is not None and images.apply(image, changes):
                self._save(c, image)
            return image

        return await self.db.call(txn)

    async def delete(self, image_id: str) -> None:
        await self.db.call(lambda c: c.execute("DELETE FROM images WHERE id = ?", (image_id,)))

    async def ping(self) -> None:
        await self.db.ping()


class _MemoryDelivery:
    def __init__(
        self,
        job: Job,
        release: Callable[[], None],
        requeue: Callable[[Job], None],
        redelivered: bool = False,
    ) -> None:
        self.job = job
        self.redelivered = redelivered
        self._release = release
        self._requeue = requeue
        self._done = False

    async def ack(self) -> None:
        self._settle()

    async def reject(self, requeue: bool) -> None:
        if requeue and not self._done:
            self._requeue(self.job)
        self._settle()

    def _settle(self) -> None:
        if not self._done:
            self._done = True
            self._release()


class MemoryBroker:
    """In-process queues. Jobs live only as long as the process (tasks are re-queued)."""

    def __init__(self, queues: tuple[str, ...]) -> None:
        # (job, redelivered): a job put back by reject(requeue=True) is marked redelivered
        self._queues: dict[str, asyncio.Queue[tuple[Job, bool]]] = {
            q: asyncio.Queue() for q in queues
        }
        self.dead: list[tuple[str, Job, dict[str, Any]]] = []
        self._timers: set[asyncio.TimerHandle] = set()

    async def publish(self, queue: str, job: Job, delay: float = 0.0) -> None:
        q = self._queues[queue]
        if delay <= 0:
            q.put_nowait((job, False))
            return
        loop = asyncio.get_running_loop()

        def due() -> None:
            self._timers.discard(handle)
            q.put_nowait((job, False))

        handle = loop.call_later(delay, due)
        self._timers.add(handle)

    async def dead_letter(self, queue: str, job: Job, error: dict[str, Any]) -> None:
        self.dead.append((queue, job, error))

    async def consume(self, queue: str, prefetch: int) -> AsyncIterator[_MemoryDelivery]:
        unacked = asyncio.Semaphore(prefetch)
        q = self._queues[queue]

        def requeue(job: Job) -> None:
            q.put_nowait((job, True))

        while True:
            await unacked.acquire()
            try:
                job, redelivered = await q.get()
            except BaseException:
                unacked.release()
                raise
            yield _MemoryDelivery(job, unacked.release, requeue, redelivered)

    async def depth(self, queue: str) -> int:
        return self._queues[queue].qsize()

    async def ping(self) -> None:
        return None


class LocalInFlight:
    """Markers in this process (the embedded mode has one frontend)."""

    def __init__(self) -> None:
        self._owners: dict[str, float] = {}

    async def claim(self, key: str, ttl: float) -> bool:
        now = time.monotonic()
        if self._owners.get(key, 0.0) > now:
            return False
        self._owners[key] = now + ttl
        return True

    async def release(self, key: str) -> None:
        self._owners.pop(key, None)


class LocalEventBus:
    """Broadcast to the subscribers of this process."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[Event]] = set()

    async def publish(self, event: Event) -> None:
        for q in self._subscribers:
            q.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Event]]:
        q: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.add(q)

        async def stream() -> AsyncIterator[Event]:
            while True:
                yield await q.get()

        try:
            yield stream()
        finally:
            self._subscribers.discard(q)

    async def ping(self) -> None:
        return None


class LocalQuotas:
    def __init__(self, db: SqliteDB) -> None:
        self.db = db

    async def spend(self, name: str, limit: int) -> bool:
        def txn(c: sqlite3.Connection) -> bool:
            c.execute("INSERT OR IGNORE INTO quotas (name, used) VALUES (?, 0)", (name,))
            cur = c.execute(
                "UPDATE quotas SET used = used + 1 WHERE name = ? AND used < ?", (name, limit)
            )
            return cur.rowcount == 1

        return await self.db.call(txn)

    async def used(self, name: str) -> int:
        def read(c: sqlite3.Connection) -> int:
            row = c.execute("SELECT used FROM quotas WHERE name = ?", (name,)).fetchone()
            return int(row[0]) if row else 0

        return await self.db.call(read)
