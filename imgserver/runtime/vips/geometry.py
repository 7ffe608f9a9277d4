"""libvips operations that change an image's geometry: resizing (with shrink-on-load straight
from the source's bytes), cropping."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pyvips

from ...errors import InvalidParam
from ...graphdef import Args, bool_arg, int_arg, text_arg
from .load import Context, check_output, cut_warning, load, memory, normalise, page_height, per_page

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
        return per_page(covered, lambda p: _gravity_crop(p, width, height, gravity))
    return after(thumb(width or MAX_COORD, height=height or MAX_COORD, size=size))


def _identity(image: pyvips.Image) -> pyvips.Image:
    return image


def _gravity_crop(image: pyvips.Image, width: int, height: int, gravity: str) -> pyvips.Image:
    w, h = min(width, image.width), min(height, image.height)
    dx, dy = image.width - w, image.height - h
    left = dx if "east" in gravity else 0 if "west" in gravity else dx // 2
    top = 0 if gravity.startswith("north") else dy if gravity.startswith("south") else dy // 2
    return image.crop(left, top, w, h)


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
