"""Part 3, memory: the peak RSS of each image worker process while it makes a passthrough of
the biggest sources."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp

from bench import lab
from bench.client import check_output, ours_call
from bench.context import Context
from bench.workload import CPUS, MEMORY_SOURCES, size_of

BIG_PIXELS = 120_000_000  # IMGSERVER_MAX_SOURCE_PIXELS for the memory part (96 MP JPEG)


def memory(ctx: Context) -> dict:
    """Peak RSS (VmHWM) of each image worker process while it makes a 800 px passthrough of
    each big source (one request per worker process at once, peak reset before each)."""
    env = {"IMGSERVER_WORKERS": str(CPUS), "IMGSERVER_MAX_SOURCE_PIXELS": str(BIG_PIXELS)}
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        svc = lab.Service(Path(tmp), env).start()
        try:
            pids = []
            deadline = time.monotonic() + 30
            while len(pids) < CPUS and time.monotonic() < deadline:
                pids = lab.worker_pids(svc.proc.pid)
                time.sleep(0.1)
            origin = ctx.nginx.origin

            async def batch(name: str, tag: str) -> None:
                """One request per worker process, all at once."""
                width = 300 if name == "Aqua.jpg" else 800
                async with aiohttp.ClientSession() as s:
                    calls = [ours_call(s, svc.base, origin, f"{tag}{i}") for i in range(CPUS)]
                    for data in await asyncio.gather(*(call(name, width) for call in calls)):
                        check_output(data, width)

            asyncio.run(batch("Aqua.jpg", "m=warm"))
            out["idle_rss_mb"] = {p: lab.status_kb(p, "VmRSS") / 1024 for p in pids}
            for name in MEMORY_SOURCES:
                for pid in pids:
                    lab.reset_peak(pid)
                front = svc.proc.pid
                lab.reset_peak(front)
                asyncio.run(batch(name, "m=big"))
                w, h = size_of(ctx.paths[name])
                out[name] = {
                    "pixels": w * h,
                    "bytes": ctx.paths[name].stat().st_size,
                    "workers_peak_mb": [lab.status_kb(p, "VmHWM") / 1024 for p in pids],
                    "frontend_peak_mb": lab.status_kb(front, "VmHWM") / 1024,
                }
        finally:
            svc.stop()
    return out
