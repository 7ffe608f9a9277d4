"""quality=auto: what the search costs against one fixed-quality encode, what it chooses, and how
well its sample's score tracks the whole image's.

    python bench/auto_quality.py [--quick] [--reps 3] [--target 80]

In this process, through the runtime as a worker process runs it (``execute``: decode, resize,
encode), on the bench photos: ``compress`` at full size to JPEG (``quality=auto`` against
``quality=80``), and ``passthrough`` at 1200 px wide to WebP and AVIF (the same two). The two
systems alternate, ``--reps`` times each, and the median times are compared: the goal of issue
13 is auto at most 2x the fixed encode. For each result: the quality chosen, its bytes against
q80's, the SSIMULACRA2 score of the whole result against the pixels the encoder was given (a PNG
of the same request) for auto and for q80, and the sample's score at the chosen quality (what
the search saw). Part ``auto`` of ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.photos import generated, photo  # noqa: E402

SOURCES = ["Aqua.jpg", "LadyBird.jpg", "Elephants_3840x2160.jpg", "GreenMeadow.jpg"]
GENERATED_SOURCES = ["LadyBird_2560x1600.png"]
QUICK_SOURCES = ["Aqua.jpg"]
FIXED = 80  # the fixed quality auto is compared with
GOAL = 2.0  # auto's time at most this many times the fixed encode's
CASES = [  # graph, format, extra parameters
    ("compress", "jpeg", {}),
    ("passthrough", "webp", {"width": "1200"}),
    ("passthrough", "avif", {"width": "1200"}),
]


def source(name: str) -> bytes:
    path = generated(name) if name in GENERATED_SOURCES else photo(name)
    return path.read_bytes()


def measure(names: list[str], reps: int, target: float) -> list[dict[str, Any]]:
    from imgserver.catalogue import QUALITY_TARGET, Catalogue
    from imgserver.formats import sniff
    from imgserver.messages import Limits, Rendered, RenderJob
    from imgserver.runtime import perceptual
    from imgserver.runtime.execute import execute
    from imgserver.runtime.vips.encode import encode

    catalogue = Catalogue.load(REPO / "graphs", auto_target=target)
    limits = Limits(max_source_pixels=100_000_000, max_output_pixels=100_000_000, max_frames=10)
    rows = []
    for name in names:
        data = source(name)
        kind = sniff(data)
        for graph_name, fmt, extra in CASES:
            graph = catalogue[graph_name]

            def run(
                fmt: str,
                quality: object,
                graph: Any = graph,
                extra: dict = extra,
                data: bytes = data,
                kind: str = kind,
            ) -> Any:
                params = {**extra, "quality": quality}
                if quality == "auto":
                    params[QUALITY_TARGET] = target
                typed = {k: graph.params[k].parse(str(v)) for k, v in params.items()}
                job = RenderJob(graph.name, graph.definition, typed, fmt, kind, limits)
                outcome = execute(job, data)
                assert isinstance(outcome, Rendered), outcome
                return outcome

            times: dict[str, list[float]] = {"fixed": [], "auto": []}
            results: dict[str, Any] = {}
            for _ in range(reps):  # interleaved: the machine's load falls on both alike
                for label, quality in (("fixed", FIXED), ("auto", "auto")):
                    started = time.perf_counter()
                    results[label] = run(fmt, quality)
                    times[label].append(time.perf_counter() - started)
            reference_png = run("png", FIXED)  # the pixels the encoder was given, losslessly
            reference = perceptual.decode(reference_png.data).copy_memory()
            whole = perceptual.Reference(reference)
            auto_r, fixed_r = results["auto"], results["fixed"]
            sample = perceptual.sample(reference, fmt)
            enc = {"quality": auto_r.quality, "optimize": graph_name == "compress"}
            enc["progressive"] = graph_name == "compress"
            sample_score = (  # None: compress kept the source (re-encoding did not pay)
                perceptual.Reference(sample).score(perceptual.decode(encode(sample, fmt, enc)))
                if auto_r.quality is not None
                else math.nan
            )
            fixed_t, auto_t = statistics.median(times["fixed"]), statistics.median(times["auto"])
            row = {
                "source": name,
                "graph": graph_name,
                "format": fmt,
                "size": f"{reference.width}x{reference.height}",
                "quality": auto_r.quality,
                "note": auto_r.quality_note,
                "bytes_auto": len(auto_r.data),
                "bytes_fixed": len(fixed_r.data),
                "score_auto": whole.score(perceptual.decode(auto_r.data)),
                "score_fixed": whole.score(perceptual.decode(fixed_r.data)),
                "score_sample": sample_score,
                "ms_fixed": fixed_t * 1000,
                "ms_auto": auto_t * 1000,
                "time_ratio": auto_t / fixed_t,
            }
            rows.append(row)
            print(_line(row), flush=True)
    return rows


HEADER = (
    f"{'source':<26}{'case':<18}{'q':>4}{'bytes':>10}{'q80 bytes':>11}{'ratio':>7}"
    f"{'score':>7}{'q80':>7}{'sample':>8}{'ms q80':>8}{'ms auto':>9}{'time x':>8}"
)


def _line(r: dict[str, Any]) -> str:
    case = f"{r['graph']}.{r['format']}"
    q = f"{r['quality'] or 'src'}{'!' if r['note'] else ''}"
    return (
        f"{r['source']:<26}{case:<18}{q:>4}{r['bytes_auto']:>10}{r['bytes_fixed']:>11}"
        f"{r['bytes_auto'] / r['bytes_fixed']:>7.2f}{r['score_auto']:>7.1f}"
        f"{r['score_fixed']:>7.1f}{r['score_sample']:>8.1f}{r['ms_fixed']:>8.0f}"
        f"{r['ms_auto']:>9.0f}{r['time_ratio']:>8.2f}"
    )


def summary(rows: list[dict[str, Any]], target: float) -> dict[str, Any]:
    """Per format: the geometric mean of the time ratios and of the byte ratios, and how far
    the whole image's score lands from the target; PASS/FAIL for the 2x goal."""
    out: dict[str, Any] = {"target": target, "goal": GOAL, "formats": {}}
    for fmt in sorted({r["format"] for r in rows}):
        mine = [r for r in rows if r["format"] == fmt]
        time_x = math.exp(statistics.fmean(math.log(r["time_ratio"]) for r in mine))
        bytes_x = math.exp(
            statistics.fmean(math.log(r["bytes_auto"] / r["bytes_fixed"]) for r in mine)
        )
        misses = [r["score_auto"] - target for r in mine]
        tracking = [r["score_auto"] - r["score_sample"] for r in mine if r["quality"]]
        out["formats"][fmt] = {
            "time_ratio": time_x,
            "bytes_ratio": bytes_x,
            "qualities": [r["quality"] for r in mine],
            "score_minus_target": misses,
            "whole_minus_sample": tracking,
            "pass": time_x <= GOAL,
        }
    out["pass"] = all(f["pass"] for f in out["formats"].values())
    return out


