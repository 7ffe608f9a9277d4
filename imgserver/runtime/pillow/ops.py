"""Pillow runtime, step 2: the operations, ``(image, args, ctx) -> image``, one per op of the
registry that names the Pillow runtime (``OPERATIONS``); each frame of an animation goes
through them in turn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from PIL import Image, ImageColor, ImageEnhance, ImageFilter, ImageOps

from ...errors import InvalidParam
from ...graphdef import Args, bool_arg, int_arg, number_arg, text_arg
from .load import BIG, Context, output_size, split_alpha, with_alpha

Operation = Callable[[Sequence[Image.Image], Args, Context], Image.Image]
OneImage = Callable[[Image.Image, Args, Context], Image.Image]


def one(fn: OneImage) -> Operation:
    """An operation of one image, as the pipeline calls operations."""

    def operation(images: Sequence[Image.Image], args: Args, ctx: Context) -> Image.Image:
        (image,) = images
        return fn(image, args, ctx)

    operation.__name__ = fn.__name__
    return operation


_GRAVITY = {
    "north": (0.5, 0.0),
    "south": (0.5, 1.0),
    "east": (1.0, 0.5),
    "west": (0.0, 0.5),
    "north-east": (1.0, 0.0),
    "north-west": (0.0, 0.0),
    "south-east": (1.0, 1.0),
    "south-west": (0.0, 1.0),
}


def fit(im: Image.Image, args: Args, ctx: Context) -> Image.Image:
    w, h = int_arg(args, "width"), int_arg(args, "height")
    if w is None and h is None:
        return im
    mode = text_arg(args, "mode", "fit")
    upscale = bool_arg(args, "upscale")
    if mode == "fill" and w and h:
        if not upscale:
            w, h = min(w, im.width), min(h, im.height)
        return im.resize(output_size(w, h, ctx), Image.Resampling.LANCZOS)
    gravity = text_arg(args, "gravity", "centre")
    if mode == "crop" and w and h:
        scale = max(w / im.width, h / im.height)
        if not upscale:
            scale = min(scale, 1.0)
            w, h = min(w, round(im.width * scale)), min(h, round(im.height * scale))
        size = output_size(w, h, ctx)
        if gravity == "focal":
            return _focal_crop(im, size, scale, args)
        centering = _GRAVITY.get(gravity, (0.5, 0.5))
        return ImageOps.fit(im, size, Image.Resampling.LANCZOS, centering=centering)
    fitted = im
    scale = min((w or BIG) / im.width, (h or BIG) / im.height)
    if scale < 1 or upscale:
        size = output_size(max(1, round(im.width * scale)), max(1, round(im.height * scale)), ctx)
        fitted = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if mode == "pad" and w and h:
        return _pad_to(fitted, output_size(w, h, ctx), gravity, text_arg(args, "background", ""))
    return fitted


def _focal_crop(im: Image.Image, size: tuple[int, int], scale: float, args: Args) -> Image.Image:
    """Cover ``size`` and keep the window centred on the focal point, as near as edges allow."""
    covered = im.resize(
        (max(size[0], round(im.width * scale)), max(size[1], round(im.height * scale))),
        Image.Resampling.LANCZOS,
    )
    fx, fy = number_arg(args, "focus_x", 0.5), number_arg(args, "focus_y", 0.5)
    left = max(0, min(covered.width - size[0], round(fx * covered.width - size[0] / 2)))
    top = max(0, min(covered.height - size[1], round(fy * covered.height - size[1] / 2)))
    return covered.crop((left, top, left + size[0], top + size[1]))


def _pad_to(im: Image.Image, size: tuple[int, int], gravity: str, colour: str) -> Image.Image:
    """The image on a canvas of ``size`` in ``colour``, placed at ``gravity``."""
    cx, cy = _GRAVITY.get(gravity, (0.5, 0.5))
    canvas = Image.new(im.mode, size, ImageColor.getcolor(colour or "#ffffff", im.mode))
    left = round((size[0] - im.width) * cx)
    top = round((size[1] - im.height) * cy)
    canvas.paste(im, (max(0, left), max(0, top)))
    return canvas


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
    sx, sy = number_arg(args, "sigma_x"), number_arg(args, "sigma_y")
    if sx < 0.05 and sy < 0.05:
        return im
    if im.mode in ("RGBA", "LA"):  # premultiplied, so hidden colours do not bleed into edges
        premultiplied = im.convert(im.mode[:-1] + "a")
        return premultiplied.filter(ImageFilter.GaussianBlur((sx, sy))).convert(im.mode)
    return im.filter(ImageFilter.GaussianBlur((sx, sy)))


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
    "fit": one(fit),
    "resize": one(fit),
    "crop": one(crop),
    "gaussblur": one(gaussblur),
    "desaturate": one(desaturate),
    "autocontrast": one(autocontrast),
}
