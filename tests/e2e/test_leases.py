"""In-flight leases under faults, on the real engines (issue 12, item 3): a key is never blocked
for longer than its lease when Redis freezes, a worker stalls or a frontend is killed.

Each test prints how long the key stayed blocked. The lease is 3 s here to keep the suite
short; ``IMGSERVER_LEASE_TTL=10 pytest tests/e2e/test_leases.py -s`` measures the default.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import aiohttp

from ..conftest import Origin
from .test_distributed import Stack, fetch, graph_url, photo, stack, unique

__all__ = ["stack"]  # fixtures

LEASE = {"IMGSERVER_LEASE_TTL": os.environ.get("IMGSERVER_LEASE_TTL", "3")}
T = TypeVar("T")
UNTIL_301 = 150.0  # seconds a frontend is asked again and again (the old markers lived 120 s)


@contextmanager
def frozen(pid: int) -> Iterator[None]:
    """SIGSTOP ``pid`` for the block, and always SIGCONT it after."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def until(check: Callable[[], bool], wait: float, what: str) -> None:
    deadline = time.monotonic() + wait
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"not within {wait} s: {what}"
        await asyncio.sleep(0.05)


async def timed(request: Awaitable[T], since: float) -> tuple[T, float]:
    """What ``request`` gives, and when it gave it (seconds after ``since``)."""
    return await request, time.monotonic() - since


async def answers_until_301(url: str) -> tuple[list[int], float]:
    """GET ``url`` until it answers 301 (each GET waits up to the request deadline): the
    statuses seen and the seconds it took."""
    started = time.monotonic()
    statuses: list[int] = []
    while time.monotonic() - started < UNTIL_301:
        status, _, _ = await fetch(url, wait=60)
        statuses.append(status)
        if status == 301:
            break
    return statuses, time.monotonic() - started


# seconds: long enough for the frontends to give up their event subscriptions (no answer to a
# ping 5 s after 5 s of quiet, noticed within 2.5 s) and subscribe again
FREEZE = 20.0


async def test_a_redis_freeze_at_the_end_of_a_job_does_not_block_its_key(
    stack: Stack, origin: Origin
) -> None:
    """Redis freezes while a job runs, and requests wait for it on both frontends. The job ends
    meanwhile (its source answers 404) and announces it; but the frontends' event subscriptions
    are renewed during the freeze, so they never hear it. Nothing blocks the key for long:
    whoever waits sees that no one holds the job's lease and takes the job over (the source
    works by then)."""
    a, b = stack.frontend(**LEASE), stack.frontend(**LEASE)
    worker = stack.worker("urgent", **LEASE)
    path = unique()
    src = origin.add(path, status=404, content_type="text/plain", delay=1.0)
    urls = [graph_url(web, "passthrough.jpg", src, width=91) for web in (a, b)]
    first = [asyncio.create_task(fetch(url, wait=60)) for url in urls]
    await until(lambda: origin.hits(path) == 1, 30, "the worker asks the source")
    assert stack.redis_server.proc is not None
    with frozen(stack.redis_server.proc.pid):
        await asyncio.sleep(FREEZE)
    origin.add(path, photo())  # the source is back
    resumed = time.monotonic()
    assert worker.jobs("source_not_found") == 1  # the job ended during the freeze
    (seen_a, took_a), (seen_b, took_b) = await asyncio.gather(
        *(answers_until_301(url) for url in urls)
    )
    waited = [status for status, _, _ in await asyncio.gather(*first)]
    print(
        f"\nafter Redis froze {FREEZE:g} s: the requests waiting through it answered {waited}; "
        f"then frontend A answered {seen_a} in {took_a:.1f} s, frontend B {seen_b} in "
        f"{took_b:.1f} s ({time.monotonic() - resumed:.1f} s after Redis resumed)"
    )
    # no request waited into a 503: each was answered at once (a frontend that heard the
    # job's failure after all answers it, 404, from the failure memory until the job that took
    # over stores the result: the job ran while the source said 404)
    assert 503 not in seen_a + seen_b, (seen_a, seen_b)


async def test_a_frozen_worker_and_a_killed_frontend_do_not_block_their_keys(
    stack: Stack, origin: Origin
) -> None:
    """Frontends A and B each queue a job; the only worker takes both (its prefetch is full:
    it takes no more) and freezes mid-fetch; B is killed. Another worker starts. A's request,
    still waiting, is answered once the frozen worker's lease on its job lapses (A renewed the
    lease only while the job was queued); B's key, asked on A, once B's lease lapses."""
    a, b = stack.frontend(**LEASE), stack.frontend(**LEASE)
    frozen_worker = stack.worker("urgent", **LEASE)  # 1 image process: 2 jobs at once
    paths = [unique(), unique()]
    srcs = [origin.add(p, photo(), body_delay=1.0) for p in paths]
    urls = [
        graph_url(web, "passthrough.jpg", s, width=93) for web, s in zip((a, b), srcs, strict=True)
    ]
    waiting = [asyncio.create_task(fetch(url)) for url in urls]
    await until(lambda: all(origin.hits(p) == 1 for p in paths), 30, "both jobs are fetching")
    assert frozen_worker.proc is not None and b.proc is not None
    with frozen(frozen_worker.proc.pid):
        b.proc.kill()  # SIGKILL: its request dies with it
        b.proc.wait(10)
        with contextlib.suppress(aiohttp.ClientError):
            await waiting[1]
        faults = time.monotonic()
        await asyncio.to_thread(stack.worker, "urgent", **LEASE)
        started = time.monotonic() - faults
        (waited, waited_for), ((seen, _), took) = await asyncio.gather(
            timed(waiting[0], faults),
            timed(answers_until_301(urls[1].replace(b.base, a.base)), faults),
        )
        print(
            f"\nworker frozen, frontend B killed, another worker ready {started:.1f} s later: "
            f"the request waiting on A answered {waited[0]} {waited_for:.1f} s after the faults; "
            f"B's key, asked on A, answered {seen} {took:.1f} s after the faults"
        )
    assert (waited[0], seen) == (301, [301])
    assert sum(origin.hits(p) for p in paths) == 4  # each job taken over once
