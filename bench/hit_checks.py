"""What checking hits costs: a storage HEAD, and the hit path with IMGSERVER_VERIFY_HITS.

    python bench/hit_checks.py [--heads 300] [--hits 2000] [--connections 16]

1. ``Storage.head`` (the call a hit check makes) against moto's S3 server over loopback and
   against local files: sequential, and 16 at once (S3Storage runs boto3 in its thread pool).
2. Hits on one cached URL through three frontends that differ only in IMGSERVER_VERIFY_HITS
   (0, the default 0.01, and 1: every hit checked), on Redis + moto S3, in interleaved rounds:
   requests per second and latency percentiles. A check runs after the answer, so it costs
   the hit path CPU (the HEAD's thread and the loop's bookkeeping), not a wait.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.photos import photo  # noqa: E402
from imgserver.backends.base import Storage  # noqa: E402
from imgserver.backends.local_storage import LocalStorage  # noqa: E402
from imgserver.backends.s3 import S3Storage  # noqa: E402
from imgserver.settings import Settings  # noqa: E402
from tests.servers import RedisServer, S3Server, Service, free_port  # noqa: E402

FRACTIONS = ("0", "0.01", "1")
ROUNDS = 3


def percentiles(ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=100)
    return f"p50 {q[49]:6.2f} ms  p90 {q[89]:6.2f} ms  p99 {q[98]:6.2f} ms"


async def heads(storage: Storage, n: int) -> tuple[list[float], float]:
    """n sequential HEADs (each timed), then n in batches of 16 (requests per second)."""
    await storage.put("results/bench", b"\x89PNG\r\n\x1a\n" + bytes(20000), "image/png")
    timings = []
    for _ in range(n):
        t = time.perf_counter()
        assert await storage.head("results/bench") is not None
        timings.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    for _ in range(n // 16):
        await asyncio.gather(*(storage.head("results/bench") for _ in range(16)))
    return timings, (n // 16) * 16 / (time.perf_counter() - t)


async def hammer(url: str, total: int, connections: int) -> tuple[float, list[float]]:
    timings: list[float] = []
    left = total
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:

        async def client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                t = time.perf_counter()
                async with session.get(url, allow_redirects=False) as r:
                    await r.read()
                    assert r.status == 301 and r.headers["X-Cache"] == "HIT", r.status
                timings.append((time.perf_counter() - t) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(connections)))
        return total / (time.perf_counter() - started), timings


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--heads", type=int, default=300)
    parser.add_argument("--hits", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    body = photo("Aqua.jpg").read_bytes()

    origin = web.Application()
    origin.router.add_get("/p.jpg", lambda r: web.Response(body=body, content_type="image/jpeg"))
    runner = web.AppRunner(origin, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    src = quote(f"http://127.0.0.1:{port}/p.jpg", safe="")

    redis_server, s3 = RedisServer(), S3Server()
    redis_server.start()
    s3.start()
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
    bucket = s3.new_bucket()
    frontends: list[Service] = []
    try:
        settings = Settings.from_env({}, s3_bucket=bucket, s3_endpoint_url=s3.endpoint)
        with tempfile.TemporaryDirectory() as tmp:
            async with S3Storage(settings) as on_s3, LocalStorage(Path(tmp)) as local:
                for name, storage in (("S3 (moto, loopback)", on_s3), ("local files", local)):
                    timed, rate = await heads(storage, args.heads)
                    print(f"head, {name:<20} {percentiles(timed)}   16 at once: {rate:6.0f}/s")

            env = {
                **s3.env(bucket),
                "IMGSERVER_REDIS_URL": redis_server.url,
                "IMGSERVER_S3_PUBLIC_URL": f"{s3.endpoint}/{bucket}",
                "IMGSERVER_WORKERS": "1",
                "IMGSERVER_LOG_LEVEL": "WARNING",
            }
            for fraction in FRACTIONS:
                checks = {**env, "IMGSERVER_VERIFY_HITS": fraction}
                frontends.append(Service(Path(tmp) / f"web{fraction}", checks).start())
            path = f"/graph/passthrough.webp?input={src}&width=400"
            async with aiohttp.ClientSession() as s:
                for svc in frontends:  # made once, then a hit on each (in its memory)
                    async with s.get(svc.url(path), allow_redirects=False) as r:
                        assert r.status == 301, await r.text()
            results: dict[str, list[tuple[float, list[float]]]] = {f: [] for f in FRACTIONS}
            for _ in range(ROUNDS):
                for fraction, svc in zip(FRACTIONS, frontends, strict=True):
                    results[fraction].append(
                        await hammer(svc.url(path), args.hits, args.connections)
                    )
            print(f"\n{args.hits} hits x {ROUNDS} rounds, {args.connections} connections:")
            for fraction, svc in zip(FRACTIONS, frontends, strict=True):
                rates = [rate for rate, _ in results[fraction]]
                timings = [ms for _, round_ms in results[fraction] for ms in round_ms]
                checked = svc.metrics().get('imgserver_hit_checks_total{result="present"}', 0)
                print(
                    f"VERIFY_HITS={fraction:<5} {statistics.median(rates):7.0f} hits/s (median "
                    f"round)  {percentiles(timings)}  checks made: {checked:.0f}"
                )
    finally:
        for svc in frontends:
            svc.stop()
        redis_server.stop()
        s3.stop()
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
