"""Choosing the quality of a lossy encoding, for both runtimes.

``quality=auto`` (:func:`auto`): the lowest quality whose encoding reaches a perceptual target,
an SSIMULACRA2 score (``perceptual.py``). The search runs on a sample of the image (a mosaic of
tiles at 1:1, ``perceptual.sample_boxes``): each trial encodes the sample, decodes it and
scores it against the sample's pixels; the image itself is then encoded once, at the quality
found. A trial's score steers the next (linear interpolation between the qualities that missed
and reached the target, a prior slope while only one side is known), so most images take 3-4
trials; a job never makes more than ``AUTO_MAX_TRIALS`` nor searches for longer than
``AUTO_SECONDS``. When even quality 100 misses the target, the result is encoded at 100 and
says so (``Choice.reached`` is False); when the budget runs out first, the lowest quality seen
to reach the target is used, else 100.

``max_bytes`` (:func:`within`): the highest quality whose encoding fits in a byte budget.

Lossy formats (JPEG, WebP, AVIF, JPEG XL) are encoded again at lower qualities, by bisection between
the quality asked for and ``MIN_QUALITY`` (at most 7 more encodes); a result that does not fit
even at ``MIN_QUALITY`` (or a lossless one that does not fit) is 422 ``too_many_pixels``, with a
message that says so and what to do.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import TooManyPixels
from .registry import AUTO_QUALITY as AUTO_QUALITY

LOSSY = frozenset({"jpeg", "webp", "avif", "jxl"})
MIN_QUALITY = 30  # max_bytes never lowers the quality below this
AUTO_MAX_TRIALS = 8  # encodes of the sample per job (the image itself: one more)
AUTO_SECONDS = 10.0  # and at most this long searching
AUTO_FIRST = 70  # the first quality tried, unless the format has its own:
# where photographs reach SSIMULACRA2 80 (bench/auto_quality.py): one trial fewer, mostly
AUTO_FIRST_FOR = {"jpeg": 75, "webp": 85, "avif": 60}
SLOPE = 0.5  # SSIMULACRA2 points per quality step assumed while only one side is known
# (photos gain 0.5-1 a step between 50 and 90: assuming less overshoots, which brackets)


@dataclass(frozen=True)
class Choice:
    """What the search for quality=auto found."""

    quality: int
    reached: bool  # the target is reached at ``quality`` (False: not even at 100, or unknown)
    score: float | None  # the sample's score at ``quality``, when it was tried
    trials: int  # how many encodes of the sample it took

    @property
    def note(self) -> str:
        """What ``X-Quality`` adds after the quality: "" when the target was reached."""
        return "" if self.reached else "target-not-reached"


def auto(
    score_at: Callable[[int], float],
    target: float,
    *,
    first: int = AUTO_FIRST,
    max_trials: int = AUTO_MAX_TRIALS,
    seconds: float = AUTO_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> Choice:
    """The lowest quality in 1..100 whose ``score_at`` reaches ``target`` (the score is taken
    to grow with the quality), in at most ``max_trials`` calls and about ``seconds``."""
    start = clock()
    miss: tuple[int, float] | None = None  # the highest quality seen to miss the target
    hit: tuple[int, float] | None = None  # the lowest quality seen to reach it
    q, trials = max(1, min(100, first)), 0
    while True:
        score = score_at(q)
        trials += 1
        if score >= target:
            hit = (q, score)
        else:
            miss = (q, score)
        if hit is not None and (hit[0] == 1 or (miss is not None and miss[0] == hit[0] - 1)):
            return Choice(hit[0], True, hit[1], trials)
        if miss is not None and miss[0] == 100:
            return Choice(100, False, miss[1], trials)
        if trials >= max_trials or clock() - start >= seconds:
            break
        q = _next(miss, hit, target)
    if hit is not None:
        return Choice(hit[0], True, hit[1], trials)
    return Choice(100, False, None, trials)


def _next(miss: tuple[int, float] | None, hit: tuple[int, float] | None, target: float) -> int:
    """The next quality to try: between the two sides when both are known (interpolated,
    rounded up, kept inside), else a step past the known side, sized by SLOPE."""
    if miss is not None and hit is not None:
        (q0, s0), (q1, s1) = miss, hit
        guess = q0 + (target - s0) * (q1 - q0) / (s1 - s0) if s1 > s0 else (q0 + q1) / 2
        return max(q0 + 1, min(q1 - 1, math.ceil(guess)))
    if miss is not None:
        q, score = miss
        return min(100, q + max(2, math.ceil((target - score) / SLOPE)))
    assert hit is not None
    q, score = hit
    return max(1, q - max(2, math.ceil((score - target) / SLOPE)))


def within(
    encode: Callable[[int], bytes], fmt: str, quality: int | None, max_bytes: int, first: bytes
) -> tuple[bytes, int | None]:
    """``first`` (the encoding at ``quality``) if it fits in ``max_bytes``, else the encoding at
    the highest quality that does, and that quality."""
    if len(first) <= max_bytes:
        return first, quality
    if fmt not in LOSSY or quality is None or quality <= MIN_QUALITY:
        raise TooManyPixels(_too_big(fmt, len(first), max_bytes), max_bytes=max_bytes)
    best = encode(MIN_QUALITY)
    if len(best) > max_bytes:
        raise TooManyPixels(_too_big(fmt, len(best), max_bytes, MIN_QUALITY), max_bytes=max_bytes)
    best_q, low, high = MIN_QUALITY, MIN_QUALITY + 1, quality - 1
    while low <= high:
        q = (low + high) // 2
        tried = encode(q)
        if len(tried) <= max_bytes:
            best, best_q, low = tried, q, q + 1
        else:
            high = q - 1
    return best, best_q


def _too_big(fmt: str, size: int, max_bytes: int, quality: int | None = None) -> str:
    at = f" even at quality {quality}" if quality is not None else ""
    return (
        f"the {fmt.upper()} result is {size} bytes{at}, over max-bytes ({max_bytes}): ask for "
        "fewer pixels or more bytes"
    )
