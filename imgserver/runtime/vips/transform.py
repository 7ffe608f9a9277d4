"""The ``transform`` op: what thumbor's and imgproxy's users ask for most, as one operation whose
steps always run in this order, whatever the order of the URL's parameters:

    trim -> crop box / focal point -> resize (dpr) -> rotate -> flip -> pad -> blur -> sharpen
    -> colour -> watermark

(the encode step, with ``quality``, ``max_bytes`` and the ``background`` that fills alpha for a
format without it, is the graph's ``encode``). Each step is a small function of the image and the
arguments; a step whose argument is at its neutral value does nothing. Shrink-on-load stays:
from the source, the resize decodes at a reduced size (with ``trim``, after finding the border on
a small preview; see ``trim.py``).
"""

from __future__ import annotations

import pyvips

from ...errors import TooManyPixels, UnsupportedSource
from ...graphdef import Args, dpr_box, int_arg, number_arg, text_arg
from .geometry import background, place, resize, rotate_clockwise
from .load import Context, check_output, normalise, page_height
from .space import alpha_float, alpha_uchar, join, split
from .trim import trimmed

APPROXIMATE_FROM = 3.0  # blur sigma from which the approximate blur is used


def transform(image: pyvips.Image | None, args: Args, ctx: Context) -> pyvips.Image:
    """Every step, in order. ``image`` None: straight from the source (shrink-on-load)."""
    image = _resize(image, args, ctx)
    colour = text_arg(args, "background", "#ffffff")
    if number_arg(args, "rotate") % 360 or text_arg(args, "flip", "none") != "none":
        # a rotation or a flip reads the image out of order: not from a sequential decode
        image = image.copy_memory()
    image = rotate_clockwise(image, number_arg(args, "rotate"), colour)
    image = _flip(image, text_arg(args, "flip", "none"))
    image = _pad(image, int_arg(args, "pad") or 0, colour, ctx)
    image = _blur(image, number_arg(args, "blur"))
    image = _sharpen(image, number_arg(args, "sharpen"))
    image = _adjust(
        image,
        number_arg(args, "brightness", 1.0),
        number_arg(args, "contrast", 1.0),
        number_arg(args, "saturation", 1.0),
    )
    return _watermark(image, args, ctx)


def _resize(image: pyvips.Image | None, args: Args, ctx: Context) -> pyvips.Image:
    box = dpr_box(args)
    threshold = number_arg(args, "trim")
    if threshold > 0:
        image = trimmed(image, threshold, box, ctx)
    return resize(image, box, ctx)


def _flip(image: pyvips.Image, flip: str) -> pyvips.Image:
    if flip in ("horizontal", "both"):
        image = image.fliphor()
    if flip in ("vertical", "both"):
        image = image.flipver()
    return image


def _pad(image: pyvips.Image, pad: int, colour: str, ctx: Context) -> pyvips.Image:
    if pad <= 0:
        return image
    width, height = image.width + 2 * pad, page_height(image) + 2 * pad
    check_output(width, height, ctx)
    return image.embed(
        pad, pad, width, height, extend="background", background=background(image, colour)
    )


def _blur(image: pyvips.Image, sigma: float) -> pyvips.Image:
    if sigma < 0.05:
        return image
    fmt = image.format
    alpha = image.hasalpha()
    work = image.premultiply() if alpha else image
    # past a few pixels, libvips' approximate blur (box passes) is within SSIM 0.998 of the
    # exact one and 25x faster at sigma 100 (bench/worst_case.py)
    work = work.gaussblur(sigma, precision="float" if sigma < APPROXIMATE_FROM else "approximate")
    return (work.unpremultiply() if alpha else work).cast(fmt)


def _sharpen(image: pyvips.Image, sigma: float) -> pyvips.Image:
    """An unsharp mask of radius ``sigma`` (libvips' sharpen, on lightness only)."""
    if sigma < 0.05:
        return image
    colour, alpha = split(image)
    interpretation = "b-w" if colour.bands < 3 else "srgb"
    sharp = colour.sharpen(sigma=sigma).colourspace(interpretation)
    if sharp.format != "uchar":
        sharp = sharp.cast("uchar")
    return join(sharp, alpha)


