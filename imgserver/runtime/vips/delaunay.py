"""libvips operation ``delaunay``: imgflo's ``delaunay_triangles`` pattern, an image made from a
seed string alone (no input image): the same seed and size give the same bytes.

imgflo drew it with NoFlo components on a canvas; this follows their recipe step by step:

- the seed's MD5, as 32 hex digits, seeds the random numbers: all 32 digits the x coordinates,
  the first 5 the y coordinates, the first 10, 15 and 20 the red, green and blue values (each a
  fresh generator, as noflo-seedrandom's ``RandomArray`` restarts one per list);
- the generator is David Bau's ``seedrandom`` (version 2: RC4 keyed by the seed's characters,
  its first 256 bytes dropped, doubles of 52 random bits), so the numbers are the ones imgflo drew;
- 50 points, x in [-200, width + 200) and y in [-200, height + 200), so the triangles run off
  every edge;
- their Delaunay triangulation, built incrementally in order of x, each new point replacing the
  triangles whose circumcircle holds it (Bowyer-Watson, the algorithm of the ``delaunay.js``
  that noflo-geometry vendors); its triangles come out in that algorithm's order. Like it,
  this starts from a finite "supertriangle" (20 times the points' extent), so a sliver along
  the outline of the points can be missing, the background showing there. imgflo's images
  have the same gaps; they mostly lie beyond the canvas (none in 300 seeds at 100 x 100, one
  at 600 x 400), but on a very wide or tall canvas a corner may show one;
- 10 colours (red, green and blue rounded to whole values), triangle ``k`` filled with colour
  ``k mod 10`` at 90 % opacity over a ``#dddddd`` background.

Pixels belong to the triangle that holds their centre (no antialiasing: imgflo's canvas blended
the edges, so edge pixels differ from imgflo's). The triangulation and the random numbers are
pure Python (50 points); the raster is a label per pixel, coloured by ``maplut``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyvips

from ...graphdef import Args, int_arg, text_arg
from .load import Context, check_output

POINTS = 50
MARGIN = 200  # points lie this far beyond every edge, too
COLOURS = 10
OPACITY = 0.9
BACKGROUND = 0xDD
DEFAULT_WIDTH, DEFAULT_HEIGHT = 600, 400  # imgflo-server's canvas when no size is given

Point = tuple[float, float]


def delaunay(images: Sequence[pyvips.Image], args: Args, ctx: Context) -> pyvips.Image:
    """The pattern for ``seed`` on a ``width`` x ``height`` canvas (8-bit sRGB, opaque)."""
    width = int_arg(args, "width") or DEFAULT_WIDTH
    height = int_arg(args, "height") or DEFAULT_HEIGHT
    check_output(width, height, ctx)
    seed = text_arg(args, "seed", "")
    digest = hashlib.md5(seed.encode(), usedforsecurity=False).hexdigest()
    xs = random_numbers(digest, POINTS, -MARGIN, width + MARGIN)
    ys = random_numbers(digest[:5], POINTS, -MARGIN, height + MARGIN)
    points = list(zip(xs, ys, strict=True))
    channels = [random_numbers(digest[:n], COLOURS, 0, 255) for n in (10, 15, 20)]
    colours = [tuple(_js_round(c[i]) for c in channels) for i in range(COLOURS)]
    labels = bytearray(width * height)  # 0: background; 1 + k: colour k
    for k, triangle in enumerate(triangulate(points)):
        fill_triangle(labels, width, height, [points[i] for i in triangle], 1 + k % COLOURS)
    palette = [(BACKGROUND,) * 3] + [_over_background(c) for c in colours]
    palette += [palette[0]] * (256 - len(palette))
    lut = pyvips.Image.new_from_memory(
        bytes(v for entry in palette for v in entry), 256, 1, 3, "uchar"
    )
    image = pyvips.Image.new_from_memory(labels, width, height, 1, "uchar")
    return image.maplut(lut).copy(interpretation="srgb")


def _over_background(colour: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(OPACITY * c + (1 - OPACITY) * BACKGROUND + 0.5) for c in colour)


def _js_round(x: float) -> int:
    """JavaScript's Math.round: halves go up."""
    return math.floor(x + 0.5)


