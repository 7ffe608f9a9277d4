"""Part 2, hits: wrk on a cached URL of ours and on two floors that only answer a 301 (a bare
aiohttp handler, nginx), in rounds, interleaved; then imgflo's latency budgets on ours."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from urllib.parse import quote

import aiohttp

from bench import lab
from bench.client import Failure
from bench.context import EMBEDDED, Context, median_round
from bench.workload import CPUS, QUALITY

BUDGETS = {1: 20.0, 10: 200.0, 100: 2000.0, 1000: 10000.0}  # imgflo: connections -> mean ms


def prime(base: str, origin: str, tag: str) -> str:
    """Make one result and return its URL (answered from the cache from now on)."""
    src = quote(f"{origin}/Aqua.jpg?{tag}", safe="")
    url = f"{base}/graph/passthrough.jpg?input={src}&width=400&quality={QUALITY}"

    async def go() -> None:
        async with aiohttp.ClientSession() as s:
            for expected in ("MISS", "HIT"):
                async with s.get(url, allow_redirects=False) as r:
                    await r.read()
                    if (r.status, r.headers.get("X-Cache")) != (301, expected):
                        raise Failure(f"priming {url}: {r.status} {r.headers.get('X-Cache')}")

    asyncio.run(go())
    return url


def hit_part(ctx: Context, path: str) -> tuple[dict, dict]:
    """wrk at 32 connections on the two 301 floors and on a cached URL of ours, in rounds,
    interleaved (each system's median round is kept: one wrk run on a 2-core machine that
    also runs wrk varies by ±15%); then imgflo's budgets on ours."""
    with tempfile.TemporaryDirectory() as tmp:
        bare = lab.Bare301().start()
        svc = lab.Service(Path(tmp), {"IMGSERVER_WORKERS": str(CPUS)}).start()
        try:
            urls = {
                "bare aiohttp 301": f"http://127.0.0.1:{bare.port}{path}",
                "nginx 301": f"http://127.0.0.1:{ctx.nginx.moved_port}{path}",
                EMBEDDED: prime(svc.base, ctx.nginx.origin, "v=hit"),
            }
            runs: dict[str, list[dict]] = {name: [] for name in urls}
            for _ in range(ctx.args.rounds):
                for name, url in urls.items():
                    runs[name].append(lab.wrk(url, 32, ctx.hit_seconds))
            budgets = {c: lab.wrk(urls[EMBEDDED], c, ctx.budget_seconds) for c in BUDGETS}
        finally:
            svc.stop()
            bare.stop()
    return {name: median_round(r) for name, r in runs.items()}, budgets
