"""The client side of the miss workload: requests with a number in flight, each timed and its
output checked (a JPEG of the asked width, the quality its tables say), against us, thumbor or
anything that answers ``(source, width) -> bytes``."""

from __future__ import annotations

import asyncio
import io
import statistics
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import aiohttp
from PIL import Image

from bench import lab
from bench.workload import CONCURRENCY, QUALITY

STD_LUMA = [
    16,
    11,
    10,
    16,
    24,
    40,
    51,
    61,
    12,
    12,
    14,
    19,
    26,
    58,
    60,
    55,
    14,
    13,
    16,
    24,
    40,
    57,
    69,
    56,
    14,
    17,
    22,
    29,
    51,
    87,
    80,
    62,
    18,
    22,
    37,
    56,
    68,
    109,
    103,
    77,
    24,
    35,
    55,
    64,
    81,
    104,
    113,
    92,
    49,
    64,
    78,
    87,
    103,
    121,
    120,
    101,
    72,
    92,
    95,
    98,
    112,
    100,
    103,
    99,
]


class Failure(Exception):
    """A request that did not give the expected answer."""


def estimate_quality(data: bytes) -> int | None:
    """The libjpeg quality whose standard luminance table the JPEG uses (None: another table)."""
    with Image.open(io.BytesIO(data)) as image:
        table = list(image.quantization.get(0, []))
    for q in range(1, 101):
        scale = 5000 // q if q < 50 else 200 - 2 * q
        if table == [min(255, max(1, (v * scale + 50) // 100)) for v in STD_LUMA]:
            return q
    return None


def check_output(data: bytes, width: int) -> None:
    with Image.open(io.BytesIO(data)) as image:
        if image.format != "JPEG" or image.width != width:
            raise Failure(f"expected a {width} px wide JPEG, got {image.format} {image.size}")


def pct(values: list[float], p: float) -> float:
    """Percentile by linear interpolation between closest ranks."""
    v = sorted(values)
    k = (len(v) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


Call = Callable[[str, int], Awaitable[bytes]]


async def drive(call: Call, jobs: list[tuple[str, int]], concurrency: int) -> dict:
    """Run ``jobs`` with ``concurrency`` requests in flight; time each and check its output."""
    pending = iter(jobs)
    latencies: list[float] = []
    qualities: set[int | None] = set()
    errors: list[str] = []

    async def client() -> None:
        for name, width in pending:
            t = time.perf_counter()
            try:
                data = await call(name, width)
                elapsed = (time.perf_counter() - t) * 1000
                check_output(data, width)
            except (Failure, aiohttp.ClientError, OSError) as exc:
                errors.append(f"{name} w={width}: {exc}")
                continue
            latencies.append(elapsed)
            qualities.add(estimate_quality(data))

    cpu = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    return {
        "requests": len(jobs),
        "ok": len(latencies),
        "seconds": wall,
        "rps": len(latencies) / wall,
        "p50_ms": pct(latencies, 50) if latencies else None,
        "p99_ms": pct(latencies, 99) if latencies else None,
        "mean_ms": statistics.fmean(latencies) if latencies else None,
        "jpeg_quality": sorted(q if q is not None else -1 for q in qualities),
        "errors": len(errors),
        "first_errors": errors[:3],
        "client_cpu_s": time.process_time() - cpu,
        "latencies_ms": [round(x, 2) for x in latencies],
    }


def ours_call(session: aiohttp.ClientSession, base: str, origin: str, tag: str) -> Call:
    """A passthrough.jpg miss: the 301, then the result it points at."""

    async def call(name: str, width: int) -> bytes:
        src = quote(f"{origin}/{name}?{tag}", safe="")
        url = f"{base}/graph/passthrough.jpg?input={src}&width={width}&quality={QUALITY}"
        async with session.get(url, allow_redirects=False) as r:
            body = await r.read()
            if r.status != 301:
                raise Failure(f"{r.status}: {body[:200]!r}")
            if r.headers.get("X-Cache") != "MISS":
                raise Failure(f"X-Cache {r.headers.get('X-Cache')}, expected MISS")
            location = r.headers["Location"]
        async with session.get(location) as r:
            if r.status != 200:
                raise Failure(f"result {r.status}")
            return await r.read()

    return call


def thumbor_call(session: aiohttp.ClientSession, base: str, origin: str) -> Call:
    host = origin.removeprefix("http://")

    async def call(name: str, width: int) -> bytes:
        url = f"{base}/unsafe/{width}x0/filters:quality({QUALITY}):format(jpeg)/{host}/{name}"
        async with session.get(url) as r:
            data = await r.read()
            if r.status != 200:
                raise Failure(f"{r.status}: {data[:200]!r}")
            return data

    return call


Jobs = list[tuple[str, int]]


async def run_http(
    make: Callable[[aiohttp.ClientSession], Call],
    warmup: Jobs,
    jobs: Jobs,
    meter: lab.CpuMeter | None = None,
) -> dict:
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        call = make(session)
        await drive(call, warmup, CONCURRENCY)  # processes warm, connections open
        if meter:
            meter.start()
        result = await drive(call, jobs, CONCURRENCY)
        if meter:
            result["cpu_s"] = meter.stop()
    return result
