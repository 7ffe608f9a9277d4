"""libvips runtime, step 3: the result. The output format is settled (AUTO: GIF when animated,
PNG with alpha, else JPEG), the output pixel limit checked, and the image encoded without
metadata; ``keep_source_if_smaller`` sends the source instead when re-encoding does not pay.
"""

from __future__ import annotations

import pyvips

from ...errors import TooManyPixels
from ...formats import AUTO, OUTPUT_FORMATS
from ...graphdef import Args, bool_arg, int_arg, number_arg, text_arg
from ...messages import Rendered
from .. import jxl
from ..quality import AUTO_QUALITY, LOSSY, within
from . import png
from .geometry import background
from .load import Context, check_output, page_height

MAX_SIDE = {"webp": 16383, "jpeg": 65500, "avif": 16384, "gif": 65535}  # what each format holds
KEEP_NONE = 0  # ForeignKeep: no metadata


def finish(image: pyvips.Image, fmt: str, enc: Args, ctx: Context) -> Rendered:
    ph = page_height(image)
    frames = image.height // ph
    if fmt == AUTO:
        fmt = "gif" if frames > 1 else ("png" if image.hasalpha() else "jpeg")
    if frames > 1 and not OUTPUT_FORMATS[fmt].animated:
        image, frames = image.crop(0, 0, image.width, ph), 1
    check_output(image.width, ph, ctx)
    side = MAX_SIDE.get(fmt)
    if side is not None and max(image.width, ph) > side:
        raise TooManyPixels(
            f"a {fmt.upper()} image is at most {side} pixels a side; this one would be "
            f"{image.width}x{ph}: ask for fewer pixels or another format",
            limit=side,
        )
    quality = (int_arg(enc, "quality") or 80) if fmt in LOSSY else None
    max_bytes = int_arg(enc, "max_bytes")
    searched = fmt in LOSSY and enc.get("quality") == AUTO_QUALITY
    note = ""
    if fmt == "jpeg" and image.hasalpha():  # flattened once, not at every try of max_bytes
        colour = text_arg(enc, "background", "#ffffff")
        image = image.flatten(background=background(image, colour)[: image.bands - 1])
    if max_bytes is not None or searched:
        image = image.copy_memory()  # maybe encoded more than once: made once, read at will
    if searched:
        from .. import perceptual  # numpy: imported by the processes that score, only

        first = image if frames == 1 else image.crop(0, 0, image.width, ph)
        sample = perceptual.sample(first, fmt)
        target = number_arg(enc, "quality_target", perceptual.TARGET)
        choice = perceptual.choose(
            lambda at: encode(sample, fmt, {**enc, "quality": at}),
            perceptual.Reference(sample),
            target,
            fmt,
        )
        quality, note = choice.quality, choice.note
        enc = {**enc, "quality": quality}
    data = encode(image, fmt, enc)
    if max_bytes is not None:
        data, quality = within(
            lambda at: encode(image, fmt, {**enc, "quality": at}), fmt, quality, max_bytes, data
        )
    src = ctx.source
    if (
        src is not None
        and bool_arg(enc, "keep_source_if_smaller")
        and fmt == src.format
        and src.plain
        and (image.width, ph, frames) == (src.width, src.height, src.pages_in_file)
        and len(data) >= len(src.data)
    ):
        data = bytes(src.data)  # (not a view of the pool's shared block)
        quality, note = None, ""
    return Rendered(data, fmt, image.width, ph, frames, ctx.warnings, quality, note)


def encode(image: pyvips.Image, fmt: str, enc: Args) -> bytes:
    q = int_arg(enc, "quality") or 80
    optimize = bool_arg(enc, "optimize")
    progressive = bool_arg(enc, "progressive")
    if fmt == "jpeg":
        if image.hasalpha():
            colour = text_arg(enc, "background", "#ffffff")
            image = image.flatten(background=background(image, colour)[: image.bands - 1])
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
        if bool_arg(enc, "palette"):
            image = image.copy_memory()  # decoded once: read again below if no palette fits
            quantised = png.palette(image, q, optimize, interlace)
            if quantised is not None:
                return quantised
        if optimize:
            return png.lossless(image, interlace)
        return bytes(
            image.pngsave_buffer(compression=6, interlace=interlace, keep=KEEP_NONE, filter="none")
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
    if fmt == "jxl":
        if image.bands == 2:  # grey + alpha: libjxl takes grey, RGB or RGBA arrays
            image = image.colourspace("srgb")
        return jxl.encode(image.numpy(), q, optimize=optimize)
    if fmt == "gif":
        return bytes(
            image.gifsave_buffer(effort=7 if optimize else 4, interlace=progressive, keep=KEEP_NONE)
        )
    raise ValueError(f"no encoder for {fmt}")