# -- seedrandom ------------------------------------------------------------------------------


class SeedRandom:
    """David Bau's ``seedrandom`` (2.x) for a string seed: uniform doubles in [0, 1), the same
    sequence as ``seedrandom(seed)()`` gives in JavaScript."""

    def __init__(self, seed: str) -> None:
        key = [ord(ch) & 0xFF for ch in seed] or [0]  # a seed of up to 256 characters is its key
        s = list(range(256))
        j = 0
        for i in range(256):  # RC4's key schedule
            j = (j + key[i % len(key)] + s[i]) & 0xFF
            s[i], s[j] = s[j], s[i]
        self._s, self._i, self._j = s, 0, 0
        self._bytes(256)  # RC4-drop[256]

    def _bytes(self, count: int) -> int:
        """The next ``count`` RC4 bytes as one big-endian number."""
        s, i, j, r = self._s, self._i, self._j, 0
        for _ in range(count):
            i = (i + 1) & 0xFF
            t = s[i]
            j = (j + t) & 0xFF
            s[i], s[j] = s[j], t
            r = r * 256 + s[(s[i] + s[j]) & 0xFF]
        self._i, self._j = i, j
        return r

    def __call__(self) -> float:
        n, d, x = float(self._bytes(6)), 2.0**48, 0
        while n < 2.0**52:  # at least 52 significant bits
            n = (n + x) * 256
            d *= 256
            x = self._bytes(1)
        while n >= 2.0**53:  # at most 53
            n /= 2
            d /= 2
            x >>= 1
        return (n + x) / d


def random_numbers(seed: str, count: int, low: float, high: float) -> list[float]:
    """noflo-seedrandom's RandomArray: ``count`` numbers in [low, high) from a fresh generator."""
    rng = SeedRandom(seed)
    return [low + rng() * (high - low) for _ in range(count)]


# -- the triangulation -----------------------------------------------------------------------

EPSILON = 1.0 / 1048576.0


@dataclass(frozen=True)
class _Circle:
    """A triangle (its vertex indices) and its circumcircle (centre, squared radius)."""

    i: int
    j: int
    k: int
    x: float
    y: float
    r: float


def _div(a: float, b: float) -> float:
    """a / b with IEEE results for a zero divisor (as JavaScript gives), not an exception."""
    if b != 0:
        return a / b
    if a == 0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _circumcircle(v: Sequence[Point], i: int, j: int, k: int) -> _Circle:
    (x1, y1), (x2, y2), (x3, y3) = v[i], v[j], v[k]
    dy12, dy23 = abs(y1 - y2), abs(y2 - y3)
    if dy12 < EPSILON:  # the perpendicular bisector of 1-2 is vertical
        m2 = -_div(x3 - x2, y3 - y2)
        mx2, my2 = (x2 + x3) / 2.0, (y2 + y3) / 2.0
        xc = (x2 + x1) / 2.0
        yc = m2 * (xc - mx2) + my2
    elif dy23 < EPSILON:  # that of 2-3 is
        m1 = -_div(x2 - x1, y2 - y1)
        mx1, my1 = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        xc = (x3 + x2) / 2.0
        yc = m1 * (xc - mx1) + my1
    else:  # where the two bisectors cross
        m1 = -_div(x2 - x1, y2 - y1)
        m2 = -_div(x3 - x2, y3 - y2)
        mx1, mx2 = (x1 + x2) / 2.0, (x2 + x3) / 2.0
        my1, my2 = (y1 + y2) / 2.0, (y2 + y3) / 2.0
        xc = _div(m1 * mx1 - m2 * mx2 + my2 - my1, m1 - m2)
        yc = m1 * (xc - mx1) + my1 if dy12 > dy23 else m2 * (xc - mx2) + my2
    dx, dy = x2 - xc, y2 - yc
    return _Circle(i, j, k, xc, yc, dx * dx + dy * dy)


