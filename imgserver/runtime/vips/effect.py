"""An effect laid over the original image, as imgflo's colour graphs do it (``retro``,
``gradientmap``): the effect's colour, with its own alpha times an amount, composited onto the
original by SVG "over" (GEGL's ``svg:src-over``: ``Sca + Dca·(1 - Sa)``, alpha
``Sa + Da - Sa·Da``), in linear light or on sRGB-encoded values.

A grey original is taken as the sRGB colour it shows (these effects colour it); the result has
an alpha band only when the original has one.
"""

from __future__ import annotations

import pyvips

from .space import alpha_float, alpha_uchar, join, split, to_float, to_uchar


def rgb(image: pyvips.Image) -> tuple[pyvips.Image, pyvips.Image | None]:
    """An 8-bit image's colour as three sRGB bands (grey repeated), and its alpha band."""
    colour, alpha = split(image)
    if colour.bands == 1:
        colour = colour.bandjoin([colour, colour])
    return colour.copy(interpretation="srgb"), alpha


def over(
    base: pyvips.Image,
    effect: pyvips.Image,
    effect_alpha: pyvips.Image | None,
    amount: float,
    *,
    linear: bool,
) -> pyvips.Image:
    """``effect`` (three float bands 0..1, linear light if ``linear``, else sRGB-encoded), with
    alpha ``effect_alpha`` (a float band; None: opaque) times ``amount``, over ``base`` (8-bit)."""
    colour, alpha = rgb(base)
    d = to_float(colour, linear=linear)
    sa: pyvips.Image | float = amount if effect_alpha is None else effect_alpha * amount
    if alpha is None:  # Da = 1: a mix, and the result stays opaque
        return join(to_uchar(effect * sa + d * (1 - sa), linear=linear), None)
    da = alpha_float(alpha, d)
    out_a = da * (1 - sa) + sa
    out = effect * sa + d * da * (1 - sa)
    empty = out_a == 0
    value = empty.ifthenelse(0, out / empty.ifthenelse(1, out_a))
    return join(to_uchar(value, linear=linear), alpha_uchar(out_a))
