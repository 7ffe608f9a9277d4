"""How both runtimes encode JPEG: chroma subsampling chosen by content, and the sample of the
image that choice is made on (bench/README.md, "JPEG encoder study", has the measurements).

Chroma: 4:2:0 (chroma at half resolution each way) costs a photograph nothing visible and
saves a third of its bytes at equal SSIMULACRA2, at every quality; graphics (coloured text,
logos, flat art with sharp colour edges) need 4:4:4 or their edges bleed. The choice is made
on the pixels: the share of sampled pixels whose Cb or Cr moves by more than
``CHROMA_EDGE`` levels when their 2x2 block is averaged (what 4:2:0 does to them). The 16
photos of bench/ measured at most 0.04% (downscaled to 300-1200 px: the smaller, the sharper
their colour edges; at 24 levels a flower bed at 300 px reached 1%), a UI screenshot 0.33%,
coloured text 0.87-1.43%; the quality number plays no part (libjpeg's own rule, 4:4:4 from
quality 90, made the size curve jump there).
"""

from __future__ import annotations

import pyvips

CB = (-0.168736, -0.331264, 0.5)  # JFIF (BT.601 full range) Cb and Cr from R, G, B
CR = (0.5, -0.418688, -0.081312)
CHROMA_EDGE = 40.0  # levels of Cb or Cr that 2x2 averaging moves a pixel by: a colour edge
CHROMA_EDGE_SHARE = 0.001  # of the sampled pixels: more, and the image keeps full chroma

SAMPLE_WHOLE = 1 << 16  # px (256 x 256): an image up to this size is judged whole
SAMPLE_TILE = 64  # px a side, even
SAMPLE_GRID = 4  # tiles across and down, spread evenly, for a larger image

Box = tuple[int, int, int, int]  # left, top, width, height


def sample_boxes(width: int, height: int) -> list[Box]:
    """Where to look: the whole image when it is small, else a grid of tiles spread over it
    (corners to centre: a logo or a caption is rarely only in the middle). Every box starts
    on even coordinates, so its 2x2 blocks are the encoder's."""
    if width * height <= SAMPLE_WHOLE:
        return [(0, 0, width, height)]
    tw, th = min(SAMPLE_TILE, width), min(SAMPLE_TILE, height)
    steps = range(SAMPLE_GRID)
    lefts = [((width - tw) * i // (SAMPLE_GRID - 1)) & ~1 for i in steps]
    tops = [((height - th) * i // (SAMPLE_GRID - 1)) & ~1 for i in steps]
    return [(x, y, tw, th) for y in tops for x in lefts]


def full_chroma(image: pyvips.Image) -> bool:
    """Whether ``image`` (8-bit sRGB, best in memory: it is read once per sample box) holds
    colour edges that 4:2:0 would blur, judged on ``sample_boxes``. Grey images (fewer than 3
    bands) have no chroma: False. libvips, not numpy: a worker that never runs a numpy op
    does not load numpy (its memory counts against the worker's limit)."""
    if image.bands < 3 or image.format != "uchar":  # (results are 8-bit; else: 4:2:0)
        return False
    tiles = [image.crop(*box)[:3] for box in sample_boxes(image.width, image.height)]
    sample = tiles[0] if len(tiles) == 1 else pyvips.Image.arrayjoin(tiles, across=SAMPLE_GRID)
    width, height = sample.width & ~1, sample.height & ~1
    if width == 0 or height == 0:
        return False
    chroma = sample.crop(0, 0, width, height).cast("float").recomb([list(CB), list(CR)])
    blocks = chroma.shrink(2, 2).zoom(2, 2)  # each 2x2 block's mean, as 4:2:0 keeps it
    moved = ((chroma - blocks).abs() > CHROMA_EDGE).bandor()  # 255 where Cb or Cr moved
    return bool(moved.avg() / 255 > CHROMA_EDGE_SHARE)
