"""How a worker ends a job when its task store is down (worker.handle, _fail, _retry), in
process: the embedded backends, with the task store and the event bus made to answer
``Unavailable`` on demand, and a scripted ``process``. Every task must reach a final state:
a failure decided while the store is down is recorded once it is back."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from imgserver.backends.base import Backends
from imgserver.backends.factory import open_backends
from imgserver.backends.memory import MemoryBroker
from imgserver.errors import ImgServerError, InvalidInput, Unavailable
from imgserver.messages import Entry, Event, Job, JobDone, JobFailed
from imgserver.metrics import Metrics
from imgserver.names import BACKGROUND, URGENT, result_path
from imgserver.records import COMPLETED, FAILED, PROCESSING, Task, new_id
from imgserver.settings import Settings
from imgserver.worker import Worker

FAST = {"retry_backoff": 0.01, "retry_backoff_max": 0.05}


class Down:
    """Wraps a backend: while ``down``, the calls in ``calls`` raise Unavailable (as Redis
    does when it hangs); ``published`` keeps what an event bus was given."""

    def __init__(self, inner: Any, calls: frozenset[str]) -> None:
        self.inner, self.calls = inner, calls
        self.down = False
        self.published: list[Event] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in self.calls:
            return attr

        async def call(*args: Any, **kw: Any) -> Any:
            if self.down:
                raise Unavailable("redis: timed out")
            if name == "publish":
                self.published.append(args[0])
            return await attr(*args, **kw)

        return call


class Scripted(Worker):
    """process(): marks the task processing (as the real one does first), then runs the next
    step of ``steps`` (which may raise), then completes the job."""

    steps: list[Callable[[], None]]

    async def process(self, job: Job) -> tuple[Entry, bool]:
        await self._task(job, {"status": PROCESSING})
        if self.steps:
            self.steps.pop(0)()
        entry = Entry(result_path(job.key), "image/jpeg", 10, 1, 1, job.input)
        await self._done(job, entry, [])
        return entry, False


@dataclasses.dataclass
class Rig:
    backends: Backends
    store: Down
    events: Down
    worker: Scripted
    deliveries: AsyncIterator[Any]

    @property
    def broker(self) -> MemoryBroker:
        return self.backends.broker  # type: ignore[return-value]

    def down(self, down: bool) -> None:
        self.store.down = self.events.down = down

    async def task(self, job: Job) -> Task:
        self.down(False)
        assert job.task_id is not None
        task = await self.backends.tasks.get(job.task_id)
        assert task is not None
        return task

    async def queue(self, role: str = BACKGROUND, **kw: Any) -> Job:
        task_id = kw.pop("task_id", new_id())
        job = Job("k" * 64, "resize", "d" * 16, "jpeg", "https://a/b.jpg", {}, task_id, **kw)
        if task_id is not None:
            await self.backends.tasks.create(
                Task(task_id, "resize", job.input, {}, "jpeg", job.key, job.digest)
            )
        await self.broker.publish(role, job)
        return job

    async def step(self, within: float = 5.0) -> Job:
        """Handle the next delivery (a retry comes back after its delay); the job handled."""
        delivery = await asyncio.wait_for(anext(self.deliveries), within)
        await self.worker.handle(delivery)
        return delivery.job

    def outcomes(self) -> list[Event]:
        return [e for e in self.events.published if isinstance(e, JobDone | JobFailed)]


@pytest.fixture
async def rig(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    role, overrides = getattr(request, "param", (BACKGROUND, {}))
    settings = Settings(data_dir=tmp_path, **{**FAST, **overrides})
    async with open_backends(settings) as b:
        store = Down(b.tasks, frozenset({"get", "update", "create"}))
        events = Down(b.events, frozenset({"publish"}))
        backends = dataclasses.replace(b, tasks=store, events=events)
        worker = Scripted(
            role,
            backends=backends,
            pool=None,  # type: ignore[arg-type]
            fetcher=None,  # type: ignore[arg-type]
            catalogue=None,  # type: ignore[arg-type]
            settings=settings,
            metrics=Metrics(),
            concurrency=1,
        )
        worker.steps = []
        deliveries = backends.broker.consume(role, 1)
        yield Rig(backends, store, events, worker, deliveries)  # type: ignore[arg-type]
        await deliveries.aclose()  # type: ignore[attr-defined]


def fails_with(
    error: ImgServerError, then: Callable[[], None] = lambda: None
) -> Callable[[], None]:
    def step() -> None:
        then()
        raise error

    return step


async def test_a_failure_decided_while_the_store_is_down_is_recorded_when_it_is_back(
    rig: Rig,
) -> None:
    job = await rig.queue()
    rig.worker.steps = [fails_with(InvalidInput("not a usable URL"), lambda: rig.down(True))]
    await rig.step()  # processing recorded, then it fails for good: the store is down now
    settling = await rig.step()  # back, carrying its failure, and still cannot record it
    assert settling.failure is not None and settling.failure.code == "invalid_input"
    assert rig.outcomes() == []  # not announced: not settled yet
    rig.down(False)
    await rig.step()
    task = await rig.task(job)
    assert (task.status, task.error and task.error.code) == (FAILED, "invalid_input")
    assert [type(e) for e in rig.outcomes()] == [JobFailed]
    assert rig.broker.dead == []  # bad input is not dead-lettered
    assert await rig.broker.depth(BACKGROUND) == 0


@pytest.mark.parametrize("rig", [(BACKGROUND, {"retry_budget": 0.2})], indirect=True)
async def test_a_job_dead_lettered_while_the_store_is_down_ends_failed(rig: Rig) -> None:
    job = await rig.queue()
    rig.down(True)  # from the start: even "processing" cannot be written
    for _ in range(200):
        await rig.step()
        if rig.broker.dead:
            break
    [(queue, dead, failure)] = rig.broker.dead
    assert (queue, dead.key, failure.code) == (BACKGROUND, job.key, "unavailable")
    assert failure.details["attempts"] > 1
    for _ in range(3):  # it keeps coming back while the store is down
        assert (await rig.step()).failure == failure
    rig.down(False)
    await rig.step()
    task = await rig.task(job)
    assert task.status == FAILED and task.error == failure
    assert "given up after" in failure.message
    assert len(rig.broker.dead) == 1  # dead-lettered once
    assert await rig.broker.depth(BACKGROUND) == 0


async def test_an_outage_shorter_than_the_budget_is_ridden_out(rig: Rig) -> None:
    job = await rig.queue()
    rig.down(True)
    tries, started = 0, time.monotonic()
    while time.monotonic() - started < 0.5:  # many more tries than job_max_attempts
        await rig.step()
        tries += 1
    assert tries > rig.worker.settings.job_max_attempts
    rig.down(False)
    await rig.step()
    task = await rig.task(job)
    assert task.status == COMPLETED
    assert rig.broker.dead == []


@pytest.mark.parametrize(
    "rig", [(URGENT, {"request_deadline": 0.5, "job_max_attempts": 1})], indirect=True
)
async def test_an_urgent_job_retries_a_backend_outage_only_within_the_request_deadline(
    rig: Rig,
) -> None:
    job = await rig.queue(URGENT, task_id=None)
    rig.worker.steps = [fails_with(Unavailable("s3: connection refused")) for _ in range(1000)]
    tries = 0
    while not rig.outcomes():
        await rig.step()
        tries += 1
    failed_after = time.time() - job.queued_at
    [outcome] = rig.outcomes()
    assert isinstance(outcome, JobFailed) and outcome.error.code == "unavailable"
    assert tries > 1  # retried, although job_max_attempts is 1: a backend, not the source
    assert failed_after <= 0.5 + 0.5  # given up at the deadline (and the try then running)
    assert await rig.broker.depth(URGENT) == 0


async def test_a_redelivered_failure_whose_record_is_written_is_not_recorded_twice(
    rig: Rig,
) -> None:
    """The settling delivery is handled again (its ack was lost): the task stays as it is."""
    job = await rig.queue()
    rig.worker.steps = [fails_with(InvalidInput("not a usable URL"), lambda: rig.down(True))]
    await rig.step()
    rig.down(False)
    settling = await rig.step()
    first = await rig.task(job)
    await rig.broker.publish(BACKGROUND, settling)  # as if delivered again
    await rig.step()
    assert await rig.task(job) == first
    assert first.status == FAILED
