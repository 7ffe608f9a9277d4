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
from ..jpeg import full_chroma
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
    chroma = None
    if fmt == "jpeg":  # judged once, for every try of auto and of max_bytes
        image, chroma = jpeg_chroma(image)
    if searched:
        from .. import perceptual  # numpy: imported by the processes that score, only

        first = image if frames == 1 else image.crop(0, 0, image.width, ph)
        sample = perceptual.sample(first, fmt)
        target = number_arg(enc, "quality_target", perceptual.TARGET)
        choice = perceptual.choose(
            lambda at: encode(sample, fmt, {**enc, "quality": at}, chroma, image.width * ph),
            perceptual.Reference(sample),
            target,
            fmt,
        )
        quality, note = choice.quality, choice.note
        enc = {**enc, "quality": quality}
    data = encode(image, fmt, enc, chroma)
    if max_bytes is not None:
        data, quality = within(
            lambda at: encode(image, fmt, {**enc, "quality": at}, chroma),
            fmt,
            quality,
            max_bytes,
            data,
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


# mozjpeg through libvips (pyvips-binary's libvips is built on mozjpeg; libjpeg-turbo would
# ignore these options). Up to JPEG_TRELLIS_MAX_PIXELS (every resize for a page): trellis
# quantisation, quantisation table 2 (mozjpeg's table tuned for MS-SSIM on the Kodak set),
# progressive scans chosen for size, overshoot deringing (less ringing where black or white
# edges clip): 0.77-0.87x thumbor's bytes at equal SSIMULACRA2, about its SSIM. At this quality
# number, SSIMULACRA2 is the same as libjpeg's standard tables give (within about 2 steps), so
# ``quality`` keeps its meaning. Larger results (``compress`` of a photograph at full size)
# would take twice thumbor's time that way (trellis and scan search cost ~35 ns a pixel): they
# are encoded as libjpeg does, standard tables, progressive, optimised Huffman codes, 4:2:0 -
# about thumbor's time, for the same bytes (table 2 without trellis: fewer bytes by
# SSIMULACRA2 but a lower SSIM). The measurements: bench/README.md, "JPEG encoder study".
JPEG_QUANT_TABLE = 2
JPEG_TRELLIS_MAX_PIXELS = 3_000_000


def jpeg_options(quality: int, pixels: int) -> dict[str, object]:
    """libvips jpegsave's options for a result of ``pixels`` at ``quality``. Always
    progressive (as thumbor's are): a preview shows while it loads, and it is no larger."""
    base: dict[str, object] = {"Q": quality, "optimize_coding": True, "interlace": True}
    if pixels > JPEG_TRELLIS_MAX_PIXELS:
        return base | {"quant_table": 0}
    return base | {
        "quant_table": JPEG_QUANT_TABLE,
        "trellis_quant": True,
        "overshoot_deringing": True,
        "optimize_scans": True,
    }


def jpeg_chroma(image: pyvips.Image) -> tuple[pyvips.Image, bool]:
    """(``image``, in memory so that it can be read again, and whether it needs 4:4:4 chroma:
    imgserver/runtime/jpeg.py). Results above JPEG_TRELLIS_MAX_PIXELS are not judged (4:2:0,
    as libjpeg below quality 90): holding them in memory would stop libvips overlapping their
    decode and encode, and with the check cost ~20% of a compress of a 4 MP photo."""
    if image.bands < 3 or image.width * image.height > JPEG_TRELLIS_MAX_PIXELS:
        return image, False
    image = image.copy_memory()
    return image, full_chroma(image)


def encode(
    image: pyvips.Image,
    fmt: str,
    enc: Args,
    chroma444: bool | None = None,
    pixels: int | None = None,
) -> bytes:
    """``image`` in ``fmt``. JPEG: ``chroma444`` as decided by ``jpeg_chroma``, which
    is asked (and ``image`` read twice) when it is None; ``pixels``: the size whose encoder
    options apply (a sample of a larger image is encoded as that image will be)."""
    q = int_arg(enc, "quality") or 80
    optimize = bool_arg(enc, "optimize")
    progressive = bool_arg(enc, "progressive")
    if fmt == "jpeg":
        if image.hasalpha():
            colour = text_arg(enc, "background", "#ffffff")
            image = image.flatten(background=background(image, colour)[: image.bands - 1])
        if chroma444 is None:
            image, chroma444 = jpeg_chroma(image)
        return bytes(
            image.jpegsave_buffer(
                **jpeg_options(q, pixels or image.width * image.height),
                subsample_mode="off" if chroma444 else "on",
                keep=KEEP_NONE,
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
