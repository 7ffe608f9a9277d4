"""The libvips runtime: runs a graph definition on source bytes with pyvips.

Only imported in worker processes. Images are normalised on the way in (EXIF orientation
applied, CMYK/ICC converted to sRGB, 16-bit reduced to 8) and encoded without metadata.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyvips

from ..errors import InvalidParam, TooManyPixels, UnsupportedSource
from ..formats import AUTO, OUTPUT_FORMATS
from .ops import OPS, Limits, Outcome, resolve

MAX_COORD = 10_000_000  # libvips' "no limit" for one side of a thumbnail box
ANIMATED_SOURCES = ("gif", "webp")
KEEP_NONE = 0  # ForeignKeep: no metadata
WHITE = [255.0, 255.0, 255.0]


@dataclass
class Source:
    """What the header says about the source, and how it was loaded."""

    data: bytes
    format: str
    width: int  # upright (after EXIF orientation)
    height: int  # of one page, upright
    pages: int  # pages that are loaded (1 unless the result stays animated)
    pages_in_file: int
    load_options: str  # loader option string, e.g. "n=12"
    plain: bool  # 8-bit sRGB or grey without a colour profile: decoding changes no colours
    managed: bool  # CMYK or an embedded profile: colours go through an ICC transform


@dataclass
class Context:
    params: dict[str, Any]
    limits: Limits
    source: Source
    warnings: list[str] = field(default_factory=list)


def run(
    definition: dict[str, Any],
    params: dict[str, Any],
    fmt: str,
    data: bytes,
    source_format: str,
    limits: Limits,
) -> Outcome:
    """Run one graph on ``data``; ``fmt`` is an output format name or AUTO."""
    encode = definition["encode"]
    animate = fmt == AUTO or OUTPUT_FORMATS[fmt].animated
    if encode.get("copy_source") and source_format == "svg":  # it may carry scripts
        raise UnsupportedSource("an SVG source is only rasterised, never passed through")
    source = inspect(data, source_format, limits, animate=animate)
    ctx = Context(params, limits, source)
    if encode.get("copy_source"):
        return Outcome(data, source_format, source.width, source.height, source.pages_in_file)

    results: dict[str, pyvips.Image] = {}
    nodes = definition["nodes"]
    first = nodes[0] if nodes else None
    for node in nodes:
        args = resolve(node["args"], params)
        (inp,) = node["in"]
        if node is first and inp == "source" and OPS[node["op"]].scales and _sized(args):
            results[node["id"]] = resize(None, args, ctx)  # shrink-on-load from the bytes
            continue
        image = results[inp] if inp != "source" else load(ctx)
        results[node["id"]] = OPERATIONS[node["op"]](image, args, ctx)
    out = definition["output"]
    image = results[out] if out != "source" else load(ctx)
    return finish(image, fmt, resolve(encode, params), ctx)


def inspect(data: bytes, source_format: str, limits: Limits, *, animate: bool) -> Source:
    """Read the header only (no pixel decode) and enforce the pixel and frame limits."""
    header = pyvips.Image.new_from_source(_memory(data), "", access="sequential", fail_on="error")
    width, height = header.width, page_height(header)
    if width * height > limits.max_source_pixels:
        raise TooManyPixels(
            f"the source is {width}x{height} pixels; the limit is {limits.max_source_pixels}",
            width=width,
            height=height,
            limit=limits.max_source_pixels,
        )
    if header.get_typeof("orientation") and header.get("orientation") in (5, 6, 7, 8):
        width, height = height, width
    in_file = header.get("n-pages") if header.get_typeof("n-pages") else 1
    pages = 1
    if animate and in_file > 1 and source_format in ANIMATED_SOURCES:
        # frames are capped by count, and by pixels decoded in all: a long animation of large
        # frames must not decode more than one maximal still image would
        by_pixels = max(1, limits.max_source_pixels // max(1, width * height))
        pages = min(in_file, limits.max_frames, by_pixels)
    managed = header.interpretation == "cmyk" or bool(header.get_typeof("icc-profile-data"))
    plain = header.interpretation in ("srgb", "b-w") and header.format == "uchar" and not managed
    return Source(
        data,
        source_format,
        width,
        height,
        pages,
        in_file,
        f"n={pages}" if pages > 1 else "",
        plain,
        managed,
    )


def _memory(data: bytes | memoryview) -> pyvips.Source:
    """A libvips source over ``data`` in place (bytes, or a view of the pool's shared block:
    libvips' buffer loaders take only ``bytes``, which would mean one more copy)."""
    return pyvips.Source.new_from_memory(data)


def load(ctx: Context) -> pyvips.Image:
    """Decode the whole source: upright, sRGB (or grey), 8 bits per sample."""
    src = ctx.source
    image = pyvips.Image.new_from_source(_memory(src.data), src.load_options, fail_on="error")
    if src.pages > 1:
        _cut_warning(ctx)
    else:
        image = image.autorot()
    return normalise(image, ctx)


def normalise(image: pyvips.Image, ctx: Context, *, icc: bool = True) -> pyvips.Image:
    """Convert to 8-bit sRGB or grey, through the embedded ICC profile when there is one."""
    interpretation = image.interpretation
    has_profile = bool(image.get_typeof("icc-profile-data"))
    if icc and (interpretation == "cmyk" or has_profile):
        try:
            image = image.icc_transform("srgb", embedded=True, input_profile=_fallback(image))
        except pyvips.Error:
            ctx.warnings.append("the embedded colour profile is unusable and was ignored")
            image = _without_profile(image)
    if image.interpretation not in ("srgb", "b-w") or image.format != "uchar":
        target = "b-w" if image.interpretation in ("b-w", "grey16") else "srgb"
        image = image.colourspace(target)
        if image.format != "uchar":
            image = image.cast("uchar")
    return image


def _fallback(image: pyvips.Image) -> str:
    return "cmyk" if image.interpretation == "cmyk" else "srgb"


def _without_profile(image: pyvips.Image) -> pyvips.Image:
    image = image.copy()
    image.remove("icc-profile-data")
    if image.interpretation == "cmyk":
        image = image.icc_transform("srgb", input_profile="cmyk")
    return image


def _cut_warning(ctx: Context) -> None:
    src = ctx.source
    if src.pages < src.pages_in_file:
        msg = f"the animation was cut to {src.pages} of its {src.pages_in_file} frames"
        if msg not in ctx.warnings:
            ctx.warnings.append(msg)


def _sized(args: dict[str, Any]) -> bool:
    return args.get("width") is not None or args.get("height") is not None


# -- operations: (image, args, ctx) -> image ---------------------------------------------------


Thumb = Callable[..., pyvips.Image]


def resize(image: pyvips.Image | None, args: dict[str, Any], ctx: Context) -> pyvips.Image:
    """fit / fill / crop into width x height. ``image`` None: shrink-on-load from the source."""
    width, height = args.get("width"), args.get("height")
    if width is None and height is None:
        return image if image is not None else load(ctx)
    mode = args.get("mode", "fit")
    size = "both" if args.get("upscale") else "down"
    if image is None:
        src = ctx.source
        cur_w, cur_h = src.width, src.height
        if src.pages > 1:
            _cut_warning(ctx)

        # thumbnail's own fail_on does not reach the loader: a truncated file would decode grey
        options = ",".join(o for o in (src.load_options, "fail_on=error") if o)
        # only colour-manage what needs it: an output_profile would also turn grey into sRGB
        profile = {"output_profile": "srgb"} if src.managed else {}

        def thumb(w: int, **kw: Any) -> pyvips.Image:
            return pyvips.Image.thumbnail_source(
                _memory(src.data), w, option_string=options, **profile, **kw
            )

        after: Callable[[pyvips.Image], pyvips.Image] = lambda im: normalise(im, ctx, icc=False)  # noqa: E731
    else:
        cur_w, cur_h = image.width, page_height(image)
        thumb = image.thumbnail_image
        after = _identity

    if mode == "fill" and width is not None and height is not None:
        if size == "down":
            width, height = min(width, cur_w), min(height, cur_h)
        return after(thumb(width, height=height, size="force"))
    if mode == "crop" and width is not None and height is not None:
        # libvips computes a crop eagerly: refuse an over-large result before, not after
        _check_output(
            width if size == "both" else min(width, cur_w),
            height if size == "both" else min(height, cur_h),
            ctx,
        )
        gravity = args.get("gravity", "centre")
        interesting = {
            "smart": "attention",
            "attention": "attention",
            "entropy": "entropy",
            "centre": "centre",
        }.get(gravity)
        pages = image.height // cur_h if image is not None else ctx.source.pages
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


def crop(image: pyvips.Image, args: dict[str, Any], ctx: Context) -> pyvips.Image:
    x, y = args.get("x") or 0, args.get("y") or 0
    w, h = image.width, page_height(image)
    if x >= w or y >= h or x < 0 or y < 0:
        raise InvalidParam(
            f"the crop origin ({x}, {y}) is outside the {w}x{h} image",
            param="x" if not 0 <= x < w else "y",
            width=w,
            height=h,
        )
    cw = min(args.get("width") or w, w - x)
    ch = min(args.get("height") or h, h - y)
    return per_page(image, lambda p: p.crop(x, y, cw, ch))


def gaussblur(image: pyvips.Image, args: dict[str, Any], ctx: Context) -> pyvips.Image:
    sx, sy = float(args.get("sigma_x") or 0), float(args.get("sigma_y") or 0)
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


def desaturate(image: pyvips.Image, args: dict[str, Any], ctx: Context) -> pyvips.Image:
    amount = max(0.0, min(1.0, float(args.get("amount", 1.0))))
    alpha = image.hasalpha()
    colour = image.extract_band(0, n=image.bands - 1) if alpha else image
    if colour.bands < 3 or amount == 0:
        return image
    grey = colour.colourspace("b-w")
    if amount < 1:
        mixed = colour * (1 - amount) + grey.bandjoin([grey, grey]) * amount
        grey = mixed.cast("uchar").copy(interpretation="srgb")
    return grey.bandjoin(image.extract_band(image.bands - 1)) if alpha else grey


OPERATIONS: dict[str, Callable[[pyvips.Image, dict[str, Any], Context], pyvips.Image]] = {
    "fit": resize,
    "resize": resize,
    "crop": crop,
    "gaussblur": gaussblur,
    "desaturate": desaturate,
}


# -- pages ------------------------------------------------------------------------------------


def page_height(image: pyvips.Image) -> int:
    if image.get_typeof("page-height"):
        ph = image.get("page-height")
        if 0 < ph <= image.height and image.height % ph == 0:
            return int(ph)
    return int(image.height)


def per_page(image: pyvips.Image, fn: Callable[[pyvips.Image], pyvips.Image]) -> pyvips.Image:
    """Apply a geometry operation to each frame of an animation (or to the one image)."""
    ph = page_height(image)
    if ph == image.height:
        return fn(image)
    frames = [fn(image.crop(0, i * ph, image.width, ph)) for i in range(image.height // ph)]
    joined = pyvips.Image.arrayjoin(frames, across=1).copy()
    joined.set_type(pyvips.GValue.gint_type, "page-height", frames[0].height)
    return joined


# -- output -----------------------------------------------------------------------------------


def finish(image: pyvips.Image, fmt: str, enc: dict[str, Any], ctx: Context) -> Outcome:
    ph = page_height(image)
    frames = image.height // ph
    if fmt == AUTO:
        fmt = "gif" if frames > 1 else ("png" if image.hasalpha() else "jpeg")
    if frames > 1 and not OUTPUT_FORMATS[fmt].animated:
        image, frames = image.crop(0, 0, image.width, ph), 1
    _check_output(image.width, ph, ctx)
    data = encode(image, fmt, enc)
    src = ctx.source
    if (
        enc.get("keep_source_if_smaller")
        and fmt == src.format
        and src.plain
        and (image.width, ph, frames) == (src.width, src.height, src.pages_in_file)
        and len(data) >= len(src.data)
    ):
        data = src.data
    return Outcome(data, fmt, image.width, ph, frames, ctx.warnings)


def _check_output(width: int, height: int, ctx: Context) -> None:
    if width * height > ctx.limits.max_output_pixels:
        raise TooManyPixels(
            f"the result would be {width}x{height} pixels; the limit is "
            f"{ctx.limits.max_output_pixels}",
            limit=ctx.limits.max_output_pixels,
        )


PALETTE_SAMPLE = 256  # px, long side of the sample whose colours are counted
PALETTE_COLOURS = 256
PALETTE_MIN_PSNR = 40.0  # dB: below this, quantising shows (a photo: about 35)


def _palette_png(image: pyvips.Image, q: int, optimize: bool, interlace: bool) -> bytes | None:
    """The image as a palette PNG when 256 colours hold it without visible loss (graphics,
    screenshots, flat art), else None. A photograph has thousands of colours: quantised, it
    is a third of the size but visibly dithered, so it stays lossless.

    Checked cheaply first (the colours of a nearest-neighbour sample, 6 bits per channel),
    then on the result itself (its PSNR against the image). ``image`` is in memory: it is
    read more than once."""
    if image.bands >= 3:
        scale = min(1.0, PALETTE_SAMPLE / max(image.width, image.height))
        sample = image.resize(scale, kernel="nearest") if scale < 1 else image
        hist = sample[:3].hist_find_ndim(bins=64)
        if (hist > 0).avg() / 255 * 64**3 > PALETTE_COLOURS:
            return None
    data = bytes(
        image.pngsave_buffer(
            compression=9 if optimize else 6,
            interlace=interlace,
            palette=True,
            Q=q,
            effort=7 if optimize else 4,
            keep=KEEP_NONE,
        )
    )
    back = pyvips.Image.new_from_buffer(data, "")
    if back.bands != image.bands:  # the palette PNG decodes as RGB(A)
        back = back.colourspace(image.interpretation) if image.bands < 3 else back
        back = back[: image.bands] if back.bands > image.bands else back
    if back.bands != image.bands:
        return None
    mse = ((back.cast("float") - image.cast("float")) ** 2).avg()
    psnr = 10 * math.log10(255 * 255 / mse) if mse > 0 else math.inf
    return data if psnr >= PALETTE_MIN_PSNR else None


def encode(image: pyvips.Image, fmt: str, enc: dict[str, Any]) -> bytes:
    q = int(enc.get("quality") or 80)
    optimize = bool(enc.get("optimize"))
    progressive = bool(enc.get("progressive"))
    if fmt == "jpeg":
        if image.hasalpha():
            image = image.flatten(background=WHITE[: image.bands - 1])
        # optimize: the standard tables (so quality means what it means to libjpeg), with
        # mozjpeg's scan optimisation. Trellis quantisation and mozjpeg's own tables make
        # files a third smaller, but at a lower SSIM than libjpeg at the same quality.
        extra = {"optimize_scans": progressive, "quant_table": 0} if optimize else {}
        return bytes(
            image.jpegsave_buffer(
                Q=q, optimize_coding=True, interlace=progressive, keep=KEEP_NONE, **extra
            )
        )
    if fmt == "png":
        interlace = progressive and not optimize  # Adam7 costs a PNG 10-20% of its size
        if enc.get("palette"):
            image = image.copy_memory()  # decoded once: read again below if no palette fits
            quantised = _palette_png(image, q, optimize, interlace)
            if quantised is not None:
                return quantised
        return bytes(
            image.pngsave_buffer(
                compression=9 if optimize else 6,
                interlace=interlace,
                keep=KEEP_NONE,
                filter="all" if optimize else "none",
            )
        )
    if fmt == "webp":
        return bytes(
            image.webpsave_buffer(
                Q=q,
                effort=6 if optimize else 4,
                smart_subsample=optimize,
                keep=KEEP_NONE,
            )
        )
    if fmt == "avif":
        return bytes(
            image.heifsave_buffer(
                Q=q,
                compression="av1",
                effort=6 if optimize else 4,
                bitdepth=8,
                keep=KEEP_NONE,
            )
        )
    if fmt == "gif":
        return bytes(
            image.gifsave_buffer(effort=7 if optimize else 4, interlace=progressive, keep=KEEP_NONE)
        )
    raise ValueError(f"no encoder for {fmt}")
