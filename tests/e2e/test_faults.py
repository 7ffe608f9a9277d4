"""Long faults of the distributed mode, on the real engines: a 60 s outage of Redis (SIGSTOP),
of RabbitMQ (node stopped) and of S3 (moto's server stopped), and a Redis freeze long enough to
use up a short retry budget, each on its own stack (its own redis-server, a RabbitMQ node or
virtual host of its own, its own S3 server or bucket), all in one test so that the outages
overlap in wall time.

What must hold: every task reaches a final state (none left ``pending`` or ``processing``,
including those of prefetches answered 503, and those whose jobs were dead-lettered while the
store was down), and at least 95 % of the prefetches caught in a 60 s outage complete.
The figures are printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import redis

from imgserver import names

from ..conftest import Origin
from ..servers import RabbitServer, RedisServer, S3Server
from .test_distributed import Stack, fetch, graph_url, photo, unique

pytestmark = pytest.mark.slow  # ~2 minutes: the outages last 60 s

OUTAGE = 60.0  # seconds each backend is down
FREEZE = 30.0  # seconds Redis is frozen while jobs use up a short retry budget
PREFETCHES = 40  # queued just before each outage
SETTLE = 90.0  # seconds after an outage within which every task must be final
FINAL = ("completed", "completed_with_errors", "failed")
# Retries in these tests: delays from 0.05 s (tests/servers.py) doubling up to this cap, so that
# jobs come back soon after an outage (the budget is the default one: 300 s).
BACKOFF_MAX = "3"


@dataclass
class Figures:
    name: str
    outage: float
    accepted: list[str] = field(default_factory=list)  # task ids of the 202 answers
    caught: int = 0  # accepted and not yet final when the outage began
    refused: int = 0  # prefetches answered 503 during the outage
    statuses: dict[str, str] = field(default_factory=dict)  # every task record: id -> status
    errors: dict[str, int] = field(default_factory=dict)  # error codes of failed tasks
    took: float = 0.0  # seconds from the end of the outage until every task was final

    @property
    def unfinished(self) -> int:
        return sum(status not in FINAL for status in self.statuses.values())

    @property
    def completed(self) -> int:
        return sum(self.statuses.get(t) == "completed" for t in self.accepted)

    def line(self) -> str:
        share = 100 * self.completed / max(1, len(self.accepted))
        return (
            f"{self.name} down {self.outage:.0f} s: {len(self.accepted)} prefetches accepted "
            f"({self.caught} caught in the outage), {self.completed} completed ({share:.1f} %), "
            f"{self.refused} refused with 503; {len(self.statuses)} task records, "
            f"{self.unfinished} without a final state; failed: {self.errors or 'none'}; "
            f"all final {self.took:.1f} s after the outage"
        )


def task_records(client: redis.Redis) -> dict[str, dict]:
    records = {}
    for key in client.scan_iter(match=names.REDIS_TASK.format(id="*"), count=1000):
        raw = client.get(key)
        if raw is not None:
            record = json.loads(raw)
            records[record["id"]] = record
    return records


async def prefetch(web, src: str, widths: range) -> tuple[list[str], int]:
    """POST a prefetch per width at once: (ids of the accepted tasks, how many got 503)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:

        async def one(width: int) -> tuple[int, dict]:
            async with s.post(graph_url(web, "passthrough.jpg", src, width=width)) as r:
                return r.status, await r.json()

        answers = await asyncio.gather(*(one(w) for w in widths))
    for status, body in answers:
        assert status in (202, 503), body
        assert status == 202 or body["error"]["code"] == "unavailable", body
    accepted = [body["task"]["id"] for status, body in answers if status == 202]
    return accepted, sum(status == 503 for status, _ in answers)


