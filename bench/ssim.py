"""SSIM (Wang, Bovik, Sheikh, Simoncelli 2004) on the luminance channel, in numpy.

Luminance is BT.601 luma, Y = 0.299 R + 0.587 G + 0.114 B, on 0-255 (alpha flattened on white,
grey images taken as they are). The window is the paper's: an 11x11 Gaussian, sigma 1.5,
applied separably; K1 = 0.01, K2 = 0.03, L = 255. The map covers every position where the
window fits in the image ("valid"), at full resolution (no downsampling first), and the score
is its mean.
"""

from __future__ import annotations

import numpy as np
import pyvips

K1, K2, L = 0.01, 0.03, 255.0
C1, C2 = (K1 * L) ** 2, (K2 * L) ** 2
RADIUS, SIGMA = 5, 1.5


def _window() -> np.ndarray:
    x = np.arange(-RADIUS, RADIUS + 1, dtype=np.float64)
    w = np.exp(-(x**2) / (2 * SIGMA**2))
    return w / w.sum()


WINDOW = _window()


def luma(image: pyvips.Image) -> np.ndarray:
    """A decoded image's luminance as a float64 array (height x width)."""
    if image.hasalpha():
        image = image.flatten(background=[255] * (image.bands - 1))
    if image.interpretation not in ("srgb", "b-w") or image.format != "uchar":
        image = image.colourspace("srgb" if image.bands >= 3 else "b-w").cast("uchar")
    a = image.numpy().astype(np.float64)
    if a.ndim == 2:
        return a
    if a.shape[2] < 3:
        return a[:, :, 0]
    return 0.299 * a[:, :, 0] + 0.587 * a[:, :, 1] + 0.114 * a[:, :, 2]


def _blur(a: np.ndarray) -> np.ndarray:
    """The Gaussian-weighted mean over each window position ('valid': no padding)."""
    n = len(WINDOW)
    rows = a.shape[0] - n + 1
    tmp = WINDOW[0] * a[:rows]
    for k in range(1, n):
        tmp += WINDOW[k] * a[k : k + rows]
    cols = a.shape[1] - n + 1
    out = WINDOW[0] * tmp[:, :cols]
    for k in range(1, n):
        out += WINDOW[k] * tmp[:, k : k + cols]
    return out


def ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Mean SSIM of two luminance arrays of the same shape."""
    if x.shape != y.shape:
        raise ValueError(f"SSIM of differently sized images: {x.shape} and {y.shape}")
    mx, my = _blur(x), _blur(y)
    sxx = _blur(x * x) - mx * mx
    syy = _blur(y * y) - my * my
    sxy = _blur(x * y) - mx * my
    num = (2 * mx * my + C1) * (2 * sxy + C2)
    den = (mx * mx + my * my + C1) * (sxx + syy + C2)
    return float(np.mean(num / den))


def decode(data: bytes) -> pyvips.Image:
    """Decode bytes upright (EXIF orientation applied)."""
    return pyvips.Image.new_from_buffer(data, "").autorot()


def reference(source: bytes, width: int, height: int) -> np.ndarray:
    """The source's luminance at ``width`` x ``height``: decoded in full, then resized with
    Lanczos-3 to exactly that size, never encoded (the ideal a resize is compared with)."""
    image = decode(source)
    if (image.width, image.height) != (width, height):
        image = image.resize(width / image.width, vscale=height / image.height, kernel="lanczos3")
    return luma(image)


def score(source: bytes, output: bytes) -> tuple[float, int, int]:
    """(SSIM of ``output`` against ``source`` at the output's size, width, height)."""
    out = decode(output)
    return ssim(reference(source, out.width, out.height), luma(out)), out.width, out.height
