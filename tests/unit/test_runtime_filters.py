"""imgflo's filter graphs and their ops: each op against the GEGL operation it follows
(``gaussblur``: gaussian-blur, ``sobel``: edge-sobel, ``motion_blur``: motion-blur-linear,
``brightness_contrast``: brightness-contrast, ``rotate``: rotate-on-center), each graph against
the same chain in GEGL, imgflo's own test requests, and the ranges (whose worst cases
``bench/filters.py`` times).

Tolerances are SSIM (tests/gegl.py) per op, set a little under what was measured; where an
op differs from GEGL on purpose (edges, GEGL's own shift) the test says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pyvips

from imgserver.errors import InvalidParam
from imgserver.messages import Limits
from imgserver.runtime.registry import ABYSS_POLICIES
from imgserver.runtime.vips import filters
from imgserver.runtime.vips.load import Context
from imgserver.runtime.vips.ops import OPERATIONS

from ..gegl import imgcmp, reference, ssim
from ..images import (
    BLUE,
    LIMITS,
    animation,
    catalogue,
    coords,
    ok,
    pages,
    pillow_graph,
    png,
    run,
    solid,
    vload,
    vpixel,
)


def ctx() -> Context:
    return Context(Limits(**LIMITS), None)


def op(name: str, image: pyvips.Image, **args: Any) -> pyvips.Image:
    return OPERATIONS[name]([image], args, ctx())


def photo(width: int = 160, height: int = 120, *, alpha: bool = False) -> pyvips.Image:
    """Something like a photograph: a sky gradient, a red disc, a green block, fine stripes
    (so blurs and edges have something to work on), optionally fading to transparent."""
    xyz = pyvips.Image.xyz(width, height)
    x, y = xyz[0], xyz[1]
    sky = y * (120 / height) + 90
    image = (sky * 0.6).bandjoin([sky * 0.8, sky + 30])
    disc = ((x - width * 0.35) ** 2 + (y - height * 0.5) ** 2) < (height * 0.25) ** 2
    image = disc.ifthenelse([220, 60, 40], image)
    block = (x > width * 0.6) & (x < width * 0.9) & (y > height * 0.25) & (y < height * 0.8)
    image = block.ifthenelse([40, 160, 60], image)
    stripes = (x > width * 0.62) & (x < width * 0.88) & (y > height * 0.55) & (y < height * 0.75)
    image = (stripes & (x % 4 < 2)).ifthenelse([240, 240, 200], image)
    image = image.cast("uchar")
    if alpha:
        image = image.bandjoin((255 - x * (200 / width)).cast("uchar"))
    return image.copy(interpretation="srgb")


def compare(ours: pyvips.Image, theirs: pyvips.Image) -> pyvips.Image:
    """GEGL's result with the bands ours has (GEGL gives an opaque result an alpha band)."""
    if theirs.bands == ours.bands + 1:
        assert theirs[ours.bands].min() == 255
        theirs = theirs[: ours.bands]
    assert (ours.width, ours.height, ours.bands) == (theirs.width, theirs.height, theirs.bands)
    return theirs


def inside(image: pyvips.Image, border: int) -> pyvips.Image:
    return image.crop(border, border, image.width - 2 * border, image.height - 2 * border)


def max_diff(a: pyvips.Image, b: pyvips.Image) -> float:
    return float((a.cast("float") - b.cast("float")).abs().max())


def flag(value: bool) -> str:
    return "true" if value else "false"


# -- gaussblur: GEGL's gaussian-blur ----------------------------------------------------------


@pytest.mark.gegl
@pytest.mark.parametrize(
    ("sigma", "abyss", "tolerance"),
    # GEGL runs a recursive (IIR) filter from 1.0 up: at 1.5 it is a little wider than a
    # Gaussian, and differs most next to the edges; from 8 up ours works on a reduced image
    [
        (1.5, "clamp", 0.99),
        (1.5, "none", 0.99),
        (1.5, "white", 0.99),
        (10, "black", 0.995),
        (60, "clamp", 0.995),
    ],
)
def test_gaussblur_matches_gegl(tmp_path: Path, sigma: float, abyss: str, tolerance: float) -> None:
    image = photo()
    ours = op("gaussblur", image, sigma_x=sigma, sigma_y=sigma / 2, abyss=abyss)
    theirs = reference(
        tmp_path,
        image,
        [
            "gegl:gaussian-blur",
            f"std-dev-x={sigma}",
            f"std-dev-y={sigma / 2}",
            f"abyss-policy={abyss}",
        ],
    )
    assert ssim(ours, compare(ours, theirs)) >= tolerance


