"""The InFlight contract, run against the embedded (in-process) and the Redis leases.

``markers`` holds two handles on the same leases: the same object in the embedded mode (one
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
    assert await a.claim("k1", "t1", 30) is True
    assert await b.claim("k1", "t2", 30) is False
    assert await a.holder("k1") == "t1" and await b.holder("k1") == "t1"
    assert await b.claim("k2", "t2", 30) is True  # keys are independent
    assert await a.holder("k3") is None


async def test_the_holder_claims_again_to_renew(markers: tuple[InFlight, InFlight]) -> None:
    a, b = markers
    assert await a.claim("k1", "t1", 0.2)
    assert await a.claim("k1", "t1", 30) is True  # re-entrant for its holder: renewed
    await asyncio.sleep(0.3)  # past the first expiry
    assert await b.holder("k1") == "t1"


async def test_a_hand_over_succeeds_the_named_holder(markers: tuple[InFlight, InFlight]) -> None:
    a, b = markers
    assert await a.claim("k1", "frontend", 30)
    assert await b.claim("k1", "worker", 30, succeeding="someone-else") is False
    assert await b.claim("k1", "worker", 30, succeeding="frontend") is True
    assert await a.holder("k1") == "worker"
    assert await a.renew("k1", "frontend", 30) is False  # the frontend's lease is over
    assert await b.claim("k2", "worker", 30, succeeding="frontend") is True  # free: taken


async def test_only_the_holder_renews(markers: tuple[InFlight, InFlight]) -> None:
    a, b = markers
    assert await a.claim("k1", "t1", 0.2)
    assert await a.claim("k2", "t1", 0.2)
    assert await b.renew("k1", "t2", 30) is False
    assert await a.renew("k2", "t1", 30) is True
    await asyncio.sleep(0.3)  # past the first expiry
    assert await b.holder("k1") is None  # not renewed by another token: lapsed
    assert await b.holder("k2") == "t1"
    assert await b.claim("k2", "t2", 30) is False
    assert await a.renew("k1", "t1", 30) is False  # too late: it lapsed
    assert await a.holder("k1") is None  # and renewing creates nothing


async def test_only_the_holder_releases(markers: tuple[InFlight, InFlight]) -> None:
    a, b = markers
    assert await a.claim("k1", "t1", 30)
    await b.release("k1", "t2")
    assert await b.holder("k1") == "t1"
    await a.release("k1", "t1")
    assert await b.holder("k1") is None
    assert await b.claim("k1", "t2", 30) is True
    await b.release("never-claimed", "t2")  # nothing to do


async def test_a_lapsed_lease_is_anyones(markers: tuple[InFlight, InFlight]) -> None:
    a, b = markers
    assert await a.claim("k1", "t1", 0.2)
    assert await b.claim("k1", "t2", 0.2) is False
    await asyncio.sleep(0.3)
    assert await b.claim("k1", "t2", 30) is True
    assert await a.claim("k1", "t1", 30) is False


async def test_concurrent_claims_have_one_winner(markers: tuple[InFlight, InFlight]) -> None:
    results = await asyncio.gather(*(markers[i % 2].claim("k1", f"t{i}", 30) for i in range(50)))
    assert results.count(True) == 1


# -- Redis only


async def test_redis_lease_expires_by_itself(redis_env: RedisEnv) -> None:
    client = redis_env.client()
    inflight = RedisInFlight(client)
    name = names.REDIS_INFLIGHT.format(key="k1")
    assert await inflight.claim("k1", "t1", 10)
    assert 0 < await client.pttl(name) <= 10_000
    assert await inflight.renew("k1", "t1", 90)
    assert 10_000 < await client.pttl(name) <= 90_000


async def test_redis_scripts_survive_a_script_flush(redis_env: RedisEnv) -> None:
    client = redis_env.client()
    inflight = RedisInFlight(client)
    assert await inflight.claim("k1", "t1", 30)
    await client.script_flush()  # as a Redis restart would
    assert await inflight.renew("k1", "t1", 30)
    await inflight.release("k1", "t1")
    assert await inflight.claim("k1", "t2", 30)


async def test_redis_down_is_unavailable(redis_env: RedisEnv, redis_server: RedisServer) -> None:
    inflight = RedisInFlight(redis_env.client())
    assert await inflight.claim("k1", "t1", 30)
    with redis_stopped(redis_server):
        for call in (
            lambda: inflight.claim("k2", "t1", 30),
            lambda: inflight.renew("k1", "t1", 30),
            lambda: inflight.holder("k1"),
            lambda: inflight.release("k1", "t1"),
        ):
            with within(1.0), pytest.raises(Unavailable, match=r"^redis: "):
                await call()
    assert await inflight.claim("k1", "t2", 30)  # Redis came back empty
