"""bench/report_rd.py: the per-format ratios at equal quality and the PASS/FAIL of issue 13's
JPEG targets, on rate-distortion points whose answer is known (no images, no servers)."""

from __future__ import annotations

import sys

import pytest

from ..images import REPO

sys.path.insert(0, str(REPO))
from bench.report_rd import ratios, rd_report

QUALITIES = (40, 50, 60, 70, 80, 90)


def points(factor: float, fmt: str = "jpeg", workload: str = "400") -> list[dict]:
    """Thumbor's JPEG curve and ours in ``fmt`` at ``factor`` times its bytes for the same
    scores, for two sources."""
    out = []
    for source in ("a.jpg", "b.jpg"):
        for i, q in enumerate(QUALITIES):
            base = {"source": source, "workload": workload, "quality": q, "width": 400}
            score = {"ssimulacra2": 40 + 8 * i, "ssim": 0.9 + 0.015 * i, "height": 250}
            out.append(
                base | score | {"system": "thumbor", "format": "jpeg", "bytes": 1000 * 1.5**i}
            )
            out.append(
                base | score | {"system": "ours", "format": fmt, "bytes": factor * 1000 * 1.5**i}
            )
    return out


def test_ratios_are_bytes_at_equal_score_per_metric() -> None:
    r = ratios(points(0.75), "400", "jpeg")
    assert r["ssimulacra2"] == pytest.approx(0.75) and r["ssim"] == pytest.approx(0.75)
    assert ratios(points(0.5, "webp"), "400", "webp")["ssimulacra2"] == pytest.approx(0.5)
    assert ratios(points(0.5, "webp"), "400", "avif") == {"ssimulacra2": None, "ssim": None}


@pytest.mark.parametrize(("factor", "verdict"), [(0.78, "PASS"), (0.85, "FAIL")])
def test_the_jpeg_target_is_080_at_equal_ssimulacra2(factor: float, verdict: str) -> None:
    targets: list[tuple] = []
    times = [{"source": "a.jpg", "ours_ms": 150.0, "thumbor_ms": 250.0, "rounds": 3}]
    summary = rd_report(
        {"points": points(factor), "compress_ms": times},
        lambda *t: targets.append(t),
        None,
    )
    jpeg = [t for t in targets if t[0].startswith("bytes: JPEG resize to 400 px")]
    assert len(jpeg) == 1 and jpeg[0][3] is (verdict == "PASS")
    timing = [t for t in targets if t[0].startswith("time: compress")]
    assert timing[0][3] is True and summary["compress_time_ratio"] == pytest.approx(0.6)
