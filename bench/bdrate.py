"""Bjøntegaard delta rate (VCEG-M33): how many more (or fewer, negative) bytes one encoder
needs than another for the same quality, averaged over the quality range both cover.

Each curve is log(bytes) as a function of the quality score, fitted with a cubic polynomial
(least squares; of lower degree for fewer than four points) as in Bjøntegaard's original,
integrated over the overlap of the two curves' score ranges; the mean difference of the
log-rates becomes a ratio. numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _curve(rates: Sequence[float], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(scores, log rates) sorted by score, ties and non-monotone points dropped (a higher
    quality setting that scores lower adds nothing to the curve's upper hull)."""
    pairs = sorted(zip(scores, rates, strict=True))
    xs: list[float] = []
    ys: list[float] = []
    for s, r in pairs:
        if r <= 0:
            raise ValueError("a rate must be positive")
        if xs and (s <= xs[-1] or math.log(r) <= ys[-1]):
            continue
        xs.append(float(s))
        ys.append(math.log(r))
    if len(xs) < 2:
        raise ValueError("a curve needs at least two points of distinct scores")
    return np.array(xs), np.array(ys)


def bd_rate(
    ref_rates: Sequence[float],
    ref_scores: Sequence[float],
    test_rates: Sequence[float],
    test_scores: Sequence[float],
) -> float:
    """The test encoder's bytes over the reference's at equal score, minus 1, averaged over
    the scores both reach: -0.20 means 20% fewer bytes (0.80x). Higher scores are better."""
    xa, ya = _curve(ref_rates, ref_scores)
    xb, yb = _curve(test_rates, test_scores)
    low, high = max(xa[0], xb[0]), min(xa[-1], xb[-1])
    if low >= high:
        raise ValueError("the two curves' quality ranges do not overlap")
    return math.exp(_mean(xb, yb, low, high) - _mean(xa, ya, low, high)) - 1.0


def _fit(xs: np.ndarray, ys: np.ndarray) -> np.poly1d:
    return np.poly1d(np.polyfit(xs, ys, min(3, len(xs) - 1)))


def _mean(xs: np.ndarray, ys: np.ndarray, low: float, high: float) -> float:
    """The fitted curve's mean over [low, high]."""
    integral = np.polyint(_fit(xs, ys))
    return float((integral(high) - integral(low)) / (high - low))


def rate_at(rates: Sequence[float], scores: Sequence[float], score: float) -> float | None:
    """The rate a curve needs for ``score`` (interpolated on log rate), None outside it."""
    xs, ys = _curve(rates, scores)
    if not xs[0] <= score <= xs[-1]:
        return None
    return math.exp(float(_fit(xs, ys)(score)))
