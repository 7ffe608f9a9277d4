"""The benchmark: this service against thumbor and the bare image libraries, in one run.

    python bench/run.py [--quick] [--only miss,hit,memory,bytes] [--skip-distributed]
                        [--skip-thumbor] [--profile]

(``make bench`` installs what it needs first: wrk, nginx, redis-server, rabbitmq-server, the
thumbor venv, the photos.) Prints one table per part, then each of issue 6's targets with
PASS/FAIL, and writes every raw figure to bench/results/latest.json. bench/README.md says
what each part measures and how.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import lab  # noqa: E402
from bench.bytes_ssim import bytes_part  # noqa: E402
from bench.context import (  # noqa: E402
    BARE,
    DIST_LOCAL,
    DIST_S3,
    EMBEDDED,
    RESULTS,
    THUMBOR,
    Context,
    attempt,
    log,
)
from bench.hits import BUDGETS, hit_part, prime  # noqa: E402
from bench.memory import memory  # noqa: E402
from bench.miss_profile import PROFILE_RATE, profile_miss  # noqa: E402
from bench.misses import miss_rounds, miss_service  # noqa: E402
from bench.workload import (  # noqa: E402
    CONCURRENCY,
    CPUS,
    MEMORY_SOURCES,
    QUALITY,
    size_of,
)

PARTS = ("miss", "hit", "memory", "bytes")

# the targets of issue 6
MISS_VS_THUMBOR = 1.2
MISS_VS_BARE = {"embedded": 0.95, "distributed": 0.9}
HIT_VS_BARE = {"embedded": 0.7, "distributed": 0.5}
HIT_P99_MS = 15.0
PEAK_RSS_MB = 300.0
SSIM_TOLERANCE = 0.001  # "equal SSIM": ours may be this much lower


# -- the run ----------------------------------------------------------------------------------


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


def run_parts(ctx: Context, results: dict) -> None:
    """Every part asked for, one measurement at a time."""
    only, args = ctx.args.only, ctx.args
    if "miss" in only:
        miss_rounds(ctx, results)
    if "bytes" in only and (r := attempt(results, "bytes", lambda: bytes_part(ctx))):
        results["bytes"] = r
    ctx.stop_thumbor()
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests: a smoke run")
    parser.add_argument(
        "--only", default=",".join(PARTS), help="comma-separated parts: miss,hit,memory,bytes"
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
        "--output",
        type=Path,
        default=RESULTS / "latest.json",
        help="raw figures (JSON); default bench/results/latest.json",
    )
    args = parser.parse_args()
    args.only = [p.strip() for p in args.only.split(",") if p.strip()]
    args.rounds = args.rounds or (1 if args.quick else 3)
    if unknown := set(args.only) - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    if "hit" in args.only and not shutil.which("wrk"):
        parser.error("wrk is not installed: run `make bench`, or leave out the hit part")
    if not Path(lab.NGINX).exists():
        parser.error("nginx (the origin of the sources) is not installed: run `make bench`")
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


# -- the report -------------------------------------------------------------------------------


def print_rounds(systems: dict[str, dict], digits: int) -> None:
    """Under a table of median rounds: every round's req/s."""
    several = {
        name: r["rounds_rps"] for name, r in systems.items() if len(r.get("rounds_rps", [])) > 1
    }
    if several:
        print(
            "  each row is the median of its rounds; req/s of every round: "
            + "; ".join(
                f"{name} {' / '.join(f(x, digits) for x in rps)}" for name, rps in several.items()
            )
        )


