"""In-flight leases on the embedded backends: the coordinator keeps its queued job's lease,
watches the others', and takes a job over when no one holds its lease; a worker takes the lease
over from the frontend, keeps it while it works, and does not announce a failure once another
claim took its job over. (Under real faults, on the real engines: tests/e2e/test_leases.py.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from multidict import MultiDict

from imgserver.backends.base import Backends, Broker
from imgserver.backends.factory import open_backends
from imgserver.catalogue import Catalogue
from imgserver.coordinator import Coordinator
from imgserver.errors import Failure, Timeout
from imgserver.messages import Entry, Event, Job, JobDone, JobFailed
from imgserver.metrics import Metrics
from imgserver.names import URGENT, result_path
from imgserver.request import ImageRequest, parse_request
from imgserver.settings import REPO_ROOT, Settings
from imgserver.worker import Worker, leased, worker_token

TTL = 1.0  # seconds: looked at every 0.2 s
WAIT = 10.0  # seconds any step may take before the test fails


class Env:
    def __init__(self, backends: Backends, settings: Settings) -> None:
        self.b = backends
        self.settings = settings
        self.coordinator = Coordinator(backends, settings, Metrics())
        catalogue = Catalogue.load(REPO_ROOT / "graphs")
        query = MultiDict([("input", "https://images.example.com/a.jpg"), ("width", "10")])
        self.req: ImageRequest = parse_request(
            "resize.jpg", query, accept="", catalogue=catalogue, avif_enabled=False
        )
        self.key = self.req.key
        self.entry = Entry(result_path(self.key), "image/jpeg", 100, 10, 10, self.req.input, 0.0)

    def waiting(self) -> asyncio.Task[tuple[Entry, bool]]:
        return asyncio.create_task(self.coordinator.compute(self.req))


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    settings = Settings(data_dir=tmp_path, lease_ttl=TTL, request_deadline=WAIT)
    async with open_backends(settings) as backends:
        e = Env(backends, settings)
        yield e
        e.coordinator.close()


async def next_job(broker: Broker) -> Job:
    async with asyncio.timeout(WAIT):
        async for delivery in broker.consume(URGENT, 1):
            await delivery.ack()
            return delivery.job
    raise AssertionError("unreachable")


async def test_a_lease_whose_holder_died_is_taken_over(env: Env) -> None:
    """Another frontend claimed the key and died before it queued the job."""
    assert await env.b.inflight.claim(env.key, "dead-frontend", TTL)
    waiting = env.waiting()
    job = await next_job(env.b.broker)  # queued once the dead frontend's lease lapsed
    assert job.key == env.key and job.lease not in ("", "dead-frontend")
    assert await env.b.inflight.holder(env.key) == job.lease
    assert env.coordinator.metrics.takeovers._value.get() == 1
    env.coordinator.on_outcome(JobDone(env.key, env.entry))
    assert await waiting == (env.entry, False)


async def test_an_outcome_never_heard_is_found_in_the_index(env: Env) -> None:
    """The worker made the result and released the lease, but its announcement was lost."""
    waiting = env.waiting()
    job = await next_job(env.b.broker)
    async with leased(env.b.inflight, job, env.settings):
        assert await env.b.inflight.holder(env.key) == worker_token(job.lease)
        await env.b.index.set(env.key, env.entry)
    await env.b.inflight.release(env.key, worker_token(job.lease))  # as _settle does
    entry, cached = await waiting
    assert (entry.path, cached) == (env.entry.path, True)
    assert await env.b.broker.depth(URGENT) == 0  # not queued again


async def test_a_frozen_worker_is_taken_over(env: Env) -> None:
    """The worker took the lease over, then stopped renewing it (frozen): the job is queued
    again under a new lease; the worker waking up later does not win the lease back."""
    waiting = env.waiting()
    job = await next_job(env.b.broker)
    assert await env.b.inflight.claim(env.key, worker_token(job.lease), TTL, job.lease)
    again = await next_job(env.b.broker)
    assert again.key == env.key and again.lease not in ("", job.lease)
    async with leased(env.b.inflight, job, env.settings):  # the frozen worker wakes up
        assert await env.b.inflight.holder(env.key) == again.lease
    env.coordinator.on_outcome(JobDone(env.key, env.entry))
    assert (await waiting)[0] == env.entry


async def test_a_queued_job_keeps_its_lease_while_requests_wait(env: Env) -> None:
    waiting = env.waiting()
    await asyncio.sleep(3 * TTL)  # no worker takes it
    assert await env.b.broker.depth(URGENT) == 1  # not taken over: its lease was renewed
    job = await next_job(env.b.broker)
    assert await env.b.inflight.holder(env.key) == job.lease
    env.coordinator.on_outcome(JobDone(env.key, env.entry))
    await waiting


async def test_with_no_one_waiting_the_lease_lapses_and_nothing_is_watched(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, lease_ttl=TTL, request_deadline=0.3)
    async with open_backends(settings) as backends:
        e = Env(backends, settings)
        with pytest.raises(Timeout):
            await e.coordinator.compute(e.req)
        await asyncio.sleep(2 * TTL)
        assert await backends.inflight.holder(e.key) is None  # left to lapse
        assert await backends.broker.depth(URGENT) == 1  # and not taken over by anyone


async def test_a_worker_keeps_the_lease_it_took_over(env: Env) -> None:
    job = _job(env, "frontend")
    assert await env.b.inflight.claim(env.key, "frontend", TTL)
    async with leased(env.b.inflight, job, env.settings):
        assert await env.b.inflight.holder(env.key) == worker_token("frontend")
        await asyncio.sleep(3 * TTL)
        assert await env.b.inflight.holder(env.key) == worker_token("frontend")  # renewed
    # the worker died: its job, delivered again, takes the same lease straight back
    async with leased(env.b.inflight, job, env.settings):
        assert await env.b.inflight.holder(env.key) == worker_token("frontend")
    assert not await env.b.inflight.renew(env.key, "frontend", TTL)  # not the frontend's


async def test_a_worker_leaves_a_lease_taken_over_alone(env: Env) -> None:
    assert await env.b.inflight.claim(env.key, "another-frontend", 30)
    async with leased(env.b.inflight, _job(env, "frontend"), env.settings):
        assert await env.b.inflight.holder(env.key) == "another-frontend"


class Settled:
    """A delivery the worker acknowledges."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.redelivered = False

    async def ack(self) -> None:
        pass

    async def reject(self, requeue: bool) -> None:
        raise AssertionError("settled jobs are acknowledged")