def _supertriangle(points: Sequence[Point]) -> list[Point]:
    """A triangle far larger than the points' bounding box."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    dx, dy = max(xs) - min(xs), max(ys) - min(ys)
    dmax = max(dx, dy)
    xmid, ymid = min(xs) + dx * 0.5, min(ys) + dy * 0.5
    return [
        (xmid - 20 * dmax, ymid - dmax),
        (xmid, ymid + 20 * dmax),
        (xmid + 20 * dmax, ymid - dmax),
    ]


def _at(edges: list[int], index: int) -> int | None:
    return edges[index] if index < len(edges) else None


def _drop_doubled(edges: list[int]) -> None:
    """Remove every edge (a pair of vertex indices) listed twice, both copies: what is left
    is the outline of the hole the new point opened. (Walked from the end, in place, as
    delaunay.js does: the order of what is left decides the order of the new triangles.)"""
    j = len(edges)
    while j:
        j -= 2
        b, a = _at(edges, j + 1), _at(edges, j)
        i = j
        while i:
            i -= 2
            m, n = edges[i], edges[i + 1]
            if (a == m and b == n) or (a == n and b == m):
                del edges[j : j + 2]
                del edges[i : i + 2]
                break


def triangulate(points: Sequence[Point]) -> list[tuple[int, int, int]]:
    """The Delaunay triangles of ``points`` (vertex indices), in delaunay.js's order."""
    n = len(points)
    if n < 3:
        return []
    v = [*points, *_supertriangle(points)]
    order = sorted(range(n), key=lambda i: v[i][0], reverse=True)
    open_, closed = [_circumcircle(v, n, n + 1, n + 2)], []
    for c in reversed(order):  # by increasing x
        cx, cy = v[c]
        edges: list[int] = []
        for j in range(len(open_) - 1, -1, -1):
            t = open_[j]
            dx = cx - t.x
            if dx > 0.0 and dx * dx > t.r:  # right of its circle: final
                closed.append(open_.pop(j))
                continue
            dy = cy - t.y
            if dx * dx + dy * dy - t.r > EPSILON:  # outside its circle
                continue
            edges += [t.i, t.j, t.j, t.k, t.k, t.i]
            del open_[j]
        _drop_doubled(edges)
        for j in range(len(edges), 0, -2):
            open_.append(_circumcircle(v, edges[j - 2], edges[j - 1], c))
    closed.extend(reversed(open_))
    return [(t.i, t.j, t.k) for t in reversed(closed) if t.i < n and t.j < n and t.k < n]


# -- rasterising ----------------------------------------------------------------------------


def _spans(corners: Sequence[Point], width: int, height: int) -> Iterator[tuple[int, int, int]]:
    """(row, first, end) for the pixels whose centre lies in the triangle, row by row: a centre
    on an edge shared by two triangles belongs to one of them (half-open intervals)."""
    (ax, ay), (bx, by), (cx, cy) = sorted(corners, key=lambda p: p[1])
    if cy == ay:
        return
    first = max(0, math.ceil(ay - 0.5))
    end = min(height, math.ceil(cy - 0.5))
    long_slope = (cx - ax) / (cy - ay)
    for row in range(first, end):
        yc = row + 0.5
        x_long = ax + (yc - ay) * long_slope
        if yc < by:
            x_short = ax + (yc - ay) * (bx - ax) / (by - ay)
        else:
            x_short = bx + (yc - by) * (cx - bx) / (cy - by)
        left, right = (x_long, x_short) if x_long < x_short else (x_short, x_long)
        x0 = max(0, math.ceil(left - 0.5))
        x1 = min(width, math.ceil(right - 0.5))
        if x1 > x0:
            yield row, x0, x1


def fill_triangle(
    labels: bytearray, width: int, height: int, corners: Sequence[Point], label: int
) -> None:
    """Set ``label`` for every pixel of ``labels`` (rows of ``width``) inside the triangle."""
    run = bytes([label]) * width
    for row, x0, x1 in _spans(corners, width, height):
        start = row * width
        labels[start + x0 : start + x1] = run[: x1 - x0]
