"""How both runtimes encode JPEG: chroma subsampling chosen by content, and the sample of the
image that choice is made on (bench/README.md, "JPEG encoder study", has the measurements).

Chroma: 4:2:0 (chroma at half resolution each way) costs a photograph nothing visible and
saves a third of its bytes at equal SSIMULACRA2, at every quality; graphics (coloured text,
logos, flat art with sharp colour edges) need 4:4:4 or their edges bleed. The choice is made
on the pixels: the share of sampled pixels whose Cb or Cr moves by more than
``CHROMA_EDGE`` levels when their 2x2 block is averaged (what 4:2:0 does to them). Photos
measured 0-0.0001%, a UI screenshot 0.05%, text on colours 0.85%; the quality number plays no
part (libjpeg's own rule, 4:4:4 from quality 90, made the size curve jump there).
"""

from __future__ import annotations

import numpy as np

CB = (-0.168736, -0.331264, 0.5)  # JFIF (BT.601 full range) Cb and Cr from R, G, B
CR = (0.5, -0.418688, -0.081312)
CHROMA_EDGE = 24.0  # levels of Cb or Cr that 2x2 averaging moves a pixel by: a colour edge
CHROMA_EDGE_SHARE = 0.001  # of the sampled pixels: more, and the image keeps full chroma

SAMPLE_WHOLE = 1 << 18  # px (512 x 512): an image up to this size is judged whole
SAMPLE_TILE = 128  # px a side, even
SAMPLE_GRID = 4  # tiles across and down, spread evenly, for a larger image

Box = tuple[int, int, int, int]  # left, top, width, height


def sample_boxes(width: int, height: int) -> list[Box]:
    """Where to look: the whole image when it is small, else a grid of tiles spread over it
    (corners to centre: a logo or a caption is rarely only in the middle). Every box starts
    on even coordinates, so its 2x2 blocks are the encoder's."""
    if width * height <= SAMPLE_WHOLE:
        return [(0, 0, width, height)]
    tw, th = min(SAMPLE_TILE, width), min(SAMPLE_TILE, height)
    lefts = np.linspace(0, width - tw, SAMPLE_GRID).astype(int) & ~1
    tops = np.linspace(0, height - th, SAMPLE_GRID).astype(int) & ~1
    return [(int(x), int(y), tw, th) for y in tops for x in lefts]


def full_chroma(tiles: list[np.ndarray]) -> bool:
    """Whether these samples (uint8, height x width x bands) hold colour edges that 4:2:0
    would blur. Grey images (fewer than 3 bands) have no chroma: False."""
    edges = total = 0
    for tile in tiles:
        if tile.ndim < 3 or tile.shape[2] < 3:
            return False
        h, w = tile.shape[0] & ~1, tile.shape[1] & ~1
        if h == 0 or w == 0:
            continue
        rgb = tile[:h, :w, :3].astype(np.float32)
        moved = np.zeros((4, h // 2, w // 2), dtype=bool)  # each pixel of each 2x2 block
        for a, b, c in (CB, CR):
            plane = rgb[:, :, 0] * a + rgb[:, :, 1] * b + rgb[:, :, 2] * c
            corners = (plane[0::2, 0::2], plane[0::2, 1::2], plane[1::2, 0::2], plane[1::2, 1::2])
            mean = (corners[0] + corners[1] + corners[2] + corners[3]) * 0.25
            for i, corner in enumerate(corners):
                moved[i] |= np.abs(corner - mean) > CHROMA_EDGE
        edges += int(np.count_nonzero(moved))
        total += h * w
    return total > 0 and edges > CHROMA_EDGE_SHARE * total
