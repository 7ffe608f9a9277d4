"""SSIMULACRA2 (Cloudinary's perceptual metric, libjxl's tools/ssimulacra2.cc) on decoded
images, through the ``ssimulacra2`` package (PyPI, a numpy/scipy port of the C++: same XYB
transform, six scales, weights and final mapping; scipy's Gaussian instead of libjxl's
recursive one, so scores agree to about a point, not bit for bit).

The package scores two files; here the reference's side of every scale is computed once and
reused for each distorted image scored against it (a rate-distortion curve scores a dozen
encodings of one reference). 100 is identical; ~90 visually lossless at 1:1; ~70 high
quality; ~50 medium; below 30 low.
"""

from __future__ import annotations

import numpy as np
from ssimulacra2 import ssimulacra2 as s2

Scale = tuple[np.ndarray, np.ndarray, np.ndarray]  # XYB image, its blur, blur of its square


def _rgb(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] in (1, 2):
        a = np.repeat(a[:, :, :1], 3, axis=2)
    return a[:, :, :3]


def _xyb(linear: np.ndarray) -> np.ndarray:
    return s2.make_positive_xyb(s2.linear_rgb_to_xyb(linear))


def _pyramid(rgb: np.ndarray) -> list[np.ndarray]:
    """The linear-RGB image at each scale SSIMULACRA2 looks at (halved each time)."""
    linear = s2.srgb_to_linear(_rgb(rgb))
    out = []
    for scale in range(s2.kNumScales):
        if linear.shape[0] < 8 or linear.shape[1] < 8:
            break
        out.append(linear)
        if scale < s2.kNumScales - 1:
            linear = s2.downsample(linear, 2, 2)
    return out


class Reference:
    """An undistorted image (uint8 RGB, height x width x 3), ready to score others against."""

    def __init__(self, rgb: np.ndarray) -> None:
        self.shape = _rgb(rgb).shape
        self.scales: list[Scale] = []
        for linear in _pyramid(rgb):
            xyb = _xyb(linear)
            self.scales.append((xyb, s2.blur_image(xyb), s2.blur_image(xyb * xyb)))

    def score(self, distorted: np.ndarray) -> float:
        """SSIMULACRA2 of ``distorted`` (same size) against this reference."""
        if _rgb(distorted).shape != self.shape:
            raise ValueError(f"SSIMULACRA2 of {distorted.shape} against {self.shape}")
        msssim = s2.Msssim()
        for (i1, mu1, s11), linear in zip(self.scales, _pyramid(distorted), strict=True):
            i2 = _xyb(linear)
            mu2 = s2.blur_image(i2)
            scale = s2.MsssimScale()
            s22, s12 = s2.blur_image(i2 * i2), s2.blur_image(i1 * i2)
            scale.avg_ssim = s2.ssim_map(mu1, mu2, s11, s22, s12)
            scale.avg_edgediff = s2.edge_diff_map(i1, mu1, i2, mu2)
            msssim.scales.append(scale)
        return float(msssim.score())
