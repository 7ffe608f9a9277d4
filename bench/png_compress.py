"""Part 4c, PNG compress: ``compress`` of PNG photographs against thumbor's
``filters:quality(75)`` (Pillow, zlib level 6, adaptive filters): time and bytes, in one
interleaved run, as ratios.

    python bench/png_compress.py [--rounds 5] [--quick] [--also /path/to/other/checkout]

Each round asks every system for every source once, in an order that alternates from round to
round, with a fresh source URL (``?v=``) so nothing is served from a cache; a request's time is
from sending it to the last byte of the result (our 301 followed). The figure per source is the
median of the rounds, the ratio ours / thumbor of those medians. ``--also`` starts a second
service from another checkout (e.g. main before a change) in the same rounds. ``make bench``
runs this as part of its bytes part (``run.py`` calls :func:`png_compress_part`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import lab  # noqa: E402
from bench.photos import GENERATED, generated, photo  # noqa: E402
from bench.tables import Target, f, table, verdict  # noqa: E402
from bench.workload import CPUS, SOURCES_DIR  # noqa: E402

OURS = "ours"
THUMBOR = "thumbor"
PNG_SOURCES = ["LadyBird_2560x1600.png", "Elephants_3840x2160.png", "Elephants_5120x2880.png"]
QUICK_PNG_SOURCES = ["LadyBird_2560x1600.png"]
# the old encoder takes seconds a source, more on a loaded machine: no deadline may cut it
SLOW_OK = {"IMGSERVER_REQUEST_DEADLINE": "600", "IMGSERVER_JOB_DEADLINE": "600"}


def source(name: str) -> Path:
    """A PNG photograph by name, made once from the package's photos (lossless: the PNG holds
    the decoded JPEG), linked where the origin serves it."""
    if name == "Elephants_3840x2160.png":
        path = GENERATED / name
        if not path.exists():
            import pyvips

            GENERATED.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            jpeg = pyvips.Image.new_from_file(str(photo("Elephants_3840x2160.jpg")))
            jpeg.pngsave(str(tmp), keep="none")
            tmp.rename(path)
    else:
        path = generated(name)
    SOURCES_DIR.mkdir(parents=True, exist_ok=True)
    link = SOURCES_DIR / name
    if not link.exists():
        link.symlink_to(path)
    return path


async def timed(session: aiohttp.ClientSession, url: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    async with session.get(url) as r:
        data = await r.read()
        if r.status != 200:
            raise RuntimeError(f"{url}: {r.status} {data[:200]!r}")
    return time.perf_counter() - start, data


def measure(
    bases: dict[str, str], roots: dict[str, int], origin: str, names: list[str], rounds: int
) -> list[dict]:
    """Every system, every source, ``rounds`` times, interleaved; one row per (source, system)
    with its times (wall, and CPU of the system's processes: ``roots``, with their children),
    bytes and the result's format."""
    host = origin.removeprefix("http://")
    times: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    outputs: dict[tuple[str, str], bytes] = {}

    def url(system: str, name: str, r: int) -> str:
        if system == THUMBOR:
            return f"{bases[system]}/unsafe/filters:quality(75)/{host}/{name}"  # no cache
        src = quote(f"{origin}/{name}?v=png{r}-{system}", safe="")
        return f"{bases[system]}/graph/compress.png?input={src}&quality=75"

    async def run() -> None:
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for r in range(rounds):
                systems = list(bases) if r % 2 == 0 else list(reversed(bases))
                for name in names:
                    for system in systems:
                        meter = lab.CpuMeter([roots[system]])
                        meter.start()
                        seconds, data = await timed(session, url(system, name, r))
                        cpu.setdefault((name, system), []).append(meter.stop())
                        times.setdefault((name, system), []).append(seconds)
                        outputs[(name, system)] = data
                lab_log(f"png compress: round {r + 1}/{rounds}, load {os.getloadavg()[0]:.1f}")

    asyncio.run(run())
    rows = []
    for (name, system), seconds in times.items():
        data = outputs[(name, system)]
        with Image.open(io.BytesIO(data)) as im:
            mode = im.mode
        rows.append(
            {
                "source": name,
                "system": system,
                "seconds": seconds,
                "median_s": statistics.median(seconds),
                "cpu_s": cpu[(name, system)],
                "median_cpu_s": statistics.median(cpu[(name, system)]),
                "bytes": len(data),
                "mode": mode,
            }
        )
    return rows


def lab_log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def services(others: dict[str, Path]) -> Iterator[tuple[dict[str, str], dict[str, int]]]:
    """Our service (this checkout), and one from each other checkout, IMGSERVER_WORKERS =
    cores as in the rest of the bench."""
    import tests.servers as servers

    started: list[lab.Service] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            bases, roots = {}, {}
            for label, repo in {OURS: REPO, **others}.items():
                svc = lab.Service(Path(tmp) / label, {"IMGSERVER_WORKERS": str(CPUS), **SLOW_OK})
                saved, servers.REPO = servers.REPO, repo  # the checkout it runs from
                try:
                    started.append(svc.start())
                finally:
                    servers.REPO = saved
                bases[label] = svc.base
                assert svc.proc is not None
                roots[label] = svc.proc.pid
            yield bases, roots
        finally:
            for svc in started:
                svc.stop()


def png_compress_part(
    origin: str, thumbor: lab.Thumbor | None, *, quick: bool, rounds: int | None = None
) -> list[dict]:
    """What run.py calls: the rows for :func:`png_compress_report`."""
    names = QUICK_PNG_SOURCES if quick else PNG_SOURCES
    for name in names:
        source(name)
    with services({}) as (bases, roots):
        if thumbor is not None and thumbor.proc is not None:
            bases[THUMBOR], roots[THUMBOR] = thumbor.base, thumbor.proc.pid
        return measure(bases, roots, origin, names, rounds or (2 if quick else 5))


def png_compress_report(rows: list[dict], target: Target) -> None:
    """A row per source and system: median wall and CPU seconds and bytes, ours / thumbor;
    the targets (time: wall and CPU; bytes), each source at most thumbor's."""
    by = {(r["source"], r["system"]): r for r in rows}
    names = list(dict.fromkeys(r["source"] for r in rows))
    systems = [s for s in dict.fromkeys(r["system"] for r in rows) if s != THUMBOR]
    has_thumbor = any(r["system"] == THUMBOR for r in rows)
    out = []
    worst: dict[tuple[str, str], float] = {}
    for name in names:
        th = by.get((name, THUMBOR))
        for system in systems:
            ours = by[(name, system)]
            ratios = {
                "wall": ours["median_s"] / th["median_s"] if th else None,
                "cpu": ours["median_cpu_s"] / th["median_cpu_s"] if th else None,
                "bytes": ours["bytes"] / th["bytes"] if th else None,
            }
            for what, value in ratios.items():
                if value is not None:
                    worst[(system, what)] = max(worst.get((system, what), 0.0), value)
            out.append(
                [
                    name,
                    system,
                    f(ours["median_s"], 2),
                    f(th["median_s"], 2) if th else "-",
                    f(ratios["wall"], 2),
                    f(ours["median_cpu_s"], 2),
                    f(th["median_cpu_s"], 2) if th else "-",
                    f(ratios["cpu"], 2),
                    f(ours["bytes"] / 1e6, 3),
                    f(th["bytes"] / 1e6, 3) if th else "-",
                    f(ratios["bytes"], 3),
                    ours["mode"],
                ]
            )
    table(
        "4c. PNG compress q75, full size (median of the rounds: wall s, CPU s of the system's "
        "processes; MB)",
        [
            "source",
            "system",
            "s",
            "thumbor",
            "wall",
            "CPU s",
            "thumbor",
            "CPU",
            "MB",
            "thumbor",
            "bytes",
            "mode",
        ],
        out,
    )
    for system in systems:
        label = "" if system == OURS else f" ({system})"
        for what, goal in (("wall", "time (wall)"), ("cpu", "time (CPU)"), ("bytes", "bytes")):
            name = f"compress PNG {goal} vs thumbor{label} ({len(names)} sources)"
            value = worst.get((system, what))
            if not has_thumbor or value is None:
                target(name, "thumbor skipped", "<= 1.0x each", None)
                continue
            target(name, f"worst {value:.2f}x", "<= 1.0x each", value <= 1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--also", type=Path, action="append", default=[])
    parser.add_argument("--sources", help="comma-separated PNG names (default: all three)")
    args = parser.parse_args()
    names = args.sources.split(",") if args.sources else None
    names = names or (QUICK_PNG_SOURCES if args.quick else PNG_SOURCES)
    for name in names:
        source(name)
    print(f"load average at start: {os.getloadavg()}")
    targets: list[tuple[str, str, str, str]] = []

    def target(name: str, value: str, goal: str, ok: bool | None) -> None:
        targets.append((name, value, goal, verdict(ok)))

    with tempfile.TemporaryDirectory(prefix="pngbench-") as root:
        nginx = lab.Nginx(Path(root) / "nginx", SOURCES_DIR).start()
        thumbor = lab.Thumbor(Path(root) / "thumbor", CPUS).start()
        try:
            others = {f"also:{p.name}": p.resolve() for p in args.also}
            with services(others) as (bases, roots):
                assert thumbor.proc is not None
                bases[THUMBOR], roots[THUMBOR] = thumbor.base, thumbor.proc.pid
                rows = measure(bases, roots, nginx.origin, names, args.rounds)
        finally:
            thumbor.stop()
            nginx.stop()
    png_compress_report(rows, target)
    table("targets", ["target", "value", "goal", "result"], [list(t) for t in targets])
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
