"""libvips operation ``gradient_map``: imgflo's ``gradientmap`` graph (``gegl:grey`` →
``gegl:gradient-map`` → ``gegl:opacity`` → ``svg:src-over`` onto the original).

Each pixel's grey value picks a colour on a gradient of up to five colours at stops in 0..1,
and that colour is laid over the original at ``opacity`` (in linear light, as imgflo's graph
blends). As GEGL's gradient-map does:

- the grey value is the luminance in linear light (``gegl:grey``), or, with ``srgb``, that
  luminance sRGB-encoded (which is what a grey pixel's own value is);
- between two stops the colours are mixed linearly: in linear light, or on sRGB values with
  ``srgb``; the colours' alpha is mixed too and multiplies the pixel's own alpha.

Where GEGL assumes the stops are in order and the first one at 0, this defines the rest: the
stops are taken in order of position (a colour moves with its stop; equal positions keep the
parameters' order), a grey value before the first stop gets the first colour and one after the
last stop the last colour, and stops at one position make a hard edge there (the colour of the
earlier stop up to and at it, the later one after). The defaults are GEGL's: black at 0, the
four others white at 1.

The gradient is a table of 65536 entries (GEGL's has 2048) indexed by the 16-bit grey value,
made by libvips on a ramp and applied with ``maplut``.
"""

from __future__ import annotations

import functools
import itertools

import pyvips

from ...graphdef import Args, bool_arg, number_arg, text_arg
from .effect import over
from .load import Context
from .space import clamp, encode, luminance, split, to_float

STOPS = 5
DEFAULT_COLOURS = ("#000000", "#ffffff", "#ffffff", "#ffffff", "#ffffff")
DEFAULT_STOPS = (0.0, 1.0, 1.0, 1.0, 1.0)
SIZE = 65536  # entries of the gradient table

Colour = tuple[float, float, float, float]  # red, green, blue (0..1, encoded), alpha


def gradient_map(image: pyvips.Image, args: Args, ctx: Context) -> pyvips.Image:
    """The image's grey values mapped through the gradient, over the image at ``opacity``."""
    colours = tuple(
        _rgba(text_arg(args, f"color{i + 1}", DEFAULT_COLOURS[i])) for i in range(STOPS)
    )
    stops = tuple(
        max(0.0, min(1.0, number_arg(args, f"stop{i + 1}", DEFAULT_STOPS[i]))) for i in range(STOPS)
    )
    srgb = bool_arg(args, "srgb")
    opacity = max(0.0, min(1.0, number_arg(args, "opacity", 1.0)))
    if opacity == 0:
        return image
    colour, alpha = split(image)
    y = to_float(colour, linear=True)
    if y.bands > 1:
        y = luminance(y)
    grey = encode(y) if srgb else clamp(y)
    index = (grey * (SIZE - 1) + 0.5).cast("ushort")
    mapped = index.maplut(_table(stops, colours, srgb))
    effect_alpha = None
    if alpha is not None or any(c[3] < 1 for c in colours):
        effect_alpha = mapped[3] if alpha is None else mapped[3] * (alpha.cast("float") / 255)
    return over(image, mapped[0:3], effect_alpha, opacity, linear=True)


def _rgba(color: str) -> Colour:
    """``#rrggbb`` or ``#rrggbbaa`` (normalised by the catalogue) as four values 0..1."""
    h = color.lstrip("#")
    values = [int(h[i : i + 2], 16) / 255 for i in range(0, len(h), 2)]
    r, g, b, a = [*values, 1.0][:4]
    return r, g, b, a


def _linear(v: float) -> float:
    """An sRGB-encoded value 0..1 in linear light."""
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def _decode(v: pyvips.Image) -> pyvips.Image:
    """sRGB-encoded floats 0..1 in linear light."""
    return (v <= 0.04045).ifthenelse(v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


@functools.lru_cache(maxsize=8)
def _table(stops: tuple[float, ...], colours: tuple[Colour, ...], srgb: bool) -> pyvips.Image:
    """The gradient as SIZE x 1 float RGBA, colour in linear light, entry ``i`` for the grey
    value ``i / (SIZE - 1)``; mixed on sRGB values with ``srgb``, else in linear light."""
    points = sorted(zip(stops, colours, strict=True), key=lambda p: p[0])
    if not srgb:
        points = [(s, (_linear(r), _linear(g), _linear(b), a)) for s, (r, g, b, a) in points]
    t = pyvips.Image.identity(ushort=True).cast("float") / (SIZE - 1)
    table = t.linear([0.0] * 4, list(points[0][1]))  # the first colour, up to the first stop
    for (s0, c0), (s1, c1) in itertools.pairwise(points):
        if s1 > s0:  # c0 at s0 to c1 at s1, for t above s0 (t above s1: later segments)
            slope = [(b - a) / (s1 - s0) for a, b in zip(c0, c1, strict=True)]
            start = [a - k * s0 for a, k in zip(c0, slope, strict=True)]
            table = (t > s0).ifthenelse(t.linear(slope, start), table)
    last_stop, last = points[-1]
    table = (t > last_stop).ifthenelse(t.linear([0.0] * 4, list(last)), table)
    if srgb:
        table = _decode(table[0:3]).bandjoin(table[3])
    return table.cast("float").copy_memory()
