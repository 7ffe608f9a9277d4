"""GEGL's ``noise-reduction`` (Alsam, Rivertz and Kolås): an anisotropic, edge-preserving
smoothing, run ``iterations`` times, as a libvips-runtime operation computed in numpy.

Each channel on its own, on sRGB-encoded values (GEGL's ``R~G~B~`` float; alpha is kept as it
is): a pass visits every pixel and replaces it by the mean of itself and of the midpoints
between it and those of its eight neighbours that smooth without curving any of the four axes
through it (horizontal, vertical, both diagonals) more than before: with the midpoint in the
pixel's place, the second difference ``before - 2·centre + after`` of no axis may grow in
magnitude. (With ``m = 2·centre - before - after`` and ``δ = neighbour - centre``, that is
``(m + δ)² <= m²``: ``δ`` between 0 and ``-2m`` for every axis. So a pixel only moves when it
is a peak or a pit along all four axes at once, towards neighbours below or above it, and then
at most half way.) Outside the image is 0, GEGL's abyss.

GEGL updates in place, in raster order: the neighbours above and to the left of a pixel already
have this pass's values when it is computed. So does this, and that makes a pass sequential; it
is vectorised along wavefronts instead, the pixels with one ``x + 2y`` (each needs only pixels
of earlier fronts), kept contiguous in a skewed copy of a band of rows. A front holds at most
half the width of pixels, so narrow images would take many short steps: the frames of an
animation are smoothed side by side (as more channels), and a frame narrower than ``WIDE`` is
cut into pieces of a few rows, each with ``iterations`` rows of the frame above and below it,
smoothed side by side too, as GEGL does with the chunks it splits an image into (and, like
GEGL's, the result differs slightly near the pieces' edges from one made whole).

A pass costs about 0.14 s a megapixel here (2-core AMD EPYC), so passes are bounded by
``WORK_BUDGET`` pixel-passes (about 9 s): the default 4 passes fit a 15-megapixel frame, and the
API's 32 a 2-megapixel one (the graph is for low-resolution sources); a request for more passes
than fit gets as many as fit, and a warning says so.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyvips

from ...graphdef import Args, int_arg
from .load import Context, check_output, page_height
from .space import join, split

Floats = npt.NDArray[np.float32]

BAND = 512  # rows per skewed band at most
BAND_FLOATS = 1 << 24  # and floats in its skewed copy, about (width + 2·rows)·rows·channels
GROUP_FLOATS = 1 << 23  # floats of the frames or pieces smoothed side by side at once
WIDE = 1024  # frames at least this wide are smoothed whole; narrower ones in pieces
WORK_BUDGET = 64_000_000  # pixel-passes of one job at most
PIECE_ROWS = 64  # rows of a piece at least (or as many as the frame is wide, up to BAND)
# The eight neighbours as (dt, dj) in the skewed band, t = x + 2y and j = y: first the "before"
# pixel of each axis (↖ ↑ ↗ ←), then its "after" pixel in the same order (↘ ↓ ↙ →). The
# "before" ones come earlier in raster order, so they hold this pass's values.
NEIGHBOURS = ((-3, -1), (-2, -1), (-1, -1), (-1, 0), (3, 1), (2, 1), (1, 1), (1, 0))


def denoise(image: pyvips.Image, args: Args, ctx: Context) -> pyvips.Image:
    iterations = max(0, int_arg(args, "iterations") or 0)
    if iterations == 0:
        return image
    # the work grows with the pixels: an image larger than any result may be is refused
    # before it, not after (its result would be refused anyway, at its size)
    check_output(image.width, image.height, ctx)
    fitting = max(1, WORK_BUDGET // (image.width * image.height))
    if iterations > fitting:
        ctx.warnings.append(
            f"the noise reduction was cut to {fitting} of {iterations} passes (the work limit)"
        )
        iterations = fitting
    colour, alpha = split(image)
    frames = image.height // page_height(image)
    codes = colour.numpy().reshape(frames, -1, colour.width, colour.bands)
    values: Floats = codes.astype(np.float32) * np.float32(1 / 255)
    values = _smoothed(values, iterations)
    out = np.clip(values * 255 + 0.5, 0, 255).astype(np.uint8)
    picture = pyvips.Image.new_from_array(out.reshape(image.height, colour.width, colour.bands))
    result = join(picture, alpha)
    if frames > 1:
        result = result.copy()
        result.set_type(pyvips.GValue.gint_type, "page-height", image.height // frames)
    return result


def _smoothed(frames: Floats, iterations: int) -> Floats:
    """``iterations`` passes over each of ``frames`` (frames x height x width x channels)."""
    count, height, width, _ = frames.shape
    if width >= WIDE:
        _smooth_side_by_side(frames, iterations)
        return frames
    rows = min(max(PIECE_ROWS, width), BAND, height)
    margin = iterations
    chunks = -(-height // rows)
    padded = np.zeros((count, margin + chunks * rows + margin, *frames.shape[2:]), np.float32)
    padded[:, margin : margin + height] = frames
    pieces = np.stack(
        [padded[:, i * rows : i * rows + rows + 2 * margin] for i in range(chunks)], axis=1
    )  # frames x chunks x (rows + 2·margin) x width x channels
    pieces = pieces.reshape(count * chunks, rows + 2 * margin, *frames.shape[2:])
    _smooth_side_by_side(pieces, iterations)
    core = pieces[:, margin : margin + rows].reshape(count, chunks * rows, *frames.shape[2:])
    return np.ascontiguousarray(core[:, :height])


def _smooth_side_by_side(images: Floats, iterations: int) -> None:
    """``iterations`` passes over each of ``images`` (n x height x width x channels), in place,
    as many at once as GROUP_FLOATS allows, side by side as channels."""
    n, height, width, channels = images.shape
    group = max(1, GROUP_FLOATS // (height * width * channels))
    for first in range(0, n, group):
        some = images[first : first + group]
        if len(some) == 1:  # (in place)
            for _ in range(iterations):
                smooth(some[0])
            continue
        batch = np.ascontiguousarray(some.transpose(1, 2, 0, 3)).reshape(height, width, -1)
        for _ in range(iterations):
            smooth(batch)
        some[...] = batch.reshape(height, width, len(some), channels).transpose(2, 0, 1, 3)


def smooth(values: Floats) -> None:
    """One pass over ``values`` (height x width x channels, floats), in place."""
    height, width, channels = values.shape
    rows = BAND
    while rows > 8 and (width + 2 * rows + 4) * (rows + 2) * channels > BAND_FLOATS:
        rows //= 2
    for top in range(0, height, rows):
        rows_here = min(rows, height - top)
        band = _skewed(values, top, rows_here)
        for t in range(3, width + 2 * rows_here + 1):
            # the pixels (x, y) of the band with x + 2y = t - 3
            first = max(0, (t - 3 - width + 2) // 2)
            last = min(rows_here - 1, (t - 3) // 2)
            if first <= last:
                _front(band, t, first + 1, last + 2)
        for y in range(rows_here):
            values[top + y] = band[2 * y + 3 : 2 * y + 3 + width, y + 1]


def _skewed(values: Floats, top: int, rows: int) -> Floats:
    """Rows ``top - 1 .. top + rows`` of ``values`` (0 outside the image), pixel (x, y) of the
    band at [x + 2y + 3, y + 1], with a border of zeros left and right of each row."""
    height, width, channels = values.shape
    band = np.zeros((width + 2 * rows + 4, rows + 2, channels), np.float32)
    for y in range(-1, rows + 1):
        if 0 <= top + y < height:
            band[2 * y + 3 : 2 * y + 3 + width, y + 1] = values[top + y]
    return band


def _front(band: Floats, t: int, start: int, stop: int) -> None:
    """Smooth, in place, the pixels of front ``t`` at band rows ``start .. stop - 1``."""
    centre = band[t, start:stop]
    near = np.stack([band[t + dt, start + dj : stop + dj] for dt, dj in NEIGHBOURS])
    curve = near[:4] + near[4:]
    np.subtract(2 * centre, curve, out=curve)  # each axis' second difference, m
    low = curve.min(axis=0)
    high = curve.max(axis=0)
    # δ = neighbour - centre is allowed from -2·max(min m, 0) to -2·min(max m, 0): one of the
    # two ends is 0, both when the axes curve different ways
    np.maximum(low, 0, out=low)
    np.minimum(high, 0, out=high)
    low *= -2
    high *= -2
    near -= centre
    ok = near >= low
    ok &= near <= high
    near *= ok
    total = near.sum(axis=0)
    total *= 0.5
    total /= np.count_nonzero(ok, axis=0) + 1
    total += centre
    band[t, start:stop] = total
