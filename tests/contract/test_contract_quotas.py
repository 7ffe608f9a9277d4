"""The quota contract, run against the embedded (SQLite) and the Redis counters."""

from __future__ import annotations

import asyncio

import pytest

from imgserver.backends.base import Quotas
from imgserver.backends.redis.quotas import RedisQuotas
from imgserver.backends.sqlite import SqliteQuotas
from imgserver.errors import Unavailable

from ..backend_fixtures import BACKENDS, RedisEnv, local_db, redis_env, redis_stopped, within

__all__ = ["local_db", "redis_env"]  # fixtures


@pytest.fixture(params=BACKENDS)
def quotas(request: pytest.FixtureRequest) -> tuple[Quotas, Quotas]:
    """Two handles on the same counters (two processes, for Redis)."""
    if request.param == "local":
        q = SqliteQuotas(request.getfixturevalue("local_db"))
        return q, q
    env: RedisEnv = request.getfixturevalue("redis_env")
    return RedisQuotas(env.client()), RedisQuotas(env.client())


async def test_spends_up_to_the_limit(quotas: tuple[Quotas, Quotas]) -> None:
    a, b = quotas
    assert [await a.spend("k", 3) for _ in range(5)] == [True, True, True, False, False]
    assert await b.used("k") == 3
    assert await b.spend("other", 1) and not await a.spend("other", 1)
    assert not await a.spend("zero", 0)
    assert await a.used("never") == 0


async def test_concurrent_spending_never_exceeds_the_limit(quotas: tuple[Quotas, Quotas]) -> None:
    a, b = quotas
    results = await asyncio.gather(*(q.spend("k", 25) for q in (a, b) * 40))
    assert results.count(True) == 25
    assert await a.used("k") == 25


async def test_redis_down_is_unavailable(redis_env: RedisEnv) -> None:
    q = RedisQuotas(redis_env.client())
    with redis_stopped(redis_env.server), within(1.5), pytest.raises(Unavailable):
        await q.spend("k", 10)
