"""Pillow runtime, step 3: the result: the output format settled (AUTO: GIF when animated, PNG
with alpha, else JPEG), the output pixel limit checked, the frames encoded without metadata.
"""

from __future__ import annotations

import io
from typing import Any

import pyvips
from PIL import Image, ImageColor

from ...errors import TooManyPixels
from ...formats import AUTO, OUTPUT_FORMATS
from ...graphdef import Args, bool_arg, int_arg, number_arg, text_arg
from ...messages import Rendered
from .. import jxl
from ..jpeg import full_chroma
from ..quality import AUTO_QUALITY, LOSSY, within
from .load import Context

_SAVE_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF", "gif": "GIF"}


def finish(
    frames: list[Image.Image],
    durations: list[int],
    loop: int,
    fmt: str,
    enc: Args,
    ctx: Context,
) -> Rendered:
    first = frames[0]
    alpha = first.mode in ("RGBA", "LA")
    if fmt == AUTO:
        fmt = "gif" if len(frames) > 1 else ("png" if alpha else "jpeg")
    if len(frames) > 1 and not OUTPUT_FORMATS[fmt].animated:
        frames = [first]
    if first.width * first.height > ctx.limits.max_output_pixels:
        raise TooManyPixels(
            f"the result would be {first.width}x{first.height} pixels",
            limit=ctx.limits.max_output_pixels,
        )
    q = int_arg(enc, "quality") or 80
    if fmt == "jpeg":
        colour = ImageColor.getrgb(text_arg(enc, "background", "#ffffff"))[:3]
        frames = [_flatten(f, colour) for f in frames]
    elif fmt in ("png", "gif"):  # quantize and GIF take L, RGB and RGBA, not LA
        frames = [f.convert("RGBA") if f.mode == "LA" else f for f in frames]
    if fmt == "png" and bool_arg(enc, "palette"):
        frames = [f.quantize(256, dither=Image.Dither.FLOYDSTEINBERG) for f in frames]
    quality = q if fmt in LOSSY else None
    max_bytes = int_arg(enc, "max_bytes")
    chroma = fmt == "jpeg" and _full_chroma(first)  # judged once, for every try
    note = ""
    if fmt in LOSSY and enc.get("quality") == AUTO_QUALITY:
        from .. import perceptual  # numpy: imported by the processes that score, only

        sample = _sample(frames[0], fmt)
        reference = perceptual.Reference(_pixels(sample))
        target = number_arg(enc, "quality_target", perceptual.TARGET)
        choice = perceptual.choose(
            lambda at: _save([sample], [], loop, fmt, enc, at, chroma), reference, target, fmt
        )
        q = quality = choice.quality
        note = choice.note
    data = _save(frames, durations, loop, fmt, enc, q, chroma)
    if max_bytes is not None:
        data, quality = within(
            lambda at: _save(frames, durations, loop, fmt, enc, at, chroma),
            fmt,
            quality,
            max_bytes,
            data,
        )
    return Rendered(data, fmt, first.width, first.height, len(frames), ctx.warnings, quality, note)


def _sample(im: Image.Image, fmt: str) -> Image.Image:
    """quality=auto's sample (``perceptual.sample_boxes``), cut from ``im``."""
    from .. import perceptual

    boxes, across = perceptual.sample_boxes(im.width, im.height, fmt in perceptual.SEAMLESS)
    left, top, w, h = boxes[0]
    if len(boxes) == 1:
        return im.crop((left, top, left + w, top + h))
    mosaic = Image.new(im.mode, (w * across, h * (len(boxes) // across)))
    for i, (left, top, _, _) in enumerate(boxes):
        mosaic.paste(im.crop((left, top, left + w, top + h)), ((i % across) * w, (i // across) * h))
    return mosaic


def _pixels(im: Image.Image) -> Any:
    """An 8-bit Pillow image as the metric reads it (a libvips image)."""
    from .. import perceptual

    if im.mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
    return perceptual.from_memory(im.tobytes(), im.width, im.height, len(im.mode))


def _full_chroma(image: Image.Image) -> bool:
    """Whether a JPEG of ``image`` needs 4:4:4 chroma (imgserver/runtime/jpeg.py, judged by
    libvips on the same pixels)."""
    if image.mode != "RGB":
        return False
    pixels = image.tobytes()
    return full_chroma(pyvips.Image.new_from_memory(pixels, image.width, image.height, 3, "uchar"))


def _save(
    frames: list[Image.Image],
    durations: list[int],
    loop: int,
    fmt: str,
    enc: Args,
    q: int,
    chroma444: bool = False,
) -> bytes:
    optimize = bool_arg(enc, "optimize")
    opts: dict[str, Any] = {}
    if fmt == "jpeg":
        # libjpeg-turbo (Pillow's): its standard tables; always progressive; chroma subsampling
        # by content, not by quality (imgserver/runtime/jpeg.py)
        opts = {
            "quality": q,
            "optimize": True,
            "progressive": True,
            "subsampling": 0 if chroma444 else 2,
        }
    elif fmt == "png":
        opts = {"optimize": optimize, "compress_level": 9 if optimize else 6}
    elif fmt == "webp":
        opts = {"quality": q, "method": 6 if optimize else 4}
    elif fmt == "avif":
        opts = {"quality": q, "speed": 4 if optimize else 6}
    elif fmt == "gif":
        opts = {"optimize": optimize}
    if len(frames) > 1:
        opts.update(save_all=True, append_images=frames[1:], duration=durations, loop=loop)
    if fmt == "jxl":
        import numpy as np

        first = frames[0].convert("RGBA") if frames[0].mode == "LA" else frames[0]
        return jxl.encode(np.asarray(first), q, optimize=optimize)
    out = io.BytesIO()
    frames[0].save(out, _SAVE_FORMAT[fmt], **opts)
    return out.getvalue()


def _flatten(im: Image.Image, colour: tuple[int, ...] = (255, 255, 255)) -> Image.Image:
    if im.mode not in ("RGBA", "LA"):
        return im
    r, g, b = colour[:3]
    grey = round(0.2126 * r + 0.7152 * g + 0.0722 * b)
    base = Image.new(im.mode[:-1], im.size, grey if im.mode == "LA" else (r, g, b))
    base.paste(im, mask=im.getchannel("A"))
    return base
