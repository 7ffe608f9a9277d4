"""Miss and hit latency of the embedded service on one photo, sequential requests.

    python bench/miss_hit.py PHOTO.jpg [--requests 20]

Starts a loopback origin serving the photo and ``python -m imgserver serve`` (embedded
default, a fresh data directory), then times N misses (unique widths, so each one runs a job)
and N hits of `passthrough.webp`. Prints p50 / mean / max in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summary(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    return (
        f"{name}: n={len(ms)} p50={statistics.median(ms):.1f} ms "
        f"mean={statistics.fmean(ms):.1f} ms max={ms[-1]:.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("photo", type=Path)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    body = args.photo.read_bytes()

    app = web.Application()
    app.router.add_get("/photo.jpg", lambda r: web.Response(body=body, content_type="image/jpeg"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    origin_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", origin_port).start()

    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {
            **os.environ,
            "IMGSERVER_PORT": str(port),
            "IMGSERVER_HOST": "127.0.0.1",
            "IMGSERVER_DATA_DIR": data,
            "IMGSERVER_ALLOW_PRIVATE_SOURCES": "1",
            "IMGSERVER_LOG_LEVEL": "WARNING",
        }
        proc = subprocess.Popen([sys.executable, "-m", "imgserver", "serve"], cwd=REPO, env=env)  # noqa: ASYNC220
        try:
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as s:
                for _ in range(300):
                    with contextlib.suppress(aiohttp.ClientError):
                        async with s.get(base + "/healthz") as r:
                            if r.status == 200:
                                break
                    await asyncio.sleep(0.1)
                src = quote(f"http://127.0.0.1:{origin_port}/photo.jpg", safe="")
                urls = [
                    f"{base}/graph/passthrough.webp?input={src}&width={400 + i}"
                    for i in range(args.requests)
                ]
                results: dict[str, list[float]] = {"MISS": [], "HIT": []}
                for expected in ("MISS", "HIT"):
                    for url in urls:
                        t = time.perf_counter()
                        async with s.get(url, allow_redirects=False) as r:
                            await r.read()
                        elapsed = (time.perf_counter() - t) * 1000
                        assert (r.status, r.headers["X-Cache"]) == (301, expected), r.status
                        results[expected].append(elapsed)
            print(f"photo: {args.photo.name}, {len(body)} bytes")
            print(summary("miss (passthrough.webp, width 400-419)", results["MISS"]))
            print(summary("hit", results["HIT"]))
        finally:
            proc.terminate()
            proc.wait(10)
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
