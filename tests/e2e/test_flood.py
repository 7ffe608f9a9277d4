"""Floods (bounded, loopback only, they stop by themselves): 10x the queue cap at once.

The excess is refused quickly with 429 ``overloaded`` and ``Retry-After``; every accepted
request or prefetch completes (no job is lost: the worker metrics count exactly the accepted
ones); the image worker processes' memory stays bounded; the service is healthy afterwards.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp
import pytest

from ..conftest import Origin, Service
from ..images import jpeg, texture
from ..procinfo import rss, worker_pids

CAP = 20  # IMGSERVER_MAX_QUEUE_URGENT and IMGSERVER_MAX_QUEUE_BACKGROUND
FLOOD = 10 * CAP
MEMORY_BOUND = 1_000_000_000  # bytes of RSS per process: generous, a leak or a bomb exceeds it


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float  # from the start of the flood to the answer


@pytest.fixture(scope="module")
def flood_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = Service(
        tmp_path_factory.mktemp("flood"),
        {
            "IMGSERVER_WORKERS": "1",
            "IMGSERVER_MAX_QUEUE_URGENT": str(CAP),
            "IMGSERVER_MAX_QUEUE_BACKGROUND": str(CAP),
        },
    )
    svc.start()
    yield svc
    svc.stop()


class MemoryWatch:
    """Samples the RSS of the service and of its worker processes while a flood runs."""

    def __init__(self, service: Service) -> None:
        assert service.proc is not None
        self.pid = service.proc.pid
        self.peak: dict[int, int] = {}
        self.workers_seen: set[int] = set()
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            workers = worker_pids(self.pid)
            self.workers_seen.update(workers)
            for pid in (self.pid, *workers):
                self.peak[pid] = max(self.peak.get(pid, 0), rss(pid))
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> MemoryWatch:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def check(self) -> None:
        assert self.workers_seen, "no worker process was found"
        assert all(self.peak[pid] > 0 for pid in self.workers_seen), self.peak  # were read
        for pid, peak in self.peak.items():  # the service and each of its worker processes
            assert peak < MEMORY_BOUND, (pid, peak)


async def flood(service: Service, method: str, paths: list[str]) -> list[Reply]:
    """Every request at once: one connection each, all opened first, then every request
    written in one go (so the burst is not spread by connection set-up)."""
    connections = await asyncio.gather(
        *(asyncio.open_connection("127.0.0.1", service.port) for _ in paths)
    )
    started = time.monotonic()
    for (_, writer), path in zip(connections, paths, strict=True):
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\n"
            "Connection: close\r\nContent-Length: 0\r\n\r\n".encode()
        )

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Reply:
        try:
            raw = await asyncio.wait_for(reader.read(), 40)  # to EOF: Connection: close
        finally:
            writer.close()
        seconds = time.monotonic() - started
        head, _, body = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in lines)}
        return Reply(int(status_line.split()[1]), headers, body, seconds)

    return await asyncio.gather(*(answer(r, w) for r, w in connections))


def check_refusals(refused: list[Reply]) -> None:
    import json

    for reply in refused:
        assert reply.headers["content-type"].startswith("application/json")
        assert json.loads(reply.body)["error"]["code"] == "overloaded"
        assert int(reply.headers["retry-after"]) > 0


def delta(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


async def assert_healthy(service: Service, origin: Origin) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        for path in ("/healthz", "/readyz"):
            async with s.get(service.url(path)) as r:
                assert r.status == 200, path
        src = origin.add(f"/after-flood-{uuid.uuid4().hex[:8]}.jpg", jpeg(texture(64, 48)))
        url = service.url("/graph/passthrough.png?" + urlencode({"input": src, "width": 16}))
        async with s.get(url, allow_redirects=False) as r:
            assert r.status == 301
        async with s.get(r.headers["Location"]) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "image/png"


def sources(origin: Origin, delay: float) -> list[str]:
    """FLOOD distinct sources (distinct cache keys) on one slow origin route."""
    path = f"/flood-{uuid.uuid4().hex[:8]}.jpg"
    origin.add(path, jpeg(texture(120, 90)), body_delay=delay)
    return [origin.url(path) + f"?n={i}" for i in range(FLOOD)]


async def test_get_flood(flood_service: Service, origin: Origin) -> None:
    svc = flood_service
    urls = [
        "/graph/passthrough.webp?" + urlencode({"input": src, "width": 40})
        for src in sources(origin, delay=0.3)
    ]
    before = svc.metrics()
    async with MemoryWatch(svc) as memory:
        replies = await flood(svc, "GET", urls)
    after = svc.metrics()

    refused = [r for r in replies if r.status == 429]
    accepted = [(url, r) for url, r in zip(urls, replies, strict=True) if r.status != 429]
    assert {r.status for _, r in accepted} <= {301, 503}, {r.status for r in replies}
    # the cap holds: CAP accepted (a few more only if the queue drained during the burst)
    assert CAP <= len(accepted) <= CAP + 5, len(accepted)
    check_refusals(refused)
    # refused at once, long before the accepted ones are done with their slow sources
    slowest_refusal = max(r.seconds for r in refused)
    last_accepted = max(r.seconds for _, r in accepted)
    timing = (slowest_refusal, last_accepted)
    assert slowest_refusal < 1.5 and slowest_refusal < last_accepted / 2, timing

    # every accepted request completes: a 503 (deadline) one is a hit soon after
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        for url, reply in accepted:
            status = reply.status
            for _ in range(100):
                if status == 301:
                    break
                await asyncio.sleep(0.1)
                async with s.get(svc.url(url), allow_redirects=False) as r:
                    status = r.status
            assert status == 301

    # no job lost, none made for a refused request
    after = svc.metrics()
    assert delta(before, after, 'imgserver_jobs_published_total{queue="urgent"}') == len(accepted)
    assert delta(before, after, 'imgserver_jobs_total{outcome="ok",role="urgent"}') == len(accepted)
    assert after['imgserver_queue_depth{queue="urgent"}'] == 0
    memory.check()
    await assert_healthy(svc, origin)


async def test_prefetch_flood(flood_service: Service, origin: Origin) -> None:
    svc = flood_service
    urls = [
        "/graph/passthrough.webp?" + urlencode({"input": src, "width": 30})
        for src in sources(origin, delay=0.05)
    ]
    before = svc.metrics()
    async with MemoryWatch(svc) as memory:
        replies = await flood(svc, "POST", urls)
        refused = [r for r in replies if r.status == 429]
        accepted = [r for r in replies if r.status != 429]
        assert {r.status for r in accepted} == {202}, {r.status for r in replies}
        assert CAP <= len(accepted) <= CAP + 5, len(accepted)
        check_refusals(refused)
        assert max(r.seconds for r in refused) < 1.5

        # every accepted task completes
        import json

        ids = [json.loads(r.body)["task"]["id"] for r in accepted]
        pending = set(ids)
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
            while pending and time.monotonic() < deadline:
                for task_id in sorted(pending):
                    async with s.get(svc.url(f"/tasks/{task_id}/status")) as r:
                        status = (await r.json())["status"]
                    assert status in ("pending", "processing", "completed"), (task_id, status)
                    if status == "completed":
                        pending.discard(task_id)
                await asyncio.sleep(0.1)
    assert not pending, f"{len(pending)} of {len(ids)} tasks did not complete"
    after = svc.metrics()
    assert delta(before, after, 'imgserver_jobs_published_total{queue="background"}') == len(ids)
    assert delta(before, after, 'imgserver_jobs_total{outcome="ok",role="background"}') == len(ids)
    assert after['imgserver_queue_depth{queue="background"}'] == 0
    memory.check()
    await assert_healthy(svc, origin)