async def ride_out(
    stack: Stack,
    origin: Origin,
    figures: Figures,
    begin: Callable[[], None],
    end: Callable[[], None],
    during: Callable[[Figures], object] | None = None,
    roles: tuple[str, ...] = ("background",),
    count: int = PREFETCHES,
) -> Figures:
    """Queue ``count`` jobs, take a backend down for ``figures.outage`` s (``begin``/``end``),
    then wait (up to SETTLE s) until every task record is final, and count."""
    web = await asyncio.to_thread(stack.frontend)
    for role in roles:
        await asyncio.to_thread(stack.worker, role)
    # 0.5 s per download, two jobs at a time: the queue takes ~10 s, so the outage catches most
    src = origin.add(unique(), photo(320, 200), body_delay=0.5)
    figures.accepted, _ = await prefetch(web, src, range(100, 100 + count))
    before = await asyncio.to_thread(task_records, stack.redis())
    figures.caught = sum(before[t]["status"] not in FINAL for t in figures.accepted)
    await asyncio.to_thread(begin)
    ended = False
    try:
        started = time.monotonic()
        if during is not None:
            await during(figures)  # type: ignore[misc]
        await asyncio.sleep(max(0.0, figures.outage - (time.monotonic() - started)))
        await asyncio.to_thread(end)
        ended = True
    finally:
        if not ended:
            await asyncio.to_thread(end)
    back = time.monotonic()
    deadline = back + SETTLE
    while True:
        records = await asyncio.to_thread(task_records, stack.redis())
        figures.statuses = {t: r["status"] for t, r in records.items()}
        if not figures.unfinished or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    figures.took = time.monotonic() - back
    for record in records.values():
        if record["status"] == "failed":
            code = record["error"]["code"]
            figures.errors[code] = figures.errors.get(code, 0) + 1
    return figures


@dataclass
class Private:
    """Servers started for this test only (so they can be taken down), cleaned up after."""

    redis: list[RedisServer] = field(default_factory=list)
    rabbit: list[RabbitServer] = field(default_factory=list)
    s3: list[S3Server] = field(default_factory=list)
    vhosts: list[str] = field(default_factory=list)


@pytest.fixture
def private() -> Iterator[Private]:
    p = Private()
    yield p
    for server in p.redis:
        server.thaw()
        server.stop()
    for rabbit in p.rabbit:
        rabbit.close()
    for s3 in p.s3:
        s3.stop()


def started(servers: list, count: int, kind: type) -> list:
    """``count`` servers of ``kind``, started in parallel threads, recorded in ``servers``."""
    made = [kind() for _ in range(count)]
    servers.extend(made)
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(lambda s: s.start(), made))
    return made


