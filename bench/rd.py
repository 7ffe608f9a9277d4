"""Rate-distortion points: an encoding's bytes with its SSIM and SSIMULACRA2 against the
unencoded Lanczos reference of the same size (bench/ssim.py's ``reference``: the source
decoded in full, resized with Lanczos-3 to exactly the output's size, never encoded)."""

from __future__ import annotations

import numpy as np
import pyvips

from bench import ssim
from bench.perceptual import Reference

QUALITIES = (40, 50, 60, 70, 80, 90)  # the range the BD-rates are taken over
QUICK_QUALITIES = (40, 60, 75, 90)


def rgb(image: pyvips.Image) -> np.ndarray:
    """A decoded image as uint8 sRGB (alpha flattened on white, grey made RGB)."""
    if image.hasalpha():
        image = image.flatten(background=[255] * (image.bands - 1))
    if image.interpretation != "srgb" or image.format != "uchar":
        image = image.colourspace("srgb").cast("uchar")
    a = image.numpy()
    return np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a[:, :, :3]


def luma(a: np.ndarray) -> np.ndarray:
    f = a.astype(np.float64)
    return 0.299 * f[:, :, 0] + 0.587 * f[:, :, 1] + 0.114 * f[:, :, 2]


class Scorer:
    """Scores encodings of one source, each against the reference of its own size (made once
    per size)."""

    def __init__(self, source: bytes) -> None:
        self.source = source
        self.refs: dict[tuple[int, int], tuple[np.ndarray, Reference]] = {}

    def reference(self, width: int, height: int) -> tuple[np.ndarray, Reference]:
        if (width, height) not in self.refs:
            image = ssim.decode(self.source)
            if (image.width, image.height) != (width, height):
                image = image.resize(
                    width / image.width, vscale=height / image.height, kernel="lanczos3"
                )
            a = rgb(image)
            self.refs[(width, height)] = (luma(a), Reference(a))
        return self.refs[(width, height)]

    def score(self, data: bytes) -> dict:
        """{bytes, ssim, ssimulacra2, width, height} of one encoding."""
        a = rgb(ssim.decode(data))
        height, width = a.shape[:2]
        ref_luma, ref = self.reference(width, height)
        return {
            "bytes": len(data),
            "ssim": ssim.ssim(ref_luma, luma(a)),
            "ssimulacra2": ref.score(a),
            "width": width,
            "height": height,
        }
