"""``max_bytes``: the highest quality whose encoding fits in a byte budget, for both runtimes.

Lossy formats (JPEG, WebP, AVIF, JPEG XL) are encoded again at lower qualities, by bisection between
the quality asked for and ``MIN_QUALITY`` (at most 7 more encodes); a result that does not fit
even at ``MIN_QUALITY`` (or a lossless one that does not fit) is 422 ``too_many_pixels``, with a
message that says so and what to do.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import TooManyPixels

LOSSY = frozenset({"jpeg", "webp", "avif", "jxl"})
MIN_QUALITY = 30  # max_bytes never lowers the quality below this


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
