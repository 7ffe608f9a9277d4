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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..errors import Failure
from ..lifetime import Lifetime
from ..messages import Entry, decode_entry, decode_failure, encode_entry, encode_failure
from ..records import (
    FINAL,
    ImageRecord,
    Record,
    Task,
    advance,
    decode_image,
    decode_task,
    encode,
)
from .base import Managed

T = TypeVar("T")
Rec = TypeVar("Rec", bound=Record)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY, entry TEXT NOT NULL, input TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_input ON cache (input);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, record TEXT NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status);
CREATE TABLE IF NOT EXISTS task_leases (id TEXT PRIMARY KEY, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS failures (
    scope TEXT PRIMARY KEY, source TEXT NOT NULL, failure TEXT NOT NULL, until REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS failures_source ON failures (source);
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
    """Entries with their result's creation time (``created_at``): with a results lifetime,
    an expired one is not returned, and ``sweep`` deletes them."""

    def __init__(self, db: SqliteDB, lifetime: Lifetime | None = None) -> None:
        super().__init__(db)
        self.lifetime = lifetime or Lifetime()

    async def get(self, key: str) -> Entry | None:
        row = await self.db.call(
            lambda c: c.execute("SELECT entry FROM cache WHERE key = ?", (key,)).fetchone()
        )
        entry = decode_entry(row[0]) if row else None
        if entry is None or self.lifetime.expired(entry.created_at):
            return None
        return entry

    async def set(self, key: str, entry: Entry) -> None:
        if self.lifetime.expired(entry.created_at):
            await self.delete(key)
            return
        record = encode_entry(entry).decode()
        await self.db.call(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO cache (key, entry, input, created_at) VALUES (?, ?, ?, ?)",
                (key, record, entry.input, entry.created_at or time.time()),
            )
        )

    async def sweep(self, now: float | None = None) -> int:
        """Delete the entries of expired results (none without a results lifetime); how many."""
        if not self.lifetime.days:
            return 0
        before = (time.time() if now is None else now) - self.lifetime.seconds
        return await self.db.call(
            lambda c: c.execute("DELETE FROM cache WHERE created_at <= ?", (before,)).rowcount
        )

    async def delete(self, key: str) -> None:
        await self.db.call(lambda c: c.execute("DELETE FROM cache WHERE key = ?", (key,)))

    async def keys_for_input(self, source: str) -> list[str]:
        rows = await self.db.call(
            lambda c: c.execute("SELECT key FROM cache WHERE input = ?", (source,)).fetchall()
        )
        return [r[0] for r in rows]

    async def remember_failure(self, scope: str, failure: Failure, ttl: float, source: str) -> None:
        record = encode_failure(failure).decode()

        def txn(c: sqlite3.Connection) -> None:
            now = time.time()
            c.execute("DELETE FROM failures WHERE until <= ?", (now,))  # the expired ones
            c.execute(
                "INSERT OR REPLACE INTO failures (scope, source, failure, until) "
                "VALUES (?, ?, ?, ?)",
                (scope, source, record, now + ttl),
            )

        await self.db.call(txn)

    async def failure(self, scopes: Sequence[str]) -> Failure | None:
        if not scopes:
            return None
        marks = ",".join("?" * len(scopes))
        query = f"SELECT scope, failure FROM failures WHERE scope IN ({marks}) AND until > ?"
        rows = await self.db.call(lambda c: c.execute(query, (*scopes, time.time())).fetchall())
        found = dict(rows)
        kept = next((found[s] for s in scopes if s in found), None)
        return decode_failure(kept) if kept is not None else None

    async def forget_failures(self, source: str) -> int:
        def txn(c: sqlite3.Connection) -> int:
            kept = "FROM failures WHERE source = ? AND until > ?"
            count = c.execute(f"SELECT COUNT(*) {kept}", (source, time.time())).fetchone()[0]
            c.execute("DELETE FROM failures WHERE source = ?", (source,))
            return int(count)

        return await self.db.call(txn)


class _Records(_OnDB, Generic[Rec]):
    """A table of records, each JSON in ``record`` beside the columns it is queried by; a
    change is read, applied (``records.advance``) and written in one call to the database's
    thread, so it is atomic."""

    def __init__(
        self, db: SqliteDB, table: str, columns: tuple[str, ...], decode: Callable[[str], Rec]
    ) -> None:
        super().__init__(db)
        names = ("id", "record", *columns)
        self._insert = (
            f"INSERT OR REPLACE INTO {table} ({', '.join(names)}) "
            f"VALUES ({', '.join('?' * len(names))})"
        )
        self._select = f"SELECT record FROM {table} WHERE id = ?"
        self._columns = columns
        self._decode = decode

    def _save(self, c: sqlite3.Connection, record: Rec) -> None:
        extra = tuple(getattr(record, name) for name in self._columns)
        c.execute(self._insert, (record.id, encode(record).decode(), *extra))

    def _load(self, c: sqlite3.Connection, record_id: str) -> Rec | None:
        row = c.execute(self._select, (record_id,)).fetchone()
        return self._decode(row[0]) if row else None

    async def create(self, record: Rec) -> None:
        await self.db.call(lambda c: self._save(c, record))

    async def get(self, record_id: str) -> Rec | None:
        return await self.db.call(lambda c: self._load(c, record_id))

    async def update(self, record_id: str, changes: Mapping[str, Any]) -> Rec | None:
        def txn(c: sqlite3.Connection) -> Rec | None:
            record = self._load(c, record_id)
            if record is not None and advance(record, changes):
                self._save(c, record)
            return record

        return await self.db.call(txn)


class SqliteTaskStore(_Records[Task]):
    """Tasks; a provisional one (``create(lease=…)``) has a row in ``task_leases`` until it
    is changed, and is deleted when it is next read after its lease ended."""

    def __init__(self, db: SqliteDB) -> None:
        super().__init__(db, "tasks", ("status", "created_at"), decode_task)

    async def create(self, record: Task, lease: float | None = None) -> None:
        def txn(c: sqlite3.Connection) -> None:
            self._save(c, record)
            if lease is not None:
                c.execute(
                    "INSERT INTO task_leases (id, until) VALUES (?, ?)",
                    (record.id, time.time() + lease),
                )

        await self.db.call(txn)

    def _save(self, c: sqlite3.Connection, record: Task) -> None:
        super()._save(c, record)
        c.execute("DELETE FROM task_leases WHERE id = ?", (record.id,))  # a change confirms

    def _load(self, c: sqlite3.Connection, record_id: str) -> Task | None:
        self._lapse(c)
        return super()._load(c, record_id)

    @staticmethod
    def _lapse(c: sqlite3.Connection) -> None:
        """Delete the provisional tasks whose lease has ended."""
        lapsed = "SELECT id FROM task_leases WHERE until <= ?"
        now = (time.time(),)
        if c.execute(lapsed + " LIMIT 1", now).fetchone() is None:  # (reads write nothing)
            return
        c.execute(f"DELETE FROM tasks WHERE id IN ({lapsed})", now)
        c.execute("DELETE FROM task_leases WHERE until <= ?", now)

    async def unfinished(self) -> list[Task]:
        final = tuple(FINAL)
        marks = ",".join("?" * len(final))

        def read(c: sqlite3.Connection) -> list[Any]:
            self._lapse(c)
            query = f"SELECT record FROM tasks WHERE status NOT IN ({marks}) ORDER BY created_at"
            return c.execute(query, final).fetchall()

        return [decode_task(r[0]) for r in await self.db.call(read)]


class SqliteImageStore(_Records[ImageRecord]):
    """Image records, listed by id (the primary key), newest first."""

    def __init__(self, db: SqliteDB) -> None:
        super().__init__(db, "images", ("created_at",), decode_image)

    async def list_page(self, limit: int, before: str | None = None) -> list[ImageRecord]:
        where, args = ("WHERE id < ?", [before]) if before is not None else ("", [])

        def page(c: sqlite3.Connection) -> list[Any]:
            query = f"SELECT record FROM images {where} ORDER BY id DESC LIMIT ?"
            return c.execute(query, [*args, limit]).fetchall()

        return [decode_image(r[0]) for r in await self.db.call(page)]

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