@pytest.mark.gegl
@pytest.mark.parametrize("abyss", ["none", "clamp"])
def test_gaussblur_with_alpha_matches_gegl(tmp_path: Path, abyss: str) -> None:
    """Premultiplied, as GEGL: transparent pixels' colours do not bleed; none fades the edges
    to transparent."""
    image = photo(alpha=True)
    ours = op("gaussblur", image, sigma_x=12, sigma_y=12, abyss=abyss)
    theirs = reference(
        tmp_path,
        image,
        ["gegl:gaussian-blur", "std-dev-x=12", "std-dev-y=12", f"abyss-policy={abyss}"],
    )
    assert ours.bands == 4
    assert ssim(ours, compare(ours, theirs)) >= 0.995
    if abyss == "none":
        assert vpixel(ours, 0, 60)[3] < 0.75 * vpixel(image, 0, 60)[3]


def test_gaussblur_reduced_matches_the_exact_gaussian() -> None:
    """Above EXACT_SIGMA the image is reduced, blurred and enlarged: the same as the exact
    Gaussian, to a grey level or so."""
    image = photo().cast("float")
    for sigma in (9.0, 25.0, 70.0):
        mask = pyvips.Image.gaussmat(sigma, filters.MIN_AMPL, separable=True, precision="float")
        r = mask.width // 2
        for edge in ("copy", [0.0, 0.0, 0.0]):
            size = (r, r, image.width + 2 * r, image.height + 2 * r)
            padded = (
                image.embed(*size, extend="copy")
                if edge == "copy"
                else image.embed(*size, extend="background", background=edge)
            )
            exact = padded.conv(mask, precision="float").conv(mask.rot90(), precision="float")
            exact = exact.crop(r, r, image.width, image.height)
            fast = filters.gaussian(image, sigma, sigma, edge)
            assert (fast - exact).abs().avg() < 0.5, (sigma, edge)
            assert (fast - exact).abs().max() < 2.5, (sigma, edge)


def test_gaussblur_is_in_linear_light() -> None:
    """A fine black and white pattern blurs to the mean of its light, not of its codes: 50%
    light is sRGB 188, not 128."""
    xyz = pyvips.Image.xyz(64, 64)
    checker = (((xyz[0] + xyz[1]) % 2) * 255).cast("uchar").copy(interpretation="b-w")
    out = op("gaussblur", checker, sigma_x=3, sigma_y=3)
    assert out.bands == 1 and abs(vpixel(out, 32, 32)[0] - 188) <= 1


@pytest.mark.parametrize(("abyss", "edge"), [("black", 0), ("white", 255)])
def test_gaussblur_abyss_is_what_the_blur_sees_outside(abyss: str, edge: int) -> None:
    grey = (pyvips.Image.black(80, 60) + 128).cast("uchar").copy(interpretation="b-w")
    out = op("gaussblur", grey, sigma_x=5, sigma_y=5, abyss=abyss)
    corner, centre = vpixel(out, 0, 0)[0], vpixel(out, 40, 30)[0]
    assert centre == 128 and (corner < 100 if edge == 0 else corner > 160)
    clamped = op("gaussblur", grey, sigma_x=5, sigma_y=5, abyss="clamp")
    assert clamped.min() == clamped.max() == 128


