"""libvips operations that put images together, or make one: ``composite`` (an overlay blended
onto a base by a blend mode), ``opacity``, ``fill``.

Blending follows the SVG compositing specification (as GEGL's ``svg:*`` operations do) on
premultiplied colour: ``S`` is the overlay ("aux" in GEGL), ``D`` the base ("input"), ``ca``
a premultiplied channel and ``a`` alpha; the result's alpha is ``Sa + Da - Sa·Da``. It computes
in linear light, or on sRGB-encoded values when ``srgb`` is set. Like GEGL 0.4, the result has
the base's colour model (a grey base gives a grey result) unless ``colour`` is set: then a colour
overlay makes it colour, as with GEGL 0.3's svg ops, which always blended RGBA (imgflo's graphs
were made with them). It has alpha when both images have (where either is opaque, so is the
result).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyvips

from ...errors import InvalidParam
from ...graphdef import Args, bool_arg, int_arg, number_arg, text_arg
from .load import Context, check_output
from .space import (
    alpha_float,
    alpha_uchar,
    clamp,
    encode,
    join,
    luminance,
    rgba,
    split,
    to_float,
    to_uchar,
)

# (Sca, Sa, Dca, Da) -> the blended premultiplied channel, before the "outside" terms
Blend = Callable[[pyvips.Image, pyvips.Image, pyvips.Image, pyvips.Image], pyvips.Image]


def _lo(a: pyvips.Image, b: pyvips.Image) -> pyvips.Image:
    return (a < b).ifthenelse(a, b)


def _hi(a: pyvips.Image, b: pyvips.Image) -> pyvips.Image:
    return (a > b).ifthenelse(a, b)


def _safe(num: pyvips.Image, den: pyvips.Image) -> pyvips.Image:
    """num / den, 0 where den is 0."""
    zero = den == 0
    return zero.ifthenelse(0, num / zero.ifthenelse(1, den))


def _dodge(s: pyvips.Image, sa: pyvips.Image, d: pyvips.Image, da: pyvips.Image) -> pyvips.Image:
    full = s * da + d * sa >= sa * da
    return full.ifthenelse(sa * da, _safe(d * sa, 1 - _safe(s, sa)))


def _burn(s: pyvips.Image, sa: pyvips.Image, d: pyvips.Image, da: pyvips.Image) -> pyvips.Image:
    none = s * da + d * sa <= sa * da
    return none.ifthenelse(0, _safe(sa * (s * da + d * sa - sa * da), s))


def _overlay(s: pyvips.Image, sa: pyvips.Image, d: pyvips.Image, da: pyvips.Image) -> pyvips.Image:
    # GEGL's svg:overlay, whose test is the other way round from the SVG draft's (2·Dca <= Da):
    # imgflo's graphs were made with GEGL's
    return (d * 2 > da).ifthenelse(s * d * 2, sa * da - (da - d) * (sa - s) * 2)


def _hard_light(
    s: pyvips.Image, sa: pyvips.Image, d: pyvips.Image, da: pyvips.Image
) -> pyvips.Image:
    return (s * 2 <= sa).ifthenelse(s * d * 2, sa * da - (da - d) * (sa - s) * 2)


def _soft_light(
    s: pyvips.Image, sa: pyvips.Image, d: pyvips.Image, da: pyvips.Image
) -> pyvips.Image:
    m = _safe(d, da)  # the base's own (unpremultiplied) value
    darker = d * (sa - (1 - m) * (s * 2 - sa))
    dark = d * (sa - (1 - m) * (s * 2 - sa) * (3 - m * 8))
    light = d * sa + ((m**0.5) * da - d) * (s * 2 - sa)
    return (s * 2 < sa).ifthenelse(darker, (d * 8 <= da).ifthenelse(dark, light))


# Each mode's own term; the full result adds Sca·(1 - Da) + Dca·(1 - Sa), except where noted.
BLENDS: dict[str, Blend] = {
    "multiply": lambda s, sa, d, da: s * d,
    "screen": lambda s, sa, d, da: s * da + d * sa - s * d,
    "overlay": _overlay,
    "darken": lambda s, sa, d, da: _lo(s * da, d * sa),
    "lighten": lambda s, sa, d, da: _hi(s * da, d * sa),
    "colour-dodge": _dodge,
    "colour-burn": _burn,
    "hard-light": _hard_light,
    "soft-light": _soft_light,
    "difference": lambda s, sa, d, da: s * da + d * sa - _lo(s * da, d * sa) * 2,
    "exclusion": lambda s, sa, d, da: s * da + d * sa - s * d * 2,
}
# Modes whose result is not "blend + outside terms".
WHOLE: dict[str, Blend] = {
    "over": lambda s, sa, d, da: s + d * (1 - sa),
    "add": lambda s, sa, d, da: s + d,
}
MODES = ("over", *BLENDS, "add")


def _premultiplied(
    image: pyvips.Image, bands: int, *, linear: bool
) -> tuple[pyvips.Image, pyvips.Image]:
    """(premultiplied colour, alpha) as floats, in ``bands`` colour bands."""
    colour, alpha = split(image)
    value = to_float(colour, linear=linear)
    if value.bands > bands:  # a colour overlay on a grey base: its luminance
        y = luminance(to_float(colour, linear=True))
        value = y if linear else encode(y)
    elif value.bands < bands:  # a grey overlay on a colour base
        value = value.bandjoin([value] * (bands - 1))
    a = alpha_float(alpha, value)
    return value * a, a


def composite(images: Sequence[pyvips.Image], args: Args, ctx: Context) -> pyvips.Image:
    """The overlay blended onto the base at (x, y); the result has the base's size."""
    base, overlay = images
    mode = text_arg(args, "mode", "over")
    linear = not bool_arg(args, "srgb")
    x, y = int_arg(args, "x") or 0, int_arg(args, "y") or 0
    bands = split(base)[0].bands
    if bool_arg(args, "colour"):
        bands = max(bands, split(overlay)[0].bands)
    # Sa + Da - Sa·Da is 1 where either is: the result is opaque when either image is
    keeps_alpha = base.hasalpha() and overlay.hasalpha()
    if (overlay.width, overlay.height, x, y) != (base.width, base.height, 0, 0):
        overlay = _placed(overlay, base, x, y)  # transparent around it
        keeps_alpha = base.hasalpha()
    d, da = _premultiplied(base, bands, linear=linear)
    s, sa = _premultiplied(overlay, bands, linear=linear)
    if mode in WHOLE:
        out = WHOLE[mode](s, sa, d, da)
        out_a = clamp(sa + da) if mode == "add" else sa + da - sa * da
    else:
        out = BLENDS[mode](s, sa, d, da) + s * (1 - da) + d * (1 - sa)
        out_a = sa + da - sa * da
    value = to_uchar(_safe(out, out_a), linear=linear)
    return join(value, alpha_uchar(out_a) if keeps_alpha else None)


