"""Part 4, bytes at equal quality: rate-distortion curves of ours and thumbor's, and
``compress`` time.

For each source and workload (resize to 400 and to 1200 px wide; ``compress`` at full size), the
outputs at qualities 40-90, ours in JPEG, WebP and AVIF and thumbor's in JPEG, each scored with
SSIM and SSIMULACRA2 against the unencoded Lanczos reference of its size (bench/rd.py). The
report (bench/report_rd.py) gives the Bjøntegaard delta rate of each of our formats against
thumbor's JPEG, per metric (bench/bdrate.py), and draws the curves.

``compress`` time: JPEG sources, quality 75, one request at a time, ours and thumbor's
alternating, each on a source URL not seen before (no cache hit); the median of each source's
rounds.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

from bench import lab
from bench.context import Context, log
from bench.workload import CPUS, prepare_sources

RD_SOURCES = ["Aqua.jpg", "Garden.jpg", "LadyBird.jpg", "TwoWings.jpg", "YellowFlower.jpg"]
QUICK_RD_SOURCES = ["Aqua.jpg"]
WIDTHS = (400, 1200)
FORMATS = {"jpeg": "jpg", "webp": "webp", "avif": "avif"}
COMPRESS_QUALITY = 75
TIME_ROUNDS, QUICK_TIME_ROUNDS = 7, 3


def get(url: str, tries: int = 10) -> bytes:
    """The body of a 200; a 503 (ours: still being made; thumbor: overloaded) is asked again,
    every 3 s (a loaded machine makes a 1200 px AVIF slowly)."""
    for attempt in range(tries):
        try:
            with urllib.request.urlopen(url, timeout=120) as r:
                return bytes(r.read())
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or attempt == tries - 1:
                raise
            time.sleep(3)
    raise AssertionError("unreachable")


def rd_part(ctx: Context) -> dict | None:
    """{"points": [...], "compress_ms": [...]}: every output's bytes and scores, and the
    compress timings; None without thumbor (each figure is a ratio to thumbor's)."""
    if ctx.args.skip_thumbor:
        log("bytes at equal quality: skipped (--skip-thumbor: every figure is against thumbor)")
        return None
    # the scorer needs the bench extra (ssimulacra2): imported only when this part runs
    from bench.rd import QUALITIES, QUICK_QUALITIES, Scorer

    quick = ctx.args.quick
    names = QUICK_RD_SOURCES if quick else RD_SOURCES
    qualities = QUICK_QUALITIES if quick else QUALITIES
    paths = prepare_sources(names)  # (the context prepared the bytes part's own sources)
    origin = ctx.nginx.origin
    host = origin.removeprefix("http://")
    thumbor = ctx.thumbor()
    points: list[dict] = []
    timings: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        svc = lab.Service(Path(tmp), {"IMGSERVER_WORKERS": str(CPUS)}).start()
        try:
            for name in names:
                src = quote(f"{origin}/{name}?v=rd", safe="")
                scorer = Scorer(paths[name].read_bytes())
                for workload in [*map(str, WIDTHS), "compress"]:
                    for q in qualities:
                        urls = {}
                        if workload == "compress":
                            urls[("ours", "jpeg")] = (
                                f"{svc.base}/graph/compress.jpg?input={src}&quality={q}"
                            )
                            if thumbor:
                                urls[("thumbor", "jpeg")] = (
                                    f"{thumbor.base}/unsafe/filters:quality({q})/{host}/{name}"
                                )
                        else:
                            for fmt, ext in FORMATS.items():
                                urls[("ours", fmt)] = (
                                    f"{svc.base}/graph/passthrough.{ext}?input={src}"
                                    f"&width={workload}&quality={q}"
                                )
                            if thumbor:
                                urls[("thumbor", "jpeg")] = (
                                    f"{thumbor.base}/unsafe/{workload}x0/"
                                    f"filters:quality({q}):format(jpeg)/{host}/{name}"
                                )
                        for (system, fmt), url in urls.items():
                            point = scorer.score(get(url))
                            points.append(
                                point
                                | {
                                    "source": name,
                                    "workload": workload,
                                    "system": system,
                                    "format": fmt,
                                    "quality": q,
                                }
                            )
                    log(f"bytes at equal quality: {name} {workload} done")
            timings = compress_times(ctx, svc.base, thumbor, names)
        finally:
            svc.stop()
    return {"points": points, "compress_ms": timings}


def compress_times(
    ctx: Context, ours: str, thumbor: lab.Thumbor | None, names: list[str]
) -> list[dict]:
    """Per source: the median ms of a compress request (q75, full size, JPEG), ours and
    thumbor's, requests alternating, each on a source URL not requested before."""
    rounds = QUICK_TIME_ROUNDS if ctx.args.quick else TIME_ROUNDS
    origin = ctx.nginx.origin
    host = origin.removeprefix("http://")
    out = []
    stamp = time.time_ns()
    for name in names:
        ms: dict[str, list[float]] = {"ours": [], "thumbor": []}
        for i in range(rounds + 1):  # the first round warms both up and is not counted
            fresh = f"{name}?v=t{stamp}-{i}"
            urls = {
                "ours": f"{ours}/graph/compress.jpg?input={quote(f'{origin}/{fresh}', safe='')}"
                f"&quality={COMPRESS_QUALITY}",
            }
            if thumbor:
                urls["thumbor"] = (
                    f"{thumbor.base}/unsafe/filters:quality({COMPRESS_QUALITY})/"
                    f"{host}/{quote(fresh, safe='')}"
                )
            for system, url in urls.items():
                t = time.perf_counter()
                get(url)
                if i:
                    ms[system].append((time.perf_counter() - t) * 1000)
        out.append(
            {
                "source": name,
                "ours_ms": statistics.median(ms["ours"]),
                "thumbor_ms": statistics.median(ms["thumbor"]) if ms["thumbor"] else None,
                "rounds": rounds,
            }
        )
    return out
