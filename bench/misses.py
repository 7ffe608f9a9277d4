"""Part 1, misses: the miss workload against each system (ours embedded, thumbor, the bare
libraries), in rounds, interleaved; a system's row is its median round. ``miss_service`` is
also what the distributed deployments are measured with."""

from __future__ import annotations

import asyncio
import multiprocessing
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench import floor, lab
from bench.client import drive, ours_call, run_http, thumbor_call
from bench.context import BARE, EMBEDDED, THUMBOR, Context, attempt, log, median_round
from bench.miss_profile import profile_miss
from bench.workload import CONCURRENCY, CPUS, QUALITY, warmup_jobs


def miss_rounds(ctx: Context, results: dict) -> None:
    """Every system's rounds, interleaved; its median round goes into ``results["miss"]``."""
    args = ctx.args
    systems = [(EMBEDDED, lambda: miss_embedded(ctx))]
    if not args.skip_thumbor:
        systems.append((THUMBOR, lambda: miss_thumbor(ctx)))
    for library, label in BARE.items():
        systems.append((label, lambda library=library: miss_bare(ctx, library)))
    # Rounds, interleaved: a system's figure is its median round, so one noisy run on a
    # shared 2-core machine does not decide a ratio.
    rounds: dict[str, list[dict]] = {}
    for n in range(args.rounds):
        for label, measure in systems:
            what = f"miss: {label}" + (f" (round {n + 1}/{args.rounds})" * (args.rounds > 1))
            if (r := attempt(results, what, measure)) is not None:
                rounds.setdefault(label, []).append(r)
    for label, measured in rounds.items():
        results["miss"][label] = median_round(measured)


def miss_embedded(ctx: Context) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        svc = lab.Service(Path(tmp), {"IMGSERVER_WORKERS": str(CPUS)}).start()
        try:
            result = miss_service(ctx, svc.base, "v=embedded", [svc.proc.pid])
            if ctx.args.profile and not ctx.profiled:
                ctx.profiled = True
                log("miss: profiling ours embedded")
                result["profile"] = profile_miss(
                    ctx, svc.base, "v=profile", {"embedded": svc.proc.pid}
                )
        finally:
            svc.stop()
    return result


def miss_service(
    ctx: Context, base: str, tag: str, roots: list[int], stack: list[int] | None = None
) -> dict:
    """The miss workload against one of our deployments; CPU of ``roots`` (and of the
    distributed stack's servers, apart) is accounted."""
    meter, stack_meter = lab.CpuMeter(roots), lab.CpuMeter(stack or [])
    origin = ctx.nginx.origin
    stack_meter.start()
    result = asyncio.run(
        run_http(
            lambda s: ours_call(s, base, origin, tag),
            warmup_jobs(ctx.miss_sources),
            ctx.jobs,
            meter,
        )
    )
    if stack:
        result["stack_cpu_s"] = stack_meter.stop()
    return result


def miss_thumbor(ctx: Context) -> dict:
    thumbor = ctx.thumbor()
    meter = lab.CpuMeter([thumbor.pid])
    base, origin = thumbor.base, ctx.nginx.origin
    return asyncio.run(
        run_http(
            lambda s: thumbor_call(s, base, origin), warmup_jobs(ctx.miss_sources), ctx.jobs, meter
        )
    )


def miss_bare(ctx: Context, library: str) -> dict:
    paths = [str(ctx.paths[n]) for n in ctx.miss_sources]
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        CPUS, mp_context=spawn, initializer=floor.init, initargs=(library, paths, 1)
    ) as pool:
        for f in [pool.submit(floor.warm) for _ in range(CPUS * 2)]:
            f.result()
        pids = list(pool._processes)

        async def go() -> dict:
            loop = asyncio.get_running_loop()

            async def call(name: str, width: int) -> bytes:
                return await loop.run_in_executor(pool, floor.resize, name, width, QUALITY)

            await drive(call, warmup_jobs(ctx.miss_sources), CONCURRENCY)
            meter = lab.CpuMeter(pids)
            meter.start()
            result = await drive(call, ctx.jobs, CONCURRENCY)
            result["cpu_s"] = meter.stop()
            return result

        return asyncio.run(go())
