"""libvips operations that filter an image's pixels by their neighbours, as GEGL's do: the
Gaussian blur, Sobel edges, the linear motion blur.

Each works as GEGL does, on linear light, premultiplied by alpha where alpha weighs the mean
(the blurs), and differs from it only in ways named here:

- ``gaussblur`` is an exact (truncated at 3.25 deviations) Gaussian up to a deviation of
  ``EXACT_SIGMA``; above it the image is box-reduced by a factor ``k``, blurred there by the
  deviation that makes up the rest, and enlarged back bilinearly, so the cost no longer grows
  with the deviation (GEGL runs a recursive IIR filter instead). 1500 on a 5120x2880 image
  takes about a second.
- ``sobel`` is aligned with its input: GEGL 0.4's ``edge-sobel`` shifts its result one pixel
  down and right. Outside the image it sees the edge pixels (GEGL: transparent black, which the
  shift then hides). It can blur first (``blur_x``, ``blur_y``) without rounding the blur to
  8 bits, as GEGL keeps floats between a blur and its Sobel filter.
- ``motion_blur`` of up to ``SHORT_MOTION`` pixels is GEGL's kernel exactly (its samples along
  the line, each bilinear); a longer one turns the image so the line is horizontal, averages
  about ``length + 1`` pixels on an image reduced along the line and turns back, so the cost
  does not grow with the length.
"""

from __future__ import annotations

import math

import pyvips

from ...graphdef import Args, bool_arg, number_arg, text_arg
from .load import Context, per_page
from .space import alpha_float, alpha_uchar, join, split, to_float, to_uchar

EXACT_SIGMA = 8.0  # above it, gaussblur works on a reduced image
REDUCED_SIGMA = 4.0  # ... reduced so that about this deviation is left to blur
MIN_AMPL = 0.005  # a Gaussian mask ends where it falls below this (3.25 deviations)
SHORT_MOTION = 24.0  # up to this length, motion_blur convolves with GEGL's own kernel
BOX_TAPS = 16  # ... above it, with a box of about this many pixels of a reduced image
DEPTH = 65535  # ... of 16-bit integers
_BILINEAR = "bilinear"
Edge = str | list[float]  # "copy" (clamp) or the value of every band outside


def gaussblur(image: pyvips.Image, args: Args, ctx: Context) -> pyvips.Image:
    sx, sy = number_arg(args, "sigma_x"), number_arg(args, "sigma_y")
    if sx < 0.05 and sy < 0.05:
        return image
    abyss = text_arg(args, "abyss", "clamp")
    return per_page(image, lambda p: _gaussblur(p, sx, sy, abyss))


def _gaussblur(image: pyvips.Image, sx: float, sy: float, abyss: str) -> pyvips.Image:
    work, has_alpha = _premultiplied(image)
    if abyss == "clamp":
        edge: Edge = "copy"
    else:  # GEGL's: none is all zeros (transparent; black when there is no alpha)
        colour = 1.0 if abyss == "white" else 0.0
        alpha = 0.0 if abyss == "none" else 1.0
        edge = [colour] * (work.bands - 1) + [alpha] if has_alpha else [colour] * work.bands
    return _from_premultiplied(gaussian(work, sx, sy, edge), has_alpha)


