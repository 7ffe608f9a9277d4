"""API-key quotas in Redis: a counter per key (``REDIS_QUOTA``), spent by a Lua script that
checks and increments in one step, so concurrent frontends never overspend."""

from __future__ import annotations

from redis.asyncio import Redis

from ... import names
from .client import OnRedis, translated

# Increment unless the limit is reached; returns 1 when spent, 0 when over the quota.
_SPEND_QUOTA = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
return 1
"""


class RedisQuotas(OnRedis):
    def __init__(self, client: Redis) -> None:
        super().__init__(client)
        self._spend = client.register_script(_SPEND_QUOTA)

    async def spend(self, name: str, limit: int) -> bool:
        with translated():
            return bool(await self._spend(keys=[names.REDIS_QUOTA.format(name=name)], args=[limit]))

    async def used(self, name: str) -> int:
        with translated():
            value = await self.client.get(names.REDIS_QUOTA.format(name=name))
        return int(value or 0)
