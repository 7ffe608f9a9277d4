"""Test images made on the fly (pyvips and Pillow), and helpers to run graphs and read results.

Nothing binary is committed: every source image a test needs is generated here, small.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import pyvips
from multidict import MultiDict
from PIL import Image

from imgserver.catalogue import Catalogue, Graph, load_graph
from imgserver.formats import sniff
from imgserver.messages import Limits, RenderFailed, RenderJob
from imgserver.request import parse_params
from imgserver.runtime.execute import execute

REPO = Path(__file__).resolve().parent.parent
LIMITS = {"max_source_pixels": 50_000_000, "max_output_pixels": 25_000_000, "max_frames": 500}

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
YELLOW = (255, 255, 0)
GREY = (128, 128, 128)
FRAME_COLOURS = (RED, GREEN, BLUE, YELLOW)

Colour = Sequence[float]


# -- graphs and running them ------------------------------------------------------------------


@cache
def catalogue() -> Catalogue:
    return Catalogue.load(REPO / "graphs")


def pillow_graph(
    tmp_path: Path,
    name: str,
    nodes: dict[str, Any],
    output: str,
    params: dict[str, Any] | None = None,
    encode: dict[str, Any] | None = None,
) -> Graph:
    """A Pillow-runtime graph written to ``tmp_path`` and loaded like the catalogue does."""
    path = tmp_path / f"{name}.json"
    path.write_text(
        json.dumps(
            {
                "description": f"test graph {name}",
                "runtime": "pillow",
                "params": params or {},
                "nodes": nodes,
                "output": output,
                "encode": encode or {},
            }
        )
    )
    return load_graph(path)


def pillow_twin(name: str, directory: Path) -> Graph:
    """The catalogue's graph ``name`` with its runtime switched to Pillow."""
    raw = json.loads((REPO / "graphs" / f"{name}.json").read_text())
    raw["runtime"] = "pillow"
    path = directory / f"{name}.json"
    path.write_text(json.dumps(raw))
    return load_graph(path)


def run(
    graph: str | Graph,
    source: bytes,
    fmt: str = "png",
    limits: dict[str, int] | None = None,
    **query: Any,
) -> dict[str, Any]:
    """Run a graph in-process as a worker would; query values are typed like a URL's."""
    g = catalogue()[graph] if isinstance(graph, str) else graph
    raw = MultiDict({k: _query_value(v) for k, v in query.items()})
    params, _ = parse_params(g, raw)
    return render(g, params, fmt, source, sniff(source), {**LIMITS, **(limits or {})})


def render(
    g: Graph,
    params: dict[str, Any],
    fmt: str,
    source: bytes,
    source_format: str,
    limits: dict[str, int] | None = None,
) -> dict[str, Any]:
    """``execute`` as a worker process runs it, its answer as a dict: ``ok`` and the fields of
    Rendered, or ``ok`` False and the error's API object."""
    job = RenderJob(g.name, g.definition, params, fmt, source_format, Limits(**(limits or LIMITS)))
    outcome = execute(job, source)
    if isinstance(outcome, RenderFailed):
        return {"ok": False, "error": outcome.error.to_api()}
    return {"ok": True, **msgspec.structs.asdict(outcome)}


def ok(result: dict[str, Any]) -> dict[str, Any]:
    assert result["ok"], result.get("error")
    return result


def _query_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


# -- reading results --------------------------------------------------------------------------


def vload(data: bytes, **options: Any) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(data, "", **options)


def vpixel(image: pyvips.Image, x: int, y: int) -> list[float]:
    return list(image(x, y))


