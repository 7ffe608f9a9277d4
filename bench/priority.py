"""Urgent misses under a flood of prefetches, with and without a lower CPU priority for the
background image processes (``IMGSERVER_BACKGROUND_NICE``).

    python bench/priority.py [--misses 30] [--rounds 2] [--flood 400] [--workers 2]
                             [--mode distributed|embedded|both]

A private nginx serves two generated JPEGs: a small one (1600x1000, 0.9 MB) for the urgent
misses and a large one (2400x1600, 2 MB) for the flood. Three cases, interleaved in each round:

- **alone**: ``--misses`` sequential unique GET misses (gaussianblur.jpg of the small source
  at width 1000, std-dev 4: about 70 ms of one core in libvips), with no background work;
- **flood, nice 0**: the same, while ``--flood`` prefetches (gaussianblur.jpg of the large
  source at width 1600, std-dev 6: about 190 ms of one core each) keep the background busy,
  with ``IMGSERVER_BACKGROUND_NICE=0``;
- **flood, nice 10**: the same with ``IMGSERVER_BACKGROUND_NICE=10`` (the default).

distributed: real redis-server and RabbitMQ (tests/servers.py), results in local storage (no
S3 endpoint on the same cores), one frontend, one urgent and one background worker role of
``--workers`` image processes each, all on this machine: the shared host of the issue. The
background role is started again for each case, with that case's niceness. embedded: one
``python -m imgserver serve`` of ``--workers`` processes, started again for each case.

Prints the median and p95 latency of the urgent misses per case (all rounds together) and
their ratios to "alone", the per-round medians, how many background jobs completed while the
urgent misses were measured, and whether the background queue was still full at the end (if
not, raise ``--flood``). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.lab import Nginx  # noqa: E402
from tests.images import jpeg, texture  # noqa: E402
from tests.servers import RabbitServer, RedisServer, Service, WorkerProcess  # noqa: E402

CASES = (("alone", None), ("flood, nice 0", 0), ("flood, nice 10", 10))
URGENT = {"width": 1000, "std-dev-x": 4, "std-dev-y": 4}  # gaussianblur.jpg of small.jpg
BACKGROUND = {"width": 1600, "std-dev-x": 6, "std-dev-y": 6}  # gaussianblur.jpg of big.jpg
SETTLE = 3.0  # seconds between queueing the flood and the first urgent miss


@dataclass
class Case:
    name: str
    latencies: list[float] = field(default_factory=list)  # seconds, every round
    medians: list[float] = field(default_factory=list)  # one per round
    background_done: list[float] = field(default_factory=list)  # jobs during each measurement
    queue_left: list[float] = field(default_factory=list)  # background jobs waiting at the end


class Counter:
    """Unique source URLs (nginx ignores the query), so that every request is a miss and
    every prefetch a new job."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, source: str) -> str:
        self.n += 1
        return f"{source}?n={self.n}"


def graph_url(base: str, spec: str, source: str, **params: object) -> str:
    return f"{base}/graph/{spec}?" + urlencode({"input": source, **params})


async def urgent_misses(
    session: aiohttp.ClientSession, base: str, source: str, n: int, unique: Counter
) -> list[float]:
    out = []
    for _ in range(n):
        url = graph_url(base, "gaussianblur.jpg", unique(source), **URGENT)
        started = time.perf_counter()
        async with session.get(url, allow_redirects=False) as r:
            await r.read()
            assert (r.status, r.headers.get("X-Cache")) == (301, "MISS"), (r.status, url)
        out.append(time.perf_counter() - started)
    return out


async def flood(
    session: aiohttp.ClientSession, base: str, source: str, n: int, unique: Counter
) -> None:
    gate = asyncio.Semaphore(16)

    async def one() -> None:
        url = graph_url(base, "gaussianblur.jpg", unique(source), **BACKGROUND)
        async with gate, session.post(url, allow_redirects=False) as r:
            await r.read()
            assert r.status == 202, r.status

    await asyncio.gather(*(one() for _ in range(n)))


