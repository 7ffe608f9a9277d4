"""libvips operations that filter an image's pixels by their neighbours: blurs."""

from __future__ import annotations

import pyvips

from ...graphdef import Args, number_arg
from .load import Context, per_page


def gaussblur(image: pyvips.Image, args: Args, ctx: Context) -> pyvips.Image:
    sx, sy = number_arg(args, "sigma_x"), number_arg(args, "sigma_y")
    if sx < 0.05 and sy < 0.05:
        return image
    return per_page(image, lambda p: _blur(p, sx, sy))


def _blur(image: pyvips.Image, sx: float, sy: float) -> pyvips.Image:
    fmt = image.format
    alpha = image.hasalpha()
    work = image.premultiply() if alpha else image.cast("float")
    if abs(sx - sy) < 1e-9:
        work = work.gaussblur(sx, precision="float")
    else:
        if sx >= 0.05:
            work = work.conv(pyvips.Image.gaussmat(sx, 0.2, separable=True), precision="float")
        if sy >= 0.05:
            mask = pyvips.Image.gaussmat(sy, 0.2, separable=True).rot90()
            work = work.conv(mask, precision="float")
    if alpha:
        work = work.unpremultiply()
    return work.cast(fmt)
