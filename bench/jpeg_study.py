"""The JPEG encoder study: which of the encoders and settings we can use beat thumbor 7.8's
JPEG by most, at equal quality (bench/README.md, "JPEG encoder study", has the figures).

    python bench/jpeg_study.py [--sources Aqua.jpg,LadyBird.jpg] [--workloads 400,1200]
                               [--configs "trellis t2,jpegli"]

For each source and workload (a resize to 400 or 1200 px wide; ``compress``: full size), the
same pixels (libvips' thumbnail, or the decoded source) are encoded by each configuration at
qualities 40-90, and thumbor's own output is fetched at the same qualities; everything is
scored with SSIMULACRA2 and SSIM against the unencoded Lanczos reference (bench/rd.py), and
each configuration's Bjøntegaard delta rate against thumbor printed (bench/bdrate.py), with
its mean encode time (wall clock: compare within one run only).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pyvips  # noqa: E402

from bench import lab  # noqa: E402
from bench.bdrate import bd_rate  # noqa: E402
from bench.rd import QUALITIES, Scorer  # noqa: E402
from bench.workload import SOURCES_DIR, prepare_sources  # noqa: E402

Encoder = Callable[[pyvips.Image, int], bytes]


def vips(**options: object) -> Encoder:
    def encode(image: pyvips.Image, q: int) -> bytes:
        return bytes(image.jpegsave_buffer(Q=q, keep="none", **options))

    return encode


def jpegli(image: pyvips.Image, q: int) -> bytes:
    import pyjpegli  # not a dependency: pip install pyjpegli to include it

    rgb = np.ascontiguousarray(image.numpy()[:, :, :3])
    return bytes(pyjpegli.encode(rgb, image.width, image.height, q))


PROG = {"optimize_coding": True, "interlace": True}
MOZ = PROG | {"optimize_scans": True, "trellis_quant": True, "overshoot_deringing": True}
CONFIGS: dict[str, Encoder] = {
    "libjpeg-turbo defaults (resize before)": vips(optimize_coding=True),
    "progressive": vips(**PROG),
    "t0 + optimised scans (compress before)": vips(**PROG, optimize_scans=True, quant_table=0),
    "trellis t0": vips(**MOZ, quant_table=0),
    "trellis t2": vips(**MOZ, quant_table=2),
    "trellis t3": vips(**MOZ, quant_table=3),
    "trellis t4": vips(**MOZ, quant_table=4),
    "trellis t2 4:2:0": vips(**MOZ, quant_table=2, subsample_mode="on"),
    "trellis t2 4:4:4": vips(**MOZ, quant_table=2, subsample_mode="off"),
    "trellis t3 4:2:0": vips(**MOZ, quant_table=3, subsample_mode="on"),
    "trellis t3 4:4:4": vips(**MOZ, quant_table=3, subsample_mode="off"),
    "t3, no trellis": vips(**PROG, optimize_scans=True, quant_table=3),
    "t2 4:2:0, no trellis, no scans": vips(**PROG, quant_table=2, subsample_mode="on"),
    "trellis t2 4:2:0, no scans (adopted)": vips(
        **PROG, quant_table=2, subsample_mode="on", trellis_quant=True, overshoot_deringing=True
    ),
    "jpegli (pyjpegli)": jpegli,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", default="Aqua.jpg,LadyBird.jpg,Garden.jpg,TwoWings.jpg")
    parser.add_argument("--workloads", default="400,1200,compress")
    parser.add_argument("--configs", default="", help="substrings of configuration names")
    args = parser.parse_args()
    names = args.sources.split(",")
    wanted = [c for c in args.configs.split(",") if c]
    configs = {k: v for k, v in CONFIGS.items() if not wanted or any(w in k for w in wanted)}
    paths = prepare_sources(names)
    root = Path(tempfile.mkdtemp(prefix="jpeg-study-"))
    nginx = lab.Nginx(root / "nginx", SOURCES_DIR).start()
    thumbor = lab.Thumbor(root / "thumbor", 1).start()
    host = nginx.origin.removeprefix("http://")
    try:
        for name in names:
            data = paths[name].read_bytes()
            scorer = Scorer(data)
            for workload in args.workloads.split(","):
                if workload == "compress":
                    image = pyvips.Image.new_from_buffer(data, "").autorot().copy_memory()
                    path = "unsafe/filters:quality({q})"
                else:
                    image = pyvips.Image.thumbnail_buffer(data, int(workload), size="down")
                    image = image.copy_memory()
                    path = f"unsafe/{workload}x0/filters:quality({{q}}):format(jpeg)"
                ref = []
                for q in QUALITIES:
                    url = f"{thumbor.base}/{path.format(q=q)}/{host}/{name}"
                    with urllib.request.urlopen(url, timeout=120) as r:
                        ref.append(scorer.score(r.read()))
                for config, encode in configs.items():
                    points, seconds = [], []
                    for q in QUALITIES:
                        t = time.perf_counter()
                        out = encode(image, q)
                        seconds.append(time.perf_counter() - t)
                        points.append(scorer.score(out))
                    bd = {
                        m: bd_rate(
                            [p["bytes"] for p in ref],
                            [p[m] for p in ref],
                            [p["bytes"] for p in points],
                            [p[m] for p in points],
                        )
                        for m in ("ssimulacra2", "ssim")
                    }
                    print(
                        f"{name:18} {workload:8} {config:40} BD-rate SSIMULACRA2 "
                        f"{bd['ssimulacra2'] * 100:+6.1f}%  SSIM {bd['ssim'] * 100:+6.1f}%  "
                        f"encode {statistics.fmean(seconds) * 1000:6.1f} ms",
                        flush=True,
                    )
    finally:
        thumbor.stop()
        nginx.stop()


if __name__ == "__main__":
    main()
