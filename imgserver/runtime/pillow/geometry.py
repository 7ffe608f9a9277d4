"""Pillow operations that change geometry: fit / fill / crop (compass or focal gravity) / pad."""

from __future__ import annotations

from PIL import Image, ImageColor, ImageOps

from ...graphdef import Args, bool_arg, int_arg, number_arg, text_arg
from .load import BIG, Context, output_size

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
