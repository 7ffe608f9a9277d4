"""libvips operations on an image's colours, pixel by pixel."""

from __future__ import annotations

import pyvips

from ...graphdef import Args, number_arg
from .load import Context
from .space import join, luminance, split, to_float, to_uchar


def desaturate(image: pyvips.Image, args: Args, ctx: Context) -> pyvips.Image:
    amount = max(0.0, min(1.0, number_arg(args, "amount", 1.0)))
    alpha = image.hasalpha()
    colour = image.extract_band(0, n=image.bands - 1) if alpha else image
    if colour.bands < 3 or amount == 0:
        return image
    grey = colour.colourspace("b-w")
    if amount < 1:
        mixed = colour * (1 - amount) + grey.bandjoin([grey, grey]) * amount
        grey = mixed.cast("uchar").copy(interpretation="srgb")
    return grey.bandjoin(image.extract_band(image.bands - 1)) if alpha else grey


def greyscale(image: pyvips.Image, args: Args, ctx: Context) -> pyvips.Image:
    """Colour to grey by luminance in linear light (GEGL's ``gray``); alpha is kept."""
    colour, alpha = split(image)
    if colour.bands == 1:
        return image
    y = luminance(to_float(colour, linear=True))
    return join(to_uchar(y, linear=True), alpha)


def brightness_contrast(image: pyvips.Image, args: Args, ctx: Context) -> pyvips.Image:
    """GEGL's brightness-contrast: ``(v - 0.5) · contrast + brightness + 0.5`` on each colour
    channel in linear light; alpha is kept."""
    brightness = number_arg(args, "brightness")
    contrast = number_arg(args, "contrast", 1.0)
    colour, alpha = split(image)
    if brightness == 0 and contrast == 1:
        return image
    value = (to_float(colour, linear=True) - 0.5) * contrast + (brightness + 0.5)
    return join(to_uchar(value, linear=True), alpha)
