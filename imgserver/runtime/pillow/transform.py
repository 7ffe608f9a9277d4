"""The ``transform`` op on Pillow: the libvips one's steps in the same order (trim -> crop box
or focal point -> resize (dpr) -> rotate -> flip -> pad -> blur -> sharpen -> colour ->
watermark), where Pillow can: the interest finders (gravity smart, attention, entropy) are
libvips' only, and ask for the libvips runtime."""

from __future__ import annotations

import io

from PIL import Image, ImageChops, ImageColor, ImageEnhance, ImageFilter, ImageOps

from ...errors import InvalidParam, TooManyPixels
from ...graphdef import Args, dpr_box, int_arg, number_arg, text_arg
from .geometry import fit
from .load import Context, normalise, output_size, split_alpha, with_alpha

INTEREST = frozenset({"smart", "attention", "entropy"})


def transform(im: Image.Image, args: Args, ctx: Context) -> Image.Image:
    gravity = text_arg(args, "gravity", "centre")
    if gravity in INTEREST:
        raise InvalidParam(
            f"gravity={gravity} needs the libvips runtime (its interest finder)", param="gravity"
        )
    colour = text_arg(args, "background", "#ffffff")
    threshold = number_arg(args, "trim")
    if threshold > 0:
        im = _trim(im, threshold)
    im = fit(im, dpr_box(args), ctx)
    im = _rotate(im, number_arg(args, "rotate"), colour)
    flip = text_arg(args, "flip", "none")
    if flip in ("horizontal", "both"):
        im = ImageOps.mirror(im)
    if flip in ("vertical", "both"):
        im = ImageOps.flip(im)
    pad = int_arg(args, "pad") or 0
    if pad > 0:
        output_size(im.width + 2 * pad, im.height + 2 * pad, ctx)
        im = ImageOps.expand(im, border=pad, fill=_fill(colour, im.mode))
    blur = number_arg(args, "blur")
    if blur >= 0.05:
        im = im.filter(ImageFilter.GaussianBlur(blur))
    sharpen = number_arg(args, "sharpen")
    if sharpen >= 0.05:
        im = im.filter(ImageFilter.UnsharpMask(radius=sharpen, percent=150, threshold=0))
    im = _adjust(
        im,
        number_arg(args, "brightness", 1.0),
        number_arg(args, "contrast", 1.0),
        number_arg(args, "saturation", 1.0),
    )
    return _watermark(im, args, ctx)


def _fill(colour: str, mode: str) -> int | tuple[int, ...]:
    value: int | tuple[int, ...] = ImageColor.getcolor(colour, mode)
    return value


def _trim(im: Image.Image, threshold: float) -> Image.Image:
    """Without the border of the top-left pixel's colour (more than ``threshold`` apart in any
    band counts as content); an image that is all border stays as it is."""
    colour, _ = split_alpha(im)
    plain = Image.new(colour.mode, colour.size, colour.getpixel((0, 0)))
    difference = ImageChops.difference(colour, plain)
    bands = difference.split()
    widest = bands[0]
    for band in bands[1:]:
        widest = ImageChops.lighter(widest, band)
    box = widest.point(lambda v: 255 if v > threshold else 0).getbbox()
    return im.crop(box) if box else im


def _rotate(im: Image.Image, degrees: float, colour: str) -> Image.Image:
    turn = degrees % 360
    if turn == 0:
        return im
    exact = {
        90: Image.Transpose.ROTATE_270,
        180: Image.Transpose.ROTATE_180,
        270: Image.Transpose.ROTATE_90,
    }
    if turn in exact:  # Pillow's turns are counter-clockwise
        return im.transpose(exact[int(turn)])
    return im.rotate(
        -turn, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=_fill(colour, im.mode)
    )


def _adjust(im: Image.Image, brightness: float, contrast: float, saturation: float) -> Image.Image:
    if (brightness, contrast, saturation) == (1.0, 1.0, 1.0):
        return im
    colour, alpha = split_alpha(im)
    if saturation != 1.0 and colour.mode == "RGB":
        colour = ImageEnhance.Color(colour).enhance(saturation)  # from grey, and past it
    table = [_level(v, brightness, contrast) for v in range(256)]
    colour = colour.point(table * len(colour.getbands()))
    return with_alpha(colour, alpha)


def _level(v: int, brightness: float, contrast: float) -> int:
    out = (v * brightness - 128) * contrast + 128
    return max(0, min(255, round(out)))


def _watermark(im: Image.Image, args: Args, ctx: Context) -> Image.Image:
    url = text_arg(args, "watermark", "")
    if not url:
        return im
    data = ctx.assets.get(url)
    if data is None:
        raise InvalidParam("the watermark was not fetched", param="watermark")
    opened = Image.open(io.BytesIO(data))
    if opened.width * opened.height > ctx.limits.max_source_pixels:
        raise TooManyPixels("the watermark has too many pixels")
    mark = normalise(ImageOps.exif_transpose(opened) or opened, ctx).convert("RGBA")
    scale = number_arg(args, "watermark_scale")
    if scale > 0:
        mark = ImageOps.contain(mark, (max(1, round(im.width * scale)), im.height))
    elif mark.width > im.width or mark.height > im.height:
        mark = ImageOps.contain(mark, im.size)
    opacity = max(0.0, min(1.0, number_arg(args, "watermark_opacity", 1.0)))
    if opacity < 1:
        mark.putalpha(mark.getchannel("A").point(lambda a: round(a * opacity)))
    margin = int_arg(args, "watermark_margin") or 0
    position = text_arg(args, "watermark_position", "south-east")
    room_x = max(0, im.width - mark.width - 2 * margin)
    room_y = max(0, im.height - mark.height - 2 * margin)
    left = room_x if "east" in position else 0 if "west" in position else room_x // 2
    top = room_y // 2
    if position.startswith("north"):
        top = 0
    elif position.startswith("south"):
        top = room_y
    base = im.convert("RGBA")
    base.alpha_composite(mark, (left + margin, top + margin))
    return base if im.mode in ("RGBA", "LA") else base.convert(im.mode)
