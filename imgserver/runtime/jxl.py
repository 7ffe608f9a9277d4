"""JPEG XL output for both runtimes: libjxl 0.11 through ``imagecodecs`` (BSD-licensed, with
manylinux wheels; pyvips-binary's libvips has no jxlsave). Only ever an encoder here: no JPEG
XL source is decoded.

``quality`` maps to libjxl's butteraugli distance as ``cjxl -q`` does (90 = distance 1, about
visually lossless; 100 = lossless). ``effort`` 7 (libjxl's default) for ``optimize``, else 5;
libjxl runs on the process's libvips thread count.
"""

from __future__ import annotations

import os
from typing import Any


def encode(pixels: Any, quality: int, *, optimize: bool) -> bytes:
    """``pixels``: an 8-bit numpy array (height x width, or height x width x 3 or 4)."""
    import imagecodecs

    threads = int(os.environ.get("VIPS_CONCURRENCY", "0")) or 1
    return bytes(
        imagecodecs.jpegxl_encode(
            pixels,
            level=quality,
            effort=7 if optimize else 5,
            lossless=quality >= 100,
            numthreads=threads,
        )
    )
