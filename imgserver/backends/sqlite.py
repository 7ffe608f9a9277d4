"""The embedded state: the cache index, task and image records and API-key quotas, in one SQLite
database (``data/imgserver.sqlite3``) that survives a restart; unfinished tasks are queued again
at start-up (``processing.py``).

One connection, used from one thread (``SqliteDB.call``), so no call blocks the event loop and
each call is one transaction: a record's read-change-write (``records.advance``) is atomic.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..messages import Entry, decode_entry, encode_entry
from ..records import FINAL, ImageRecord, Task, advance, decode_image, decode_task, encode
from .base import Managed

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


class SqliteDB(Managed):
    """One SQLite connection used from one thread, so calls never block the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="imgserver-sqlite")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(self._executor, self._connect)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        return conn

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` in the database's thread."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("the SQLite database is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, conn)

    async def close(self) -> None:
        if self._conn is not None:
            await self.call(lambda c: c.close())
            self._conn = None
        self._executor.shutdown(wait=True)

    async def ping(self) -> None:
        await self.call(lambda c: c.execute("SELECT 1").fetchone())


class _OnDB(Managed):
    """A store on the database someone else opened (``open_backends``)."""

    def __init__(self, db: SqliteDB) -> None:
        self.db = db

    async def ping(self) -> None:
        await self.db.ping()


class SqliteIndex(_OnDB):
    async def get(self, key: str) -> Entry | None:
        row = await self.db.call(
            lambda c: c.execute("SELECT entry FROM cache WHERE key = ?", (key,)).fetchone()
        )
        return decode_entry(row[0]) if row else None

    async def set(self, key: str, entry: Entry) -> None:
        record = encode_entry(entry).decode()
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


class SqliteTaskStore(_OnDB):
    @staticmethod
    def _save(c: sqlite3.Connection, task: Task) -> None:
        c.execute(
            "INSERT OR REPLACE INTO tasks (id, record, status, created_at) VALUES (?, ?, ?, ?)",
            (task.id, encode(task).decode(), task.status, task.created_at),
        )

    @staticmethod
    def _load(c: sqlite3.Connection, task_id: str) -> Task | None:
        row = c.execute("SELECT record FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return decode_task(row[0]) if row else None

    async def create(self, task: Task) -> None:
        await self.db.call(lambda c: self._save(c, task))

    async def get(self, task_id: str) -> Task | None:
        return await self.db.call(lambda c: self._load(c, task_id))

    async def update(self, task_id: str, changes: Mapping[str, Any]) -> Task | None:
        def txn(c: sqlite3.Connection) -> Task | None:
            task = self._load(c, task_id)
            if task is not None and advance(task, changes):
                self._save(c, task)
            return task

        return await self.db.call(txn)

    async def unfinished(self) -> list[Task]:
        final = tuple(FINAL)
        marks = ",".join("?" * len(final))
        rows = await self.db.call(
            lambda c: c.execute(
                f"SELECT record FROM tasks WHERE status NOT IN ({marks}) ORDER BY created_at",
                final,
            ).fetchall()
        )
        return [decode_task(r[0]) for r in rows]


class SqliteImageStore(_OnDB):
    """Image records, listed by id (the primary key), newest first."""

    @staticmethod
    def _save(c: sqlite3.Connection, image: ImageRecord) -> None:
        c.execute(
            "INSERT OR REPLACE INTO images (id, record, created_at) VALUES (?, ?, ?)",
            (image.id, encode(image).decode(), image.created_at),
        )

    @staticmethod
    def _load(c: sqlite3.Connection, image_id: str) -> ImageRecord | None:
        row = c.execute("SELECT record FROM images WHERE id = ?", (image_id,)).fetchone()
        return decode_image(row[0]) if row else None

    async def create(self, image: ImageRecord) -> None:
        await self.db.call(lambda c: self._save(c, image))

    async def get(self, image_id: str) -> ImageRecord | None:
        return await self.db.call(lambda c: self._load(c, image_id))

    async def list_page(self, limit: int, before: str | None = None) -> list[ImageRecord]:
        where, args = ("WHERE id < ?", [before]) if before is not None else ("", [])

        def page(c: sqlite3.Connection) -> list[Any]:
            query = f"SELECT record FROM images {where} ORDER BY id DESC LIMIT ?"
            return c.execute(query, [*args, limit]).fetchall()

        return [decode_image(r[0]) for r in await self.db.call(page)]

    async def update(self, image_id: str, changes: Mapping[str, Any]) -> ImageRecord | None:
        def txn(c: sqlite3.Connection) -> ImageRecord | None:
            image = self._load(c, image_id)
            if image is not None and advance(image, changes):
                self._save(c, image)
            return image

        return await self.db.call(txn)

    async def delete(self, image_id: str) -> None:
        await self.db.call(lambda c: c.execute("DELETE FROM images WHERE id = ?", (image_id,)))


class SqliteQuotas(_OnDB):
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
