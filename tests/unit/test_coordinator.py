"""The coordinator's hit checks, in process on the embedded backends (SQLite, local files, the
in-process event bus): a hit whose object is gone from storage is forgotten everywhere, a POST's
lookup checks storage first, and a storage that does not answer proves nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from multidict import MultiDict

from imgserver.backends.base import Backends
from imgserver.backends.factory import open_backends
from imgserver.catalogue import Catalogue
from imgserver.coordinator import Coordinator
from imgserver.errors import Unavailable
from imgserver.messages import Entry, Event, Purged
from imgserver.metrics import Metrics
from imgserver.request import ImageRequest, parse_request
from imgserver.settings import Settings

WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8 " + bytes(14)


@pytest.fixture
async def backends(tmp_path: Path) -> AsyncIterator[Backends]:
    async with open_backends(Settings(data_dir=tmp_path)) as opened:
        yield opened


@pytest.fixture
def request_for() -> Callable[[str], ImageRequest]:
    catalogue = Catalogue.load(Settings().graphs_dir, max_dimension=16384)

    def make(name: str) -> ImageRequest:
        query = MultiDict(input=f"https://images.example.com/{name}.jpg", width="100")
        return parse_request(
            "passthrough.webp", query, accept="", catalogue=catalogue, avif_enabled=False
        )

    return make


async def made(backends: Backends, req: ImageRequest) -> Entry:
    """A result as a worker leaves it: stored, then indexed."""
    entry = Entry(f"results/{req.key}", "image/webp", len(WEBP), 1, 1, req.input, 1.0)
    await backends.storage.put(entry.path, WEBP, entry.content_type)
    await backends.index.set(req.key, entry)
    return entry


async def heard(backends: Backends, action: Any) -> list[Event]:
    """The events published on the bus while ``action()`` runs (and shortly after)."""
    seen: list[Event] = []
    async with backends.events.subscribe() as events:

        async def listen() -> None:
            async for event in events:
                seen.append(event)

        listener = asyncio.create_task(listen())
        await action()
        await asyncio.sleep(0.05)
        listener.cancel()
    return seen


def coordinator(backends: Backends, **settings: Any) -> Coordinator:
    return Coordinator(backends, Settings(**settings), Metrics())


def checks(c: Coordinator, result: str) -> float:
    return c.metrics.hit_checks.labels(result)._value.get()  # type: ignore[attr-defined]


async def test_a_sampled_hit_whose_object_is_gone_is_forgotten_everywhere(
    backends: Backends, request_for: Callable[[str], ImageRequest]
) -> None:
    c = coordinator(backends, verify_hits=1.0)
    req, other = request_for("gone"), request_for("kept")
    entry = await made(backends, req)
    await made(backends, other)
    assert await c.lookup(req) == entry  # present: answered, checked, kept
    assert await c.lookup(other) is not None
    await asyncio.sleep(0.05)
    assert checks(c, "present") == 2

    await backends.storage.delete(entry.path)  # behind the index's back

    async def hit_then_wait() -> None:
        assert await c.lookup(req) == entry  # answered from the index, checked afterwards
        for _ in range(100):
            if checks(c, "missing"):
                break
            await asyncio.sleep(0.01)

    events = await heard(backends, hit_then_wait)
    assert events == [Purged([req.key])]  # every frontend drops it from its memory
    assert await backends.index.get(req.key) is None
    assert await c.lookup(req) is None  # so the next request makes it again
    assert await c.lookup(other) is not None


async def test_a_posts_lookup_checks_storage_first(
    backends: Backends, request_for: Callable[[str], ImageRequest]
) -> None:
    c = coordinator(backends, verify_hits=0.0)
    req = request_for("posted")
    entry = await made(backends, req)
    assert await c.lookup(req, check=True) == entry
    await backends.storage.delete(entry.path)
    for _ in range(20):
        assert await c.lookup(req) == entry  # no hit sampled: trusted, nothing checked
    await asyncio.sleep(0.05)
    assert (checks(c, "present"), checks(c, "missing")) == (1, 0)
    assert await c.lookup(req, check=True) is None  # checked: gone, so made again
    assert await backends.index.get(req.key) is None
    assert (checks(c, "present"), checks(c, "missing")) == (1, 1)


async def test_a_storage_that_does_not_answer_proves_nothing(
    backends: Backends, request_for: Callable[[str], ImageRequest], monkeypatch: Any
) -> None:
    c = coordinator(backends, verify_hits=1.0)
    req = request_for("unknown")
    entry = await made(backends, req)

    async def down(path: str) -> None:
        raise Unavailable("s3: head_object: timed out")

    monkeypatch.setattr(backends.storage, "head", down)
    assert await c.lookup(req, check=True) == entry
    assert await c.lookup(req) == entry
    await asyncio.sleep(0.05)
    assert checks(c, "error") == 2
    assert await backends.index.get(req.key) == entry