def table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    print(f"\n{title}")
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    print(line)
    print("-" * len(line))
    for r in rows:
        print(
            "  ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )


def f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def report(results: dict) -> list[dict]:
    targets: list[dict] = []

    def target(name: str, value: str, goal: str, ok: bool | None) -> None:
        targets.append({"target": name, "value": value, "goal": goal, "result": verdict(ok)})

    m = results["machine"]
    print(
        f"\nmachine: {m['cpus']} cores ({m['cpu_model']}), {m['ram_gb']:.0f} GB RAM; "
        f"load average {m['loadavg_start'][0]:.2f} at start, {m['loadavg_end'][0]:.2f} at end"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))

    miss = results["miss"]
    if miss:
        w = results["miss_workload"]
        print(
            f"\nmiss workload: {w['requests']} unique requests, {w['concurrency']} in flight, "
            f"width 300-800, JPEG q{w['quality']}, sources: "
            + ", ".join(f"{n} ({x}x{y})" for n, (x, y) in w["sources"].items())
        )
        thumbor = miss.get(THUMBOR, {}).get("rps")
        bare = [miss[b]["rps"] for b in BARE.values() if b in miss]
        best = max(bare) if bare else None
        rows = []
        for name, r in miss.items():
            rows.append(
                [
                    name,
                    f"{r['ok']}/{r['requests']}",
                    f(r["rps"], 2),
                    f(r["p50_ms"]),
                    f(r["p99_ms"]),
                    f(r["mean_ms"]),
                    f(1000 * r["cpu_s"] / max(1, r["ok"]), 0) if "cpu_s" in r else "-",
                    f(ratio(r["rps"], thumbor), 2),
                    f(ratio(r["rps"], best), 2),
                    ",".join(str(q) for q in r["jpeg_quality"]),
                ]
            )
        table(
            "1. miss throughput and latency",
            [
                "system",
                "ok",
                "req/s",
                "p50 ms",
                "p99 ms",
                "mean ms",
                "CPU ms/req",
                "vs thumbor",
                "vs best bare",
                "JPEG q",
            ],
            rows,
        )
        print_rounds(miss, 2)
        for name, r in miss.items():
            if r.get("stack_cpu_s") is not None:
                per = 1000 * r["stack_cpu_s"] / max(1, r["ok"])
                print(
                    f"  {name}: redis-server, RabbitMQ and moto S3 used {per:.0f} ms CPU/req "
                    "besides (not in the CPU column)"
                )
            for e in r["first_errors"]:
                print(f"  {name} error: {e}")
        for name, r in miss.items():
            if "profile" in r:
                print_profile(name, r["profile"])
        emb = miss.get(EMBEDDED, {}).get("rps")
        goal = f">= {MISS_VS_THUMBOR}x thumbor"
        v = ratio(emb, thumbor)
        target("miss: embedded vs thumbor", times(v), goal, None if v is None else v >= 1.2)
        v = ratio(emb, best)
        goal = f">= {MISS_VS_BARE['embedded']}x best bare"
        target(
            "miss: embedded vs best bare",
            times(v),
            goal,
            None if v is None else v >= MISS_VS_BARE["embedded"],
        )
        v = ratio(miss.get(DIST_S3, {}).get("rps"), best)
        goal = f">= {MISS_VS_BARE['distributed']}x best bare"
        target(
            "miss: distributed (S3) vs best bare",
            times(v),
            goal,
            None if v is None else v >= MISS_VS_BARE["distributed"],
        )
        if DIST_LOCAL in miss:
            v = ratio(miss[DIST_LOCAL]["rps"], best)
            target(
                "miss: distributed (local storage) vs best bare",
                times(v),
                goal,
                v >= MISS_VS_BARE["distributed"],
            )
        for name, r in miss.items():
            if r["errors"]:
                target(f"miss: {name} answers every request", f"{r['errors']} errors", "0", False)

    hit = results["hit"]
    if hit:
        floor_rps = hit.get("bare aiohttp 301", {}).get("rps")
        rows = [
            [
                name,
                f(r["rps"], 0),
                f(r["p50_ms"], 2),
                f(r["p99_ms"], 2),
                f(r["mean_ms"], 2),
                f(ratio(r["rps"], floor_rps), 2),
                int(r["socket_errors"] + r["bad_responses"]),
            ]
            for name, r in hit.items()
        ]
        table(
            "2. hit path (wrk -t2 -c32, 301 answers)",
            ["system", "req/s", "p50 ms", "p99 ms", "mean ms", "vs bare aiohttp", "errors"],
            rows,
        )
        print_rounds(hit, 0)
        for label, mode in ((EMBEDDED, "embedded"), (DIST_S3, "distributed")):
            if label not in hit:
                continue
            v = ratio(hit[label]["rps"], floor_rps)
            target(
                f"hit: {mode} vs bare aiohttp 301",
                times(v),
                f">= {HIT_VS_BARE[mode]}x",
                None if v is None else v >= HIT_VS_BARE[mode],
            )
            p99 = hit[label]["p99_ms"]
            target(
                f"hit: {mode} p99 at 32 connections",
                f"{p99:.2f} ms",
                f"< {HIT_P99_MS} ms",
                p99 < HIT_P99_MS,
            )
    if results.get("budgets"):
        rows = []
        for c, r in results["budgets"].items():
            budget = BUDGETS[int(c)]
            ok = r["mean_ms"] < budget and not r["socket_errors"] and not r["bad_responses"]
            rows.append(
                [
                    str(c),
                    f(r["rps"], 0),
                    f(r["mean_ms"], 2),
                    f(r["p99_ms"], 2),
                    f(budget, 0),
                    int(r["socket_errors"] + r["bad_responses"]),
                    verdict(ok),
                ]
            )
            target(
                f"hit: imgflo budget at {c} connections",
                f"mean {r['mean_ms']:.2f} ms",
                f"< {budget:.0f} ms",
                ok,
            )
        table(
            "   imgflo's budgets, ours embedded (mean latency of cached requests)",
            ["connections", "req/s", "mean ms", "p99 ms", "budget ms", "errors", "result"],
            rows,
        )

    mem = results.get("memory")
    if mem:
        rows = []
        for name in MEMORY_SOURCES:
            r = mem[name]
            peak = max(r["workers_peak_mb"])
            rows.append(
                [
                    name,
                    f"{r['pixels'] / 1e6:.1f} MP",
                    f"{r['bytes'] / 1e6:.1f} MB",
                    " / ".join(f(x, 0) for x in r["workers_peak_mb"]),
                    f(r["frontend_peak_mb"], 0),
                    verdict(peak < PEAK_RSS_MB),
                ]
            )
            target(
                f"memory: peak RSS per worker, {name}",
                f"{peak:.0f} MB",
                f"< {PEAK_RSS_MB:.0f} MB",
                peak < PEAK_RSS_MB,
            )
        idle = " / ".join(f(x, 0) for x in mem["idle_rss_mb"].values())
        table(
            f"3. memory: peak RSS (VmHWM) per image worker process, passthrough to 800 px "
            f"(RSS after a warm-up job: {idle} MB)",
            ["source", "pixels", "file", "workers' peaks MB", "frontend peak MB", "< 300 MB"],
            rows,
        )

    rows_in = results.get("bytes")
    if rows_in:
        bytes_report(rows_in, target)

    if targets:
        table(
            "targets (issue 6)",
            ["target", "value", "goal", "result"],
            [[t["target"], t["value"], t["goal"], t["result"]] for t in targets],
        )
    return targets


