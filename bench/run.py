"""The benchmark: this service against thumbor and the bare image libraries, in one run.

    python bench/run.py [--quick] [--only miss,hit,memory,bytes,auto] [--skip-distributed]
                        [--skip-thumbor] [--profile] [--plot PATH]

(``make bench`` installs what it needs first: wrk, nginx, redis-server, rabbitmq-server, the
thumbor venv, the photos.) Prints one table per part, then each of issue 6's targets with
PASS/FAIL, and writes every raw figure to bench/results/latest.json. bench/README.md says
what each part measures and how.

This file is the command line and the order of the run; each part is a module of its own:
misses.py (and miss_profile.py, ``--profile``), hits.py, memory.py, bytes_ssim.py and
bytes_rd.py (bytes at equal quality, compress time), with the
distributed deployments measured here. What they share: workload.py (sources, settings),
context.py (``Context``, the systems' names, ``attempt``), client.py (the timed requests).
The report: report.py, report_bytes.py, report_rd.py, tables.py; machine.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import lab  # noqa: E402
from bench.auto_quality import auto_part  # noqa: E402
from bench.bytes_rd import rd_part  # noqa: E402
from bench.bytes_ssim import bytes_part  # noqa: E402
from bench.context import (  # noqa: E402
    DIST_LOCAL,
    DIST_S3,
    EMBEDDED,
    RESULTS,
    Context,
    attempt,
    log,
)
from bench.hits import hit_part, prime  # noqa: E402
from bench.machine import machine_info  # noqa: E402
from bench.memory import memory  # noqa: E402
from bench.miss_profile import profile_miss  # noqa: E402
from bench.misses import miss_rounds, miss_service  # noqa: E402
from bench.png_compress import png_compress_part  # noqa: E402
from bench.report import report  # noqa: E402
from bench.workload import CONCURRENCY, CPUS, QUALITY, size_of  # noqa: E402

PARTS = ("miss", "hit", "memory", "bytes", "auto")


def run_parts(ctx: Context, results: dict) -> None:
    """Every part asked for, one measurement at a time."""
    only, args = ctx.args.only, ctx.args
    if "miss" in only:
        miss_rounds(ctx, results)
    if "bytes" in only and (r := attempt(results, "bytes", lambda: bytes_part(ctx))):
        results["bytes"] = r
    if "bytes" in only and (r := attempt(results, "bytes: PNG compress", lambda: png_part(ctx))):
        results["png_compress"] = r
    if "bytes" in only and (
        r := attempt(results, "bytes at equal quality, compress time", lambda: rd_part(ctx))
    ):
        results["rd"] = r
    ctx.stop_thumbor()
    if "auto" in only and (r := attempt(results, "auto", lambda: auto_part(args.quick))):
        results["auto"] = r
    if "hit" in only:
        path = "/graph/passthrough.jpg?width=400"
        if r := attempt(
            results, f"hit: the floors, {EMBEDDED}, imgflo's budgets", lambda: hit_part(ctx, path)
        ):
            results["hit"] |= r[0]
            results["budgets"] = r[1]
    if "memory" in only and (r := attempt(results, "memory", lambda: memory(ctx))):
        results["memory"] = r
    if not args.skip_distributed and {"miss", "hit"} & set(only):
        if lab.stack_available():
            attempt(results, "distributed", lambda: distributed(ctx, results))
        else:
            log("distributed: skipped (redis-server or rabbitmq-server not installed)")


def png_part(ctx: Context) -> list[dict]:
    thumbor = None if ctx.args.skip_thumbor else ctx.thumbor()
    return png_compress_part(ctx.nginx.origin, thumbor, quick=ctx.args.quick)


def distributed(ctx: Context, results: dict) -> None:
    """The distributed mode's measurements, with the stack up only meanwhile."""
    stack = lab.Stack()
    log("distributed: starting redis-server, RabbitMQ, moto S3")
    stack.start()
    try:
        distributed_variant(ctx, results, stack, DIST_S3, s3=True)
        if "miss" in ctx.args.only and not ctx.args.quick:
            distributed_variant(ctx, results, stack, DIST_LOCAL, s3=False)
    finally:
        stack.stop()


