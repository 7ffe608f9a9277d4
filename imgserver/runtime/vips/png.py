"""PNG output. ``optimize`` (``compress``): lossless through oxipng (multi-threaded, libdeflate,
effort scaled to the image's size), or a 256-colour palette (libimagequant, through libvips)
when the palette holds the image without visible loss by SSIMULACRA2. Without ``optimize``:
libvips' own writer at zlib level 6, no filters (fast, for resized results).

oxipng runs its trials on a rayon thread pool sized once per process, from
``RAYON_NUM_THREADS``, which ``execute.init`` sets to the process's libvips thread count: the
image processes together use the machine's cores, not each of them all of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pyvips

# -- lossless ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Effort:
    """How hard oxipng works: row filters tried (each a full deflate, run in parallel on the
    process's threads) and libdeflate's level (10-12 are its slow near-optimal parsers)."""

    filters: tuple[str, ...]
    deflate: int


# Effort by the image's size. Photographs get the filter strategy and level that beat zlib
# level 6 with adaptive filters (what Pillow writes, and thumbor with it) in both time and
# bytes: MinSum (libpng's heuristic) and libdeflate 8, about 0.5-0.8x the time and 0.98x the
# bytes (bench/png_compress.py); a second strategy is tried only when the process has a second
# thread to run it on (it costs no time then). Small images (icons, thumbnails: milliseconds
# whatever the effort) get three strategies and libdeflate's slower near-optimal parser.
SMALL = 100_000  # pixels
SMALL_EFFORT = Effort(("MinSum", "Entropy", "BigEnt"), 10)


def effort(pixels: int, threads: int = 1) -> Effort:
    if pixels <= SMALL:
        return SMALL_EFFORT
    return Effort(("MinSum", "Entropy")[: max(1, min(threads, 2))], 8)


def lossless(image: pyvips.Image, interlace: bool) -> bytes:
    """``image`` (8-bit, 1-4 bands) as the smallest lossless PNG oxipng finds at the effort for
    its size; oxipng also reduces it losslessly (to grey, or to a palette when it has at most
    256 colours, or to fewer bits). No metadata."""
    import oxipng

    colour = {
        1: oxipng.ColorType.grayscale,
        2: oxipng.ColorType.grayscale_alpha,
        3: oxipng.ColorType.rgb,
        4: oxipng.ColorType.rgba,
    }[image.bands]()
    raw = oxipng.RawImage(
        bytearray(image.write_to_memory()), image.width, image.height, color_type=colour
    )
    chosen = effort(image.width * image.height, _threads())
    return bytes(
        raw.create_optimized_png(
            level=1,
            filter=[getattr(oxipng.RowFilter, name) for name in chosen.filters],
            deflate=oxipng.Deflaters.libdeflater(chosen.deflate),
            interlace=oxipng.Interlacing.Adam7 if interlace else oxipng.Interlacing.Off,
            strip=oxipng.StripChunks.all(),
        )
    )


def _threads() -> int:
    """oxipng's threads in this process (``execute.init`` sets them; else rayon's default)."""
    value = os.environ.get("RAYON_NUM_THREADS", "")
    return int(value) if value.isdigit() else len(os.sched_getaffinity(0))


# -- palette ----------------------------------------------------------------------------------

TILE = 64  # px: the image is judged on a mosaic of tiles cut from it at 1:1 ...
TILES = 4  # ... at most this many a side (256 x 256 px), spread evenly over it
SAMPLE_COLOURS = 1024  # 6-bit colours in the mosaic above which no palette is tried (a photo)
PALETTE_MIN_SCORE = 90.0  # SSIMULACRA2: 90 is "visually lossless" on its documented scale


def palette(image: pyvips.Image, q: int, optimize: bool, interlace: bool) -> bytes | None:
    """The image as a palette PNG when 256 colours hold it without visible loss (graphics,
    screenshots, flat art), else None (a photograph quantised is a third of the size, but
    visibly dithered: it stays lossless).

    Checked cheaply first: the colours of a mosaic of 1:1 tiles of the image. Then the
    quantised image is scored against the image with SSIMULACRA2, on the same tiles.
    ``image`` is in memory: it is read more than once."""
    if image.bands < 3:  # grey is one byte a pixel already (oxipng finds fewer bits if any)
        return None
    boxes = _boxes(image.width, image.height)
    reference = _mosaic(image, boxes)
    hist = reference[:3].hist_find_ndim(bins=64)
    if (hist > 0).avg() / 255 * 64**3 > SAMPLE_COLOURS:
        return None
    data = bytes(
        image.pngsave_buffer(
            compression=9 if optimize else 6,
            interlace=interlace,
            palette=True,
            Q=q,
            effort=7 if optimize else 4,
            keep="none",
        )
    )
    back = pyvips.Image.new_from_buffer(data, "")
    if back.bands != image.bands:  # an alpha band libimagequant found to be opaque
        back = back[: image.bands] if back.bands > image.bands else back.bandjoin(255)
    return data if score(reference, _mosaic(back, boxes)) >= PALETTE_MIN_SCORE else None


Box = tuple[int, int, int, int]


def _boxes(width: int, height: int) -> list[Box]:
    """TILES x TILES tiles of TILE px spread evenly over the image (the whole image when it is
    that small)."""
    if width <= TILE * TILES and height <= TILE * TILES:
        return [(0, 0, width, height)]
    tw, th = min(TILE, width), min(TILE, height)
    nx, ny = min(TILES, width // tw), min(TILES, height // th)
    xs = [round(i * (width - tw) / max(1, nx - 1)) for i in range(nx)]
    ys = [round(j * (height - th) / max(1, ny - 1)) for j in range(ny)]
    return [(x, y, tw, th) for y in ys for x in xs]


def _mosaic(image: pyvips.Image, boxes: list[Box]) -> pyvips.Image:
    tiles = [image.crop(*box) for box in boxes]
    if len(tiles) == 1:
        return tiles[0]
    across = len({box[0] for box in boxes})
    return pyvips.Image.arrayjoin(tiles, across=across)


def score(reference: pyvips.Image, candidate: pyvips.Image) -> float:
    """SSIMULACRA2 of ``candidate`` against ``reference`` (8-bit, same size, same bands); an
    image with alpha is judged over a dark and over a light background, the worse counts."""
    if reference.hasalpha():
        return min(
            score(reference.flatten(background=[level]), candidate.flatten(background=[level]))
            for level in (25, 230)
        )
    from ..perceptual import ssimulacra2

    return ssimulacra2(reference, candidate)
