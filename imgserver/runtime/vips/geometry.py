"""libvips operations that change an image's geometry: resizing (with shrink-on-load straight
from the source's bytes), cropping, rotating."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import pyvips

from ...errors import InvalidParam
from ...graphdef import Args, bool_arg, int_arg, number_arg, text_arg
from .load import Context, check_output, cut_warning, load, memory, normalise, page_height, per_page
from .space import alpha_float, alpha_uchar, join, linear_colour, rgba, split, to_float, to_uchar

MAX_COORD = 10_000_000  # libvips' "no limit" for one side of a thumbnail box


def sized(args: Args) -> bool:
    """A resize that has a box to fit (else it leaves the image as it is)."""
    return int_arg(args, "width") is not None or int_arg(args, "height") is not None


def resize(image: pyvips.Image | None, args: Args, ctx: Context) -> pyvips.Image:
    """fit / fill / crop into width x height. ``image`` None: shrink-on-load from the source."""
    width, height = int_arg(args, "width"), int_arg(args, "height")
    if width is None and height is None:
        return image if image is not None else load(ctx)
    mode = text_arg(args, "mode", "fit")
    size = "both" if bool_arg(args, "upscale") else "down"
    thumb: Callable[..., pyvips.Image]
    after: Callable[[pyvips.Image], pyvips.Image] = _identity
    if image is None:
        src = ctx.src
        cur_w, cur_h = src.width, src.height
        if src.pages > 1:
            cut_warning(ctx)

        # thumbnail's own fail_on does not reach the loader: a truncated file would decode grey
        options = ",".join(o for o in (src.load_options, "fail_on=error") if o)
        # only colour-manage what needs it: an output_profile would also turn grey into sRGB
        profile = {"output_profile": "srgb"} if src.managed else {}

        def thumb(w: int, **kw: Any) -> pyvips.Image:
            return pyvips.Image.thumbnail_source(
                memory(src.data), w, option_string=options, **profile, **kw
            )

        after = functools.partial(normalise, ctx=ctx, icc=False)
    else:
        cur_w, cur_h = image.width, page_height(image)
        thumb = image.thumbnail_image

    if mode == "fill" and width is not None and height is not None:
        if size == "down":
            width, height = min(width, cur_w), min(height, cur_h)
        return after(thumb(width, height=height, size="force"))
    if mode == "pad" and width is not None and height is not None:
        fitted = after(thumb(width, height=height, size=size))
        check_output(width, height, ctx)
        colour = text_arg(args, "background", "#ffffff")
        where = text_arg(args, "gravity", "centre")
        return per_page(fitted, lambda p: _pad_to(p, width, height, where, colour))
    if mode == "crop" and width is not None and height is not None:
        # libvips computes a crop eagerly: refuse an over-large result before, not after
        check_output(
            width if size == "both" else min(width, cur_w),
            height if size == "both" else min(height, cur_h),
            ctx,
        )
        gravity = text_arg(args, "gravity", "centre")
        interesting = {
            "smart": "attention",
            "attention": "attention",
            "entropy": "entropy",
            "centre": "centre",
        }.get(gravity)
        pages = image.height // cur_h if image is not None else ctx.src.pages
        if interesting and pages == 1:
            return after(thumb(width, height=height, size=size, crop=interesting))
        if cur_w * height > cur_h * width:  # wider than the box: height binds the cover
            covered = thumb(MAX_COORD, height=height, size=size)
        else:
            covered = thumb(width, height=MAX_COORD, size=size)
        covered = after(covered)
        focus = (number_arg(args, "focus_x", 0.5), number_arg(args, "focus_y", 0.5))
        return per_page(covered, lambda p: _gravity_crop(p, width, height, gravity, focus))
    return after(thumb(width or MAX_COORD, height=height or MAX_COORD, size=size))


def _identity(image: pyvips.Image) -> pyvips.Image:
    return image


def _gravity_crop(
    image: pyvips.Image,
    width: int,
    height: int,
    gravity: str,
    focus: tuple[float, float] = (0.5, 0.5),
) -> pyvips.Image:
    """The ``width`` x ``height`` window at ``gravity``; ``focal``: the window centred on the
    point ``focus`` (fractions of the image), as near as the edges allow."""
    w, h = min(width, image.width), min(height, image.height)
    dx, dy = image.width - w, image.height - h
    if gravity == "focal":
        left = round(focus[0] * image.width - w / 2)
        top = round(focus[1] * image.height - h / 2)
        return image.crop(max(0, min(dx, left)), max(0, min(dy, top)), w, h)
    left, top = place(dx, dy, gravity)
    return image.crop(left, top, w, h)


def place(dx: int, dy: int, gravity: str) -> tuple[int, int]:
    """Where a thing goes in room (dx, dy) to spare: the centre, or towards a compass point."""
    left = dx if "east" in gravity else 0 if "west" in gravity else dx // 2
    top = 0 if gravity.startswith("north") else dy if gravity.startswith("south") else dy // 2
    return left, top


def _pad_to(
    image: pyvips.Image, width: int, height: int, gravity: str, colour: str
) -> pyvips.Image:
    """The image on a ``width`` x ``height`` canvas of ``colour``, placed at ``gravity``."""
    left, top = place(max(0, width - image.width), max(0, height - image.height), gravity)
    return image.embed(
        left, top, width, height, extend="background", background=background(image, colour)
    )


def background(image: pyvips.Image, colour: str) -> list[float]:
    """``#rrggbb[aa]`` as band values for ``image``: grey for a grey image, and alpha (opaque
    unless the colour says otherwise) when the image has alpha."""
    h = colour.lstrip("#")
    rgba = [int(h[i : i + 2], 16) for i in range(0, len(h), 2)] + [255]
    r, g, b, a = rgba[:4]
    colour_bands = image.bands - (1 if image.hasalpha() else 0)
    grey = 0.2126 * r + 0.7152 * g + 0.0722 * b
    values: list[float] = [r, g, b] if colour_bands >= 3 else [grey]
    return [*values, a] if image.hasalpha() else values


def crop(image: pyvips.Image, args: Args, ctx: Context) -> pyvips.Image:
    x, y = int_arg(args, "x") or 0, int_arg(args, "y") or 0
    w, h = image.width, page_height(image)
    if x >= w or y >= h or x < 0 or y < 0:
        raise InvalidParam(
            f"the crop origin ({x}, {y}) is outside the {w}x{h} image",
            param="x" if not 0 <= x < w else "y",
            width=w,
            height=h,
        )
    cw = min(int_arg(args, "width") or w, w - x)
    ch = min(int_arg(args, "height") or h, h - y)
    return per_page(image, lambda p: p.crop(x, y, cw, ch))


_QUARTER_TURNS = {1: "d90", 2: "d180", 3: "d270"}  # clockwise, exact


def rotate(image: pyvips.Image, args: Args, ctx: Context) -> pyvips.Image:
    """Rotate about the centre, ``degrees`` clockwise (``counter_clockwise``: the other way, as
    GEGL's rotate-on-center); multiples of 90 degrees are libvips' exact ``rot``. Any other
    angle gives the rotated image's bounding box, sampled in premultiplied linear light (as
    GEGL), its corners ``background``."""
    degrees = number_arg(args, "degrees")
    return rotate_clockwise(
        image,
        -degrees if bool_arg(args, "counter_clockwise") else degrees,
        text_arg(args, "background", "#00000000"),
        text_arg(args, "interpolate", "bilinear"),
    )


def rotate_clockwise(
    image: pyvips.Image, degrees: float, colour: str, interpolate: str = "bilinear"
) -> pyvips.Image:
    """Rotated ``degrees`` clockwise about the centre: exact for multiples of 90, else the
    bounding box of the turned image with ``colour`` (#rrggbb[aa]) in the corners."""
    clockwise = degrees % 360
    quarters = round(clockwise / 90)
    if abs(clockwise - quarters * 90) < 1e-9:
        turn = _QUARTER_TURNS.get(quarters % 4)
        return image if turn is None else per_page(image, lambda p: p.rot(turn))
    background = rgba(colour)
    return per_page(image, lambda p: _rotate(p, math.radians(clockwise), interpolate, background))


def _rotate(
    image: pyvips.Image, theta: float, interpolate: str, background: list[int]
) -> pyvips.Image:
    colour, alpha = split(image)
    value = to_float(colour, linear=True)
    a = alpha_float(alpha, value)
    w, h = image.width, image.height
    c, s = math.cos(theta), math.sin(theta)
    # the rotated rectangle's extent (as GEGL: its corner at 0, 0), and the pixels covering it
    rw, rh = abs(c) * w + abs(s) * h, abs(s) * w + abs(c) * h
    ow, oh = _cover(rw), _cover(rh)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    if interpolate == "nearest":  # libvips takes floor(x), GEGL the pixel x lies in: round(x)
        cx, cy = cx + 0.5, cy + 0.5
    turned = (
        value.bandjoin(a)
        .premultiply(max_alpha=1.0)
        .affine(
            [c, -s, s, c],
            interpolate=pyvips.Interpolate.new(interpolate),
            oarea=[0, 0, ow, oh],
            odx=(rw - 1) / 2 - (c * cx - s * cy),
            ody=(rh - 1) / 2 - (s * cx + c * cy),
            extend="background",
            background=[0] * (value.bands + 1),
            premultiplied=True,  # (ours: libvips would premultiply again)
        )
    )
    fg, fa = turned.extract_band(0, n=value.bands), turned.extract_band(value.bands)
    ba = background[3] / 255
    bg_linear = linear_colour(background, value.bands)
    out_a = fa + (1 - fa) * ba
    premultiplied = fg + (1 - fa) * [v * ba for v in bg_linear]
    keep_alpha = alpha is not None or ba < 1
    colour_out = premultiplied / (out_a == 0).ifthenelse(1, out_a)
    return join(to_uchar(colour_out, linear=True), alpha_uchar(out_a) if keep_alpha else None)


def _cover(extent: float) -> int:
    """Pixels covering a continuous extent (one that is within rounding of whole is whole)."""
    return max(1, math.ceil(extent - 1e-6))
