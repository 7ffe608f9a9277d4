"""libvips operation ``lut``: tone curves a graph gives as control points, per channel and for all
three, applied to 8-bit sRGB values with one ``maplut``.

A curve is the text of a ``curve`` argument: ``in:out`` points, values 0..255, sorted by ``in``
(``params.parse_curve``; the catalogue and the parameter parser checked and canonicalised it).
Through its points it is

- with ``smooth`` (the default), a monotone cubic: PCHIP, the Hermite cubic with Fritsch and
  Carlson's shape-preserving slopes (Fritsch and Butland's weighted harmonic mean inside, the
  three-point formula limited at the ends, as scipy's ``PchipInterpolator``, written out here in
  numpy: scipy is not a dependency). It passes through every point and between two points stays
  between their outputs: it never overshoots, and rising points make a rising curve;
- without, straight lines from point to point.

Before the first point and after the last it is flat, at that point's output.

A channel's value ``v`` becomes ``all(channel(v))`` (its own curve, then ``all``, composed before
rounding), moved ``strength`` of the way from ``v`` (the curved image laid over the original at
that opacity, on sRGB values: a mix of each channel with itself, so it folds into the table),
rounded to 8 bits (halves up). The three tables are one 256 x 1 LUT, built on each call and mapped
over the colour bands: alpha is kept as it is (``curves``' blend makes a half-transparent pixel
more opaque, as imgflo's did; this one has no imgflo to follow), and every frame of an animation is
mapped alike (a LUT works pixel by pixel). A grey image stays grey when the three tables are the
same (only ``all`` given, say); otherwise it becomes an sRGB image, its grey in the three channels,
as ``curves`` makes it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyvips

from ...graphdef import Args, number_arg, text_arg
from ...params import CurvePoint, parse_curve
from ..registry import IDENTITY_CURVE
from .curves import IDENTITY, Curve, lut_image
from .effect import rgb
from .load import Context
from .space import join, split

CHANNELS = ("red", "green", "blue")

Floats = npt.NDArray[np.float64]

_CODES: Floats = np.arange(256, dtype=np.float64)
_CODES.flags.writeable = False


def lut(image: pyvips.Image, args: Args, ctx: Context) -> pyvips.Image:
    """The channels' curves, then ``all``, at ``strength``; alpha kept."""
    red, green, blue = tables(
        *(parse_curve(text_arg(args, name, IDENTITY_CURVE)) for name in ("all", *CHANNELS)),
        smooth=args.get("smooth") is not False,
        strength=max(0.0, min(1.0, number_arg(args, "strength", 1.0))),
    )
    if red == green == blue == IDENTITY:
        return image
    colour, alpha = split(image)
    if colour.bands == 1 and red == green == blue:
        return join(colour.maplut(lut_image(red)), alpha)
    colour, alpha = rgb(image)
    return join(colour.maplut(lut_image(red, green, blue)), alpha)


def tables(
    common: tuple[CurvePoint, ...],
    red: tuple[CurvePoint, ...],
    green: tuple[CurvePoint, ...],
    blue: tuple[CurvePoint, ...],
    *,
    smooth: bool = True,
    strength: float = 1.0,
) -> tuple[Curve, Curve, Curve]:
    """What each 8-bit value of red, green and blue becomes."""
    out = []
    for points in (red, green, blue):
        curved = evaluate(common, evaluate(points, _CODES, smooth=smooth), smooth=smooth)
        mixed = np.round(_CODES + strength * (curved - _CODES), 6)  # no float noise at .5
        out.append(tuple(int(v) for v in np.clip(np.floor(mixed + 0.5), 0, 255)))
    return out[0], out[1], out[2]


def evaluate(points: tuple[CurvePoint, ...], at: Floats, *, smooth: bool) -> Floats:
    """The curve through ``points`` (sorted by ``in``, at least two) at each of ``at``."""
    x = np.array([p[0] for p in points], dtype=np.float64)
    y = np.array([p[1] for p in points], dtype=np.float64)
    at = np.clip(at, x[0], x[-1])  # flat beyond the ends
    if not smooth:
        return np.interp(at, x, y)
    m = _slopes(x, y)
    k = np.clip(np.searchsorted(x, at, side="right") - 1, 0, len(x) - 2)
    h = x[k + 1] - x[k]
    t = (at - x[k]) / h
    t2, t3 = t * t, t * t * t
    return (
        (2 * t3 - 3 * t2 + 1) * y[k]
        + (t3 - 2 * t2 + t) * h * m[k]
        + (3 * t2 - 2 * t3) * y[k + 1]
        + (t3 - t2) * h * m[k + 1]
    )


def _slopes(x: Floats, y: Floats) -> Floats:
    """PCHIP's slope at each point: 0 at a local extremum or next to a flat stretch, else the
    weighted harmonic mean of the slopes either side; at the ends, the three-point estimate,
    0 if it turns against the end's slope and at most three times that slope."""
    h = np.diff(x)
    d = np.diff(y) / h
    if len(d) == 1:  # two points: a straight line
        return np.array([d[0], d[0]])
    m = np.empty_like(x)
    w1 = 2 * h[1:] + h[:-1]
    w2 = h[1:] + 2 * h[:-1]
    rising_or_falling = d[:-1] * d[1:] > 0  # same sign, neither 0
    safe_left = np.where(rising_or_falling, d[:-1], 1.0)
    safe_right = np.where(rising_or_falling, d[1:], 1.0)
    m[1:-1] = np.where(rising_or_falling, (w1 + w2) / (w1 / safe_left + w2 / safe_right), 0.0)
    m[0] = _end_slope(h[0], h[1], d[0], d[1])
    m[-1] = _end_slope(h[-1], h[-2], d[-1], d[-2])
    return m


def _end_slope(h0: float, h1: float, d0: float, d1: float) -> float:
    """The slope at an end point (scipy's ``pchip`` edge case): ``h0``, ``d0`` the width and
    slope of the end interval, ``h1``, ``d1`` those of its neighbour."""
    m = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
    if np.sign(m) != np.sign(d0):
        return 0.0
    if np.sign(d0) != np.sign(d1) and abs(m) > 3 * abs(d0):
        return float(3 * d0)
    return float(m)
