"""What the distributed mode adds to a miss, against the embedded mode, on the same workload.

    python bench/distributed_overhead.py [--requests 30] [--photo Aqua.jpg]

Starts a loopback origin with the photo, real redis-server / RabbitMQ / moto S3 (as the tests
do), then for each mode: the service, and in the distributed mode one urgent worker role; each
with 2 image processes. Times N sequential unique misses of passthrough.webp (width 400+i) and
N hits, and prints p50/mean per mode and the difference of the miss p50s. A third run uses
Redis and RabbitMQ with local storage, to tell the service's own overhead from the S3
endpoint's; bare boto3 put/head timings against the same endpoint are printed too.
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
from tests.servers import (  # noqa: E402
    RabbitServer,
    RedisServer,
    S3Server,
    Service,
    WorkerProcess,
    free_port,
)


async def timed(session: aiohttp.ClientSession, urls: list[str], expect: str) -> list[float]:
    out = []
    for url in urls:
        t = time.perf_counter()
        async with session.get(url, allow_redirects=False) as r:
            await r.read()
            assert (r.status, r.headers.get("X-Cache")) == (301, expect), (r.status, url)
        out.append((time.perf_counter() - t) * 1000)
    return out


def line(name: str, ms: list[float]) -> str:
    return f"{name:<24} p50 {statistics.median(ms):7.1f} ms   mean {statistics.fmean(ms):7.1f} ms"


async def measure(base: str, src: str, n: int) -> tuple[list[float], list[float]]:
    urls = [
        f"{base}/graph/passthrough.webp?input={quote(src, safe='')}&width={400 + i}"
        for i in range(n)
    ]
    async with aiohttp.ClientSession() as s:
        await timed(s, urls[:2], "MISS")  # warm up the worker processes
        misses = await timed(s, urls[2:], "MISS")
        hits = await timed(s, urls[2:], "HIT")
    return misses, hits


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--photo", default="Aqua.jpg")
    args = parser.parse_args()
    body = photo(args.photo).read_bytes()

    app = web.Application()
    app.router.add_get("/p.jpg", lambda r: web.Response(body=body, content_type="image/jpeg"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    src = f"http://127.0.0.1:{port}/p.jpg"
    common = {"IMGSERVER_WORKERS": "2", "IMGSERVER_LOG_LEVEL": "WARNING"}

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        embedded = Service(Path(tmp) / "embedded", common).start()
        try:
            results["embedded"] = await measure(embedded.base, src + "?embedded", args.requests)
        finally:
            embedded.stop()

        redis_server, rabbit, s3 = RedisServer(), RabbitServer(), S3Server()
        redis_server.start()
        rabbit.start()
        s3.start()
        os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
        bucket = s3.new_bucket()
        env = {
            **common,
            **s3.env(bucket),
            "IMGSERVER_REDIS_URL": redis_server.url,
            "IMGSERVER_AMQP_URL": rabbit.url,
            "IMGSERVER_S3_ACL": "public-read",
            "IMGSERVER_S3_PUBLIC_URL": f"{s3.endpoint}/{bucket}",
        }
        try:
            for mode, mode_env in (
                ("distributed", env),
                (
                    "distributed, local storage",
                    {k: v for k, v in env.items() if not k.startswith("IMGSERVER_S3")},
                ),
            ):
                web_svc = Service(Path(tmp) / mode.replace(" ", ""), mode_env)
                worker = WorkerProcess("urgent", {**os.environ, **web_svc.env}, Path(tmp))
                try:
                    web_svc.start()
                    worker.start()
                    results[mode] = await measure(
                        web_svc.base, f"{src}?{len(results)}", args.requests
                    )
                finally:
                    worker.stop()
                    web_svc.stop()
            s3_ms = bare_s3(s3, bucket)
        finally:
            rabbit.close()
            redis_server.stop()
            s3.stop()
    await runner.cleanup()

    print(
        f"photo {args.photo} ({len(body)} bytes) -> passthrough.webp width ~400, "
        f"{args.requests - 2} sequential misses then hits"
    )
    for mode, (misses, hits) in results.items():
        print(line(f"{mode} miss", misses))
        print(line(f"{mode} hit", hits))
    base = statistics.median(results["embedded"][0])
    for mode in ("distributed", "distributed, local storage"):
        added = statistics.median(results[mode][0]) - base
        print(f"{mode}: adds {added:.1f} ms to a miss at p50 (goal: under 10 ms)")
    print(
        f"bare boto3 calls to the S3 endpoint (moto), p50: put {s3_ms[0]:.1f} ms, "
        f"head {s3_ms[1]:.1f} ms"
    )


def bare_s3(s3: S3Server, bucket: str) -> tuple[float, float]:
    client = s3.client()
    puts, heads = [], []
    for i in range(20):
        t = time.perf_counter()
        client.put_object(Bucket=bucket, Key=f"bench/{i}", Body=b"x" * 20000)
        puts.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        client.head_object(Bucket=bucket, Key=f"bench/{i}")
        heads.append((time.perf_counter() - t) * 1000)
    return statistics.median(puts), statistics.median(heads)


if __name__ == "__main__":
    asyncio.run(main())