def test_pillow_gaussblur_abyss(tmp_path: Path) -> None:
    """The Pillow runtime has the same policies (its blur clamps; the others are a border)."""
    params = {"abyss": {"type": "enum", "default": "clamp", "values": list(ABYSS_POLICIES)}}
    blur = {"sigma_x": 4, "sigma_y": 4, "abyss": {"param": "abyss"}}
    g = pillow_graph(tmp_path, "pblur", {"b": {"op": "gaussblur", "args": blur}}, "b", params)
    grey = png(solid(60, 40, (128, 128, 128)))
    corners = {}
    for abyss in ("clamp", "black", "white", "none"):
        out = vload(ok(run(g, grey, "png", abyss=abyss))["data"])
        assert (out.width, out.height) == (60, 40) and vpixel(out, 30, 20)[0] == 128
        corners[abyss] = vpixel(out, 0, 0)[0]
    assert corners["clamp"] == 128 and corners["black"] == corners["none"] < 100
    assert corners["white"] > 160


# -- sobel: GEGL's edge-sobel -----------------------------------------------------------------


@pytest.mark.gegl
@pytest.mark.parametrize(
    ("horizontal", "vertical", "keep_sign"),
    [(True, True, True), (True, False, True), (False, True, False), (True, False, False)],
)
def test_sobel_matches_gegl(
    tmp_path: Path, horizontal: bool, vertical: bool, keep_sign: bool
) -> None:
    """GEGL 0.4's edge-sobel puts its result one pixel down and right of its input (its output
    at (x, y) is the filter centred at (x - 1, y - 1)): the reference is taken one pixel on to
    undo that. At the image's edge GEGL sees transparent black, ours the edge pixels, so the
    outermost pixels are left out."""
    image = photo()
    ours = op("sobel", image, horizontal=horizontal, vertical=vertical, keep_sign=keep_sign)
    theirs = reference(
        tmp_path,
        image,
        [
            "gegl:edge-sobel",
            f"horizontal={flag(horizontal)}",
            f"vertical={flag(vertical)}",
            f"keep-sign={flag(keep_sign)}",
        ],
        shift=(1, 1),
    )
    theirs = compare(ours, theirs)
    assert max_diff(inside(ours, 1), inside(theirs, 1)) <= 2
    assert ssim(inside(ours, 1), inside(theirs, 1)) >= 0.99


def test_sobel_sees_the_edge_pixels_outside() -> None:
    flat = (pyvips.Image.black(20, 10, bands=3) + 200).cast("uchar").copy(interpretation="srgb")
    out = op("sobel", flat, horizontal=True, vertical=True, keep_sign=False)
    assert out.max() == 0  # no edge along the image's own border
    signed = op("sobel", flat, horizontal=True, vertical=False, keep_sign=True)
    assert signed.min() == signed.max() == 188  # 0.5 in linear light: no change


def test_sobel_keeps_alpha() -> None:
    image = photo(alpha=True)
    out = op("sobel", image, horizontal=True, vertical=True, keep_sign=True)
    assert out.bands == 4 and max_diff(out[3], image[3]) == 0


# -- motion_blur: GEGL's motion-blur-linear ---------------------------------------------------


@pytest.mark.gegl
@pytest.mark.parametrize(
    ("length", "angle", "tolerance"),
    [
        # up to SHORT_MOTION: GEGL's own kernel (the same to a grey level)
        (10, 30, 0.998),
        (15.5, -60, 0.998),
        (24, 90, 0.998),
        # longer: turned, box-averaged on a reduced image, turned back (the turns smooth
        # across the line a little)
        (40, 30, 0.99),
        (100, 17, 0.99),
        (300, -45, 0.99),
    ],
)
def test_motion_blur_matches_gegl(
    tmp_path: Path, length: float, angle: float, tolerance: float
) -> None:
    image = photo()
    ours = op("motion_blur", image, length=length, angle=angle)
    theirs = reference(
        tmp_path, image, ["gegl:motion-blur-linear", f"length={length}", f"angle={angle}"]
    )
    assert ours.bands == theirs.bands == 4  # outside is transparent: the edges fade
    assert ssim(ours, theirs) >= tolerance
    # alpha is the part of the line inside the image: the reduced box's ends are soft
    assert max_diff(ours[3], theirs[3]) <= (2 if length <= filters.SHORT_MOTION else 12)