def distributed_variant(
    ctx: Context, results: dict, stack: lab.Stack, label: str, s3: bool
) -> None:
    """A frontend and one urgent worker role (``IMGSERVER_WORKERS`` image processes), results
    in S3 or in a local directory both share."""
    with tempfile.TemporaryDirectory() as tmp:
        web = lab.Service(Path(tmp), stack.env(s3) | {"IMGSERVER_WORKERS": str(CPUS)})
        worker = lab.WorkerProcess("urgent", web.env, Path(tmp))
        try:
            web.start()
            worker.start()
            roots = [web.proc.pid, worker.proc.pid]
            tag = "v=" + label.split("(")[1].rstrip(")").replace(" ", "")
            if "miss" in ctx.args.only:
                measure = lambda: miss_service(ctx, web.base, tag, roots, stack.pids)  # noqa: E731
                if r := attempt(results, f"miss: {label}", measure):
                    results["miss"][label] = r
                if r and ctx.args.profile and s3:
                    processes = {
                        "distributed frontend": web.proc.pid,
                        "distributed worker": worker.proc.pid,
                    }
                    r["profile"] = attempt(
                        results,
                        f"miss: profiling {label}",
                        lambda: profile_miss(ctx, web.base, tag + "-profile", processes),
                    )
            if "hit" in ctx.args.only and s3:

                def hit():
                    return lab.wrk(prime(web.base, ctx.nginx.origin, "v=hit"), 32, ctx.hit_seconds)

                if r := attempt(results, f"hit: {label}", hit):
                    results["hit"][label] = r
        finally:
            worker.stop()
            web.stop()


def parse_args() -> argparse.Namespace:
    """The options, checked: the parts exist, and what they need is installed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests: a smoke run")
    parser.add_argument(
        "--only", default=",".join(PARTS), help="comma-separated parts: miss,hit,memory,bytes,auto"
    )
    parser.add_argument("--skip-distributed", action="store_true")
    parser.add_argument("--skip-thumbor", action="store_true")
    parser.add_argument(
        "--profile", action="store_true", help="also profile the embedded miss workload with py-spy"
    )
    parser.add_argument("--requests", type=int, default=0, help="miss requests per system")
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="miss rounds per system, interleaved (median kept); default 3, 1 with --quick",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="the rate-distortion curves (PNG); default bench/rd-curves.png, "
        "bench/results/rd-curves-quick.png with --quick",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS / "latest.json",
        help="raw figures (JSON); default bench/results/latest.json",
    )
    args = parser.parse_args()
    args.only = [p.strip() for p in args.only.split(",") if p.strip()]
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.plot is None:
        quick = RESULTS / "rd-curves-quick.png"
        args.plot = quick if args.quick else REPO / "bench" / "rd-curves.png"
    if unknown := set(args.only) - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    if "hit" in args.only and not shutil.which("wrk"):
        parser.error("wrk is not installed: run `make bench`, or leave out the hit part")
    if not Path(lab.NGINX).exists():
        parser.error("nginx (the origin of the sources) is not installed: run `make bench`")
    return args


def main() -> int:
    args = parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 1000 connections, both sides

    started = time.monotonic()
    machine = machine_info()
    log(f"load average at start: {machine['loadavg_start']}")
    results: dict = {"machine": machine, "options": vars(args), "miss": {}, "hit": {}, "failed": {}}
    with tempfile.TemporaryDirectory(prefix="imgbench-") as root:
        ctx = Context(args, Path(root))
        try:
            results["miss_workload"] = {
                "sources": {n: list(size_of(ctx.paths[n])) for n in ctx.miss_sources},
                "requests": len(ctx.jobs),
                "concurrency": CONCURRENCY,
                "quality": QUALITY,
            }
            run_parts(ctx, results)
        finally:
            ctx.close()
    machine["loadavg_end"] = os.getloadavg()
    if failed := sorted(results["failed"]):
        log(f"these measurements failed (tracebacks above): {', '.join(failed)}")
    results["duration_s"] = time.monotonic() - started
    results["targets"] = report(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1, default=str))
    print(f"\nraw figures: {args.output}; the run took {results['duration_s']:.0f} s")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
