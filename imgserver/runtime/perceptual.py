"""Perceptual quality: SSIMULACRA2, scoring an encoded candidate against the reference pixels.

SSIMULACRA2 (Jon Sneyers, libjxl's ``tools/ssimulacra2.cc``) gives 100 for identical images
and lower numbers for visible loss; its documented scale: 90 visually lossless (flicker test),
80 very high quality (not distinguishable at 1:1 in a side-by-side view), 70 high quality (hard
to notice without comparison), 50 medium, 30 low. It compares both images in the XYB colour
space, at six scales (halved each time), with an SSIM map and two edge maps (ringing and
blocking where the reference is smooth; blur where it has detail), each averaged in the 1- and
4-norm, and a fixed weighting of those 108 numbers.

This is that algorithm written with pyvips (multi-threaded C, float throughout): the same
colour transform, scales, maps, norms and weights. It differs from the C++ tool only at the
image borders (libvips' Gaussian extends the edge pixels; libjxl's recursive Gaussian treats
them its own way): on photographs it is within a fraction of a point of the ``ssimulacra2``
package on PyPI, a numpy transcription of the C++ tool, at a fraction of its time (see
``bench/auto_quality.py``, which measures both).

:func:`sample` makes the cheap stand-in quality=auto searches on: the image itself when small,
else a mosaic of tiles cut from it at 1:1 (on a 16-pixel grid, so an encoder sees the same
blocks), whose score tracks the whole image's (``bench/auto_quality.py`` shows how closely).
:class:`Reference` holds the reference's side of the computation, made once, to score the
several candidates of a search.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pyvips

from .quality import AUTO_FIRST, AUTO_FIRST_FOR, Choice, auto
from .registry import AUTO_TARGET

TARGET = AUTO_TARGET  # quality=auto's default target: very high quality (a setting)
SCALES = 6
MIN_SIDE = 8  # the smallest image SSIMULACRA2 scores (smaller ones are mirrored out to it)
SIGMA = 1.5
SAMPLE_TILE = 128  # px, a side of one tile of the sample
SAMPLE_TILES = 4  # the sample is at most this many tiles a side: 512 x 512 px
# The sample of a format whose encoder reacts to the seams between tiles (WebP: with seams,
# its score falls 5-30 points below the whole image's) is one piece from the middle instead.
SEAMLESS = frozenset({"webp"})
# The search aims this far above the target: on the bench photos the sample scores 0.5-3.5
# points above the whole image at one quality (bench/auto_quality.py prints both).
MARGIN = 1.5
BACKGROUND = 128  # what alpha is flattened onto before scoring (both images alike)

# libjxl's opsin absorbance matrix and bias (linear sRGB -> the LMS-like mix XYB is made from).
_OPSIN = np.array(
    [
        [0.30, 1.0 - 0.078 - 0.30, 0.078],
        [0.23, 1.0 - 0.078 - 0.23, 0.078],
        [0.24342268924547819, 0.20476744424496821, 1.0 - 0.24342268924547819 - 0.20476744424496821],
    ],
    dtype=np.float32,
)
_BIAS = 0.0037930732552754493
_CBRT_BIAS = _BIAS ** (1 / 3)
# cube roots -> SSIMULACRA2's "positive XYB": X*14 + 0.42, Y + 0.01, (B - Y) + 0.55
_POSITIVE = np.array([[7.0, -7.0, 0.0], [0.5, 0.5, 0.0], [-0.5, -0.5, 1.0]], dtype=np.float32)
_POSITIVE_OFFSET = np.array([0.42, 0.01 - _CBRT_BIAS, 0.55], dtype=np.float32)
_SRGB = np.arange(256, dtype=np.float64) / 255
_TO_LINEAR = np.where(_SRGB <= 0.04045, _SRGB / 12.92, ((_SRGB + 0.055) / 1.055) ** 2.4).astype(
    np.float32
)  # an 8-bit sRGB value -> linear light

# The weights of libjxl's ssimulacra2.cc, in its order: for each channel (X, Y, B), each scale,
# each norm (1, 4): SSIM, ringing/blocking ("artifact"), blur ("detail lost").
_WEIGHTS = """
0.0 0.0007376606707406586 0.0 0.0 0.0007793481682867309 0.0 0.0 0.0004371155730107379 0.0
1.1041726426657346 0.00066284834129271 0.00015231632783718752 0.0 0.0016406437456599754 0.0
1.8422455520539298 11.441172603757666 0.0 0.0007989109436015163 0.000176816438078653 0.0
1.8787594979546387 10.94906990605142 0.0 0.0007289346991508072 0.9677937080626833 0.0
0.00014003424285435884 0.9981766977854967 0.00031949755934435053 0.0004550992113792063 0.0
0.0 0.0013648766163243398 0.0 0.0 0.0 0.0 0.0 7.466890328078848 0.0 17.445833984131262
0.0006235601634041466 0.0 0.0 6.683678146179332 0.00037724407979611296 1.027889937768264
225.20515300849274 0.0 0.0 19.213238186143016 0.0011401524586618361 0.001237755635509985
176.39317598450694 0.0 0.0 24.43300999870476 0.28520802612117757 0.0004485436923833408 0.0
0.0 0.0 34.77906344483772 44.835625328877896 0.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0
0.0008680556573291698 0.0 0.0 0.0 0.0 0.0 0.0005313191874358747 0.0 0.00016533814161379112
0.0 0.0 0.0 0.0 0.0 0.0004179171803251336 0.0017290828234722833 0.0 0.0020827005846636437
0.0 0.0 8.826982764996862 23.19243343998926 0.0 95.1080498811086 0.9863978034400682
0.9834382792465353 0.0012286405048278493 171.2667255897307 0.9807858872435379 0.0 0.0 0.0
0.0005130064588990679 0.0 0.00010854057858411537
"""
WEIGHTS = tuple(float(w) for w in _WEIGHTS.split())

Array = npt.NDArray[Any]
Scale = tuple[list[float], list[float]]  # per scale: 6 SSIM averages, 12 edge averages


class Reference:
    """The reference side of SSIMULACRA2 made once (its XYB planes, their blur and variance at
    every scale), to score many candidates against: :meth:`score`."""

    def __init__(self, image: pyvips.Image) -> None:
        self.width, self.height = image.width, image.height
        self._scales: list[tuple[Array, Array]] = []  # per scale: XYB; blur of XYB, of XYB²
        linear = _linear(image)
        for index in range(SCALES):
            if linear.shape[0] < MIN_SIDE or linear.shape[1] < MIN_SIDE:
                break
            if index:
                linear = _half(linear)
            xyb = _xyb(linear)
            self._scales.append((xyb, _blur(np.concatenate([xyb, xyb * xyb], axis=2))))

    def score(self, candidate: pyvips.Image) -> float:
        """The SSIMULACRA2 score of ``candidate`` (the reference's size; any band count or
        format libvips converts to sRGB; alpha is flattened onto mid-grey)."""
        if (candidate.width, candidate.height) != (self.width, self.height):
            raise ValueError(
                f"SSIMULACRA2 compares images of one size: {self.width}x{self.height} vs "
                f"{candidate.width}x{candidate.height}"
            )
        linear = _linear(candidate)
        scales: list[Scale] = []
        for index, (a, blurred_a) in enumerate(self._scales):
            if index:
                linear = _half(linear)
            scales.append(_scale(a, blurred_a, _xyb(linear)))
        return _score(scales)


def ssimulacra2(reference: pyvips.Image, candidate: pyvips.Image) -> float:
    """The SSIMULACRA2 score of ``candidate`` against ``reference`` (same size)."""
    return Reference(reference).score(candidate)


def choose(
    encode_sample: Callable[[int], bytes], reference: Reference, target: float, fmt: str
) -> Choice:
    """quality=auto: the search of ``quality.auto``, each trial scoring ``encode_sample(quality)``
    (the sample encoded in ``fmt``) against ``reference`` (the sample's pixels)."""
    first = AUTO_FIRST_FOR.get(fmt, AUTO_FIRST)
    return auto(lambda q: reference.score(decode(encode_sample(q))), target + MARGIN, first=first)


def from_memory(pixels: bytes, width: int, height: int, bands: int) -> pyvips.Image:
    """8-bit pixels (another library's image) as :class:`Reference` reads them."""
    return pyvips.Image.new_from_memory(pixels, width, height, bands, "uchar")


def decode(data: bytes) -> pyvips.Image:
    """An encoded candidate, decoded for :func:`ssimulacra2`."""
    return pyvips.Image.new_from_buffer(data, "", access="sequential")


Box = tuple[int, int, int, int]  # left, top, width, height


def sample_boxes(width: int, height: int, seamless: bool = False) -> tuple[list[Box], int]:
    """The tiles of the sample quality=auto searches on, and how many there are across: the
    whole image when it is at most SAMPLE_TILES tiles a side, else SAMPLE_TILES x SAMPLE_TILES
    tiles of SAMPLE_TILE px spread evenly over it, each on the image's 16-pixel grid (an
    encoder's blocks hold the same pixels as in the whole image); ``seamless``: one piece of
    that size from the middle."""
    side = SAMPLE_TILE * SAMPLE_TILES
    if width <= side and height <= side:
        return [(0, 0, width, height)], 1
    if seamless:
        w, h = min(side, width), min(side, height)
        return [(_at(0, 1, width, w), _at(0, 1, height, h), w, h)], 1
    across = min(SAMPLE_TILES, max(1, width // SAMPLE_TILE))
    down = min(SAMPLE_TILES, max(1, height // SAMPLE_TILE))
    tile_w, tile_h = min(SAMPLE_TILE, width), min(SAMPLE_TILE, height)
    boxes = [
        (_at(i, across, width, tile_w), _at(j, down, height, tile_h), tile_w, tile_h)
        for j in range(down)
        for i in range(across)
    ]
    return boxes, across


def sample(image: pyvips.Image, fmt: str) -> pyvips.Image:
    """The sample of :func:`sample_boxes` for format ``fmt``, cut from ``image`` (which it
    reads more than once: give it one in memory), in memory."""
    boxes, across = sample_boxes(image.width, image.height, fmt in SEAMLESS)
    if len(boxes) == 1:
        image = image.crop(*boxes[0])
    else:
        image = pyvips.Image.arrayjoin([image.crop(*box) for box in boxes], across=across)
    image = image.copy()
    image.remove("page-height")  # one picture, whatever the image was cut from
    return image.copy_memory()


def _at(i: int, count: int, length: int, tile: int) -> int:
    """The start of tile ``i`` of ``count`` spread evenly over ``length``, on the 16-px grid."""
    start = (length - tile) // 2 if count == 1 else round(i * (length - tile) / (count - 1))
    return max(0, min(start - start % 16, length - tile))


def _linear(image: pyvips.Image) -> Array:
    """Linear-light sRGB, height x width x 3 float32, at least MIN_SIDE a side."""
    if image.interpretation not in ("srgb", "rgb", "b-w") or image.format != "uchar":
        image = image.colourspace("srgb")
        if image.format != "uchar":
            image = image.cast("uchar")
    if image.hasalpha():
        image = image.flatten(background=[BACKGROUND] * (image.bands - 1))
    if image.bands < 3:
        image = image.bandjoin([image, image])
    image = image[:3]
    if image.width < MIN_SIDE or image.height < MIN_SIDE:
        w, h = max(MIN_SIDE, image.width), max(MIN_SIDE, image.height)
        image = image.embed(0, 0, w, h, extend="mirror")
    pixels = np.frombuffer(image.write_to_memory(), dtype=np.uint8)
    return _TO_LINEAR[pixels].reshape(image.height, image.width, 3)


def _half(image: Array) -> Array:
    """Half the size, averaging 2x2 blocks (the last row/column repeated when odd)."""
    h, w, _ = image.shape
    if h % 2 or w % 2:
        image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    h, w = image.shape[0] // 2, image.shape[1] // 2
    half: Array = image.reshape(h, 2, w, 2, 3).mean(axis=(1, 3), dtype=np.float32)
    return half


def _xyb(linear: Array) -> Array:
    mixed = np.maximum(linear @ _OPSIN.T + _BIAS, 0.0)
    xyb: Array = np.cbrt(mixed) @ _POSITIVE.T + _POSITIVE_OFFSET
    return xyb


def _blur(planes: Array) -> Array:
    """A Gaussian blur (sigma 1.5) of every plane of height x width x n, in one libvips pass."""
    h, w, n = planes.shape
    image = pyvips.Image.new_from_memory(np.ascontiguousarray(planes).data, w, h, n, "float")
    blurred = image.gaussblur(SIGMA, min_ampl=0.004, precision="float")
    return np.frombuffer(blurred.write_to_memory(), dtype=np.float32).reshape(h, w, n)


def _scale(a: Array, blurred_a: Array, b: Array) -> Scale:
    mu1, s11 = blurred_a[:, :, :3], blurred_a[:, :, 3:]
    blurred = _blur(np.concatenate([b, b * b, a * b], axis=2))
    mu2, s22, s12 = blurred[:, :, :3], blurred[:, :, 3:6], blurred[:, :, 6:]
    maps = np.empty((*a.shape[:2], 9), dtype=np.float32)  # d; artifact; detail lost (x 3)
    diff = mu1 - mu2
    num_m = 1.0 - diff * diff
    num_s = (s12 - mu1 * mu2) * 2 + 0.0009
    den_s = (s11 - mu1 * mu1) + (s22 - mu2 * mu2) + 0.0009
    np.maximum(1.0 - num_m * num_s / den_s, 0.0, out=maps[:, :, :3])
    ratio = (1.0 + np.abs(b - mu2)) / (1.0 + np.abs(a - mu1)) - 1.0
    np.maximum(ratio, 0.0, out=maps[:, :, 3:6])
    np.maximum(-ratio, 0.0, out=maps[:, :, 6:])
    flat = maps.reshape(-1, 9)
    n = flat.shape[0]
    mean = flat.sum(axis=0, dtype=np.float64) / n  # per map: the mean, and the 4-norm
    np.square(flat, out=flat)
    np.square(flat, out=flat)
    norm4 = np.sqrt(np.sqrt(flat.sum(axis=0, dtype=np.float64) / n))
    ssim = [float(v) for c in range(3) for v in (mean[c], norm4[c])]
    edge = [
        float(v) for c in range(3) for v in (mean[3 + c], norm4[3 + c], mean[6 + c], norm4[6 + c])
    ]
    return ssim, edge


def _score(scales: list[Scale]) -> float:
    total, i = 0.0, 0
    for c in range(3):
        for ssim, edge in scales:
            for n in range(2):
                total += WEIGHTS[i] * abs(ssim[c * 2 + n])
                total += WEIGHTS[i + 1] * abs(edge[c * 4 + n])
                total += WEIGHTS[i + 2] * abs(edge[c * 4 + n + 2])
                i += 3
    total *= 0.9562382616834844
    total = (
        2.326765642916932 * total
        - 0.020884521182843837 * total**2
        + 6.248496625763138e-05 * total**3
    )
    if total <= 0:
        return 100.0
    return 100.0 - 10.0 * math.pow(total, 0.6276336467831387)
