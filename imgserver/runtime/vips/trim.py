"""Trim: cut away a uniform border, whose colour is the top-left pixel's, within ``threshold``.

From the source, trimming needs to know the border before choosing how far to shrink on load:
the border is found on a small preview (shrunk on load), only as much of the source as the
trimmed content needs is decoded (a JPEG at 1/2, 1/4 or 1/8 when the content is still larger
than the box), and the border is found again, exactly, on that decode.
"""

from __future__ import annotations

import math

import pyvips

from ...graphdef import Args, int_arg
from .load import Context, load, memory

PREVIEW = 800  # pixels on the preview's long side
JPEG_SHRINKS = (8, 4, 2)


def trim(image: pyvips.Image, threshold: float, colour: list[float] | None = None) -> pyvips.Image:
    """``image`` without its border (of ``colour``, else its top-left pixel's); an image that is
    all border is left as it is."""
    background = colour if colour is not None else list(image(0, 0))
    left, top, width, height = image.find_trim(threshold=threshold, background=background)
    if width <= 0 or height <= 0:
        return image
    return image.crop(left, top, width, height)


def trimmed(image: pyvips.Image | None, threshold: float, box: Args, ctx: Context) -> pyvips.Image:
    """``image`` trimmed; ``image`` None: the source, trimmed, decoded no larger than needed for
    ``box`` (its width/height, either may be unset)."""
    if image is not None:
        return trim(image, threshold)
    src = ctx.src
    preview = pyvips.Image.thumbnail_source(memory(src.data), PREVIEW, size="down")
    colour = list(preview(0, 0))
    left, top, width, height = preview.find_trim(threshold=threshold, background=colour)
    if width <= 0 or height <= 0:  # all border, or nothing to trim
        left, top, width, height = 0, 0, preview.width, preview.height
    scale = src.width / preview.width
    shrink = _shrink(src.format, width * scale, height * scale, box)
    full = load(ctx, shrink=shrink)
    # the preview's border, in the decode's pixels, widened by a preview pixel for safety
    step = scale / shrink
    x0 = max(0, math.floor((left - 1) * step))
    y0 = max(0, math.floor((top - 1) * step))
    x1 = min(full.width, math.ceil((left + width + 1) * step))
    y1 = min(full.height, math.ceil((top + height + 1) * step))
    region = full.crop(x0, y0, x1 - x0, y1 - y0) if (x1 > x0 and y1 > y0) else full
    return trim(region, threshold, list(full(0, 0)))


def _shrink(fmt: str, content_width: float, content_height: float, box: Args) -> int:
    """The largest JPEG shrink-on-load factor that keeps the content at least the box's size."""
    if fmt != "jpeg":
        return 1
    width, height = int_arg(box, "width"), int_arg(box, "height")
    if width is None and height is None:
        return 1
    room = min(
        content_width / width if width else math.inf,
        content_height / height if height else math.inf,
    )
    return next((s for s in JPEG_SHRINKS if s <= room), 1)
