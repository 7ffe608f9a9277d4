"""The Pillow runtime: runs graph definitions whose ``runtime`` is ``pillow``.

Same operations and the same normalisation as the libvips runtime (upright, 8-bit sRGB or grey,
metadata stripped); JPEG sources are shrunk on load with ``draft`` when a graph starts by scaling.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import ExifTags, Image, ImageCms, ImageEnhance, ImageFilter, ImageOps, ImageSequence

from ..errors import InvalidParam, TooManyPixels, UnsupportedSource
from ..formats import AUTO, OUTPUT_FORMATS
from .ops import OPS, Limits, Outcome, resolve

BIG = 10_000_000
_GRAVITY = {
    "north": (0.5, 0.0),
    "south": (0.5, 1.0),
    "east": (1.0, 0.5),
    "west": (0.0, 0.5),
    "north-east": (1.0, 0.0),
    "north-west": (0.0, 0.0),
    "south-east": (1.0, 1.0),
    "south-west": (0.0, 1.0),
}
_SAVE_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF", "gif": "GIF"}


@dataclass
class Context:
    limits: Limits
    warnings: list[str] = field(default_factory=list)


def run(
    definition: dict[str, Any],
    params: dict[str, Any],
    fmt: str,
    data: bytes,
    source_format: str,
    limits: Limits,
) -> Outcome:
    if source_format == "svg":  # Pillow has no SVG decoder; libvips graphs rasterise SVG
        raise UnsupportedSource("SVG sources are decoded by libvips graphs only, not Pillow ones")
    ctx = Context(limits)
    # Pillow's own bomb check is process-wide (execute.init sets it from the source limit, not
    # per job): this job's own limit is checked here, from the header
    im = Image.open(io.BytesIO(data))
    if im.width * im.height > limits.max_source_pixels:
        raise TooManyPixels(
            f"the source is {im.width}x{im.height} pixels; the limit is {limits.max_source_pixels}",
            width=im.width,
            height=im.height,
            limit=limits.max_source_pixels,
        )
    n_frames = getattr(im, "n_frames", 1)
    if definition["encode"].get("copy_source"):
        return Outcome(data, source_format, im.width, im.height, n_frames)
    animate = n_frames > 1 and (fmt == AUTO or OUTPUT_FORMATS[fmt].animated)

    nodes = definition["nodes"]
    if nodes and nodes[0]["in"] == ["source"] and OPS[nodes[0]["op"]].scales:
        first = resolve(nodes[0]["args"], params)
        if im.format == "JPEG" and (first.get("width") or first.get("height")):
            box = (first.get("width") or BIG, first.get("height") or BIG)
            if im.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8):
                box = box[::-1]  # the box is upright, draft works on the stored pixels
            im.draft("RGB", box)

    plain = im.mode in ("RGB", "RGBA", "L", "LA") and not im.info.get("icc_profile")
    frames, durations = _frames(im, animate, limits, ctx)
    upright = frames[0].size
    for node in nodes:
        fn = OPERATIONS[node["op"]]
        args = resolve(node["args"], params)
        frames = [fn(f, args, ctx) for f in frames]
    enc = resolve(definition["encode"], params)
    outcome = _finish(frames, durations, im.info.get("loop", 0), fmt, enc, ctx)
    if (
        enc.get("keep_source_if_smaller")
        and plain
        and outcome.format == source_format
        and (outcome.width, outcome.height) == upright
        and outcome.frames == n_frames
        and len(outcome.data) >= len(data)
    ):
        outcome.data = data
    return outcome


def _frames(
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
            im = ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode=mode)
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


def _split_alpha(im: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    if im.mode in ("RGBA", "LA"):
        return im.convert(im.mode[:-1]), im.getchannel("A")
    return im, None


def _with_alpha(im: Image.Image, alpha: Image.Image | None) -> Image.Image:
    if alpha is None:
        return im
    im = im.convert("RGBA" if im.mode == "RGB" else "LA")
    im.putalpha(alpha)
    return im


def fit(im: Image.Image, args: dict[str, Any], ctx: Context) -> Image.Image:
    w, h = args.get("width"), args.get("height")
    if w is None and h is None:
        return im
    mode = args.get("mode", "fit")
    upscale = bool(args.get("upscale"))
    if mode == "fill" and w and h:
        if not upscale:
            w, h = min(w, im.width), min(h, im.height)
        return im.resize(_output_size(w, h, ctx), Image.Resampling.LANCZOS)
    if mode == "crop" and w and h:
        scale = max(w / im.width, h / im.height)
        if not upscale:
            scale = min(scale, 1.0)
            w, h = min(w, round(im.width * scale)), min(h, round(im.height * scale))
        centering = _GRAVITY.get(args.get("gravity", "centre"), (0.5, 0.5))
        size = _output_size(w, h, ctx)
        return ImageOps.fit(im, size, Image.Resampling.LANCZOS, centering=centering)
    scale = min((w or BIG) / im.width, (h or BIG) / im.height)
    if scale >= 1 and not upscale:
        return im
    size = _output_size(max(1, round(im.width * scale)), max(1, round(im.height * scale)), ctx)
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _output_size(w: int, h: int, ctx: Context) -> tuple[int, int]:
    """Refuse a result over the output pixel limit before Pillow allocates it."""
    if w * h > ctx.limits.max_output_pixels:
        raise TooManyPixels(
            f"the result would be {w}x{h} pixels", limit=ctx.limits.max_output_pixels
        )
    return w, h


def crop(im: Image.Image, args: dict[str, Any], ctx: Context) -> Image.Image:
    x, y = args.get("x") or 0, args.get("y") or 0
    if x >= im.width or y >= im.height or x < 0 or y < 0:
        raise InvalidParam(
            f"the crop origin ({x}, {y}) is outside the {im.width}x{im.height} image",
            param="x" if not 0 <= x < im.width else "y",
        )
    cw = min(args.get("width") or im.width, im.width - x)
    ch = min(args.get("height") or im.height, im.height - y)
    return im.crop((x, y, x + cw, y + ch))


def gaussblur(im: Image.Image, args: dict[str, Any], ctx: Context) -> Image.Image:
    sx, sy = float(args.get("sigma_x") or 0), float(args.get("sigma_y") or 0)
    if sx < 0.05 and sy < 0.05:
        return im
    if im.mode in ("RGBA", "LA"):  # premultiplied, so hidden colours do not bleed into edges
        premultiplied = im.convert(im.mode[:-1] + "a")
        return premultiplied.filter(ImageFilter.GaussianBlur((sx, sy))).convert(im.mode)
    return im.filter(ImageFilter.GaussianBlur((sx, sy)))


def desaturate(im: Image.Image, args: dict[str, Any], ctx: Context) -> Image.Image:
    amount = max(0.0, min(1.0, float(args.get("amount", 1.0))))
    colour, alpha = _split_alpha(im)
    if colour.mode != "RGB":
        return im
    grey = colour.convert("L") if amount >= 1 else ImageEnhance.Color(colour).enhance(1 - amount)
    return _with_alpha(grey, alpha)


def autocontrast(im: Image.Image, args: dict[str, Any], ctx: Context) -> Image.Image:
    colour, alpha = _split_alpha(im)
    cutoff = max(0.0, min(49.0, float(args.get("cutoff") or 0)))
    return _with_alpha(ImageOps.autocontrast(colour, cutoff=cutoff), alpha)


OPERATIONS: dict[str, Callable[[Image.Image, dict[str, Any], Context], Image.Image]] = {
    "fit": fit,
    "resize": fit,
    "crop": crop,
    "gaussblur": gaussblur,
    "desaturate": desaturate,
    "autocontrast": autocontrast,
}


def _finish(
    frames: list[Image.Image],
    durations: list[int],
    loop: int,
    fmt: str,
    enc: dict[str, Any],
    ctx: Context,
) -> Outcome:
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
    q = int(enc.get("quality") or 80)
    optimize = bool(enc.get("optimize"))
    opts: dict[str, Any] = {}
    if fmt == "jpeg":
        frames = [_flatten(f) for f in frames]
        opts = {"quality": q, "optimize": True, "progressive": bool(enc.get("progressive"))}
    elif fmt == "png":
        opts = {"optimize": optimize, "compress_level": 9 if optimize else 6}
        if enc.get("palette"):  # quantize takes L, RGB and RGBA, not LA
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
    return Outcome(out.getvalue(), fmt, first.width, first.height, len(frames), ctx.warnings)


def _flatten(im: Image.Image) -> Image.Image:
    if im.mode not in ("RGBA", "LA"):
        return im
    base = Image.new(im.mode[:-1], im.size, 255 if im.mode == "LA" else (255, 255, 255))
    base.paste(im, mask=im.getchannel("A"))
    return base