def report(result: dict[str, Any]) -> None:
    print(f"\nquality=auto (target SSIMULACRA2 {result['target']:g}) against q{FIXED}:")
    for fmt, f in result["formats"].items():
        off = ", ".join(f"{v:+.1f}" for v in f["score_minus_target"])
        track = ", ".join(f"{v:+.1f}" for v in f["whole_minus_sample"])
        verdict = "PASS" if f["pass"] else "FAIL"
        print(
            f"  {fmt:<5} time {f['time_ratio']:.2f}x q{FIXED}'s (goal <= {GOAL:g}x: {verdict}); "
            f"bytes {f['bytes_ratio']:.2f}x; qualities {f['qualities']}; whole image's score "
            f"minus target: {off}; whole minus sample: {track}"
        )


def auto_part(quick: bool, reps: int = 3, target: float = 80.0) -> dict[str, Any]:
    """Part ``auto`` of bench/run.py: the table, the summary, the raw rows."""
    names = QUICK_SOURCES if quick else SOURCES + GENERATED_SOURCES
    print(f"load average at start: {os.getloadavg()}")
    print(HEADER)
    rows = measure(names, 1 if quick else reps, target)
    result = summary(rows, target) | {"rows": rows, "loadavg_end": os.getloadavg()}
    report(result)
    print(f"load average at end: {result['loadavg_end']}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one photo, one repetition")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--target", type=float, default=80.0)
    args = parser.parse_args()
    result = auto_part(args.quick, args.reps, args.target)
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
