"""The ImageStore contract, run against the embedded (SQLite) and the Redis image store.

``image_stores`` holds one store for the embedded mode and two stores on separate Redis clients
for Redis, as two processes would have; concurrency tests share the work among them.
"""

from __future__ import annotations

import asyncio
import random
import secrets

import pytest

from imgserver.backends.base import ImageStore
from imgserver.backends.redis.records import RedisImageStore
from imgserver.backends.sqlite import SqliteDB, SqliteImageStore
from imgserver.errors import Unavailable
from imgserver.records import (
    COMPLETED,
    COMPLETED_WITH_ERRORS,
    FAILED,
    FINAL,
    PENDING,
    PROCESSING,
    STATUSES,
    ImageRecord,
    new_id,
)
from imgserver.records import RECORD_ID as IMAGE_ID

from ..backend_fixtures import (
    RedisEnv,
    image_stores,
    local_db,
    redis_env,
    redis_stopped,
    within,
)
from ..servers import RedisServer

__all__ = ["image_stores", "local_db", "redis_env"]  # fixtures


def image_id(ms: int, suffix: str | None = None) -> str:
    """An id as tasks.new_id() makes them, for a given millisecond."""
    return f"{ms:012x}{suffix or secrets.token_hex(6)}"


def make_image(**kw: object) -> ImageRecord:
    fields: dict[str, object] = {
        "id": new_id(),
        "task_id": new_id(),
        "format": "jpeg",
        "size": 12345,
        "width": 640,
        "height": 400,
        "created_at": 1_700_000_000.25,
    }
    fields.update(kw)
    return ImageRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
def store(image_stores: list[ImageStore]) -> ImageStore:
    return image_stores[0]


async def test_create_get_round_trip(store: ImageStore) -> None:
    image = make_image(width=None, height=None, warnings=["w"], format="tiff")
    await store.create(image)
    got = await store.get(image.id)
    assert got is not None and got == image
    assert IMAGE_ID.match(image.id)


async def test_missing_image(store: ImageStore) -> None:
    assert await store.get("0" * 24) is None
    assert await store.update("0" * 24, {"status": PROCESSING}) is None
    await store.delete("0" * 24)  # nothing to delete: no error
    assert await store.get("0" * 24) is None


async def test_pages_newest_first_with_a_cursor(store: ImageStore) -> None:
    ids = [image_id(1_700_000_000_000 + ms) for ms in range(7)]
    for i in random.sample(ids, len(ids)):  # created in any order
        await store.create(make_image(id=i))
    newest_first = ids[::-1]
    first = await store.list_page(3)
    assert [i.id for i in first] == newest_first[:3]
    second = await store.list_page(3, first[-1].id)
    assert [i.id for i in second] == newest_first[3:6]
    third = await store.list_page(3, second[-1].id)
    assert [i.id for i in third] == newest_first[6:]
    assert await store.list_page(3, third[-1].id) == []
    assert [i.id for i in await store.list_page(100)] == newest_first


async def test_cursor_need_not_be_an_existing_image(store: ImageStore) -> None:
    ids = [image_id(ms) for ms in (10, 20, 30)]
    for i in ids:
        await store.create(make_image(id=i))
    assert [i.id for i in await store.list_page(10, image_id(25, "f" * 12))] == [ids[1], ids[0]]
    assert await store.list_page(10, image_id(5)) == []
    assert [i.id for i in await store.list_page(10, image_id(99))] == ids[::-1]


async def test_same_millisecond_is_ordered_by_the_rest_of_the_id(store: ImageStore) -> None:
    ids = [image_id(42, suffix) for suffix in ("0" * 12, "7" * 12, "a" * 12, "f" * 12)]
    for i in (ids[2], ids[0], ids[3], ids[1]):
        await store.create(make_image(id=i))
    got = await store.list_page(2)
    assert [i.id for i in got] == [ids[3], ids[2]]
    assert [i.id for i in await store.list_page(2, got[-1].id)] == [ids[1], ids[0]]


async def test_update_applies_changes(store: ImageStore) -> None:
    image = make_image()
    await store.create(image)
    after = await store.update(image.id, {"status": PROCESSING})
    assert after is not None and after.status == PROCESSING
    assert after.updated_at > image.updated_at
    after = await store.update(
        image.id,
        {
            "status": COMPLETED_WITH_ERRORS,
            "warnings": ["cut"],
            "compressed_path": "results/k",
            "compressed_size": 99,
        },
    )
    assert after is not None
    got = await store.get(image.id)
    assert got is not None and got == after
    assert (got.status, got.warnings, got.compressed_path, got.compressed_size) == (
        COMPLETED_WITH_ERRORS,
        ["cut"],
        "results/k",
        99,
    )
    assert (got.created_at, got.width, got.format) == (image.created_at, 640, "jpeg")


