"""The report: the machine, one table per part with its notes, and each of issue 6's targets
with PASS/FAIL (returned too, for the JSON). Part 4's tables are in report_bytes.py."""

from __future__ import annotations

from pathlib import Path

from bench.context import BARE, DIST_LOCAL, DIST_S3, EMBEDDED, THUMBOR
from bench.hits import BUDGETS
from bench.miss_profile import PROFILE_RATE
from bench.png_compress import png_compress_report
from bench.report_bytes import bytes_report
from bench.report_rd import rd_report
from bench.tables import Target, f, print_rounds, ratio, table, times, verdict
from bench.workload import MEMORY_SOURCES

# the targets of issue 6
MISS_VS_THUMBOR = 1.2
MISS_VS_BARE = {"embedded": 0.95, "distributed": 0.9}
HIT_VS_BARE = {"embedded": 0.7, "distributed": 0.5}
HIT_P99_MS = 15.0
PEAK_RSS_MB = 300.0


def report(results: dict) -> list[dict]:
    targets: list[dict] = []

    def target(name: str, value: str, goal: str, ok: bool | None) -> None:
        targets.append({"target": name, "value": value, "goal": goal, "result": verdict(ok)})

    print_machine(results["machine"])
    miss = results["miss"]
    if miss:
        miss_report(miss, results["miss_workload"], target)
    hit = results["hit"]
    if hit:
        hit_report(hit, target)
    if results.get("budgets"):
        budgets_report(results["budgets"], target)
    mem = results.get("memory")
    if mem:
        memory_report(mem, target)
    rows_in = results.get("bytes")
    if rows_in:
        bytes_report(rows_in, target)
    if results.get("png_compress"):
        png_compress_report(results["png_compress"], target)
    if results.get("rd"):
        plot = results["options"].get("plot")
        results["rd"]["summary"] = rd_report(results["rd"], target, plot and Path(plot))

    if targets:
        table(
            "targets (issues 6 and 13)",
            ["target", "value", "goal", "result"],
            [[t["target"], t["value"], t["goal"], t["result"]] for t in targets],
        )
    return targets


def print_machine(m: dict) -> None:
    print(
        f"\nmachine: {m['cpus']} cores ({m['cpu_model']}), {m['ram_gb']:.0f} GB RAM; "
        f"load average {m['loadavg_start'][0]:.2f} at start, {m['loadavg_end'][0]:.2f} at end"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))


# -- 1. miss ----------------------------------------------------------------------------------


def miss_report(miss: dict, w: dict, target: Target) -> None:
    print(
        f"\nmiss workload: {w['requests']} unique requests, {w['concurrency']} in flight, "
        f"width 300-800, JPEG q{w['quality']}, sources: "
        + ", ".join(f"{n} ({x}x{y})" for n, (x, y) in w["sources"].items())
    )
    thumbor = miss.get(THUMBOR, {}).get("rps")
    bare = [miss[b]["rps"] for b in BARE.values() if b in miss]
    best = max(bare) if bare else None
    miss_table(miss, thumbor, best)
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
    miss_targets(miss, thumbor, best, target)


def miss_table(miss: dict, thumbor: float | None, best: float | None) -> None:
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


def miss_targets(miss: dict, thumbor: float | None, best: float | None, target: Target) -> None:
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


# -- 2. hit -----------------------------------------------------------------------------------


def hit_report(hit: dict, target: Target) -> None:
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
    hit_targets(hit, floor_rps, target)


def hit_targets(hit: dict, floor_rps: float | None, target: Target) -> None:
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


def budgets_report(budgets: dict, target: Target) -> None:
    rows = []
    for c, r in budgets.items():
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


# -- 3. memory --------------------------------------------------------------------------------


def memory_report(mem: dict, target: Target) -> None:
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
