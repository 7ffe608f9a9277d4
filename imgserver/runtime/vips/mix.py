"""GEGL's ``mix`` as a libvips-runtime operation: a linear interpolation between two images,
``input·(1 - ratio) + aux·ratio``, colour and alpha alike (not premultiplied), in linear light.

As in GEGL the result has the input's colour model (a colour aux on a grey input gives its
luminance) and size (an aux smaller than the input is transparent black beyond its extent).
At ratio 0 the result is the input, at 1 the aux, each unchanged (unless the aux has colour and
the input not: then its luminance, as above). The operation is pixel by
pixel, so an animation (both images with the same frames) mixes frame by frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyvips

from ...graphdef import Args, number_arg
from .load import Context
from .space import alpha_float, alpha_uchar, join, luminance, split, to_float, to_uchar


def mix(images: Sequence[pyvips.Image], args: Args, ctx: Context) -> pyvips.Image:
    base, aux = images
    ratio = max(0.0, min(1.0, number_arg(args, "ratio", 0.5)))
    same_size = (aux.width, aux.height) == (base.width, base.height)
    colour, alpha = split(base)
    if ratio == 0:
        return base
    if ratio == 1 and same_size and split(aux)[0].bands <= colour.bands:
        return aux  # (a grey aux on a colour input: the same picture, in fewer bands)
    if not same_size:
        aux = _fitted(aux, base)
    keeps_alpha = alpha is not None or aux.hasalpha()
    b, ba = _values(base, colour.bands)
    a, aa = _values(aux, colour.bands)
    value = b * (1 - ratio) + a * ratio
    out_alpha = ba * (1 - ratio) + aa * ratio
    return join(to_uchar(value, linear=True), alpha_uchar(out_alpha) if keeps_alpha else None)


def _values(image: pyvips.Image, bands: int) -> tuple[pyvips.Image, pyvips.Image]:
    """(colour in linear light, in ``bands`` bands; alpha) as floats 0..1."""
    colour, alpha = split(image)
    value = to_float(colour, linear=True)
    if value.bands > bands:  # a colour aux on a grey input: its luminance
        value = luminance(value)
    elif value.bands < bands:
        value = value.bandjoin([value] * (bands - 1))
    return value, alpha_float(alpha, value)


def _fitted(aux: pyvips.Image, base: pyvips.Image) -> pyvips.Image:
    """``aux`` cut or extended (transparent black) to the base's size, from the top-left."""
    colour, alpha = split(aux)
    if alpha is None:
        alpha = colour.extract_band(0) * 0 + 255
    with_alpha = colour.bandjoin(alpha.cast(colour.format)).cast("uchar")
    background = [0] * with_alpha.bands
    placed = with_alpha.embed(
        0, 0, base.width, base.height, extend="background", background=background
    )
    return placed.copy(interpretation="b-w" if placed.bands < 3 else "srgb")
