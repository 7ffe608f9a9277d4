"""A prefetch whose job cannot be queued (Coordinator.prefetch), in process on the embedded
backends with a broker that refuses to publish: the task must end failed, or, when the store
fails at that moment too, not exist once its lease is over, never stay pending."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from multidict import MultiDict

from imgserver import coordinator as coordinator_module
from imgserver.backends.base import Backends
from imgserver.backends.factory import open_backends
from imgserver.coordinator import Coordinator
from imgserver.errors import Unavailable
from imgserver.messages import Job
from imgserver.metrics import Metrics
from imgserver.records import FAILED, PENDING
from imgserver.request import ImageRequest, parse_request
from imgserver.settings import Settings

from ..images import catalogue

LEASE = 0.3


class Refusing:
    """A broker whose publish fails (RabbitMQ down, or blocking publishers)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def publish(self, queue: str, job: Job, delay: float = 0.0) -> None:
        raise Unavailable("rabbitmq: publish to imgserver.background failed: TimeoutError")


class Failing:
    """A task store whose updates fail (Redis went down just after the task was created)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def update(self, task_id: str, changes: Any) -> None:
        raise Unavailable("redis: timed out")


@pytest.fixture
async def backends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Backends]:
    monkeypatch.setattr(coordinator_module, "PROVISIONAL", LEASE, raising=False)
    async with open_backends(Settings(data_dir=tmp_path)) as b:
        yield dataclasses.replace(b, broker=Refusing(b.broker))  # type: ignore[arg-type]


def request() -> ImageRequest:
    query = MultiDict({"input": "https://example.com/a.jpg", "width": "300"})
    return parse_request("resize.webp", query, accept="", catalogue=catalogue(), avif_enabled=False)


async def prefetch(backends: Backends, task_id: str) -> None:
    coordinator = Coordinator(backends, Settings(), Metrics())
    with pytest.raises(Unavailable, match="rabbitmq"):
        await coordinator.prefetch(request(), task_id=task_id)


async def test_a_task_whose_job_cannot_be_queued_ends_failed(backends: Backends) -> None:
    await prefetch(backends, "a" * 24)
    task = await backends.tasks.get("a" * 24)
    assert task is not None and task.status == FAILED and task.error is not None
    assert task.error.code == "unavailable"
    assert "could not be queued" in task.error.message
    await asyncio.sleep(LEASE + 0.2)
    assert await backends.tasks.get("a" * 24) == task  # failed for good: kept
    assert await backends.tasks.unfinished() == []


async def test_when_the_store_fails_too_the_task_is_gone_after_its_lease(
    backends: Backends,
) -> None:
    store = backends.tasks
    await prefetch(dataclasses.replace(backends, tasks=Failing(store)), "b" * 24)  # type: ignore[arg-type]
    task = await store.get("b" * 24)
    assert task is not None and task.status == PENDING  # for the lease only
    await asyncio.sleep(LEASE + 0.2)
    assert await store.get("b" * 24) is None
    assert await store.unfinished() == []
