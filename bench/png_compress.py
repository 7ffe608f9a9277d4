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


def measure(bases: dict[str, str], origin: str, names: list[str], rounds: int) -> list[dict]:
    """Every system, every source, ``rounds`` times, interleaved; one row per (source, system)
    with its times, bytes and the result's format."""
    host = origin.removeprefix("http://")
    times: dict[tuple[str, str], list[float]] = {}
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
                        seconds, data = await timed(session, url(system, name, r))
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
                "bytes": len(data),
                "mode": mode,
            }
        )
    return rows


def lab_log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def services(others: dict[str, Path]) -> Iterator[dict[str, str]]:
    """Our service (this checkout), and one from each other checkout, IMGSERVER_WORKERS =
    cores as in the rest of the bench."""
    import tests.servers as servers

    started: list[lab.Service] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            bases = {}
            for label, repo in {OURS: REPO, **others}.items():
                svc = lab.Service(Path(tmp) / label, {"IMGSERVER_WORKERS": str(CPUS), **SLOW_OK})
                saved, servers.REPO = servers.REPO, repo  # the checkout it runs from
                try:
                    started.append(svc.start())
                finally:
                    servers.REPO = saved
                bases[label] = svc.base
            yield bases
        finally:
            for svc in started:
                svc.stop()


def png_compress_part(
    origin: str, thumbor: str | None, *, quick: bool, rounds: int | None = None
) -> list[dict]:
    """What run.py calls: the rows for :func:`png_compress_report`."""
    names = QUICK_PNG_SOURCES if quick else PNG_SOURCES
    for name in names:
        source(name)
    with services({}) as bases:
        if thumbor:
            bases[THUMBOR] = thumbor
        return measure(bases, origin, names, rounds or (2 if quick else 5))


def png_compress_report(rows: list[dict], target: Target) -> None:
    """A row per source: each system's median time and bytes, ours / thumbor; the targets."""
    by = {(r["source"], r["system"]): r for r in rows}
    names = list(dict.fromkeys(r["source"] for r in rows))
    systems = [s for s in dict.fromkeys(r["system"] for r in rows) if s != THUMBOR]
    has_thumbor = any(r["system"] == THUMBOR for r in rows)
    out = []
    worst_t: dict[str, float] = {}
    worst_b: dict[str, float] = {}
    for name in names:
        th = by.get((name, THUMBOR))
        for system in systems:
            ours = by[(name, system)]
            t_ratio = ours["median_s"] / th["median_s"] if th else None
            b_ratio = ours["bytes"] / th["bytes"] if th else None
            if t_ratio is not None and b_ratio is not None:
                worst_t[system] = max(worst_t.get(system, 0.0), t_ratio)
                worst_b[system] = max(worst_b.get(system, 0.0), b_ratio)
            out.append(
                [
                    name,
                    system,
                    f(ours["median_s"], 2),
                    f(th["median_s"], 2) if th else "-",
                    f(t_ratio, 2),
                    f(ours["bytes"] / 1e6, 3),
                    f(th["bytes"] / 1e6, 3) if th else "-",
                    f(b_ratio, 3),
                    ours["mode"],
                ]
            )
    table(
        "4c. PNG compress q75, full size (median s of the rounds; MB)",
        ["source", "system", "s", "thumbor s", "time", "MB", "thumbor MB", "bytes", "mode"],
        out,
    )
    for system in systems:
        label = "" if system == OURS else f" ({system})"
        if not has_thumbor:
            target(f"compress PNG time vs thumbor{label}", "thumbor skipped", "<= 1.0x", None)
            continue
        t, b = worst_t.get(system), worst_b.get(system)
        target(
            f"compress PNG time vs thumbor{label} ({len(names)} sources)",
            f"worst {t:.2f}x" if t is not None else "-",
            "<= 1.0x each",
            None if t is None else t <= 1.0,
        )
        target(
            f"compress PNG bytes vs thumbor{label} ({len(names)} sources)",
            f"worst {b:.3f}x" if b is not None else "-",
            "<= 1.0x each",
            None if b is None else b <= 1.0,
        )


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
            with services(others) as bases:
                bases[THUMBOR] = thumbor.base
                rows = measure(bases, nginx.origin, names, args.rounds)
        finally:
            thumbor.stop()
            nginx.stop()
    png_compress_report(rows, target)
    table("targets", ["target", "value", "goal", "result"], [list(t) for t in targets])
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