async def test_status_never_goes_back(store: ImageStore) -> None:
    image = make_image()
    await store.create(image)
    await store.update(image.id, {"status": PROCESSING})
    after = await store.update(image.id, {"status": PENDING, "width": 1})
    assert after is not None and (after.status, after.width) == (PROCESSING, 640)


@pytest.mark.parametrize("final", sorted(FINAL))
async def test_final_status_is_never_left(store: ImageStore, final: str) -> None:
    image = make_image()
    await store.create(image)
    done = await store.update(image.id, {"status": final})
    assert done is not None
    for changes in (
        {"status": PROCESSING},
        {"status": COMPLETED},
        {"status": FAILED},
        {"compressed_path": "x"},
        {"width": 1},
    ):
        after = await store.update(image.id, changes)
        assert after is not None and after == done
    got = await store.get(image.id)
    assert got is not None and got == done


async def test_bad_changes_are_refused(store: ImageStore) -> None:
    image = make_image()
    await store.create(image)
    with pytest.raises(ValueError, match="status"):
        await store.update(image.id, {"status": "exploded"})
    with pytest.raises(ValueError, match="field"):
        await store.update(image.id, {"colour": "red"})
    with pytest.raises(ValueError, match="read-only"):
        await store.update(image.id, {"id": "other"})
    got = await store.get(image.id)
    assert got is not None and got == image


async def test_delete(store: ImageStore) -> None:
    keep, gone = make_image(id=image_id(1)), make_image(id=image_id(2))
    await store.create(keep)
    await store.create(gone)
    await store.delete(gone.id)
    assert await store.get(gone.id) is None
    assert [i.id for i in await store.list_page(10)] == [keep.id]


async def test_create_replaces(store: ImageStore) -> None:
    image = make_image()
    await store.create(image)
    image.status = COMPLETED
    await store.create(image)
    got = await store.get(image.id)
    assert got is not None and got.status == COMPLETED
    assert [i.id for i in await store.list_page(10)] == [image.id]


async def test_concurrent_statuses_move_forward_only(image_stores: list[ImageStore]) -> None:
    image = make_image()
    await image_stores[0].create(image)
    n = 40

    async def one(i: int) -> ImageRecord | None:
        status = STATUSES[i % len(STATUSES)]
        changes: dict[str, object] = {"status": status}
        if status == FAILED:
            changes["error"] = {"code": "internal", "message": f"by {i}"}
        elif status in FINAL:
            changes["compressed_path"] = f"results/by-{i}"
        await asyncio.sleep(random.uniform(0, 0.01))
        return await image_stores[i % len(image_stores)].update(image.id, changes)

    results = await asyncio.gather(*(one(i) for i in range(n)))
    got = await image_stores[-1].get(image.id)
    assert got is not None and got.status in FINAL
    if got.status == FAILED:  # the winner's fields, and only its
        assert got.compressed_path is None and got.error is not None
        winner = int(got.error.message.removeprefix("by "))
    else:
        assert got.error is None and got.compressed_path is not None
        winner = int(got.compressed_path.removeprefix("results/by-"))
    assert STATUSES[winner % len(STATUSES)] == got.status
    assert all(r is not None for r in results)


async def test_records_survive_a_reopen(store: ImageStore, request: pytest.FixtureRequest) -> None:
    image = make_image()
    await store.create(image)
    await store.update(image.id, {"status": COMPLETED, "compressed_size": 7})
    if isinstance(store, SqliteImageStore):
        db = SqliteDB(store.db.path)
        await db.open()
        try:
            again: ImageStore = SqliteImageStore(db)
            got = await again.get(image.id)
            page = await again.list_page(5)
        finally:
            await db.close()
    else:
        env: RedisEnv = request.getfixturevalue("redis_env")
        again = RedisImageStore(env.client())
        got = await again.get(image.id)
        page = await again.list_page(5)
    assert got is not None and (got.status, got.compressed_size) == (COMPLETED, 7)
    assert [i.id for i in page] == [image.id]


async def test_ping(store: ImageStore) -> None:
    await store.ping()


# -- Redis only


async def test_redis_down_is_unavailable(redis_env: RedisEnv, redis_server: RedisServer) -> None:
    store = RedisImageStore(redis_env.client())
    image = make_image()
    await store.create(image)
    with redis_stopped(redis_server):
        for call in (
            lambda: store.create(make_image()),
            lambda: store.get(image.id),
            lambda: store.list_page(10),
            lambda: store.delete(image.id),
            lambda: store.update(image.id, {"status": PROCESSING}),
            store.ping,
        ):
            with within(1.0), pytest.raises(Unavailable, match=r"^redis: "):
                await call()
    await store.create(image)
    after = await store.update(image.id, {"status": PROCESSING})
    assert after is not None and after.status == PROCESSING