@pytest.mark.parametrize("taken_over", [False, True])
async def test_a_failure_is_announced_unless_the_job_was_taken_over(
    env: Env, taken_over: bool
) -> None:
    job = _job(env, "frontend")
    holder = "another-frontend" if taken_over else worker_token("frontend")
    assert await env.b.inflight.claim(env.key, holder, 30)
    worker: Any = Worker(
        URGENT,
        backends=env.b,
        pool=None,  # type: ignore[arg-type]
        fetcher=None,  # type: ignore[arg-type]
        catalogue=None,  # type: ignore[arg-type]
        settings=env.settings,
        metrics=Metrics(),
        concurrency=1,
    )
    delivery = Settled(job)
    failed = JobFailed(env.key, Failure("source_unreachable", "404"))
    heard: list[Event] = []
    async with env.b.events.subscribe() as events:
        await worker._settle(delivery, failed, "source_unreachable", time.monotonic())
        await env.b.events.publish(JobDone("marker", env.entry))
        async with asyncio.timeout(WAIT):
            async for event in events:
                heard.append(event)
                if isinstance(event, JobDone):
                    break
    assert (failed in heard) is not taken_over
    # our lease is released once the outcome is out; another's is left alone
    assert await env.b.inflight.holder(env.key) == ("another-frontend" if taken_over else None)


def _job(env: Env, lease: str) -> Job:
    return msgspec.structs.replace(env.req.job(), lease=lease)
