"""The CacheIndex contract, run against the embedded (SQLite) and the Redis index."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import time
from collections.abc import Callable

import pytest

from imgserver import names
from imgserver.backends.base import CacheIndex
from imgserver.backends.redis.index import RedisIndex
from imgserver.backends.sqlite import SqliteIndex
from imgserver.errors import Failure, Unavailable
from imgserver.lifetime import DAY
from imgserver.messages import Entry
from imgserver.settings import Settings

from ..backend_fixtures import BACKENDS, RedisEnv, local_db, redis_env, redis_stopped, within
from ..servers import RedisServer

__all__ = ["local_db", "redis_env"]  # fixtures

SOURCE = "https://images.example.com/cat.jpg"
OTHER = "https://images.example.com/dog.png?size=large&v=2"


def entry(name: str, source: str = SOURCE, **kw: object) -> Entry:
    fields = {
        "path": names.result_path(name),
        "content_type": "image/webp",
        "size": 1234,
        "width": 300,
        "height": 200,
        "input": source,
        "created_at": 1_700_000_000.25,
    }
    fields.update(kw)
    return Entry(**fields)  # type: ignore[arg-type]


@pytest.fixture(params=BACKENDS)
def index(request: pytest.FixtureRequest) -> CacheIndex:
    if request.param == "local":
        return SqliteIndex(request.getfixturevalue("local_db"))
    env: RedisEnv = request.getfixturevalue("redis_env")
    return RedisIndex(env.client(), env.settings())


async def test_missing_key_is_none(index: CacheIndex) -> None:
    assert await index.get("nope") is None


async def test_set_get_round_trip(index: CacheIndex) -> None:
    e = entry("k1", content_type="image/avif", size=99, width=1, height=16384)
    await index.set("k1", e)
    assert await index.get("k1") == e


async def test_set_replaces(index: CacheIndex) -> None:
    await index.set("k1", entry("k1", size=1))
    await index.set("k1", entry("k1", size=2))
    got = await index.get("k1")
    assert got is not None and got.size == 2
    assert await index.keys_for_input(SOURCE) == ["k1"]


async def test_delete(index: CacheIndex) -> None:
    await index.set("k1", entry("k1"))
    await index.set("k2", entry("k2"))
    await index.delete("k1")
    assert await index.get("k1") is None
    assert await index.get("k2") == entry("k2")
    await index.delete("k1")  # again: nothing to do
    await index.delete("never-set")


async def test_keys_for_input(index: CacheIndex) -> None:
    for name in ("a1", "a2", "a3"):
        await index.set(name, entry(name))
    await index.set("b1", entry("b1", OTHER))
    assert sorted(await index.keys_for_input(SOURCE)) == ["a1", "a2", "a3"]
    assert await index.keys_for_input(OTHER) == ["b1"]
    assert await index.keys_for_input("https://images.example.com/none.jpg") == []


async def test_deleted_keys_leave_keys_for_input(index: CacheIndex) -> None:
    await index.set("a1", entry("a1"))
    await index.set("a2", entry("a2"))
    await index.delete("a1")
    assert await index.keys_for_input(SOURCE) == ["a2"]
    await index.delete("a2")
    assert await index.keys_for_input(SOURCE) == []


async def test_unusual_inputs(index: CacheIndex) -> None:
    sources = ["https://example.com/" + "x" * 3000, "https://exämple.com/ü ñ?a=1&b=%20", ""]
    for i, source in enumerate(sources):
        await index.set(f"k{i}", entry(f"k{i}", source))
    for i, source in enumerate(sources):
        assert await index.keys_for_input(source) == [f"k{i}"]
        assert await index.get(f"k{i}") == entry(f"k{i}", source)


async def test_ping(index: CacheIndex) -> None:
    await index.ping()


# -- Redis only


def _result_key(key: str) -> str:
    return names.REDIS_RESULT.format(key=key)


def _input_key(source: str) -> str:
    return names.REDIS_INPUT.format(digest=hashlib.sha256(source.encode()).hexdigest())


async def test_redis_layout_and_no_expiry_by_default(redis_env: RedisEnv) -> None:
    client = redis_env.client()
    index = RedisIndex(client, redis_env.settings())
    await index.set("k1", entry("k1"))
    assert await client.ttl(_result_key("k1")) == -1
    assert await client.smembers(_input_key(SOURCE)) == {b"k1"}


async def test_redis_index_ttl(redis_env: RedisEnv) -> None:
    client = redis_env.client()
    index = RedisIndex(client, redis_env.settings(index_ttl=60))
    await index.set("k1", entry("k1"))
    assert 0 < await client.ttl(_result_key("k1")) <= 60
    assert 0 < await client.ttl(_input_key(SOURCE)) <= 60


async def test_redis_expired_entries_leave_keys_for_input(redis_env: RedisEnv) -> None:
    client = redis_env.client()
    index = RedisIndex(client, redis_env.settings(index_ttl=60))
    await index.set("k1", entry("k1"))
    await index.set("k2", entry("k2"))
    await client.delete(_result_key("k1"))  # as if it expired
    assert await index.keys_for_input(SOURCE) == ["k2"]
    assert await client.smembers(_input_key(SOURCE)) == {b"k2"}  # pruned


async def test_redis_index_shared_between_clients(redis_env: RedisEnv) -> None:
    a = RedisIndex(redis_env.client(), redis_env.settings())
    b = RedisIndex(redis_env.client(), redis_env.settings())
    await a.set("k1", entry("k1"))
    assert await b.get("k1") == entry("k1")
    await b.delete("k1")
    assert await a.get("k1") is None


async def test_redis_down_is_unavailable(redis_env: RedisEnv, redis_server: RedisServer) -> None:
    index = RedisIndex(redis_env.client(), redis_env.settings())
    await index.set("k1", entry("k1"))  # a pooled connection exists, and goes stale
    with redis_stopped(redis_server):
        for call in (
            lambda: index.get("k1"),
            lambda: index.set("k2", entry("k2")),
            lambda: index.delete("k1"),
            lambda: index.keys_for_input(SOURCE),
            index.ping,
        ):
            with within(1.0), pytest.raises(Unavailable, match=r"^redis: "):
                await call()
    # Back up (empty: it keeps nothing on disk): the same client works again at once.
    assert await index.get("k1") is None
    await index.set("k1", entry("k1"))
    assert await index.get("k1") == entry("k1")


async def test_redis_hung_is_unavailable(redis_env: RedisEnv, redis_server: RedisServer) -> None:
    """A Redis that accepts nothing more (here: stopped with SIGSTOP) times out quickly."""
    index = RedisIndex(redis_env.client(), redis_env.settings())
    await index.set("k1", entry("k1"))
    assert redis_server.proc is not None
    redis_server.proc.send_signal(signal.SIGSTOP)
    try:
        with within(1.0), pytest.raises(Unavailable, match=r"^redis: timed out"):
            await index.get("k1")
    finally:
        redis_server.proc.send_signal(signal.SIGCONT)
    assert await index.get("k1") == entry("k1")


# -- a results lifetime: entries expire with their results, counted from their creation


@pytest.fixture(params=BACKENDS)
def make_index(request: pytest.FixtureRequest) -> Callable[..., CacheIndex]:
    """Factory: make_index(**settings) -> an index of that kind, on the same store each time."""
    if request.param == "local":
        db = request.getfixturevalue("local_db")
        return lambda **kw: SqliteIndex(db, Settings(**kw).lifetime)
    env: RedisEnv = request.getfixturevalue("redis_env")
    return lambda **kw: RedisIndex(env.client(), env.settings(**kw))


async def test_an_expired_result_is_neither_indexed_nor_returned(
    make_index: Callable[..., CacheIndex],
) -> None:
    now = time.time()
    index = make_index(results_lifetime=2)
    await index.set("young", entry("young", created_at=now - 2 * DAY + 60))
    await index.set("old", entry("old", created_at=now - 2 * DAY - 1))
    assert await index.get("young") == entry("young", created_at=now - 2 * DAY + 60)
    assert await index.get("old") is None
    # Written before a lifetime was configured (so without an expiry): not returned either.
    await make_index().set("legacy", entry("legacy", created_at=now - 3 * DAY))
    assert await index.get("legacy") is None
    assert await make_index().get("legacy") is not None  # forever: still there


async def test_redis_entries_expire_with_their_results(redis_env: RedisEnv) -> None:
    client = redis_env.client()
    now = time.time()
    index = RedisIndex(client, redis_env.settings(results_lifetime=2))
    await index.set("made", entry("made", created_at=now))
    # indexed again a day after its object was written: one day left, not two
    await index.set("found", entry("found", created_at=now - DAY))
    assert 2 * DAY - 5 <= await client.ttl(_result_key("made")) <= 2 * DAY
    assert DAY - 5 <= await client.ttl(_result_key("found")) <= DAY
    assert 2 * DAY - 5 <= await client.ttl(_input_key(SOURCE)) <= 2 * DAY  # outlives both

    capped = RedisIndex(client, redis_env.settings(results_lifetime=2, index_ttl=600))
    await capped.set("made", entry("made", created_at=now))
    assert 590 <= await client.ttl(_result_key("made")) <= 600
    assert 590 <= await client.ttl(_input_key(SOURCE)) <= 600


async def test_sqlite_sweep_deletes_the_entries_of_expired_results(local_db) -> None:
    now = time.time()
    index = SqliteIndex(local_db, Settings(results_lifetime=1).lifetime)
    await index.set("young", entry("young", created_at=now - DAY + 60))
    await SqliteIndex(local_db).set("old", entry("old", created_at=now - DAY - 60))
    assert await index.sweep(now) == 1
    assert await SqliteIndex(local_db).get("old") is None  # gone, not only hidden
    assert await index.get("young") is not None
    assert await SqliteIndex(local_db).sweep(now + 100 * DAY) == 0  # forever: no sweep


# -- the failure memory: every frontend answers a failed source at once, for a while

NOT_FOUND = Failure("source_not_found", "the source answered 404", {"upstream_status": 404})
TOO_MANY = Failure("too_many_pixels", "the image has too many pixels")


async def test_a_remembered_failure_is_found_under_its_scope(index: CacheIndex) -> None:
    assert await index.failure([names.source_scope(SOURCE)]) is None
    await index.remember_failure(names.source_scope(SOURCE), NOT_FOUND, 60, SOURCE)
    await index.remember_failure(names.result_scope("k1"), TOO_MANY, 60, OTHER)
    assert await index.failure([names.source_scope(SOURCE)]) == NOT_FOUND
    assert await index.failure([names.result_scope("k1")]) == TOO_MANY
    # the first scope that has one wins; none of them: None
    both = [names.result_scope("k1"), names.source_scope(SOURCE)]
    assert await index.failure(both) == TOO_MANY
    assert await index.failure(both[::-1]) == NOT_FOUND
    assert await index.failure([names.source_scope(OTHER), names.result_scope("k2")]) is None
    assert await index.failure([]) is None
    # remembered again: replaced
    await index.remember_failure(names.source_scope(SOURCE), TOO_MANY, 60, SOURCE)
    assert await index.failure([names.source_scope(SOURCE)]) == TOO_MANY


async def test_a_remembered_failure_expires(index: CacheIndex) -> None:
    await index.remember_failure(names.source_scope(SOURCE), NOT_FOUND, 0.3, SOURCE)
    assert await index.failure([names.source_scope(SOURCE)]) == NOT_FOUND
    await asyncio.sleep(0.4)
    assert await index.failure([names.source_scope(SOURCE)]) is None
    assert await index.forget_failures(SOURCE) == 0  # nothing left to forget


async def test_forget_failures_drops_every_failure_filed_under_a_source(
    index: CacheIndex,
) -> None:
    await index.remember_failure(names.source_scope(SOURCE), NOT_FOUND, 60, SOURCE)
    await index.remember_failure(names.result_scope("k1"), TOO_MANY, 60, SOURCE)
    await index.remember_failure(names.result_scope("k2"), TOO_MANY, 60, OTHER)
    assert await index.forget_failures(SOURCE) == 2
    assert await index.failure([names.source_scope(SOURCE), names.result_scope("k1")]) is None
    assert await index.failure([names.result_scope("k2")]) == TOO_MANY
    assert await index.forget_failures(SOURCE) == 0


async def test_redis_failures_are_shared_and_expire_in_redis(redis_env: RedisEnv) -> None:
    client = redis_env.client()
    a = RedisIndex(client, redis_env.settings())
    b = RedisIndex(redis_env.client(), redis_env.settings())
    await a.remember_failure(names.source_scope(SOURCE), NOT_FOUND, 60, SOURCE)
    assert await b.failure([names.source_scope(SOURCE)]) == NOT_FOUND
    key = names.REDIS_FAILURE.format(scope=names.source_scope(SOURCE))
    assert 0 < await client.pttl(key) <= 60_000
    assert await b.forget_failures(SOURCE) == 1
    assert await a.failure([names.source_scope(SOURCE)]) is None
