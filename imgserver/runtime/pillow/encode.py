"""Pillow runtime, step 3: the result: the output format settled (AUTO: GIF when animated, PNG
with alpha, else JPEG), the output pixel limit checked, the frames encoded without metadata.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from ...errors import TooManyPixels
from ...formats import AUTO, OUTPUT_FORMATS
from ...graphdef import Args, bool_arg, int_arg
from ...messages import Rendered
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
    optimize = bool_arg(enc, "optimize")
    opts: dict[str, Any] = {}
    if fmt == "jpeg":
        frames = [_flatten(f) for f in frames]
        opts = {"quality": q, "optimize": True, "progressive": bool_arg(enc, "progressive")}
    elif fmt == "png":
        opts = {"optimize": optimize, "compress_level": 9 if optimize else 6}
        if bool_arg(enc, "palette"):  # quantize takes L, RGB and RGBA, not LA
            frames = [f.convert("RGBA") if f.mode == "LA" else f for f in frames]
            frames = [f.quantize(256, dither=Image.Dither.FLOYDSTEINBERG) for f in frames]
    elif fmt == "webp":
        opts = {"quality": q, "method": 6 if optimize else 4}
    elif fmt == "avif":
        opts = {"quality": q, "speed": 4 if optimize else 6}
    elif fmt == "gif":
        frames = [f.convert("RGBA") if f.mode == "LA" else f for f in frames]  # LA loses alpha
        opts = {"optimize": optimize}
    if len(frames) > 1:
        opts.update(save_all=True, append_images=frames[1:], duration=durations, loop=loop)
    out = io.BytesIO()
    frames[0].save(out, _SAVE_FORMAT[fmt], **opts)
    return Rendered(out.getvalue(), fmt, first.width, first.height, len(frames), ctx.warnings)


def _flatten(im: Image.Image) -> Image.Image:
    if im.mode not in ("RGBA", "LA"):
        return im
    base = Image.new(im.mode[:-1], im.size, 255 if im.mode == "LA" else (255, 255, 255))
    base.paste(im, mask=im.getchannel("A"))
    return base
