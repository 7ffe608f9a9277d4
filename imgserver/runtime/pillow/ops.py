"""Pillow runtime, step 2: the operations, ``(image, args, ctx) -> image``, one per op of the
registry that names the Pillow runtime (``OPERATIONS``); each frame of an animation goes
through them in turn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from ...errors import InvalidParam
from ...graphdef import Args, int_arg, number_arg, text_arg
from . import geometry, transform
from .load import Context, split_alpha, with_alpha

Operation = Callable[[Sequence[Image.Image], Args, Context], Image.Image]
OneImage = Callable[[Image.Image, Args, Context], Image.Image]


def one(fn: OneImage) -> Operation:
    """An operation of one image, as the pipeline calls operations."""

    def operation(images: Sequence[Image.Image], args: Args, ctx: Context) -> Image.Image:
        (image,) = images
        return fn(image, args, ctx)

    operation.__name__ = fn.__name__
    return operation


def crop(im: Image.Image, args: Args, ctx: Context) -> Image.Image:
    x, y = int_arg(args, "x") or 0, int_arg(args, "y") or 0
    if x >= im.width or y >= im.height or x < 0 or y < 0:
        raise InvalidParam(
            f"the crop origin ({x}, {y}) is outside the {im.width}x{im.height} image",
            param="x" if not 0 <= x < im.width else "y",
        )
    cw = min(int_arg(args, "width") or im.width, im.width - x)
    ch = min(int_arg(args, "height") or im.height, im.height - y)
    return im.crop((x, y, x + cw, y + ch))


def gaussblur(im: Image.Image, args: Args, ctx: Context) -> Image.Image:
    """Blurs sRGB-encoded values (the libvips runtime blurs linear light). Outside the image
    Pillow sees its edge pixels (clamp); the other policies put a border of that colour around
    the image for the blur to see, and cut it off after."""
    sx, sy = number_arg(args, "sigma_x"), number_arg(args, "sigma_y")
    if sx < 0.05 and sy < 0.05:
        return im
    abyss = text_arg(args, "abyss", "clamp")
    alpha = im.mode in ("RGBA", "LA")
    work = im.convert(im.mode[:-1] + "a") if alpha else im  # premultiplied: no hidden colours
    if abyss != "clamp":
        colours = len(work.getbands()) - (1 if alpha else 0)
        fill = (255 if abyss == "white" else 0,) * colours
        if alpha:
            fill += (0 if abyss == "none" else 255,)
        px, py = math.ceil(3 * sx) + 1, math.ceil(3 * sy) + 1
        border = Image.new(work.mode, (work.width + 2 * px, work.height + 2 * py), fill)
        border.paste(work, (px, py))
        work = border.filter(ImageFilter.GaussianBlur((sx, sy)))
        work = work.crop((px, py, px + im.width, py + im.height))
    else:
        work = work.filter(ImageFilter.GaussianBlur((sx, sy)))
    return work.convert(im.mode) if alpha else work


def desaturate(im: Image.Image, args: Args, ctx: Context) -> Image.Image:
    amount = max(0.0, min(1.0, number_arg(args, "amount", 1.0)))
    colour, alpha = split_alpha(im)
    if colour.mode != "RGB":
        return im
    grey = colour.convert("L") if amount >= 1 else ImageEnhance.Color(colour).enhance(1 - amount)
    return with_alpha(grey, alpha)


def autocontrast(im: Image.Image, args: Args, ctx: Context) -> Image.Image:
    colour, alpha = split_alpha(im)
    cutoff = max(0.0, min(49.0, number_arg(args, "cutoff")))
    return with_alpha(ImageOps.autocontrast(colour, cutoff=cutoff), alpha)


OPERATIONS: Mapping[str, Operation] = {
    "fit": one(geometry.fit),
    "resize": one(geometry.fit),
    "crop": one(crop),
    "gaussblur": one(gaussblur),
    "desaturate": one(desaturate),
    "autocontrast": one(autocontrast),
    "transform": one(transform.transform),
}
