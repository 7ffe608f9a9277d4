"""Single-flight markers in Redis: ``SET NX PX`` under ``REDIS_INFLIGHT``, so a crashed owner
cannot block a key for longer than the marker's expiry; release is ``DEL``."""

from __future__ import annotations

from ... import names
from .client import OnRedis, translated_call


class RedisInFlight(OnRedis):
    """Single-flight markers shared by every frontend, expiring by themselves."""

    @translated_call
    async def claim(self, key: str, ttl: float) -> bool:
        name = names.REDIS_INFLIGHT.format(key=key)
        return bool(await self.client.set(name, b"1", nx=True, px=max(1, round(ttl * 1000))))

    @translated_call
    async def release(self, key: str) -> None:
        await self.client.delete(names.REDIS_INFLIGHT.format(key=key))
