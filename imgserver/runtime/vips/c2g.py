"""GEGL's ``c2g`` (colour to grey keeping local contrast, the STRESS method of Kolås, Farup and
Rizzi) as a libvips-runtime operation; the sampling is done in numpy.

For every pixel, ``iterations`` times, ``samples`` other pixels are picked within ``radius``: at
angles that step by the golden angle from one sample to the next, and at distances
``radius·u²`` for a uniform ``u`` (so most fall close by), as GEGL's lookup tables pick them. A
sample outside the image is drawn again; a fully transparent one too, at most ``samples`` times
(then it is skipped). The darkest and lightest value of each channel among the samples and the
pixel give a range and the pixel's place in it; averaged over the iterations they give an upper
envelope ``pixel + (1 - place)·range`` and a lower one ``pixel - place·range``. The grey is
``|p| / (|p| + |upper - p|)`` over the three channels in linear light (with
``enhance_shadows``: ``|p - lower|`` in place of ``|p|``, which lifts dark detail), a linear
luminance, returned as 8-bit grey with the image's alpha.

GEGL draws its random numbers anew each run; here the generator has a fixed seed, so one image
and one set of arguments always give the same grey (a result is cacheable and stable).

Cost: every pixel takes ``samples * iterations`` samples (and more drawn again when the radius
reaches out of the image), which on a large image at large arguments is far too much work
(GEGL takes minutes). The work of a frame is bounded by ``WORK_BUDGET`` (an animation shares
it among its frames): when a frame would need more, the envelopes are computed on a copy
shrunk by the factor that fits the budget (in linear light, the radius shrunk alike; a thin
frame along its length once its short side is one pixel) and enlarged again, bilinearly; the
grey is still computed at full resolution from each pixel's own colour and the envelopes
around it. Large ``samples`` make envelopes that are smooth (near the local extremes), which
is where the shrinking loses least.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pyvips

from ...graphdef import Args, bool_arg, int_arg
from .load import Context, page_height
from .space import join, split, to_float, to_uchar

Codes = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float32]
Indices = npt.NDArray[np.intp]

SEED = 0x5EED_C2
TABLE = 1 << 16  # sample offsets drawn once per frame; a pixel walks through them
GOLDEN_ANGLE = math.pi * (3 - math.sqrt(5))
# Work of a frame, in samples: pixels x iterations x (samples x (1 + MISS_COST x redraws per
# sample) + ITERATION_COST). A sample takes 6-9 ns on one core of the reference machine (a
# shared 2-core AMD EPYC), so the budget is 5-7 s of work.
WORK_BUDGET = 800_000_000
ITERATION_COST = 4  # what an iteration's own arithmetic costs, in samples
MISS_COST = 10  # what drawing again a sample that fell outside the image costs, in samples
PAD_BUDGET = 1 << 25  # pixels of the padded sample source (4 bytes each)
TILE = (64, 512)  # rows and columns computed at once (most samples fall near: cache-friendly)
# A sample that missed is drawn again in rounds: 1 candidate in the first, twice as many in
# each next (up to CANDIDATES); one still missing after ROUNDS rounds is skipped.
CANDIDATES = 16
ROUNDS = 24

# the fourth byte of a packed sample: what is there
INSIDE = 255  # a pixel of the image, not fully transparent
CLEAR = 0  # a fully transparent pixel
OUTSIDE = 1  # the padding around the image
USABLE = np.uint32(INSIDE << 24)  # packed values at or above it are usable samples


def c2g(image: pyvips.Image, args: Args, ctx: Context) -> pyvips.Image:
    radius = max(1, int_arg(args, "radius") or 300)
    samples = max(1, int_arg(args, "samples") or 4)
    iterations = max(1, int_arg(args, "iterations") or 10)
    shadows = bool_arg(args, "enhance_shadows")
    frames = max(1, image.height // page_height(image))
    # the frames of an animation are done together, and share the budget
    budget = WORK_BUDGET // frames
    grey = _grey(image, frames, radius, samples, iterations, shadows, budget, ctx.warnings)
    if frames > 1:
        grey = grey.copy()
        grey.set_type(pyvips.GValue.gint_type, "page-height", image.height // frames)
    return grey


def _grey(
    image: pyvips.Image,
    frames: int,
    radius: int,
    samples: int,
    iterations: int,
    shadows: bool,
    budget: int,
    warnings: list[str],
) -> pyvips.Image:
    """The grey of ``image`` (``frames`` frames one above the other), made in memory; a
    warning when the work limit made its envelopes on a shrunk copy or with fewer iterations."""
    colour, alpha = split(image)
    rgb = colour if colour.bands >= 3 else colour.bandjoin([colour, colour])
    width, height = rgb.width, rgb.height // frames
    work = plan(width, height, radius, samples, iterations, budget)
    small, small_alpha = rgb, alpha
    if (work.width, work.height, work.iterations) != (width, height, iterations):
        warnings.append(
            f"the grey's envelopes were computed at {work.width}x{work.height} with "
            f"{work.iterations} iterations (the work limit)"
        )
    if (work.width, work.height) != (width, height):
        linear = to_float(rgb, linear=True)
        small = _shrunk(linear, frames, work.width, work.height)
        small = to_uchar(small, linear=True).copy(interpretation="srgb")
        if alpha is not None:
            small_alpha = _shrunk(alpha, frames, work.width, work.height)
    codes: Codes = np.ascontiguousarray(small.numpy(), dtype=np.uint8).reshape(
        frames, work.height, work.width, 3
    )
    opaque = None
    if small_alpha is not None:
        opaque = small_alpha.numpy().reshape(frames, work.height, work.width) > 0
    upper, lower = envelopes(codes, opaque, work.radius, samples, work.iterations, lower=shadows)
    p = to_float(rgb, linear=True)
    above = _positive(_enlarged(upper, frames, width, height) - p)
    if lower is None:
        near = _norm(p)
    else:
        near = _norm(_positive(p - _enlarged(lower, frames, width, height)))
    total = near + _norm(above)
    flat = total <= 0
    y = flat.ifthenelse(0.5, near / flat.ifthenelse(1, total))
    return join(to_uchar(y, linear=True), alpha).copy_memory()


def _shrunk(image: pyvips.Image, frames: int, width: int, height: int) -> pyvips.Image:
    """Each of the ``frames`` of ``image`` shrunk (linear kernel) to exactly width x height,
    one above the other again; each made in memory at once (a pipeline per frame, joined
    lazily, would keep buffers for every one of them)."""
    step = image.height // frames
    parts = []
    for i in range(frames):
        frame = image.crop(0, i * step, image.width, step)
        frame = frame.resize(width / frame.width, vscale=height / step, kernel="linear")
        if (frame.width, frame.height) != (width, height):
            frame = frame.embed(0, 0, width, height, extend="copy")
        parts.append(frame if frames == 1 else frame.copy_memory())
    return parts[0] if frames == 1 else pyvips.Image.arrayjoin(parts, across=1)


class Plan(NamedTuple):
    """Where the envelopes of a frame are computed: its size and radius there, and the
    iterations."""

    width: int
    height: int
    radius: int
    iterations: int


def plan(width: int, height: int, radius: int, samples: int, iterations: int, budget: int) -> Plan:
    """All at full size when the frame's work fits ``budget``; else the frame (and the
    radius) shrunk until it fits and the padded sample source stays in bounds, its short side
    down to one pixel and then the long one alone; fewer iterations only when even one
    pixel would be too much work."""
    redraws = 1 / _inside(radius, width, height) - 1
    per_iteration = samples * (1 + MISS_COST * redraws) + ITERATION_COST
    per_pixel = iterations * per_iteration
    scale = min(1.0, math.sqrt(budget / (width * height * per_pixel)))
    short, long = min(width, height), max(width, height)
    if short * scale < 1:  # (a long, thin frame)
        scale = min(1.0, budget / (long * per_pixel))

    def sized(s: float) -> Plan:
        w, h = max(1, int(width * s)), max(1, int(height * s))  # (rounded down: within budget)
        most = int(budget / (w * h * per_iteration))
        return Plan(w, h, max(1, round(radius * s)), max(1, min(iterations, most)))

    work = sized(scale)
    while _padded(work) > PAD_BUDGET:
        scale *= 0.9
        work = sized(scale)
    return work


def _padded(work: Plan) -> int:
    """Pixels of the padded sample source."""
    w, h, r = work.width, work.height, work.radius
    return (h + 2 * min(r, h)) * (w + 2 * min(r, w))


def _inside(radius: int, width: int, height: int) -> float:
    """The share of samples that fall inside a width x height image (the rest are drawn
    again), over its pixels and the sampling distribution; the same at any scale."""
    n = 4096
    angle = GOLDEN_ANGLE * np.arange(1, n + 1)
    distance = radius * ((np.arange(n) + 0.5) / n) ** 2
    dx = np.abs(np.floor(distance * np.cos(angle)))
    dy = np.abs(np.floor(distance * np.sin(angle)))
    share = np.clip(1 - dx / width, 0, 1) * np.clip(1 - dy / height, 0, 1)
    return max(float(share.mean()), 1e-3)


def envelopes(
    codes: Codes,
    opaque: npt.NDArray[np.bool_] | None,
    radius: int,
    samples: int,
    iterations: int,
    *,
    lower: bool,
) -> tuple[Floats, Floats | None]:
    """The upper (and, with ``lower``, the lower) envelope of each pixel of ``codes`` (8-bit
    sRGB, frames x height x width x 3), in linear light, as float32 arrays of the same shape.
    ``opaque`` marks the pixels that are not fully transparent (None: all of them)."""
    source = _Source(codes, opaque, radius, samples)
    up = np.empty(codes.shape, np.float32)
    down = np.empty(codes.shape, np.float32) if lower else None
    for tiles in _tiles(codes.shape[:3]):
        own = np.concatenate([source.pixels(*tile) for tile in tiles])
        p, place, span = source.sample(own, iterations)
        upper = p + (1 - place) * span
        under = p - place * span if down is not None else None
        at = 0
        for f, y0, y1, x0, x1 in tiles:
            n = (y1 - y0) * (x1 - x0)
            shape = (y1 - y0, x1 - x0, 3)
            up[f, y0:y1, x0:x1] = upper[at : at + n].reshape(shape)
            if down is not None and under is not None:
                down[f, y0:y1, x0:x1] = under[at : at + n].reshape(shape)
            at += n
    return up, down


Tile = tuple[int, int, int, int, int]  # frame, rows y0 .. y1 - 1, columns x0 .. x1 - 1


def _tiles(shape: tuple[int, ...]) -> list[list[Tile]]:
    """The frames cut into tiles of at most TILE, gathered into groups of about one TILE of
    pixels (small frames are done several at once)."""
    frames, height, width = shape
    groups: list[list[Tile]] = [[]]
    size = 0
    for f in range(frames):
        for y0 in range(0, height, TILE[0]):
            for x0 in range(0, width, TILE[1]):
                y1, x1 = min(height, y0 + TILE[0]), min(width, x0 + TILE[1])
                if size and size + (y1 - y0) * (x1 - x0) > TILE[0] * TILE[1]:
                    groups.append([])
                    size = 0
                groups[-1].append((f, y0, y1, x0, x1))
                size += (y1 - y0) * (x1 - x0)
    return groups


class _Source:
    """The pixels to sample, packed four bytes each (R, G, B and what is there: INSIDE, CLEAR
    or OUTSIDE), the frames one above the other with a padding around each as wide as the
    radius (or the frame, if smaller), so that every offset of the table from a frame's pixel
    lands in the frame or its padding; the table of offsets; the random generator."""

    def __init__(
        self, codes: Codes, opaque: npt.NDArray[np.bool_] | None, radius: int, samples: int
    ) -> None:
        frames, height, width = codes.shape[:3]
        self.pad_x, self.pad_y = min(radius, width), min(radius, height)
        self.wide = width + 2 * self.pad_x
        self.step = height + self.pad_y  # from one frame to the next
        padded = np.zeros((self.pad_y + frames * self.step, self.wide, 4), np.uint8)
        padded[..., 3] = OUTSIDE
        for f in range(frames):
            top = self.pad_y + f * self.step
            inner = padded[top : top + height, self.pad_x : self.pad_x + width]
            inner[..., :3] = codes[f]
            inner[..., 3] = INSIDE if opaque is None else np.where(opaque[f], INSIDE, CLEAR)
        self.packed: npt.NDArray[np.uint32] = padded.reshape(-1).view(np.dtype("<u4"))
        self.clear = opaque is not None and not bool(opaque.all())
        self.samples = samples
        self.rng = np.random.default_rng(SEED)
        self.table = _offsets(radius, width, height, self.pad_x, self.pad_y, self.wide, self.rng)
        self.lut = _linear_lut()

    def pixels(self, frame: int, y0: int, y1: int, x0: int, x1: int) -> Indices:
        """The indices of the pixels of a frame's rows ``y0 .. y1 - 1``, columns
        ``x0 .. x1 - 1``."""
        top = self.pad_y + frame * self.step
        rows = (np.arange(y0, y1, dtype=np.intp) + top) * self.wide
        columns = np.arange(x0, x1, dtype=np.intp) + self.pad_x
        own: Indices = np.add.outer(rows, columns).reshape(-1)
        return own

    def sample(self, own: Indices, iterations: int) -> tuple[Floats, Floats, Floats]:
        """For the pixels at ``own``: their linear colour, their mean place in the sampled
        ranges and the mean range."""
        packed, table, lut = self.packed, self.table, self.lut
        centre = packed[own]
        centre8 = centre.view(np.uint8).reshape(-1, 4)
        p = lut[centre8[:, :3]]
        start = self.rng.integers(0, TABLE, own.size, dtype=np.uint16)
        place = np.zeros_like(p)
        span = np.zeros_like(p)
        step = 0
        for _ in range(iterations):
            low = centre8.copy()
            high = centre8.copy()
            for _ in range(self.samples):
                # consecutive samples of a pixel take consecutive entries (uint16 wraps around)
                got = packed[own + table[start + np.uint16(step % TABLE)]]
                step += 1
                missed = np.flatnonzero(got < USABLE)
                if missed.size:
                    first = got[missed]
                    got[missed] = centre[missed]  # what a skipped sample is: no change
                    self._redraw(got, own, missed, first)
                got8 = got.view(np.uint8).reshape(-1, 4)
                np.minimum(low, got8, out=low)
                np.maximum(high, got8, out=high)
            lo, hi = lut[low[:, :3]], lut[high[:, :3]]
            width = hi - lo
            rel = np.full_like(width, 0.5)
            np.divide(p - lo, width, out=rel, where=width > 0)
            place += rel
            span += width
        place /= iterations
        span /= iterations
        return p, place, span

    def _redraw(
        self,
        got: npt.NDArray[np.uint32],
        own: Indices,
        missed: Indices,
        first: npt.NDArray[np.uint32],
    ) -> None:
        """Draw again the samples at ``missed`` (``first``: what they met), as GEGL does: one
        outside the image, always; a fully transparent one, until ``samples`` of them were
        met, then the sample is skipped (it stays the pixel itself)."""
        todo = missed
        left = None  # transparent samples each may still meet (when the image has some)
        if self.clear:
            left = self.samples - (first >> 24 == CLEAR).astype(np.intp)
        for round_ in range(ROUNDS):
            if left is not None:
                todo, left = todo[left > 0], left[left > 0]
            if not todo.size:
                return
            shape = (todo.size, min(CANDIDATES, 1 << round_))
            picks = self.rng.integers(0, TABLE, shape, dtype=np.uint16)
            values = self.packed[own[todo, None] + self.table[picks]]
            good = values >= USABLE
            if left is not None:  # and not after ``left`` transparent ones
                clear = values >> 24 == CLEAR
                seen = np.cumsum(clear, axis=1)
                good &= seen - clear < left[:, None]
                left = left - seen[:, -1]
            found = good.any(axis=1)
            got[todo[found]] = values[found, good[found].argmax(axis=1)]
            todo = todo[~found]
            if left is not None:
                left = left[~found]


def _offsets(
    radius: int,
    width: int,
    height: int,
    pad_x: int,
    pad_y: int,
    wide: int,
    rng: np.random.Generator,
) -> Indices:
    """TABLE sample offsets, as indices into the padded source: entry i at the golden angle
    times i, at a distance ``radius·u²``. One that leaves the image from every pixel (a radius
    larger than the image) points into the padding, so it is always drawn again."""
    angle = GOLDEN_ANGLE * np.arange(1, TABLE + 1)
    distance = radius * rng.random(TABLE) ** 2
    dx = np.floor(distance * np.cos(angle)).astype(np.intp)
    dy = np.floor(distance * np.sin(angle)).astype(np.intp)
    off_x, off_y = np.abs(dx) >= width, np.abs(dy) >= height
    dx = np.where(off_x, -pad_x, np.where(off_y, 0, dx))
    dy = np.where(off_x, 0, np.where(off_y, -pad_y, dy))
    return dy * wide + dx


@functools.cache
def _linear_lut() -> Floats:
    """256 entries: 8-bit sRGB code -> linear light."""
    v = np.arange(256, dtype=np.float64) / 255
    lut = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)
    lut.flags.writeable = False
    return lut


def _enlarged(field: Floats, frames: int, width: int, height: int) -> pyvips.Image:
    """A float field (frames x h x w x bands) as a libvips image of its frames, each enlarged
    bilinearly to width x height (pixel centres aligned), one above the other."""
    f, h, w, bands = field.shape
    image = pyvips.Image.new_from_array(field.reshape(f * h, w, bands))
    if (w, h) == (width, height):
        return image
    xy = pyvips.Image.xyz(width, frames * height)
    frame = (xy[1] / height).floor()
    x = _clipped((xy[0] + 0.5) * (w / width) - 0.5, w - 1)
    y = _clipped((xy[1] - frame * height + 0.5) * (h / height) - 0.5, h - 1) + frame * h
    return image.mapim(x.bandjoin(y), interpolate=pyvips.Interpolate.new("bilinear"))


def _clipped(v: pyvips.Image, top: float) -> pyvips.Image:
    return (v < 0).ifthenelse(0, (v > top).ifthenelse(top, v))


def _positive(v: pyvips.Image) -> pyvips.Image:
    return (v < 0).ifthenelse(0, v)


def _norm(v: pyvips.Image) -> pyvips.Image:
    """The length of each pixel's three-band vector."""
    return (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]) ** 0.5
