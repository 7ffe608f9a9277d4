"""Processing quotas of API keys: how many results each key has had computed.

``spend(name, limit)`` counts one computation against a key and says whether it was within the
quota; it is atomic across processes (one SQLite transaction / one Redis script). The count
never resets by itself: give a key a higher quota, or rotate to a new key.
"""

from __future__ import annotations

import sqlite3
from typing import Protocol

from redis.asyncio import Redis

from ..names import REDIS_QUOTA
from .local import SqliteDB
from .redis import translated

_TABLE = "CREATE TABLE IF NOT EXISTS quotas (name TEXT PRIMARY KEY, used INTEGER NOT NULL)"

# Increment unless the limit is reached; returns 1 when spent, 0 when over the quota.
_SPEND = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
return 1
"""


class Quotas(Protocol):
    async def spend(self, name: str, limit: int) -> bool:
        """Count one computation for key ``name``; False (nothing counted) if over ``limit``."""
        ...

    async def used(self, name: str) -> int: ...


def open_quotas(backends: object) -> Quotas:
    """Quotas kept beside the cache index: in Redis, or in the embedded SQLite database."""
    index = getattr(backends, "index", None)
    client = getattr(index, "client", None)
    if isinstance(client, Redis):
        return RedisQuotas(client)
    db = getattr(index, "db", None)
    assert isinstance(db, SqliteDB), "an index backend without Redis or SQLite underneath"
    return LocalQuotas(db)


class LocalQuotas:
    def __init__(self, db: SqliteDB) -> None:
        self.db = db

    async def spend(self, name: str, limit: int) -> bool:
        def txn(c: sqlite3.Connection) -> bool:
            c.execute(_TABLE)
            c.execute("INSERT OR IGNORE INTO quotas (name, used) VALUES (?, 0)", (name,))
            cur = c.execute(
                "UPDATE quotas SET used = used + 1 WHERE name = ? AND used < ?", (name, limit)
            )
            return cur.rowcount == 1

        return await self.db.call(txn)

    async def used(self, name: str) -> int:
        def read(c: sqlite3.Connection) -> int:
            c.execute(_TABLE)
            row = c.execute("SELECT used FROM quotas WHERE name = ?", (name,)).fetchone()
            return int(row[0]) if row else 0

        return await self.db.call(read)


class RedisQuotas:
    def __init__(self, client: Redis) -> None:
        self.client = client
        self._spend = client.register_script(_SPEND)

    async def spend(self, name: str, limit: int) -> bool:
        with translated():
            return bool(await self._spend(keys=[REDIS_QUOTA.format(name=name)], args=[limit]))

    async def used(self, name: str) -> int:
        with translated():
            value = await self.client.get(REDIS_QUOTA.format(name=name))
        return int(value or 0)