def print_profile(name: str, profile: dict) -> None:
    print(
        f"\n   profile of {name} (py-spy {PROFILE_RATE} Hz, the miss workload again; % of "
        "samples: a service process when on CPU, image processes all the time)"
    )
    for kind, p in profile.items():
        what = "processes sampled" if kind.endswith("image processes") else "cores busy"
        print(f"   {kind}: {p['per_wall_second']:.2f} {what} ({p['samples']} samples)")
        for what in ("self", "inclusive"):
            print(f"     {what}:")
            for func, share in p[what]:
                print(f"       {share:5.1f}%  {func}")


def bytes_report(rows_in: list[dict], target: Callable[..., None]) -> None:
    by = {(r["source"], r["kind"], r["system"]): r for r in rows_in}
    sources = list(dict.fromkeys(r["source"] for r in rows_in))
    for kind, title in (
        ("compress", "4a. bytes: compress q75, full size, same format"),
        ("resize", "4b. bytes: passthrough to 800 px, JPEG q80"),
    ):
        rows = []
        for s in sources:
            ours, th = by[(s, kind, "ours")], by.get((s, kind, "thumbor"))
            better = None
            if th:
                tolerance = SSIM_TOLERANCE
                better = ours["bytes"] <= th["bytes"] and ours["ssim"] >= th["ssim"] - tolerance
            notes = ["source kept"] if ours["kept_source"] else []
            if th and th["format"] != ours["format"]:
                notes.append(f"thumbor: {th['format']}")
            rows.append(
                [
                    s,
                    f"{ours['source_bytes'] / 1e3:.0f}",
                    f"{ours['width']}x{ours['height']}",
                    f"{ours['bytes'] / 1e3:.1f}",
                    f"{th['bytes'] / 1e3:.1f}" if th else "-",
                    f(ratio(ours["bytes"], th["bytes"]) if th else None, 2),
                    f(ours["ssim"], 4),
                    f(th["ssim"], 4) if th else "-",
                    verdict(better),
                    ", ".join(notes),
                ]
            )
        table(
            title + " (KB; SSIM of luminance against the source)",
            [
                "source",
                "source KB",
                "size",
                "ours KB",
                "thumbor KB",
                "ours/thumbor",
                "ours SSIM",
                "thumbor SSIM",
                "<= bytes, >= SSIM",
                "note",
            ],
            rows,
        )
    for fmt in ("JPEG", "PNG"):
        pairs = [
            (by[(s, "compress", "ours")], by.get((s, "compress", "thumbor")))
            for s in sources
            if by[(s, "compress", "ours")]["format"] == fmt
        ]
        if not pairs:
            continue
        if any(th is None for _, th in pairs):
            target(f"bytes: compress {fmt} vs thumbor", "thumbor skipped", "", None)
            continue
        ours_b = sum(o["bytes"] for o, _ in pairs)
        th_b = sum(t["bytes"] for _, t in pairs)
        worse = [o["source"] for o, t in pairs if o["ssim"] < t["ssim"] - SSIM_TOLERANCE]
        larger = [o["source"] for o, t in pairs if o["bytes"] > t["bytes"]]
        ours_s = statistics.fmean(o["ssim"] for o, _ in pairs)
        th_s = statistics.fmean(t["ssim"] for _, t in pairs)
        value = f"{ours_b / th_b:.2f}x bytes, mean SSIM {ours_s:.4f} vs {th_s:.4f}"
        if larger:
            value += f"; {len(larger)} larger"
        if worse:
            value += f"; {len(worse)} lower SSIM"
        target(
            f"bytes: compress {fmt} ({len(pairs)} sources) vs thumbor q75",
            value,
            "<= thumbor bytes at >= SSIM",
            not larger and not worse,
        )