def gaussian(image: pyvips.Image, sx: float, sy: float, edge: Edge) -> pyvips.Image:
    """A float image blurred by deviations ``sx``, ``sy``, seeing ``edge`` outside it."""
    w, h = image.width, image.height
    kx, ky = _factor(sx), _factor(sy)
    mx, my = _mask(_reduced(sx, kx)), _mask(_reduced(sy, ky))
    # outside margins, in source pixels, that hold the reduced masks (and a bilinear neighbour)
    px = ((mx.width // 2 if mx is not None else 0) + 2) * kx
    py = ((my.width // 2 if my is not None else 0) + 2) * ky
    width = -(-(w + 2 * px) // kx) * kx
    height = -(-(h + 2 * py) // ky) * ky
    work = _extend(image, px, py, width, height, edge)
    if kx > 1 or ky > 1:
        work = work.shrink(kx, ky)
    if mx is not None:
        work = work.conv(mx, precision="float")
    if my is not None:
        work = work.conv(my.rot90(), precision="float")
    if kx == 1 and ky == 1:
        return work.crop(px, py, w, h)
    # reduced pixel j stands for source pixels [j*k, j*k + k), centred at j*k + (k - 1)/2; it
    # is small and read many times by the enlargement, so it is made once
    return work.copy_memory().affine(
        [kx, 0, 0, ky],
        interpolate=pyvips.Interpolate.new(_BILINEAR),
        oarea=[0, 0, w, h],
        odx=(kx - 1) / 2 - px,
        ody=(ky - 1) / 2 - py,
        extend="copy",
        premultiplied=True,  # (ours: libvips would premultiply again)
    )


def _factor(sigma: float) -> int:
    return 1 if sigma <= EXACT_SIGMA else int(sigma // REDUCED_SIGMA)


def _reduced(sigma: float, k: int) -> float:
    """The deviation, in reduced pixels, left to blur after a box reduction by ``k`` and before
    a bilinear enlargement by ``k`` (which add about (k² - 1)/12 and k²/6 of variance)."""
    if k == 1:
        return sigma
    return math.sqrt(sigma * sigma - (k * k - 1) / 12 - k * k / 6) / k


def _mask(sigma: float) -> pyvips.Image | None:
    """A one-row Gaussian mask, None when there is nothing to blur."""
    if sigma < 0.05:
        return None
    return pyvips.Image.gaussmat(sigma, MIN_AMPL, separable=True, precision="float")


def _extend(
    image: pyvips.Image, left: int, top: int, width: int, height: int, edge: Edge
) -> pyvips.Image:
    if edge == "copy":
        return image.embed(left, top, width, height, extend="copy")
    return image.embed(left, top, width, height, extend="background", background=edge)


def _premultiplied(image: pyvips.Image) -> tuple[pyvips.Image, bool]:
    """Linear light 0..1, premultiplied by alpha (in the last band) when there is one."""
    colour, alpha = split(image)
    value = to_float(colour, linear=True)
    if alpha is None:
        return value, False
    return value.bandjoin(alpha_float(alpha, value)).premultiply(max_alpha=1.0), True


def _from_premultiplied(work: pyvips.Image, has_alpha: bool) -> pyvips.Image:
    if not has_alpha:
        return join(to_uchar(work, linear=True), None)
    work = work.unpremultiply(max_alpha=1.0)
    colour, alpha = work.extract_band(0, n=work.bands - 1), work.extract_band(work.bands - 1)
    return join(to_uchar(colour, linear=True), alpha_uchar(alpha))


# -- sobel ------------------------------------------------------------------------------------

_SOBEL_X = pyvips.Image.new_from_list([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
_SOBEL_Y = pyvips.Image.new_from_list([[1, 2, 1], [0, 0, 0], [-1, -2, -1]])


def sobel(image: pyvips.Image, args: Args, ctx: Context) -> pyvips.Image:
    """GEGL's edge-sobel on each colour channel of linear light (not premultiplied): with both
    directions the gradient's magnitude / √32; with one, 0.5 + gradient / 8 (``keep_sign``)
    or |gradient| / 4. Alpha is kept. ``blur_x``, ``blur_y``: a Gaussian blur first, kept in
    floats (GEGL keeps floats between its ops; a blur rounded to 8 bits has steps that the
    filter would find as contour lines)."""
    horizontal, vertical = bool_arg(args, "horizontal"), bool_arg(args, "vertical")
    keep_sign = bool_arg(args, "keep_sign")
    bx, by = number_arg(args, "blur_x"), number_arg(args, "blur_y")

    def one(page: pyvips.Image) -> pyvips.Image:
        colour, alpha = split(page)
        if bx < 0.05 and by < 0.05:
            return join(
                _sobel(to_float(colour, linear=True), horizontal, vertical, keep_sign), alpha
            )
        work, has_alpha = _premultiplied(page)
        work = gaussian(work, bx, by, "copy")
        if not has_alpha:
            return join(_sobel(work, horizontal, vertical, keep_sign), None)
        work = work.unpremultiply(max_alpha=1.0)
        value, a = work.extract_band(0, n=work.bands - 1), work.extract_band(work.bands - 1)
        return join(_sobel(value, horizontal, vertical, keep_sign), alpha_uchar(a))

    return per_page(image, one)


def _sobel(value: pyvips.Image, horizontal: bool, vertical: bool, keep_sign: bool) -> pyvips.Image:
    """The filter on linear light (floats), as 8-bit sRGB."""
    if not (horizontal or vertical):
        return to_uchar(value * 0 + (0.5 if keep_sign else 0.0), linear=True)
    # libvips' conv correlates (the mask is not flipped) and sees the edge pixels outside
    gx = value.conv(_SOBEL_X, precision="float") if horizontal else None
    gy = value.conv(_SOBEL_Y, precision="float") if vertical else None
    if gx is not None and gy is not None:
        out = (gx * gx + gy * gy) ** 0.5 / math.sqrt(32)
    else:
        g = gx if gx is not None else gy
        assert g is not None
        out = g / 8 + 0.5 if keep_sign else g.abs() / 4
    return to_uchar(out, linear=True)


# -- motion_blur ------------------------------------------------------------------------------


def motion_blur(image: pyvips.Image, args: Args, ctx: Context) -> pyvips.Image:
    """GEGL's motion-blur-linear: the mean of ``ceil(length) + 1`` samples evenly along the
    line of ``length`` pixels centred on each pixel, at ``angle`` degrees clockwise from the x
    axis; outside the image is transparent."""
    length = max(0.0, number_arg(args, "length", 10.0))
    angle = number_arg(args, "angle")
    if length < 1e-6:
        return image
    return per_page(image, lambda p: _motion_blur(p, length, angle))


def _motion_blur(image: pyvips.Image, length: float, angle: float) -> pyvips.Image:
    work, has_alpha = _premultiplied(image)
    if not has_alpha:
        work = work.bandjoin(1.0)  # the transparent outside blurs into the edges
    theta = math.radians(angle)
    dx, dy = length * math.cos(theta), length * math.sin(theta)
    short = length <= SHORT_MOTION
    out = _line_conv(work, dx, dy) if short else _line_box(work, length, theta)
    return _from_premultiplied(out, True)


def _line_conv(work: pyvips.Image, dx: float, dy: float) -> pyvips.Image:
    """GEGL's own kernel: its samples at t·(dx, dy) for t evenly in -1/2..1/2, each bilinear."""
    steps = math.ceil(math.hypot(dx, dy)) + 1
    weights: dict[tuple[int, int], float] = {}
    for step in range(steps):
        t = step / (steps - 1) - 0.5
        x, y = t * dx, t * dy
        ix, iy = math.floor(x), math.floor(y)
        fx, fy = x - ix, y - iy
        for ox, oy, wt in (
            (ix, iy, (1 - fx) * (1 - fy)),
            (ix + 1, iy, fx * (1 - fy)),
            (ix, iy + 1, (1 - fx) * fy),
            (ix + 1, iy + 1, fx * fy),
        ):
            if wt > 1e-9:
                weights[(ox, oy)] = weights.get((ox, oy), 0.0) + wt / steps
    r = max(max(abs(ox), abs(oy)) for ox, oy in weights)
    rows = [[weights.get((ox, oy), 0.0) for ox in range(-r, r + 1)] for oy in range(-r, r + 1)]
    mask = pyvips.Image.new_from_list(rows)
    w, h = work.width, work.height
    padded = work.embed(r, r, w + 2 * r, h + 2 * r, extend="background", background=0)
    return padded.conv(mask, precision="float").crop(r, r, w, h)


def _line_box(work: pyvips.Image, length: float, theta: float) -> pyvips.Image:
    """A long line: the image turned so the line is horizontal, box-reduced along x by ``k``,
    averaged over an odd number of reduced pixels (about ``length + 1`` source pixels, so
    centred), then enlarged back and turned back in one bilinear step. The reduction keeps the
    cost from growing with the length; a box mean is so smooth along x that the bilinear
    enlargement of its reduced form differs from it by well under a grey level.

    Both turns read images in memory (16 bits per band): a turn reads its input along
    diagonals, which a pipeline would compute over and over."""
    k = max(1, round(length / BOX_TAPS))
    taps = 2 * round((length + 1) / k / 2) + 1
    margin = (taps * k) // 2 + k + 2  # transparent all round, for the line to reach into
    w, h = work.width, work.height
    pw, ph = w + 2 * margin, h + 2 * margin
    c, s = math.cos(theta), math.sin(theta)
    # turned by -theta about the centres, the line's direction onto +x (a width of whole k's)
    tw = -(-(math.ceil(abs(c) * pw + abs(s) * ph) + 2) // k) * k
    th = math.ceil(abs(s) * pw + abs(c) * ph) + 2
    cx, cy, tcx, tcy = (w - 1) / 2, (h - 1) / 2, (tw - 1) / 2, (th - 1) / 2
    bilinear = pyvips.Interpolate.new(_BILINEAR)
    turned = _to_ushort(work).affine(
        [c, s, -s, c],
        interpolate=bilinear,
        oarea=[0, 0, tw, th],
        odx=tcx - (c * cx + s * cy),
        ody=tcy - (-s * cx + c * cy),
        extend="black",
        premultiplied=True,  # (ours: libvips would premultiply again)
    )
    if k > 1:
        turned = turned.shrinkh(k)
    mask = pyvips.Image.new_from_list([[1.0 / taps] * taps])
    line = _to_ushort(turned.conv(mask, precision="float") / DEPTH)
    # reduced pixel (j, y) is turned pixel (j·k + (k - 1)/2, y), which turns back to
    # R⁻¹ · (turned - tc) + c, with R⁻¹ = [[c, -s], [s, c]]
    ux, uy = (k - 1) / 2 - tcx, -tcy
    back = line.affine(
        [c * k, -s, s * k, c],
        interpolate=bilinear,
        oarea=[0, 0, w, h],
        odx=c * ux - s * uy + cx,
        ody=s * ux + c * uy + cy,
        extend="black",
        premultiplied=True,  # (ours: libvips would premultiply again)
    )
    return back.cast("float") / DEPTH


def _to_ushort(image: pyvips.Image) -> pyvips.Image:
    """0..1 floats as 16-bit integers, in memory."""
    return (image * DEPTH + 0.5).cast("ushort").copy_memory()