def metric(text: str, prefix: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


async def metrics(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as r:
        return await r.text()


class Distributed:
    """What a case needs (``case`` yields the service's base URL and the /metrics pages with
    the background jobs done and the background queue's depth), started once per mode but for
    the background role, started per case with its niceness."""

    name = "distributed"

    def __init__(self, tmp: Path, workers: int) -> None:
        self.tmp = tmp
        self.redis, self.rabbit = RedisServer(), RabbitServer()
        self.redis.start()
        self.rabbit.start()
        self.env = {
            "IMGSERVER_WORKERS": str(workers),
            "IMGSERVER_LOG_LEVEL": "WARNING",
            "IMGSERVER_REDIS_URL": self.redis.url,
            "IMGSERVER_AMQP_URL": self.rabbit.url,
            "IMGSERVER_MAX_QUEUE_BACKGROUND": "100000",
        }
        self.web = Service(tmp / "distributed", self.env).start()
        self.urgent = WorkerProcess("urgent", {**os.environ, **self.web.env}, tmp).start()

    @asynccontextmanager
    async def case(self, nice: int | None) -> AsyncIterator[tuple[str, str, str]]:
        background = None
        if nice is not None:
            env = {**os.environ, **self.web.env, "IMGSERVER_BACKGROUND_NICE": str(nice)}
            background = WorkerProcess("background", env, self.tmp).start()
        try:
            worker_metrics = (
                f"http://127.0.0.1:{background.metrics_port}/metrics" if background else ""
            )
            yield self.web.base, worker_metrics, self.web.url("/metrics")
        finally:
            if background is not None:
                background.stop()
            self.rabbit.purge_all()  # the rest of the flood

    def close(self) -> None:
        self.urgent.stop()
        self.web.stop()
        self.rabbit.close()
        self.redis.stop()


class Embedded:
    """One embedded service per case, with that case's niceness."""

    name = "embedded"

    def __init__(self, tmp: Path, workers: int) -> None:
        self.tmp = tmp
        self.workers = workers
        self.started = 0

    @asynccontextmanager
    async def case(self, nice: int | None) -> AsyncIterator[tuple[str, str, str]]:
        self.started += 1  # a fresh data directory: no unfinished tasks queued again
        env = {
            "IMGSERVER_WORKERS": str(self.workers),
            "IMGSERVER_LOG_LEVEL": "WARNING",
            "IMGSERVER_MAX_QUEUE_BACKGROUND": "100000",
            "IMGSERVER_BACKGROUND_NICE": str(nice or 0),
        }
        svc = Service(self.tmp / f"embedded{self.started}", env).start()
        try:
            yield svc.base, svc.url("/metrics"), svc.url("/metrics")
        finally:
            svc.stop()

    def close(self) -> None:
        return None


Mode = Distributed | Embedded


async def run_case(
    mode: Mode, case: Case, nice: int | None, args: argparse.Namespace, origin: str
) -> None:
    small, big = f"{origin}/small.jpg", f"{origin}/big.jpg"
    async with mode.case(nice) as (base, worker_metrics, web_metrics):
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await urgent_misses(session, base, small, 2, args.unique)  # warm up
            done = 'imgserver_jobs_total{outcome="ok",role="background"}'
            if nice is not None:
                await flood(session, base, big, args.flood, args.unique)
                await asyncio.sleep(SETTLE)
                before = metric(await metrics(session, worker_metrics), done)
            latencies = await urgent_misses(session, base, small, args.misses, args.unique)
            if nice is not None:
                after = metric(await metrics(session, worker_metrics), done)
                case.background_done.append(after - before)
                depth = 'imgserver_queue_depth{queue="background"}'
                case.queue_left.append(metric(await metrics(session, web_metrics), depth))
    case.latencies += latencies
    case.medians.append(statistics.median(latencies))


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def report(mode: Mode, cases: list[Case], args: argparse.Namespace) -> None:
    alone = cases[0]
    base_median, base_p95 = statistics.median(alone.latencies), p95(alone.latencies)
    print(
        f"\n{mode.name}: {args.workers} image processes per pool, {args.misses} urgent misses x "
        f"{args.rounds} rounds per case, flood of {args.flood} prefetches"
    )
    print(
        "| case | median ms | p95 ms | median vs alone | p95 vs alone | round medians ms | "
        "background jobs done meanwhile | background queue at the end |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for case in cases:
        median, tail = statistics.median(case.latencies), p95(case.latencies)
        rounds = " / ".join(f"{m * 1000:.0f}" for m in case.medians)
        done = " / ".join(f"{d:.0f}" for d in case.background_done) or "-"
        left = " / ".join(f"{q:.0f}" for q in case.queue_left) or "-"
        print(
            f"| {case.name} | {median * 1000:.0f} | {tail * 1000:.0f} | "
            f"{median / base_median:.2f}x | {tail / base_p95:.2f}x | {rounds} | {done} | {left} |"
        )


def make_sources(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "small.jpg").write_bytes(jpeg(texture(1600, 1000)))
    (directory / "big.jpg").write_bytes(jpeg(texture(2400, 1600)))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--misses", type=int, default=30, help="urgent misses per case and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--flood", type=int, default=400, help="prefetches queued per case")
    parser.add_argument("--workers", type=int, default=2, help="image processes per pool")
    parser.add_argument("--mode", choices=["distributed", "embedded", "both"], default="both")
    args = parser.parse_args()
    args.unique = Counter()

    with tempfile.TemporaryDirectory(prefix="bench-priority-") as tmp_name:
        tmp = Path(tmp_name)
        make_sources(tmp / "sources")
        nginx = Nginx(tmp / "nginx", tmp / "sources").start()
        print(f"load average at the start: {os.getloadavg()}", flush=True)
        started = time.monotonic()
        try:
            kinds = ["distributed", "embedded"] if args.mode == "both" else [args.mode]
            for kind in kinds:
                mode: Mode = (Distributed if kind == "distributed" else Embedded)(tmp, args.workers)
                try:
                    cases = [Case(name) for name, _ in CASES]
                    for r in range(args.rounds):
                        for case, (name, nice) in zip(cases, CASES, strict=True):
                            print(f"[{kind}] round {r + 1}: {name}", file=sys.stderr, flush=True)
                            await run_case(mode, case, nice, args, nginx.origin)
                    report(mode, cases, args)
                finally:
                    mode.close()
        finally:
            nginx.stop()
        print(f"\n{time.monotonic() - started:.0f} s; load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
