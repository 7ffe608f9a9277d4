"""The InFlight contract, run against the embedded (in-process) and the Redis markers.

``markers`` holds two handles on the same markers: the same object in the embedded mode (one
frontend), two on separate Redis clients for Redis (two frontends).
"""

from __future__ import annotations

import asyncio

import pytest

from imgserver import names
from imgserver.backends.base import InFlight
from imgserver.backends.memory import MemoryInFlight
from imgserver.backends.redis.inflight import RedisInFlight
from imgserver.errors import Unavailable

from ..backend_fixtures import BACKENDS, RedisEnv, redis_env, redis_stopped, within
from ..servers import RedisServer

__all__ = ["redis_env"]  # fixtures


@pytest.fixture(params=BACKENDS)
def markers(request: pytest.FixtureRequest) -> tuple[InFlight, InFlight]:
    if request.param == "local":
        inflight = MemoryInFlight()
        return inflight, inflight
    env: RedisEnv = request.getfixturevalue("redis_env")
    return RedisInFlight(env.client()), RedisInFlight(env.client())


async def test_first_claim_wins(markers: tuple[InFlight, InFlight]) -> None:
    a, b = markers
    assert await a.claim("k1", 30) is True
    assert await b.claim("k1", 30) is False
    assert await a.claim("k1", 30) is False  # not re-entrant: the key is taken
    assert await b.claim("k2", 30) is True  # keys are independent


async def test_release_frees(markers: tuple[InFlight, InFlight]) -> None:
    a, b = markers
    assert await a.claim("k1", 30)
    await a.release("k1")
    assert await b.claim("k1", 30) is True
    await b.release("never-claimed")  # nothing to do


async def test_expiry_lets_a_new_owner_claim(markers: tuple[InFlight, InFlight]) -> None:
    a, b = markers
    assert await a.claim("k1", 0.2)
    assert await b.claim("k1", 0.2) is False
    await asyncio.sleep(0.3)
    assert await b.claim("k1", 30) is True
    assert await a.claim("k1", 0.2) is False


async def test_concurrent_claims_have_one_winner(markers: tuple[InFlight, InFlight]) -> None:
    results = await asyncio.gather(*(markers[i % 2].claim("k1", 30) for i in range(50)))
    assert results.count(True) == 1


# -- Redis only


async def test_redis_marker_expires_by_itself(redis_env: RedisEnv) -> None:
    client = redis_env.client()
    assert await RedisInFlight(client).claim("k1", 90)
    assert 0 < await client.pttl(names.REDIS_INFLIGHT.format(key="k1")) <= 90_000


async def test_redis_down_is_unavailable(redis_env: RedisEnv, redis_server: RedisServer) -> None:
    inflight = RedisInFlight(redis_env.client())
    assert await inflight.claim("k1", 30)
    with redis_stopped(redis_server):
        for call in (lambda: inflight.claim("k2", 30), lambda: inflight.release("k1")):
            with within(1.0), pytest.raises(Unavailable, match=r"^redis: "):
                await call()
    assert await inflight.claim("k1", 30)  # Redis came back empty
