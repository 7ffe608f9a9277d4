"""libvips runtime, step 1: the source. Its header is read first (limits checked before any
pixel is decoded), then it is decoded whole or shrunk on load: upright (EXIF orientation
applied), CMYK and ICC-tagged images converted to sRGB, 16 bits reduced to 8.

HEVC-coded HEIF (iPhone photos), which the libheif in pyvips-binary cannot decode, is decoded
by pillow-heif (its bundled libheif and libde265) into memory and goes on from there as any
decoded image: its header is read first all the same, and it is never shrunk on load.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pyvips

from ... import heif
from ...errors import TooManyPixels
from ...messages import Limits

ANIMATED_SOURCES = ("gif", "webp")


@dataclass
class Source:
    """What the header says about the source, and how it was loaded."""

    data: bytes | memoryview  # (a view of the pool's shared block, read in place)
    format: str
    width: int  # upright (after EXIF orientation)
    height: int  # of one page, upright
    pages: int  # pages that are loaded (1 unless the result stays animated)
    pages_in_file: int
    load_options: str  # loader option string, e.g. "n=12"
    plain: bool  # 8-bit sRGB or grey without a colour profile: decoding changes no colours
    managed: bool  # CMYK or an embedded profile: colours go through an ICC transform
    # Decodes the whole source when libvips cannot read its bytes (HEVC HEIF): then nothing
    # reads ``data`` with libvips, and nothing shrinks on load.
    decode: Callable[[], pyvips.Image] | None = None


@dataclass
class Context:
    """One job's run: its limits, its source, and the warnings it collects."""

    limits: Limits
    source: Source | None  # None: the graph reads no source (it draws its image)
    warnings: list[str] = field(default_factory=list)
    assets: Mapping[str, bytes] = field(default_factory=dict)  # other images, by their URL

    @property
    def src(self) -> Source:
        """The source (only asked for by what reads it: never None there)."""
        if self.source is None:
            raise RuntimeError("this graph has no source")
        return self.source


def inspect(
    data: bytes | memoryview, source_format: str, limits: Limits, *, animate: bool
) -> Source:
    """Read the header only (no pixel decode) and enforce the pixel and frame limits."""
    if source_format in ("heif", "avif") and _hevc(data):
        return _inspect_hevc(data, source_format, limits)
    header = pyvips.Image.new_from_source(memory(data), "", access="sequential", fail_on="error")
    width, height = header.width, page_height(header)
    _check_source(width, height, limits)
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


def _check_source(width: int, height: int, limits: Limits, pixels: int = 0) -> None:
    if max(width * height, pixels) > limits.max_source_pixels:
        raise TooManyPixels(
            f"the source is {width}x{height} pixels; the limit is {limits.max_source_pixels}",
            width=width,
            height=height,
            limit=limits.max_source_pixels,
        )


def _hevc(data: bytes | memoryview) -> bool:
    found = heif.primary(data)
    return found is not None and found.codec == heif.HEVC


_BANDS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


def _inspect_hevc(data: bytes | memoryview, source_format: str, limits: Limits) -> Source:
    """The header of a HEVC HEIF through pillow-heif (no pixel decoded yet). libheif applies
    the file's rotation and mirroring (``irot``/``imir``), which HEIF readers follow, so the
    decoded image is upright; its EXIF orientation (an iPhone writes both) is not applied
    again, as libvips does for the HEIF it decodes. An embedded ICC profile is kept, and the
    image converted through it like any other. 10 and 12 bits are reduced to 8 by libheif."""
    import pillow_heif

    found = heif.primary(data)  # the coded size: decoded before its clean-aperture crop
    if found is not None and found.width and found.height:
        _check_source(found.width, found.height, limits, found.coded_pixels or 0)
    heif_file = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)  # the header only
    width, height = heif_file.size
    _check_source(width, height, limits)
    icc = heif_file.info.get("icc_profile") or b""
    bands = _BANDS.get(heif_file.mode)
    if bands is None:
        raise ValueError(f"pillow-heif gave an image in mode {heif_file.mode}")

    def decode() -> pyvips.Image:
        stride, row = heif_file.stride, width * bands
        pixels = heif_file.data
        if stride != row:  # rows padded: packed into a contiguous copy
            view = memoryview(pixels)
            pixels = b"".join(view[y * stride : y * stride + row] for y in range(height))
        image = pyvips.Image.new_from_memory(pixels, width, height, bands, "uchar")
        image = image.copy(interpretation="srgb" if bands >= 3 else "b-w")
        if icc:
            image.set_type(pyvips.GValue.blob_type, "icc-profile-data", icc)
        return image

    return Source(data, source_format, width, height, 1, 1, "", not icc, bool(icc), decode=decode)


def memory(data: bytes | memoryview) -> pyvips.Source:
    """A libvips source over ``data`` in place (bytes, or a view of the pool's shared block:
    libvips' buffer loaders take only ``bytes``, which would mean one more copy)."""
    return pyvips.Source.new_from_memory(data)


def load(ctx: Context, *, shrink: int = 1) -> pyvips.Image:
    """Decode the whole source: upright, sRGB (or grey), 8 bits per sample. ``shrink`` (a JPEG
    only: 2, 4 or 8) decodes it that many times smaller, at the cost of an exact size."""
    src = ctx.src
    if src.decode is not None:
        return normalise(src.decode(), ctx)
    options = src.load_options
    if shrink > 1 and src.format == "jpeg":
        options = ",".join(o for o in (options, f"shrink={shrink}") if o)
    image = pyvips.Image.new_from_source(memory(src.data), options, fail_on="error")
    if src.pages > 1:
        cut_warning(ctx)
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


def cut_warning(ctx: Context) -> None:
    src = ctx.src
    if src.pages < src.pages_in_file:
        msg = f"the animation was cut to {src.pages} of its {src.pages_in_file} frames"
        if msg not in ctx.warnings:
            ctx.warnings.append(msg)


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


def check_output(width: int, height: int, ctx: Context) -> None:
    if width * height > ctx.limits.max_output_pixels:
        raise TooManyPixels(
            f"the result would be {width}x{height} pixels; the limit is "
            f"{ctx.limits.max_output_pixels}",
            limit=ctx.limits.max_output_pixels,
        )
