"""In-flight leases in Redis: the holder's token under ``REDIS_INFLIGHT``, with an expiry (``PX``).
Taking, renewing and releasing compare the stored token first, in one Lua script each, so a
caller never changes a lease another token holds (Redis runs a script atomically)."""

from __future__ import annotations

from redis.asyncio import Redis

from ... import names
from .client import OnRedis, text, translated_call

# KEYS[1] lease; ARGV token, ttl in ms, the token it may succeed ('' : none)
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] and (ARGV[3] == '' or held ~= ARGV[3]) then
    return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
# KEYS[1] lease; ARGV token, ttl in ms
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS[1] lease; ARGV token
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisInFlight(OnRedis):
    """Leases shared by every frontend and worker, lapsing by themselves."""

    def __init__(self, client: Redis) -> None:
        super().__init__(client)
        # EVALSHA, loading the script again if Redis lost it (a restart)
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    @translated_call
    async def claim(self, key: str, token: str, ttl: float, succeeding: str = "") -> bool:
        name = names.REDIS_INFLIGHT.format(key=key)
        return bool(await self._claim(keys=[name], args=[token, _ms(ttl), succeeding]))

    @translated_call
    async def renew(self, key: str, token: str, ttl: float) -> bool:
        name = names.REDIS_INFLIGHT.format(key=key)
        return bool(await self._renew(keys=[name], args=[token, _ms(ttl)]))

    @translated_call
    async def holder(self, key: str) -> str | None:
        held = await self.client.get(names.REDIS_INFLIGHT.format(key=key))
        return None if held is None else text(held)

    @translated_call
    async def release(self, key: str, token: str) -> None:
        await self._release(keys=[names.REDIS_INFLIGHT.format(key=key)], args=[token])
