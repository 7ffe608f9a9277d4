"""The miss workload again, untimed, under py-spy (``--profile``): where the service's
processes and their image processes spend their samples."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import lab
from bench.client import ours_call, run_http
from bench.context import RESULTS, Context

PROFILE_RATE = 200  # py-spy samples per second


def profile_miss(ctx: Context, base: str, tag: str, targets: dict[str, int]) -> dict:
    """The miss workload again (not timed) under py-spy, for each process in ``targets`` and
    its image processes. A service process is sampled when it runs (its CPU); an image
    process all the time (``--idle``): its pixels are computed in libvips' own threads, which
    py-spy cannot see, while its Python thread waits in the pyvips call that started them."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    RESULTS.mkdir(parents=True, exist_ok=True)
    recorders: list[tuple[str, Path, subprocess.Popen]] = []
    for label, pid in targets.items():
        kinds = [(label, pid, [])]
        kinds += [(f"{label}: image processes", p, ["--idle"]) for p in lab.worker_pids(pid)]
        for kind, p, flags in kinds:
            out = RESULTS / f"profile-{label.replace(' ', '-')}-{p}.txt"
            command = [
                spy,
                "record",
                "--pid",
                str(p),
                "--nonblocking",
                *flags,
                "--rate",
                str(PROFILE_RATE),
                "--format",
                "raw",
                "--output",
                str(out),
            ]
            proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            recorders.append((kind, out, proc))
    time.sleep(1.0)
    origin = ctx.nginx.origin
    start = time.perf_counter()
    asyncio.run(run_http(lambda s: ours_call(s, base, origin, tag), [], ctx.jobs))
    wall = time.perf_counter() - start
    for _, _, proc in recorders:
        proc.send_signal(signal.SIGINT)
    files: dict[str, list[Path]] = {}
    for kind, out, proc in recorders:
        proc.wait(60)
        files.setdefault(kind, []).append(out)
    return {kind: summarise_profile(paths, wall) for kind, paths in files.items()}


def summarise_profile(paths: list[Path], wall: float, top: int = 12) -> dict:
    """Samples per second of wall time (busy cores, or processes when idle is sampled) and
    the hottest functions, self and inclusive, as % of the samples."""
    samples, own, incl = 0, {}, {}
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            stack = re.sub(r'process \d+:"[^"]*"(;|$)', "", stack)  # cmdlines hold ';'
            funcs = [
                re.sub(r":\d+\)$", ")", f)
                for f in stack.split(";")
                if f and not f.startswith("thread ")
            ]
            n = int(count)
            samples += n
            if funcs:
                own[funcs[-1]] = own.get(funcs[-1], 0) + n
            for f in set(funcs):
                incl[f] = incl.get(f, 0) + n

    def best(d: dict) -> list[tuple[str, float]]:
        ranked = sorted(d.items(), key=lambda kv: -kv[1])[:top]
        return [(f, round(100 * n / max(1, samples), 1)) for f, n in ranked]

    return {
        "samples": samples,
        "per_wall_second": samples / PROFILE_RATE / wall,
        "self": best(own),
        "inclusive": best(incl),
        "files": [str(p.relative_to(lab.REPO)) for p in paths],
    }
