"""Pillow runtime, step 1: the source. The header is checked against the job's limits, JPEGs
are shrunk on load (``draft``) when the graph starts by scaling, and the frames are decoded
and normalised: upright, 8-bit sRGB (RGB, RGBA) or grey (L, LA), through the embedded ICC
profile when there is one.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field

from PIL import ExifTags, Image, ImageCms, ImageOps, ImageSequence

from ...errors import TooManyPixels
from ...messages import Limits

BIG = 10_000_000  # no limit on one side of a draft box


@dataclass
class Context:
    """One job's run: its limits and the warnings it collects."""

    limits: Limits
    warnings: list[str] = field(default_factory=list)
    assets: Mapping[str, bytes] = field(default_factory=dict)  # other images, by their URL


def open_source(data: bytes | memoryview, limits: Limits) -> Image.Image:
    """The source opened (header only), refused when it has more pixels than ``limits`` allow.

    Pillow's own bomb check is process-wide (``execute.init`` sets it from the source limit,
    not per job): this job's own limit is checked here, from the header."""
    im = Image.open(io.BytesIO(data))
    if im.width * im.height > limits.max_source_pixels:
        raise TooManyPixels(
            f"the source is {im.width}x{im.height} pixels; the limit is {limits.max_source_pixels}",
            width=im.width,
            height=im.height,
            limit=limits.max_source_pixels,
        )
    return im


def draft(im: Image.Image, width: int | None, height: int | None) -> None:
    """Let a JPEG decode at the smallest DCT scale that still covers the (upright) box."""
    if im.format != "JPEG" or not (width or height):
        return
    box = (width or BIG, height or BIG)
    if im.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8):
        box = box[::-1]  # the box is upright, draft works on the stored pixels
    im.draft("RGB", box)


def frames_of(
    im: Image.Image, animate: bool, limits: Limits, ctx: Context
) -> tuple[list[Image.Image], list[int]]:
    if not animate:
        return [normalise(ImageOps.exif_transpose(im) or im, ctx)], [0]
    frames: list[Image.Image] = []
    durations: list[int] = []
    for i, frame in enumerate(ImageSequence.Iterator(im)):
        by_pixels = max(1, limits.max_source_pixels // max(1, im.width * im.height))
        if i >= min(limits.max_frames, by_pixels):
            ctx.warnings.append(f"the animation was cut to {i} frames")
            break
        durations.append(int(frame.info.get("duration", 100)))
        frames.append(normalise(frame.convert("RGBA"), ctx))
    return frames, durations


def normalise(im: Image.Image, ctx: Context) -> Image.Image:
    """8-bit sRGB, RGBA, L or LA, converted through the embedded ICC profile if any."""
    icc = im.info.get("icc_profile")
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
            mode = "RGBA" if alpha else "RGB"
            if im.mode not in ("RGB", "RGBA", "CMYK", "L") or (alpha and im.mode != "RGBA"):
                im = im.convert(mode)  # a tRNS chunk becomes alpha before the transform drops it
            srgb = ImageCms.createProfile("sRGB")
            im = ImageCms.profileToProfile(im, src, srgb, outputMode=mode) or im
        except (ImageCms.PyCMSError, OSError, ValueError):
            ctx.warnings.append("the embedded colour profile is unusable and was ignored")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        im = im.point(lambda v: v / 257).convert("L")
    has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    if im.mode not in ("RGB", "RGBA", "L", "LA"):
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif has_alpha and im.mode in ("RGB", "L"):  # a tRNS colour: make it alpha before info goes
        im = im.convert("LA" if im.mode == "L" else "RGBA")
    im.info = {}
    return im


def split_alpha(im: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    if im.mode in ("RGBA", "LA"):
        return im.convert(im.mode[:-1]), im.getchannel("A")
    return im, None


def with_alpha(im: Image.Image, alpha: Image.Image | None) -> Image.Image:
    if alpha is None:
        return im
    im = im.convert("RGBA" if im.mode == "RGB" else "LA")
    im.putalpha(alpha)
    return im


def output_size(w: int, h: int, ctx: Context) -> tuple[int, int]:
    """Refuse a result over the output pixel limit before Pillow allocates it."""
    if w * h > ctx.limits.max_output_pixels:
        raise TooManyPixels(
            f"the result would be {w}x{h} pixels", limit=ctx.limits.max_output_pixels
        )
    return w, h
