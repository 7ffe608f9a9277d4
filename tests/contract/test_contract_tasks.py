"""The TaskStore contract, run against the embedded (SQLite) and the Redis task store.

The concurrency tests share the work among ``stores``: one store for the embedded mode, two
stores on two separate Redis clients (connection pools) for Redis, as two processes would.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from imgserver import names
from imgserver.backends.base import TaskStore
from imgserver.backends.redis.records import RedisTaskStore
from imgserver.backends.sqlite import SqliteTaskStore
from imgserver.errors import Unavailable
from imgserver.records import (
    COMPLETED,
    COMPLETED_WITH_ERRORS,
    FAILED,
    FINAL,
    PENDING,
    PROCESSING,
    STATUSES,
    Task,
    new_id,
)

from ..backend_fixtures import BACKENDS, RedisEnv, local_db, redis_env, redis_stopped, within
from ..servers import RedisServer

__all__ = ["local_db", "redis_env"]  # fixtures


def make_task(created_at: float = 1_700_000_000.5, **kw: object) -> Task:
    fields: dict[str, object] = {
        "id": new_id(),
        "graph": "resize",
        "input": "https://example.com/a.jpg",
        "params": {"width": 300, "upscale": False, "fit": "cover", "sigma": 1.5},
        "format": "webp",
        "key": "k" * 64,
        "digest": "d" * 16,
        "created_at": created_at,
    }
    fields.update(kw)
    return Task(**fields)  # type: ignore[arg-type]


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest) -> list[TaskStore]:
    if request.param == "local":
        return [SqliteTaskStore(request.getfixturevalue("local_db"))]
    env: RedisEnv = request.getfixturevalue("redis_env")
    return [RedisTaskStore(env.client(), env.settings()) for _ in range(2)]


@pytest.fixture
def store(stores: list[TaskStore]) -> TaskStore:
    return stores[0]


async def test_create_get_round_trip(store: TaskStore) -> None:
    task = make_task(image_id="img1", warnings=["w"], timings={"queued": 1.5})
    await store.create(task)
    got = await store.get(task.id)
    assert got is not None and got == task


async def test_missing_task(store: TaskStore) -> None:
    assert await store.get("nope") is None
    assert await store.update("nope", {"status": PROCESSING}) is None
    assert await store.get("nope") is None


async def test_update_applies_changes(store: TaskStore) -> None:
    task = make_task()
    await store.create(task)
    after = await store.update(task.id, {"status": PROCESSING, "timings": {"started": 2.0}})
    assert after is not None and after.status == PROCESSING
    after = await store.update(task.id, {"timings": {"fetched": 3.0}})
    assert after is not None and after.timings == {
        "queued": task.created_at,
        "started": 2.0,
        "fetched": 3.0,
    }
    after = await store.update(
        task.id, {"status": COMPLETED_WITH_ERRORS, "warnings": ["icc"], "result_path": "results/k"}
    )
    assert after is not None and after.updated_at > task.updated_at
    got = await store.get(task.id)
    assert got is not None and got == after
    assert (got.status, got.warnings, got.result_path) == (
        COMPLETED_WITH_ERRORS,
        ["icc"],
        "results/k",
    )


async def test_status_never_goes_back(store: TaskStore) -> None:
    task = make_task()
    await store.create(task)
    await store.update(task.id, {"status": PROCESSING})
    after = await store.update(task.id, {"status": PENDING, "image_id": "x"})
    assert after is not None and (after.status, after.image_id) == (PROCESSING, None)
    after = await store.update(task.id, {"status": PROCESSING, "timings": {"started": 9.0}})
    assert after is not None and after.timings["started"] == 9.0  # a redelivery repeats it


@pytest.mark.parametrize("final", sorted(FINAL))
async def test_final_status_is_never_left(store: TaskStore, final: str) -> None:
    task = make_task()
    await store.create(task)
    done = await store.update(task.id, {"status": final})
    assert done is not None
    for changes in (
        {"status": PROCESSING},
        {"status": COMPLETED},
        {"status": FAILED},
        {"result_path": "x"},
        {"timings": {"stored": 1.0}},
    ):
        after = await store.update(task.id, changes)
        assert after is not None and after == done
    got = await store.get(task.id)
    assert got is not None and got == done


async def test_bad_changes_are_refused(store: TaskStore) -> None:
    task = make_task()
    await store.create(task)
    with pytest.raises(ValueError, match="status"):
        await store.update(task.id, {"status": "exploded"})
    with pytest.raises(ValueError, match="field"):
        await store.update(task.id, {"colour": "red"})
    got = await store.get(task.id)
    assert got is not None and got == task


async def test_concurrent_updates_lose_nothing(stores: list[TaskStore]) -> None:
    task = make_task()
    await stores[0].create(task)
    n = 60

    async def one(i: int) -> None:
        changes: dict[str, object] = {"timings": {f"t{i}": float(i)}}
        if i % 3 == 0:
            changes["status"] = PROCESSING
        await stores[i % len(stores)].update(task.id, changes)

    await asyncio.gather(*(one(i) for i in range(n)))
    got = await stores[-1].get(task.id)
    assert got is not None and got.status == PROCESSING
    assert got.timings == {"queued": task.created_at, **{f"t{i}": float(i) for i in range(n)}}


async def test_concurrent_statuses_move_forward_only(stores: list[TaskStore]) -> None:
    task = make_task()
    await stores[0].create(task)
    n = 40
    finished = asyncio.Event()
    seen: list[str] = []

    async def watch() -> None:
        while not finished.is_set():
            got = await stores[-1].get(task.id)
            assert got is not None
            seen.append(got.status)
            await asyncio.sleep(0)

    async def one(i: int) -> Task | None:
        status = STATUSES[i % len(STATUSES)]
        changes: dict[str, object] = {"status": status}
        if status == FAILED:
            changes["error"] = {"code": "source_unreachable", "message": f"by {i}"}
        elif status in FINAL:
            changes["result_path"] = f"results/by-{i}"
        await asyncio.sleep(random.uniform(0, 0.01))
        return await stores[i % len(stores)].update(task.id, changes)

    watcher = asyncio.create_task(watch())
    results = await asyncio.gather(*(one(i) for i in range(n)))
    finished.set()
    await watcher

    got = await stores[0].get(task.id)
    assert got is not None and got.status in FINAL
    # The winner's fields, and only its: no mix of two writers.
    if got.status == FAILED:
        assert got.result_path is None and got.error is not None
        winner = int(got.error.message.removeprefix("by "))
    else:
        assert got.error is None and got.result_path is not None
        winner = int(got.result_path.removeprefix("results/by-"))
    assert STATUSES[winner % len(STATUSES)] == got.status
    # Every answer and every observation is a state the task went through, in order.
    order = [STATUSES.index(s) for s in seen]
    assert order == sorted(order), seen
    assert all(r is not None and r.status in STATUSES for r in results)


async def test_unfinished_lists_non_final_in_creation_order(store: TaskStore) -> None:
    base = 1_700_000_000.0
    t3, t1, t2, t4 = (make_task(base + i) for i in (3, 1, 2, 4))
    t0 = make_task(base, status=COMPLETED)  # created final
    for task in (t3, t1, t0, t2, t4):
        await store.create(task)
    await store.update(t2.id, {"status": PROCESSING})
    await store.update(t4.id, {"status": FAILED, "error": {"code": "internal", "message": "boom"}})
    assert [t.id for t in await store.unfinished()] == [t1.id, t2.id, t3.id]
    statuses = {t.id: t.status for t in await store.unfinished()}
    assert statuses == {t1.id: PENDING, t2.id: PROCESSING, t3.id: PENDING}
    for task in (t1, t2, t3):
        await store.update(task.id, {"status": COMPLETED})
    assert await store.unfinished() == []


async def test_create_replaces(store: TaskStore) -> None:
    task = make_task()
    await store.create(task)
    task.status = COMPLETED
    await store.create(task)
    got = await store.get(task.id)
    assert got is not None and got.status == COMPLETED
    assert await store.unfinished() == []


LEASE = 0.5  # seconds a provisional task lives unless changed


async def test_a_provisional_task_is_gone_after_its_lease_unless_changed(store: TaskStore) -> None:
    lapsing, confirmed, started = make_task(1.0), make_task(2.0), make_task(3.0)
    for task in (lapsing, confirmed, started):
        await store.create(task, lease=LEASE)
    got = await store.get(lapsing.id)
    assert got is not None and got == lapsing  # there, meanwhile
    assert [t.id for t in await store.unfinished()] == [lapsing.id, confirmed.id, started.id]
    assert await store.update(confirmed.id, {}) is not None  # an empty change confirms it
    await store.update(started.id, {"status": PROCESSING})
    await asyncio.sleep(LEASE + 0.3)
    assert await store.get(lapsing.id) is None
    assert await store.update(lapsing.id, {"status": PROCESSING}) is None
    assert [t.id for t in await store.unfinished()] == [confirmed.id, started.id]
    got = await store.get(confirmed.id)
    assert got is not None and got.status == PENDING
    await store.create(lapsing)  # created again, for good this time
    assert await store.get(lapsing.id) == lapsing


async def test_ping(store: TaskStore) -> None:
    await store.ping()


# -- Redis only


async def test_redis_task_ttl(redis_env: RedisEnv) -> None:
    client = redis_env.client()
    store = RedisTaskStore(client, redis_env.settings(task_ttl=3600))
    task = make_task()
    await store.create(task)
    key = names.REDIS_TASK.format(id=task.id)
    assert 0 < await client.ttl(key) <= 3600
    await client.expire(key, 100)
    await store.update(task.id, {"status": PROCESSING})
    assert await client.ttl(key) > 100  # an update keeps it for task_ttl again
    provisional = make_task()
    await store.create(provisional, lease=60)
    key = names.REDIS_TASK.format(id=provisional.id)
    assert 0 < await client.ttl(key) <= 60
    await store.update(provisional.id, {})
    assert await client.ttl(key) > 60  # confirmed: task_ttl from now on


async def test_redis_unfinished_forgets_expired_tasks(redis_env: RedisEnv) -> None:
    client = redis_env.client()
    store = RedisTaskStore(client, redis_env.settings())
    a, b = make_task(1.0), make_task(2.0)
    await store.create(a)
    await store.create(b)
    await client.delete(names.REDIS_TASK.format(id=a.id))  # as if it expired
    assert [t.id for t in await store.unfinished()] == [b.id]
    assert await client.zrange(names.REDIS_UNFINISHED, 0, -1) == [b.id.encode()]


async def test_redis_down_is_unavailable(redis_env: RedisEnv, redis_server: RedisServer) -> None:
    store = RedisTaskStore(redis_env.client(), redis_env.settings())
    task = make_task()
    await store.create(task)
    with redis_stopped(redis_server):
        for call in (
            lambda: store.create(make_task()),
            lambda: store.get(task.id),
            lambda: store.update(task.id, {"status": PROCESSING}),
            store.unfinished,
            store.ping,
        ):
            with within(1.0), pytest.raises(Unavailable, match=r"^redis: "):
                await call()
    await store.create(task)
    after = await store.update(task.id, {"status": PROCESSING})
    assert after is not None and after.status == PROCESSING
