"""The worst case of each graph: its most expensive parameters (at the top of their ranges) on a
5120x2880 JPEG, run the way a worker process runs a job (``runtime.execute`` on a
``RenderJob``, libvips set up by ``execute.init``), timed. The ranges in graphs/*.json are set so
that every line here stays well under the job deadline (60 s).

    python bench/worst_case.py [--graphs a,b] [--repeat 1] [--threads N]

Prints one line per case: graph, parameters, seconds (best of --repeat), output size.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WIDTH, HEIGHT = 5120, 2880
DEADLINE = 60.0

CURVE_PARAMS = ("all", "red", "green", "blue")
# graph -> the cases that cost it most (query values as a URL gives them)
CASES: dict[str, list[dict[str, str]]] = {
    "passthrough": [{}],
    "resize": [{"width": "5000", "height": "2800", "mode": "crop", "gravity": "smart"}],
    "compress": [{}],
    "gaussianblur": [{"std-dev-x": "1500", "std-dev-y": "1500"}],
    "transform": [  # the output pixel limit (25 MP) bounds what can be asked for
        {
            "width": "4000",
            "trim": "10",
            "rotate": "33",
            "blur": "100",
            "sharpen": "10",
            "saturation": "2",
            "contrast": "1.5",
        },
        {"width": "1000", "dpr": "4", "rotate": "45", "pad": "200", "gravity": "smart"},
        {"quality": "100", "max-bytes": "300000"},
    ],
    "halodarken": [{"edgeblur-x": "1500", "edgeblur-y": "1500"}],
    "motionblur": [{"length": "1000", "angle": "45"}],
    "croprotate": [{"degrees": "45", "cropwidth": "4000", "cropheight": "4000"}],
    "desaturate": [{"grainsize": "6000", "samples": "1000"}],
    "enhancelowres": [{"iterations": "32"}],
    "retro": [{"preset": "batcave"}],
    "gradientmap": [{}],
    "curves": [  # 32 points on every curve: the LUT is built once a call, then one maplut
        {name: ",".join(f"{i * 8}:{(i * 37) % 256}" for i in range(32)) for name in CURVE_PARAMS}
    ],
    "delaunay_triangles": [{"width": "16384", "height": "1525"}],
    "canvas": [{"width": "16384", "height": "1525"}],
}


def source() -> bytes:
    """A busy 5120x2880 JPEG (the size of the largest photos the bench uses)."""
    import pyvips

    xyz = pyvips.Image.xyz(WIDTH, HEIGHT)
    x, y = xyz[0], xyz[1]
    r = ((x * 7 + y * 3) % 256).cast("uchar")
    g = ((x // 9 + y // 5) % 2 * 200 + 20).cast("uchar")
    b = ((x * y // 977) % 256).cast("uchar")
    image = r.bandjoin([g, b]).copy(interpretation="srgb").gaussblur(1.2).cast("uchar")
    return bytes(image.jpegsave_buffer(Q=90))


def run(graph: Any, query: dict[str, str], data: bytes) -> tuple[float, str]:
    from multidict import MultiDict

    from imgserver.errors import InvalidParam
    from imgserver.messages import Limits, RenderFailed, RenderJob
    from imgserver.request import parse_params
    from imgserver.runtime.execute import execute

    try:
        params, _ = parse_params(graph, MultiDict(query))
    except InvalidParam as exc:  # the range is narrower than this case
        return 0.0, f"refused: {exc.message}"
    limits = Limits(50_000_000, 25_000_000, 500)
    fmt = "jpeg" if graph.definition.needs_source else "png"
    job = RenderJob(graph.name, graph.definition, params, "jpeg", fmt, limits)
    started = time.perf_counter()
    outcome = execute(job, data if graph.definition.needs_source else b"")
    took = time.perf_counter() - started
    if isinstance(outcome, RenderFailed):
        return took, f"{outcome.error.code}: {outcome.error.message[:60]}"
    return took, f"{outcome.width}x{outcome.height}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--graphs", default="", help="comma-separated graph names (default: all)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    from imgserver.runtime import execute

    execute.init(args.threads, 0, max_source_pixels=50_000_000)
    from imgserver.catalogue import Catalogue

    catalogue = Catalogue.load(Path(__file__).resolve().parent.parent / "graphs")
    wanted = set(filter(None, args.graphs.split(","))) or set(CASES)
    data = source()
    print(f"source: {WIDTH}x{HEIGHT} JPEG, {len(data)} bytes; libvips threads: {args.threads}")
    worst = 0.0
    for name, cases in CASES.items():
        if name not in wanted or name not in catalogue:
            continue
        for query in cases:
            times = []
            result = ""
            for _ in range(args.repeat):
                took, result = run(catalogue[name], query, data)
                times.append(took)
            best = min(times)
            worst = max(worst, best)
            shown = "&".join(f"{k}={v}" for k, v in query.items()) or "(defaults)"
            print(f"{name:20} {shown:70} {best:7.2f} s  {result}")
    print(f"worst: {worst:.2f} s (job deadline {DEADLINE:g} s)")
    return 0 if worst < DEADLINE else 1


if __name__ == "__main__":
    sys.exit(main())