def _placed(overlay: pyvips.Image, base: pyvips.Image, x: int, y: int) -> pyvips.Image:
    """The overlay on a transparent canvas the base's size, its top-left corner at (x, y)."""
    colour, alpha = split(overlay)
    if alpha is None:
        alpha = colour.extract_band(0) * 0 + 255
    image = colour.bandjoin(alpha.cast(colour.format)).cast("uchar")
    return image.embed(x, y, base.width, base.height, extend="background", background=[0] * 4)


def opacity(image: pyvips.Image, args: Args, ctx: Context) -> pyvips.Image:
    """Alpha multiplied by ``value`` (an opaque image gains an alpha band)."""
    value = max(0.0, min(1.0, number_arg(args, "value", 1.0)))
    colour, alpha = split(image)
    a = alpha_float(alpha, colour)
    return join(colour, alpha_uchar(a * value))


def fill(images: Sequence[pyvips.Image], args: Args, ctx: Context) -> pyvips.Image:
    """A canvas of ``width`` x ``height`` in one colour (``#rrggbb`` or ``#rrggbbaa``)."""
    width, height = int_arg(args, "width"), int_arg(args, "height")
    if width is None or height is None:
        raise InvalidParam("a fill needs a width and a height", param="width")
    check_output(width, height, ctx)
    colour = rgba(text_arg(args, "color", "#000000"))
    canvas = pyvips.Image.black(width, height, bands=4) + colour
    image = canvas.cast("uchar")
    return join(image[:3], image[3] if colour[3] < 255 else None)