async def test_every_task_ends_and_jobs_ride_out_60s_outages(
    private: Private,
    rabbit_server: RabbitServer,
    s3_server: S3Server,
    origin: Origin,
    tmp_path: Path,
) -> None:
    # Private servers for what goes down; the session's RabbitMQ (a virtual host per stack)
    # and S3 (a bucket per stack) for what stays up. Each stack has its own Redis.
    rabbit_task = asyncio.create_task(asyncio.to_thread(started, private.rabbit, 1, RabbitServer))
    s3_task = asyncio.create_task(asyncio.to_thread(started, private.s3, 1, S3Server))
    reds = await asyncio.to_thread(started, private.redis, 4, RedisServer)
    [own_rabbit], [own_s3] = await rabbit_task, await s3_task

    def stack(name: str, r: RedisServer, rabbit: RabbitServer, s3: S3Server, **env: str) -> Stack:
        s = Stack(r, rabbit, s3, tmp_path / name)
        if rabbit is rabbit_server:
            vhost = f"faults-{uuid.uuid4().hex[:8]}"
            private.vhosts.append(vhost)
            s.env["IMGSERVER_AMQP_URL"] = rabbit.vhost(vhost)
        s.env.update({"IMGSERVER_RETRY_BACKOFF_MAX": BACKOFF_MAX, **env})
        return s

    stacks = {
        "redis": stack("redis", reds[0], rabbit_server, s3_server),
        "rabbitmq": stack("rabbitmq", reds[1], own_rabbit, s3_server),
        "s3": stack("s3", reds[2], rabbit_server, own_s3, IMGSERVER_REQUEST_DEADLINE="5"),
        # a retry budget of 2 s: the jobs are dead-lettered while Redis is frozen
        "budget": stack("budget", reds[3], rabbit_server, s3_server, IMGSERVER_RETRY_BUDGET="2"),
    }

    def publishing_refused_then_rabbitmq_stopped() -> None:
        """A memory alarm first: RabbitMQ blocks publishers, so prefetches that passed the
        queue-depth check, and created their task, fail to queue their job (503); then the
        node stops (and starts again without the alarm)."""
        web = stacks["rabbitmq"].processes[0]
        own_rabbit.ctl("set_vm_memory_high_watermark", "0").check_returncode()
        src = origin.add(unique(), photo(64, 64))
        _, refused = asyncio.run(prefetch(web, src, range(1, 6)))
        assert refused == 5
        own_rabbit.stop()

    async def refused_while_rabbitmq_is_down(figures: Figures) -> None:
        await asyncio.sleep(5)
        web = stacks["rabbitmq"].processes[0]
        _, refused = await prefetch(web, origin.add(unique(), photo(64, 64)), range(1, 6))
        figures.refused = refused + 5

    urgent_outcome: dict[str, float] = {}

    async def urgent_miss_while_s3_is_down(figures: Figures) -> None:
        """A GET miss during the outage: 503 at the request deadline (5 s here), and its job
        stops retrying then, not minutes later."""
        web, _, worker = stacks["s3"].processes
        src = origin.add(unique(), photo(64, 64))
        status, _, body = await fetch(graph_url(web, "passthrough.jpg", src), wait=30)
        assert status == 503, body
        for _ in range(40):  # at most 20 s
            if worker.jobs("unavailable"):
                break
            await asyncio.sleep(0.5)
        urgent_outcome["unavailable"] = worker.jobs("unavailable")
        urgent_outcome["retried"] = worker.jobs("retried")

    def restart_s3() -> None:
        own_s3.start()  # moto keeps nothing: the bucket is made again, as a real S3 keeps it
        own_s3.client().create_bucket(Bucket=stacks["s3"].bucket)

    try:
        results = await asyncio.gather(
            ride_out(
                stacks["redis"],
                origin,
                Figures("Redis (SIGSTOP)", OUTAGE),
                reds[0].freeze,
                reds[0].thaw,
            ),
            ride_out(
                stacks["rabbitmq"],
                origin,
                Figures("RabbitMQ (stopped)", OUTAGE),
                publishing_refused_then_rabbitmq_stopped,
                own_rabbit.start,
                refused_while_rabbitmq_is_down,
            ),
            ride_out(
                stacks["s3"],
                origin,
                Figures("S3 (stopped)", OUTAGE),
                own_s3.stop,
                restart_s3,
                urgent_miss_while_s3_is_down,
                ("background", "urgent"),
            ),
            ride_out(
                stacks["budget"],
                origin,
                Figures("Redis (SIGSTOP), retry budget 2 s", FREEZE),
                reds[3].freeze,
                reds[3].thaw,
                count=10,  # few, so that they use up their tries while it is frozen
            ),
        )
    finally:
        for s in stacks.values():
            s.close()
        for vhost in private.vhosts:
            rabbit_server.delete_vhost(vhost)
    for figures in results:
        print(figures.line())
    print(f"urgent miss during the S3 outage: worker outcomes {urgent_outcome}")

    for figures in results:
        assert figures.unfinished == 0, figures.line()
    for figures in results[:3]:
        assert figures.caught >= PREFETCHES // 2, figures.line()  # the outage caught them
        assert figures.completed >= 0.95 * len(figures.accepted), figures.line()
    assert results[1].refused > 0, results[1].line()  # prefetches refused while it was down
    budget = results[3]
    assert budget.errors.get("unavailable", 0) >= budget.caught // 2, budget.line()
    assert urgent_outcome["unavailable"] == 1, urgent_outcome  # it gave up at the deadline