def machine_info() -> dict:
    import pyvips

    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )

    def run(*command: str) -> str:
        """The first line a command prints (some print their version on stderr, exit 1)."""
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=30)
        except OSError:
            return "not installed"
        lines = (out.stdout + out.stderr).strip().splitlines()
        return lines[0] if lines else "?"

    thumbor_py = str(lab.THUMBOR_VENV / "bin" / "python")
    versions = {
        "python": platform.python_version(),
        "libvips": f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}",
        "pyvips": pyvips.__version__,
        "Pillow": Image.__version__,
        "thumbor": run(thumbor_py, "-c", "import thumbor; print(thumbor.__version__)"),
        "thumbor's Pillow": run(thumbor_py, "-c", "import PIL; print(PIL.__version__)"),
        "aiohttp": aiohttp.__version__,
        "nginx": run(lab.NGINX, "-v").rsplit("/", 1)[-1],
        "wrk": run("wrk", "-v").split(" [")[0].removeprefix("wrk "),
        "redis": run("redis-server", "--version").split(" sha")[0].split("v=")[-1],
    }
    return {
        "cpus": CPUS,
        "cpu_model": model,
        "ram_gb": mem_kb / 1024 / 1024,
        "kernel": platform.release(),
        "loadavg_start": os.getloadavg(),
        "versions": versions,
    }


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