def test_motion_blur_direction() -> None:
    """90 degrees (clockwise from x) blurs vertically: a horizontal line spreads up and down,
    not sideways."""
    image = solid(61, 61, (0, 0, 0)).insert(solid(41, 1, (255, 255, 255)), 10, 30)
    for length in (20, 40):
        vertical = op("motion_blur", image, length=length, angle=90)
        assert vpixel(vertical, 30, 30 + length // 2 - 2)[0] > 0
        assert vpixel(vertical, 30 + 25, 30)[0] == 0
        horizontal = op("motion_blur", image, length=length, angle=0)
        assert vpixel(horizontal, 30, 33)[0] == 0 and vpixel(horizontal, 53, 30)[0] > 0


def test_motion_blur_of_nothing_changes_nothing() -> None:
    image = photo()
    assert op("motion_blur", image, length=0, angle=45) is image


# -- brightness_contrast ----------------------------------------------------------------------


@pytest.mark.gegl
@pytest.mark.parametrize(("brightness", "contrast"), [(0.0, 1.1), (-0.1, 1.8), (0.1, -0.5)])
def test_brightness_contrast_matches_gegl(
    tmp_path: Path, brightness: float, contrast: float
) -> None:
    image = photo(alpha=True)
    ours = op("brightness_contrast", image, brightness=brightness, contrast=contrast)
    theirs = reference(
        tmp_path,
        image,
        ["gegl:brightness-contrast", f"brightness={brightness}", f"contrast={contrast}"],
    )
    assert max_diff(ours, theirs) <= 1


# -- rotate: GEGL's rotate-on-center ----------------------------------------------------------


@pytest.mark.gegl
@pytest.mark.parametrize(
    ("degrees", "interpolate", "sampler"),
    [
        (30, "nearest", "nearest"),
        (1, "nearest", "nearest"),
        (-17.5, "bilinear", "linear"),
        (135, "bilinear", "linear"),
    ],
)
def test_rotate_matches_gegl(
    tmp_path: Path, degrees: float, interpolate: str, sampler: str
) -> None:
    """The same bounding box and pixels: nearest exactly, bilinear to a grey level. (GEGL's
    box can start a row or column early, at -1, by rounding: its last rows are compared.)"""
    image = photo(alpha=True)
    ours = op("rotate", image, degrees=degrees, counter_clockwise=True, interpolate=interpolate)
    theirs = reference(
        tmp_path,
        image,
        ["gegl:rotate-on-center", f"degrees={degrees}", f"sampler={sampler}"],
        whole=True,
    )
    dx, dy = theirs.width - ours.width, theirs.height - ours.height
    assert dx in (0, 1) and dy in (0, 1)
    theirs = theirs.crop(dx, dy, ours.width, ours.height)
    # (nearest: premultiplied and back, alpha below 255 can round one level off)
    assert max_diff(ours, theirs) <= (1 if interpolate == "nearest" else 2)


@pytest.mark.parametrize(
    ("degrees", "turn"),
    [(90, "d90"), (180, "d180"), (270, "d270"), (-90, "d270"), (-270, "d90"), (450, "d90")],
)
def test_rotate_multiples_of_90_are_exact(degrees: int, turn: str) -> None:
    image = coords(50, 30)
    out = op("rotate", image, degrees=degrees, background="#ff000080")
    assert out.bands == 3 and max_diff(out, image.rot(turn)) == 0
    ccw = op("rotate", image, degrees=degrees, counter_clockwise=True)
    assert max_diff(ccw, op("rotate", image, degrees=360 - degrees)) == 0
    assert op("rotate", image, degrees=0) is image


def test_rotate_is_clockwise_with_the_background_in_the_corners() -> None:
    image = solid(100, 40, BLUE).insert(solid(10, 40, (255, 255, 255)), 90, 0)
    out = op("rotate", image, degrees=30, background="#00ff00")
    assert out.bands == 3 and (out.width, out.height) == (107, 85)  # 100·cos + 40·sin, ...
    assert vpixel(out, 0, 0) == [0, 255, 0]  # a corner
    assert vpixel(out, 53, 42) == [0, 0, 255]  # the centre stays
    # the white right end went clockwise: down on the right
    assert vpixel(out, 95, 62)[0] > 200 and vpixel(out, 95, 22)[0] < 50
    transparent = op("rotate", image, degrees=30)
    assert transparent.bands == 4 and vpixel(transparent, 0, 0)[3] == 0


# -- graphs: the same chains in GEGL ----------------------------------------------------------


def render(graph: str, source: pyvips.Image, **query: Any) -> pyvips.Image:
    return vload(ok(run(graph, png(source), "png", **query))["data"])


@pytest.mark.gegl
@pytest.mark.parametrize(
    "query", [{}, {"strength": 0.4, "edgeblur-x": 3, "edgeblur-y": 6}], ids=["defaults", "set"]
)
def test_halodarken_matches_gegl(tmp_path: Path, query: dict[str, Any]) -> None:
    """imgflo's chain, with two changes to GEGL's side: its Sobel shift is undone (translate),
    and it blends in colour (convert-format). GEGL 0.4 blends in the model of its input, here
    the grey edges, so it would give a grey image; imgflo's GEGL (0.3) blended RGBA, as the
    composite's colour arg does. At the image's edge the two Sobel filters see different
    things, so the outermost pixels are left out."""
    image = photo(200, 150)
    ours = render("halodarken", image, **query)
    assert ours.bands == 3  # colour, opaque
    strength = query.get("strength", 0.7)
    sx, sy = query.get("edgeblur-x", 10), query.get("edgeblur-y", 10)
    theirs = reference(
        tmp_path,
        image,
        [
            *("gegl:gaussian-blur", f"std-dev-x={sx}", f"std-dev-y={sy}"),
            *("gegl:edge-sobel", "keep-sign=false", "gegl:translate", "x=-1", "y=-1"),
            *("gegl:opacity", f"value={strength}", "gegl:gray"),
            *("gegl:convert-format", "format=RaGaBaA float"),
            *("svg:color-dodge", "srgb=true", "aux=[", "gegl:load", "path=@src", "]"),
        ],
        shift=(1, 1),  # the translation grew the extent on the left and top only
        src=image,
    )
    assert ssim(inside(ours, 1), inside(theirs[:3], 1)) >= 0.985


@pytest.mark.gegl
@pytest.mark.parametrize(
    "query",
    [{}, {"length": 40, "angle": 30, "brightness": 0.1, "contrast": 0.8, "strength": 0.6}],
    ids=["defaults", "set"],
)
def test_motionblur_matches_gegl(tmp_path: Path, query: dict[str, Any]) -> None:
    """imgflo's chain. GEGL keeps floats between its ops, we 8 bits: where contrast takes the
    blur below black, GEGL's screen darkens the original with the negative light and ours
    does not, which is most of the difference."""
    image = photo(200, 150)
    ours = render("motionblur", image, **query)
    q = {"length": 100, "angle": 90, "brightness": 0, "contrast": 1.1, "strength": 1, **query}
    theirs = reference(
        tmp_path,
        image,
        [
            "gegl:motion-blur-linear",
            f"length={q['length']}",
            f"angle={q['angle']}",
            "gegl:brightness-contrast",
            f"brightness={q['brightness']}",
            f"contrast={q['contrast']}",
            "gegl:opacity",
            f"value={q['strength']}",
            "svg:screen",
            "srgb=false",
            "aux=[",
            "gegl:load",
            "path=@src",
            "]",
        ],
        src=image,
    )
    assert ssim(ours, compare(ours, theirs)) >= 0.98
    assert ours.bands == 3


@pytest.mark.gegl
def test_gaussianblur_imgflo_request_matches_gegl(tmp_path: Path) -> None:
    """imgflo's test request: std-dev 60 both ways (on its mountains.png; here a photo-like
    image), abyss clamp."""
    image = photo(200, 150)
    ours = render("gaussianblur", image, **{"std-dev-x": 60, "std-dev-y": 60})
    theirs = compare(
        ours, reference(tmp_path, image, ["gegl:gaussian-blur", "std-dev-x=60", "std-dev-y=60"])
    )
    assert ssim(ours, theirs) >= 0.995
    imgcmp(tmp_path, theirs, ours)  # as imgflo's test: within 1.5 ΔE (measured: at most 1.3)


@pytest.mark.gegl
@pytest.mark.parametrize("abyss", ["none"])
def test_gaussianblur_abyss_policy_matches_gegl(tmp_path: Path, abyss: str) -> None:
    image = photo(200, 150)
    ours = render("gaussianblur", image, **{"std-dev-x": 20, "std-dev-y": 5, "abyss-policy": abyss})
    theirs = reference(
        tmp_path,
        image,
        ["gegl:gaussian-blur", "std-dev-x=20", "std-dev-y=5", f"abyss-policy={abyss}"],
    )
    assert ssim(ours, compare(ours, theirs)) >= 0.995


@pytest.mark.gegl
@pytest.mark.parametrize(
    ("degrees", "x", "y", "width", "height"),
    [(90, 10, 15, 70, 65), (30, 40, 20, 200, 150), (-120, 0, 0, 120, 90)],
)
def test_croprotate_matches_gegl(
    tmp_path: Path, degrees: float, x: int, y: int, width: int, height: int
) -> None:
    """imgflo's test request first (90 degrees, 70x65 at 10,15): rotate-on-center with the
    nearest sampler, as imgflo's graph, then crop."""
    image = photo(200, 150)
    query = {"degrees": degrees, "x": x, "y": y, "cropwidth": width, "cropheight": height}
    ours = render("croprotate", image, **query)
    assert (ours.width, ours.height) == (width, height)
    theirs = reference(
        tmp_path,
        image,
        [
            *("gegl:rotate-on-center", f"degrees={degrees}", "sampler=nearest"),
            *("gegl:crop", f"x={x}", f"y={y}", f"width={width}", f"height={height}"),
        ],
        whole=True,
    )
    assert max_diff(ours, compare(ours, theirs)) == 0
    imgcmp(tmp_path, compare(ours, theirs), ours)


@pytest.mark.gegl
def test_crop_imgflo_request_matches_gegl(tmp_path: Path) -> None:
    """imgflo's test request for crop: 130x110 at 200,230."""
    image = photo(400, 360)
    query = {"x": 200, "y": 230, "cropwidth": 130, "cropheight": 110}
    ours = render("crop", image, **query)
    theirs = reference(
        tmp_path,
        image,
        ["gegl:crop", "x=200", "y=230", "width=130", "height=110"],
        whole=True,
    )
    assert max_diff(ours, compare(ours, theirs)) == 0
    imgcmp(tmp_path, compare(ours, theirs), ours)


# -- graphs: geometry, fit, parameters --------------------------------------------------------


def test_croprotate_90_geometry() -> None:
    """imgflo's request: 90 degrees counter-clockwise, 70x65 at 10,15. Turned left, the
    source's top-right corner is the result's top-left: the result's (i, j) is the source's
    (W - 1 - (15 + j), 10 + i)... as coordinates: R = x, G = y of the source."""
    src = coords(200, 150)
    out = render("croprotate", src, degrees=90, x=10, y=15, cropwidth=70, cropheight=65)
    assert (out.width, out.height) == (70, 65)
    for i, j in ((0, 0), (69, 0), (0, 64), (33, 21)):
        assert vpixel(out, i, j)[:2] == [200 - 1 - (15 + j), 10 + i]


def test_croprotate_arbitrary_angle_geometry() -> None:
    """The box of a rotated W x H image is (|cos|·W + |sin|·H) x (|sin|·W + |cos|·H), the
    source's centre at its centre; x, y and the crop are in that box's pixels, then fitted."""
    src = coords(200, 150)
    whole = render("croprotate", src, degrees=30)
    assert (whole.width, whole.height) == (249, 230)
    assert whole.bands == 4 and vpixel(whole, 0, 0)[3] == 0  # a transparent corner
    centre = vpixel(whole, 124, 114)
    assert abs(centre[0] - 99.5) <= 1 and abs(centre[1] - 74.5) <= 1
    part = render("croprotate", src, degrees=30, x=100, y=90, cropwidth=40, cropheight=30)
    assert max_diff(part, whole.crop(100, 90, 40, 30)) == 0
    small = render("croprotate", src, degrees=30, width=100)
    assert (small.width, small.height) == (100, 92)  # fitted after the rotation and crop


def test_croprotate_origin_outside_is_invalid_param() -> None:
    r = run("croprotate", png(coords(200, 150)), "png", degrees=90, x=160)
    assert r["ok"] is False and r["error"]["code"] == "invalid_param"
    assert r["error"]["param"] == "x"


def test_filter_graphs_fit_first() -> None:
    """halodarken, motionblur and gaussianblur fit first (as imgflo did): their sizes are in
    output pixels, and the output has the fitted size."""
    src = photo(320, 240)
    for graph in ("halodarken", "motionblur", "gaussianblur"):
        out = render(graph, src, width=160)
        assert (out.width, out.height) == (160, 120), graph
        assert catalogue()[graph].definition.nodes[0].op == "fit"


@pytest.mark.parametrize(
    ("graph", "param", "raw", "why"),
    [
        ("gaussianblur", "std-dev-x", "1500.5", "at most 1500"),
        ("gaussianblur", "std-dev-y", "-1", "at least 0"),
        ("gaussianblur", "abyss-policy", "mirror", "one of"),
        ("halodarken", "strength", "1.5", "at most 1"),
        ("halodarken", "edgeblur-x", "2000", "at most 1500"),
        ("motionblur", "length", "1001", "at most 1000"),
        ("motionblur", "angle", "-181", "at least -180"),
        ("motionblur", "contrast", "6", "at most 5"),
        ("motionblur", "brightness", "-4", "at least -3"),
        ("motionblur", "strength", "-0.1", "at least 0"),
        ("croprotate", "degrees", "361", "at most 360"),
        ("croprotate", "cropwidth", "0", "at least 1"),
    ],
)
def test_out_of_range_is_invalid_param(graph: str, param: str, raw: str, why: str) -> None:
    with pytest.raises(InvalidParam) as info:
        run(graph, b"", **{param: raw})
    assert info.value.code == "invalid_param" and why in info.value.message
    assert info.value.details["param"] == param


@pytest.mark.parametrize(
    ("graph", "defaults"),
    [
        ("halodarken", {"strength": 0.7, "edgeblur-x": 10, "edgeblur-y": 10}),
        (
            "motionblur",
            {"length": 100, "angle": 90, "brightness": 0, "contrast": 1.1, "strength": 1},
        ),
        ("croprotate", {"degrees": 0, "x": 0, "y": 0}),
        ("gaussianblur", {"std-dev-x": 1.5, "std-dev-y": 1.5, "abyss-policy": "clamp"}),
    ],
)
def test_imgflo_defaults(graph: str, defaults: dict[str, Any]) -> None:
    params = catalogue()[graph].params
    for name, value in defaults.items():
        assert params[name].default == value, name
    assert {"width", "height"} <= set(params)


def test_animations() -> None:
    """The filters and the rotation run frame by frame (a blur does not reach across frames);
    a blend does not, so the graphs that blend keep the first frame."""
    data = animation()
    for graph, query, frames, page_height in (
        ("croprotate", {"degrees": 90}, 4, 80),
        ("gaussianblur", {"std-dev-x": 8}, 4, 60),
        ("halodarken", {}, 1, 60),
        ("motionblur", {"length": 30}, 1, 60),
    ):
        image, ph, n = pages(ok(run(graph, data, "gif", **query))["data"])
        assert (n, ph) == (frames, page_height), graph
        first = image.crop(0, 0, image.width, ph)
        assert first[:3].avg() > 40, graph  # red frame: not blurred into the others' colours
    for name, args in (("sobel", {}), ("motion_blur", {"length": 30, "angle": 90})):
        strip = vload(data, n=-1)
        out = op(name, strip, **args)
        assert out.get("page-height") == 60 and out.height == 240, name
