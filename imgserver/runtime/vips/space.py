"""Colour arithmetic for the libvips operations that compute on light: images as floats in
0..1, gamma-encoded (sRGB, as stored) or linear (as GEGL computes by default), colour and alpha
apart, and back to 8-bit sRGB.

Between nodes images are 8-bit sRGB or grey, with or without alpha (``load.normalise``); an
operation that blends or weighs light converts with these, computes, and converts back.
"""

from __future__ import annotations

import functools

import pyvips

# Rec. 709 / sRGB luminance weights, applied to linear light (as babl's "Y" does).
LUMA = (0.2126, 0.7152, 0.0722)


def decode(v: float) -> float:
    """An sRGB-encoded value 0..1 -> linear light 0..1 (the sRGB transfer function inverted)."""
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


@functools.cache
def _to_linear_lut() -> pyvips.Image:
    """256 entries: 8-bit code -> linear 0..1."""
    return pyvips.Image.new_from_list([[decode(code / 255) for code in range(256)]]).cast("double")


def rgba(color: str) -> list[int]:
    """``#rrggbb`` or ``#rrggbbaa`` (the catalogue normalised it) as four 0..255 values."""
    h = color.lstrip("#")
    values = [int(h[i : i + 2], 16) for i in range(0, len(h), 2)]
    return values + [255] * (4 - len(values))


def linear_colour(rgb: list[int], bands: int) -> list[float]:
    """An 8-bit sRGB colour as linear light in ``bands`` colour bands (1: its luminance)."""
    values = [decode(v / 255) for v in rgb[:3]]
    return [sum(v * w for v, w in zip(values, LUMA, strict=True))] if bands == 1 else values


def split(image: pyvips.Image) -> tuple[pyvips.Image, pyvips.Image | None]:
    """Colour bands and alpha band (None when there is none)."""
    if image.hasalpha():
        return image.extract_band(0, n=image.bands - 1), image.extract_band(image.bands - 1)
    return image, None


def to_float(image: pyvips.Image, *, linear: bool) -> pyvips.Image:
    """8-bit colour bands as floats 0..1: linear light, or as encoded (sRGB gamma)."""
    if linear:
        return image.maplut(_to_linear_lut())
    return image.cast("float") / 255


def alpha_float(alpha: pyvips.Image | None, like: pyvips.Image) -> pyvips.Image:
    """An alpha band as floats 0..1; fully opaque when there is none."""
    if alpha is None:
        return like.extract_band(0) * 0 + 1.0
    return alpha.cast("float") / 255


def clamp(v: pyvips.Image) -> pyvips.Image:
    """Values below 0 as 0, above 1 as 1."""
    return (v < 0).ifthenelse(0, (v > 1).ifthenelse(1, v))


def encode(linear: pyvips.Image) -> pyvips.Image:
    """Linear light 0..1 -> sRGB-encoded 0..1 (the sRGB transfer function)."""
    v = clamp(linear)
    return (v <= 0.0031308).ifthenelse(v * 12.92, (v ** (1 / 2.4)) * 1.055 - 0.055)


def to_uchar(colour: pyvips.Image, *, linear: bool) -> pyvips.Image:
    """Floats 0..1 (linear light or encoded) as 8-bit sRGB codes."""
    v = encode(colour) if linear else clamp(colour)
    return (v * 255 + 0.5).cast("uchar")


def alpha_uchar(alpha: pyvips.Image) -> pyvips.Image:
    return (clamp(alpha) * 255 + 0.5).cast("uchar")


def luminance(linear_rgb: pyvips.Image) -> pyvips.Image:
    """Linear light RGB -> linear luminance Y (one band)."""
    r, g, b = linear_rgb[0], linear_rgb[1], linear_rgb[2]
    return r * LUMA[0] + g * LUMA[1] + b * LUMA[2]


def tag(image: pyvips.Image) -> pyvips.Image:
    """8-bit bands labelled as what they are: grey (1-2 bands) or sRGB (3-4)."""
    return image.copy(interpretation="b-w" if image.bands < 3 else "srgb")


def join(colour: pyvips.Image, alpha: pyvips.Image | None) -> pyvips.Image:
    """8-bit colour and an optional 8-bit alpha, as one labelled image."""
    return tag(colour if alpha is None else colour.bandjoin(alpha))
