"""bench/auto_quality.py's verdict: the geometric mean of the time ratios against the 2x goal."""

from __future__ import annotations

import sys
from typing import Any

from ..servers import REPO

sys.path.insert(0, str(REPO))

from bench.auto_quality import GOAL, summary


def row(fmt: str, ratio: float, quality: int | None = 70) -> dict[str, Any]:
    return {
        "format": fmt,
        "time_ratio": ratio,
        "bytes_auto": 80,
        "bytes_fixed": 100,
        "quality": quality,
        "score_auto": 80.5,
        "score_sample": 81.0,
    }


def test_the_verdict_is_per_format_on_the_geometric_mean() -> None:
    result = summary([row("jpeg", 1.0), row("jpeg", 4.0), row("webp", 3.0)], 80)
    jpeg, webp = result["formats"]["jpeg"], result["formats"]["webp"]
    assert abs(jpeg["time_ratio"] - 2.0) < 1e-9 and jpeg["pass"] is (GOAL >= 2.0)
    assert webp["pass"] is False and result["pass"] is False
    assert abs(jpeg["bytes_ratio"] - 0.8) < 1e-9 and jpeg["qualities"] == [70, 70]
    assert jpeg["whole_minus_sample"] == [-0.5, -0.5]


def test_a_kept_source_has_no_sample_score() -> None:
    result = summary([row("jpeg", 1.5, quality=None)], 80)
    assert result["formats"]["jpeg"]["whole_minus_sample"] == [] and result["pass"] is True