def _adjust(
    image: pyvips.Image, brightness: float, contrast: float, saturation: float
) -> pyvips.Image:
    """Brightness (multiplies), contrast (around mid-grey), saturation (multiplies chroma);
    1 leaves each unchanged."""
    if (brightness, contrast, saturation) == (1.0, 1.0, 1.0):
        return image
    colour, alpha = split(image)
    if saturation != 1.0 and colour.bands >= 3:
        lch = colour.colourspace("lch")
        lch = lch * [1.0, saturation, 1.0]
        colour = lch.colourspace("srgb")
    work = colour.cast("float")
    if brightness != 1.0:
        work = work * brightness
    if contrast != 1.0:
        work = (work - 128) * contrast + 128
    clipped = (work < 0).ifthenelse(0, (work > 255).ifthenelse(255, work))
    return join(clipped.cast("uchar"), alpha)


def _watermark(image: pyvips.Image, args: Args, ctx: Context) -> pyvips.Image:
    """The watermark laid over the image at ``watermark_position`` with ``watermark_margin``,
    scaled to ``watermark_scale`` of the image's width (0: as it is, never larger than the
    image) and faded to ``watermark_opacity``."""
    url = text_arg(args, "watermark", "")
    if not url:
        return image
    data = ctx.assets.get(url)
    if data is None:
        raise UnsupportedSource("the watermark was not fetched")
    mark = _mark(data, ctx)
    height = page_height(image)
    scale = number_arg(args, "watermark_scale")
    if scale > 0:  # a share of the image's width (and never taller than the image)
        mark = mark.thumbnail_image(max(1, round(image.width * scale)), height=height, size="both")
    elif mark.width > image.width or mark.height > height:  # as it is, if it fits
        mark = mark.thumbnail_image(image.width, height=height, size="down")
    opacity = max(0.0, min(1.0, number_arg(args, "watermark_opacity", 1.0)))
    colour, alpha = split(mark)
    a = alpha_float(alpha, colour) * opacity
    mark = join(colour, alpha_uchar(a))
    margin = int_arg(args, "watermark_margin") or 0
    position = text_arg(args, "watermark_position", "south-east")
    room_x = max(0, image.width - mark.width - 2 * margin)
    room_y = max(0, page_height(image) - mark.height - 2 * margin)
    left, top = place(room_x, room_y, position)
    return _over(image, mark, left + margin, top + margin)


def _mark(data: bytes, ctx: Context) -> pyvips.Image:
    """The watermark decoded: upright, 8-bit sRGB or grey, alpha kept; pixel limits checked."""
    header = pyvips.Image.new_from_buffer(data, "", access="sequential", fail_on="error")
    if header.width * header.height > ctx.limits.max_source_pixels:
        raise TooManyPixels(
            f"the watermark is {header.width}x{header.height} pixels; the limit is "
            f"{ctx.limits.max_source_pixels}",
            limit=ctx.limits.max_source_pixels,
        )
    image = pyvips.Image.new_from_buffer(data, "", fail_on="error").autorot()
    return normalise(image, ctx)


def _over(image: pyvips.Image, mark: pyvips.Image, left: int, top: int) -> pyvips.Image:
    """``mark`` laid over ``image`` at (left, top): alpha compositing on sRGB values."""
    colour, alpha = split(image)
    mark_colour, mark_alpha = split(mark)
    if mark_colour.bands != colour.bands:
        mark_colour = (
            mark_colour.colourspace("srgb") if colour.bands >= 3 else mark_colour.colourspace("b-w")
        )
        if mark_colour.format != "uchar":
            mark_colour = mark_colour.cast("uchar")
    canvas = mark_colour.embed(left, top, image.width, image.height)
    coverage = alpha_float(mark_alpha, mark_colour).embed(left, top, image.width, image.height)
    blended = colour.cast("float") * (1 - coverage) + canvas.cast("float") * coverage
    out_alpha = None
    if alpha is not None:
        base_a = alpha.cast("float") / 255
        out_alpha = alpha_uchar(base_a + coverage * (1 - base_a))
    return join((blended + 0.5).cast("uchar"), out_alpha)