def pload(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def close(actual: Colour, expected: Colour, tol: float = 12) -> bool:
    """Each channel of ``actual`` is within ``tol`` of ``expected``."""
    return len(actual) >= len(expected) and all(
        abs(a - e) <= tol for a, e in zip(actual, expected, strict=False)
    )


def png_bit_depth(data: bytes) -> int:
    assert data[12:16] == b"IHDR"
    return data[24]


def png_colour_type(data: bytes) -> int:
    """IHDR colour type: 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA."""
    return data[25]


def metadata_fields(data: bytes) -> set[str]:
    image = vload(data)
    return {
        f
        for f in image.get_fields()
        if f in ("exif-data", "icc-profile-data", "xmp-data", "iptc-data")
    }


# -- making sources ---------------------------------------------------------------------------


def solid(width: int, height: int, colour: Colour) -> pyvips.Image:
    """An 8-bit image of one colour: 1, 3 or 4 bands (grey, sRGB, sRGB + alpha)."""
    image = (pyvips.Image.black(width, height, bands=len(colour)) + list(colour)).cast("uchar")
    return image.copy(interpretation="b-w" if len(colour) <= 2 else "srgb")


def marked(
    width: int, height: int, size: int = 0, base: Colour = BLUE, mark: Colour = RED
) -> pyvips.Image:
    """A ``base`` image with a ``mark`` square in its top-left corner (shows orientation)."""
    size = size or min(width, height) // 3
    return solid(width, height, base).insert(solid(size, size, mark), 0, 0)


def halves(width: int, height: int, top: Colour = RED, bottom: Colour = BLUE) -> pyvips.Image:
    return solid(width, height, bottom).insert(solid(width, height // 2, top), 0, 0)


def texture(width: int, height: int) -> pyvips.Image:
    """A busy, many-coloured 8-bit sRGB image (so encoders have something to work on)."""
    xyz = pyvips.Image.xyz(width, height)
    x, y = xyz[0], xyz[1]
    r = (x * 255 / max(1, width - 1)).cast("uchar")
    g = (y * 255 / max(1, height - 1)).cast("uchar")
    b = ((x * 7 + y * 13) % 256).cast("uchar")
    return r.bandjoin([g, b]).copy(interpretation="srgb")


def coords(width: int = 200, height: int = 150) -> pyvips.Image:
    """Each pixel says where it is: R = x, G = y (so at most 256 x 256), B = 0."""
    assert width <= 256 and height <= 256
    xyz = pyvips.Image.xyz(width, height)
    return xyz[0].bandjoin([xyz[1], xyz[1] * 0]).cast("uchar").copy(interpretation="srgb")


def quadrant(size: int = 64) -> pyvips.Image:
    """Black, with a white top-left quarter: a vertical and a horizontal hard edge."""
    return solid(size, size, (0, 0, 0)).insert(solid(size // 2, size // 2, (255, 255, 255)), 0, 0)


def busy_patch(width: int = 400, height: int = 100, at: int = 320) -> pyvips.Image:
    """Flat grey with a red/black checkerboard patch near the right edge (what smart crop finds)."""
    xyz = pyvips.Image.xyz(60, 60)
    checker = (((xyz[0] // 6 + xyz[1] // 6) % 2) * 255).cast("uchar")
    patch = (solid(60, 60, RED) & checker.bandjoin([checker, checker])).copy(interpretation="srgb")
    return solid(width, height, GREY).insert(patch, at, (height - 60) // 2)


def jpeg(image: pyvips.Image, q: int = 90, **options: Any) -> bytes:
    return bytes(image.jpegsave_buffer(Q=q, **options))


def png(image: pyvips.Image, **options: Any) -> bytes:
    return bytes(image.pngsave_buffer(**options))


def with_orientation(image: pyvips.Image, orientation: int) -> bytes:
    """A JPEG of ``image`` as stored pixels, with an EXIF orientation tag (written by Pillow)."""
    im = to_pil(image)
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    im.save(out, "JPEG", quality=95, exif=exif)
    return out.getvalue()


def with_metadata(image: pyvips.Image) -> bytes:
    """A JPEG carrying EXIF (with a camera maker), an sRGB ICC profile and XMP."""
    exif = Image.Exif()
    exif[0x010F] = "TestMaker"  # Make
    exif[0x0131] = "TestSoftware"  # Software
    out = io.BytesIO()
    to_pil(image).save(
        out,
        "JPEG",
        quality=90,
        exif=exif,
        icc_profile=builtin_profile("srgb"),
        xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/">TestXMP</x:xmpmeta>',
    )
    return out.getvalue()


def to_pil(image: pyvips.Image) -> Image.Image:
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[image.bands]
    return Image.frombytes(mode, (image.width, image.height), image.write_to_memory())


def cmyk_jpeg(cmyk: Colour, size: int = 64, *, icc: bool) -> bytes:
    """A CMYK JPEG of one colour, with libvips' built-in CMYK profile embedded or without one."""
    image = solid(size, size, cmyk).copy(interpretation="cmyk")
    if not icc:
        return jpeg(image, keep="none")
    image.set_type(pyvips.GValue.blob_type, "icc-profile-data", builtin_profile("cmyk"))
    return jpeg(image, keep="icc")


@cache
def builtin_profile(name: str) -> bytes:
    """The bytes of one of libvips' built-in profiles (srgb, p3, cmyk)."""
    return bytes(
        solid(1, 1, (0, 0, 0)).icc_transform(name, input_profile="srgb").get("icc-profile-data")
    )


def p3_tagged(colour: Colour, size: int = 64, saver: str = "png") -> bytes:
    """An sRGB ``colour`` converted into Display P3, with the P3 profile embedded."""
    image = solid(size, size, colour).icc_transform("p3", input_profile="srgb")
    assert image.get_typeof("icc-profile-data")
    return jpeg(image, q=95, keep="icc") if saver == "jpeg" else png(image, keep="icc")


def alpha_png(width: int = 64, height: int = 64) -> bytes:
    """Left half fully transparent (black underneath), right half opaque red."""
    left = solid(width // 2, height, (0, 0, 0, 0))
    right = solid(width - width // 2, height, (*RED, 255))
    return png(left.join(right, "horizontal"))


def png16(colour: Colour, size: int = 64) -> bytes:
    """A 16-bit PNG (RGB16 for 3 values, grey16 for 1) of one colour given in 0..65535."""
    image = pyvips.Image.black(size, size, bands=len(colour)) + list(colour)
    interpretation = "grey16" if len(colour) == 1 else "rgb16"
    image = image.cast("ushort").copy(interpretation=interpretation)
    data = png(image)
    assert png_bit_depth(data) == 16
    return data


def animation(
    colours: Sequence[Colour] = FRAME_COLOURS, width: int = 80, height: int = 60, saver: str = "gif"
) -> bytes:
    """An animated GIF or WebP: one frame of each colour."""
    frames = [solid(width, height, c) for c in colours]
    image = pyvips.Image.arrayjoin(frames, across=1).copy()
    image.set_type(pyvips.GValue.gint_type, "page-height", height)
    image.set_type(pyvips.GValue.array_int_type, "delay", [100] * len(colours))
    image.set_type(pyvips.GValue.gint_type, "loop", 0)
    if saver == "gif":
        return bytes(image.gifsave_buffer())
    return bytes(image.webpsave_buffer(lossless=True))


def pages(data: bytes) -> tuple[pyvips.Image, int, int]:
    """All frames of an output, its page height and page count."""
    animated = sniff(data) in ("gif", "webp")
    image = pyvips.Image.new_from_buffer(data, "n=-1" if animated else "")
    n = image.get("n-pages") if image.get_typeof("n-pages") else 1
    ph = image.get("page-height") if image.get_typeof("page-height") else image.height
    return image, ph, n


def frame_colour(image: pyvips.Image, page: int, page_height: int) -> list[float]:
    """The average colour (without alpha) of one page."""
    frame = image.crop(0, page * page_height, image.width, page_height)
    if frame.hasalpha():
        frame = frame.extract_band(0, n=frame.bands - 1)
    return [frame[b].avg() for b in range(frame.bands)]


def mean(image: pyvips.Image) -> list[float]:
    return [image[b].avg() for b in range(image.bands)]


def corner(image: pyvips.Image, which: str, inset: int = 3) -> list[float]:
    """The pixel ``inset`` pixels inside a corner (top-left, top-right, bottom-left, ...)."""
    x = image.width - 1 - inset if which.endswith("right") else inset
    y = image.height - 1 - inset if which.startswith("bottom") else inset
    return vpixel(image, x, y)


SVG_NS = 'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'


def svg(width: int = 64, height: int = 48, body: str = "", prolog: str = "") -> bytes:
    """A red ``width`` x ``height`` SVG (plus ``body``), after ``prolog``."""
    rect = f'<rect width="{width}" height="{height}" fill="#ff0000"/>'
    return f'{prolog}<svg {SVG_NS} width="{width}" height="{height}">{rect}{body}</svg>'.encode()


# Headers alone (no pixels), declaring any size: pixel bombs.
def png_header(w: int, h: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", w, h)


def gif_header(w: int, h: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", w, h) + b"\0\0\0"


def jpeg_header(w: int, h: int) -> bytes:
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, h, w, 1) + b"\x01\x11\x00"
    return b"\xff\xd8\xff\xe0" + struct.pack(">H", 4) + b"JF" + sof


def webp_header(w: int, h: int) -> bytes:
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + (w - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 30) + b"WEBP" + vp8x + (h - 1).to_bytes(3, "little")


def heic(
    image: pyvips.Image,
    *,
    orientation: int = 1,
    icc: bytes | None = None,
    bits: int = 8,
    tile: int = 0,
) -> bytes:
    """An iPhone-style HEIC: ``image`` as the stored pixels, HEVC-coded by pillow-heif (x265),
    with an EXIF orientation tag (pillow-heif also writes it as the HEIF rotation/mirror
    boxes, as an iPhone does), an embedded ICC profile if given, 8 or 10 bits, and cut into
    a grid of ``tile``-pixel tiles (an iPhone's are 512) when ``tile`` is set."""
    import pillow_heif

    array = image.numpy()
    mode = {3: "RGB", 4: "RGBA"}[image.bands]
    if bits > 8:
        array = array.astype("uint16") * 257
        mode += ";16"
    heif_file = pillow_heif.from_bytes(mode, (image.width, image.height), array.tobytes())
    exif = Image.Exif()
    exif[0x0112] = orientation
    heif_file.info["exif"] = exif.tobytes()
    if icc is not None:
        heif_file.info["icc_profile"] = icc
    out = io.BytesIO()
    heif_file.save(out, quality=95, **({"tile_size": tile} if tile else {}))
    data = out.getvalue()
    assert data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix"), data[:16]
    return data
