"""The ``lut`` op (tone curves through control points, ``runtime/vips/lut.py``) and the ``curves``
graph that exposes it: exact values where a curve's meaning is exact (identity, inversion,
straight lines, flat ends), the smooth curve's promises (through the points, never overshooting,
rising points make a rising curve, a continuous slope), channels, alpha, grey, animation."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import pyvips
from hypothesis import given, settings
from hypothesis import strategies as st

from imgserver.errors import InvalidParam
from imgserver.messages import Limits
from imgserver.params import CurvePoint, parse_curve
from imgserver.runtime.registry import IDENTITY_CURVE, OPS
from imgserver.runtime.vips.curves import IDENTITY
from imgserver.runtime.vips.load import Context
from imgserver.runtime.vips.lut import evaluate, tables
from imgserver.runtime.vips.ops import OPERATIONS

from ..images import (
    FRAME_COLOURS,
    LIMITS,
    animation,
    catalogue,
    frame_colour,
    ok,
    pages,
    png,
    run,
    solid,
    texture,
    vload,
    vpixel,
)

DETERMINISTIC = settings(max_examples=200, derandomize=True, deadline=None, database=None)
S_CURVE = "0:0,64:40,192:220,255:255"


def ctx() -> Context:
    return Context(Limits(**LIMITS), None)


def op(image: pyvips.Image, **args: Any) -> pyvips.Image:
    defaults = {name: spec.default for name, spec in OPS["lut"].args.items()}
    return OPERATIONS["lut"]([image], {**defaults, **args}, ctx())


def ramp(bands: int = 3) -> pyvips.Image:
    """256 x 2, column v has the value v in every band (1: grey, 3: sRGB)."""
    v = pyvips.Image.xyz(256, 2)[0].cast("uchar")
    image = v.bandjoin([v] * (bands - 1)) if bands > 1 else v
    return image.copy(interpretation="srgb" if bands >= 3 else "b-w")


def band(image: pyvips.Image, b: int) -> list[int]:
    """Band ``b`` along the first row."""
    return [int(v) for v in image.extract_band(b).crop(0, 0, image.width, 1).numpy().ravel()]


def curve(text: str) -> tuple[CurvePoint, ...]:
    return parse_curve(text)


def table(all_: str = IDENTITY_CURVE, *, smooth: bool = True, **channels: str) -> tuple:
    picked = (curve(channels.get(c, IDENTITY_CURVE)) for c in ("red", "green", "blue"))
    return tables(curve(all_), *picked, smooth=smooth)


def same_pixels(a: pyvips.Image, b: pyvips.Image) -> bool:
    return (a.width, a.height, a.bands) == (b.width, b.height, b.bands) and bytes(
        a.write_to_memory()
    ) == bytes(b.write_to_memory())


# -- exact curves ----------------------------------------------------------------------------


@pytest.mark.parametrize("smooth", [True, False])
@pytest.mark.parametrize(
    "image",
    [texture(40, 30), solid(5, 4, (90,)), solid(5, 4, (10, 200, 30, 128)), solid(3, 3, (7, 99))],
    ids=["rgb", "grey", "rgba", "grey-alpha"],
)
def test_identity_leaves_the_image_unchanged(image: pyvips.Image, smooth: bool) -> None:
    assert table(smooth=smooth) == (IDENTITY, IDENTITY, IDENTITY)
    assert same_pixels(op(image, smooth=smooth), image)
    assert same_pixels(op(image, all="0:0,128:128,255:255", smooth=smooth), image)
    assert same_pixels(op(image, all="0:255,255:0", strength=0.0), image)


@pytest.mark.parametrize("smooth", [True, False])
def test_inverting_is_exact(smooth: bool) -> None:
    out = op(ramp(), all="0:255,255:0", smooth=smooth)
    for b in range(3):
        assert band(out, b) == [255 - v for v in range(256)]
    red = op(ramp(), red="255:0,0:255", smooth=smooth)
    assert band(red, 0) == [255 - v for v in range(256)] and band(red, 1) == list(range(256))


def test_straight_lines_between_points_are_exact() -> None:
    red, green, blue = table("0:0,128:64,255:255", smooth=False)
    assert red == green == blue
    assert [red[v] for v in (0, 32, 64, 127, 128, 255)] == [0, 16, 32, 64, 64, 255]
    assert red[192] == round(64 + 64 * 191 / 127)  # 160.25
    out = op(ramp(), all="0:0,128:64,255:255", smooth=False)
    assert band(out, 0)[64] == 32 and band(out, 2)[64] == 32


@pytest.mark.parametrize("smooth", [True, False])
def test_flat_before_the_first_point_and_after_the_last(smooth: bool) -> None:
    red, _, _ = table("64:32,192:224", smooth=smooth)
    assert set(red[:65]) == {32} and set(red[192:]) == {224}
    assert red[128] == 128  # two points: a straight line between them


def test_two_points_make_a_straight_line_smooth_or_not() -> None:
    for text in ("0:30,255:200", "10:0,200:255", "0:255,255:0", "0.5:1.5,254.5:253"):
        assert table(text, smooth=True) == table(text, smooth=False), text


def test_channel_curves_come_first_then_all_composed_before_rounding() -> None:
    stretch, squeeze = "0:0,128:255,255:255", "0:0,255:128"  # 0..128 to 0..255, and back
    red, green, blue = table(stretch, red=squeeze, smooth=False)
    assert red == IDENTITY  # rounding in between would make red 1 (0.502) 1.99, so 2
    assert green == blue == tuple(min(255, int(v * 255 / 128 + 0.5)) for v in range(256))
    out = op(ramp(), all=stretch, red=squeeze, smooth=False)
    assert band(out, 0) == list(range(256)) and band(out, 1) == list(green)


def test_strength_moves_from_the_original() -> None:
    out = op(ramp(), all="0:255,255:0", strength=0.5)
    assert set(band(out, 0)) == {128}  # v + 0.5·((255 - v) - v) = 127.5, rounded up
    quarter = op(ramp(), all="0:0,255:128", smooth=False, strength=0.25)
    expected = [int(v + 0.25 * (v * 128 / 255 - v) + 0.5) for v in range(256)]
    assert band(quarter, 1) == expected


# -- the smooth curve ------------------------------------------------------------------------

CURVES = [
    S_CURVE,
    "0:0,10:200,20:210,255:255",  # steep, then nearly flat
    "0:0,100:100,101:200,255:210",
    "0:50,64:50,128:200,192:200,255:255",  # plateaus
    "0:255,128:30,255:0",
    "0:0,64:200,128:20,192:230,255:0",  # up and down
    "30:40,31:41,200:60,201:250",
]


@pytest.mark.parametrize("text", CURVES)
def test_smooth_goes_through_the_points_and_never_overshoots(text: str) -> None:
    points = curve(text)
    red, _, _ = table(text)
    for x, y in points:
        assert red[int(x)] == y
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        between = red[int(x0) : int(x1) + 1]
        assert min(y0, y1) <= min(between) and max(between) <= max(y0, y1), (x0, x1)
        step = np.diff(between)
        assert (step >= 0).all() if y1 >= y0 else (step <= 0).all(), (x0, x1)


def test_smooth_is_a_curve_not_lines() -> None:
    smooth, lines = table(S_CURVE)[0], table(S_CURVE, smooth=False)[0]
    assert smooth != lines
    assert lines[128] == 130 and smooth[128] != 130
    assert smooth[32] < lines[32] and smooth[224] > lines[224]  # an S: darker low, lighter high


@pytest.mark.parametrize("text", CURVES)
def test_smooth_has_a_continuous_slope(text: str) -> None:
    points = curve(text)
    eps = 1e-6
    for x, _ in points[1:-1]:
        at = np.array([x - 2 * eps, x - eps, x, x + eps, x + 2 * eps])
        y = evaluate(points, at, smooth=True)
        left, right = (y[2] - y[0]) / (2 * eps), (y[4] - y[2]) / (2 * eps)
        assert abs(left - right) < 1e-3 * max(1.0, abs(left)), (x, left, right)


values = st.integers(0, 1020).map(lambda n: n / 4)


@st.composite
def points(draw: st.DrawFn, rising: bool) -> tuple[CurvePoint, ...]:
    xs = sorted(draw(st.lists(values, min_size=2, max_size=32, unique=True)))
    ys = draw(st.lists(values, min_size=len(xs), max_size=len(xs)))
    return tuple(zip(xs, sorted(ys) if rising else ys, strict=True))


@DETERMINISTIC
@given(points(rising=True))
def test_rising_points_make_a_rising_curve(pts: tuple[CurvePoint, ...]) -> None:
    y = evaluate(pts, np.linspace(0, 255, 2041), smooth=True)
    assert (np.diff(y) >= -1e-9).all()
    assert pts[0][1] - 1e-9 <= y.min() and y.max() <= pts[-1][1] + 1e-9


@DETERMINISTIC
@given(points(rising=False))
def test_the_smooth_curve_stays_between_neighbouring_points(pts: tuple[CurvePoint, ...]) -> None:
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        y = evaluate(pts, np.linspace(x0, x1, 33), smooth=True)
        assert min(y0, y1) - 1e-9 <= y.min() and y.max() <= max(y0, y1) + 1e-9
        assert abs(y[0] - y0) < 1e-9 and abs(y[-1] - y1) < 1e-9
    lut = tables(pts, *(curve(IDENTITY_CURVE),) * 3)[0]
    assert min(p[1] for p in pts) - 0.5 <= min(lut) and max(lut) <= max(p[1] for p in pts) + 0.5


# -- channels, alpha, grey, frames -----------------------------------------------------------


def test_a_channel_curve_touches_only_its_channel() -> None:
    image = texture(48, 32)
    for b, name in enumerate(("red", "green", "blue")):
        out = op(image, **{name: "0:255,255:0"})
        for c in range(3):
            expected = 255 - image[c] if c == b else image[c]
            assert (out[c] == expected).min() == 255, (name, c)


def test_alpha_is_kept() -> None:
    xyz = pyvips.Image.xyz(64, 16)
    alpha = (xyz[0] * 4).cast("uchar")
    image = texture(64, 16).bandjoin(alpha).copy(interpretation="srgb")
    out = op(image, all=S_CURVE, red="0:255,255:0")
    assert out.bands == 4 and out.interpretation == "srgb"
    assert (out[3] == alpha).min() == 255
    red, green, _ = table(S_CURVE, red="0:255,255:0")
    assert vpixel(out, 10, 3)[:2] == [red[int(image(10, 3)[0])], green[int(image(10, 3)[1])]]


def test_a_grey_image_stays_grey_unless_the_channels_differ() -> None:
    grey = op(ramp(1), all="0:0,128:64,255:255", smooth=False)
    assert grey.bands == 1 and grey.interpretation == "b-w"
    assert band(grey, 0)[64] == 32
    same = op(ramp(1), red=S_CURVE, green=S_CURVE, blue=S_CURVE)
    assert same.bands == 1 and band(same, 0) == list(table(S_CURVE)[0])
    coloured = op(ramp(1), red="0:255,255:0")
    assert coloured.bands == 3 and coloured.interpretation == "srgb"
    assert band(coloured, 0) == [255 - v for v in range(256)]
    assert band(coloured, 1) == band(coloured, 2) == list(range(256))
    with_alpha = op(solid(2, 2, (90, 200)), blue="0:0,255:0")
    assert vpixel(with_alpha, 1, 1) == [90, 90, 0, 200]


def test_every_frame_of_an_animation_is_mapped() -> None:
    strip = vload(animation(), n=-1)
    out = op(strip, all="0:255,255:0")
    assert out.get("page-height") == 60 and out.height == 240
    for i, colour in enumerate(FRAME_COLOURS):
        assert frame_colour(out, i, 60) == [255 - c for c in colour], i
    r = ok(run("curves", animation(), "gif", all="0:255,255:0"))
    image, page_height, n = pages(r["data"])
    assert (r["frames"], n, page_height, image.height) == (4, 4, 60, 240)
    for i, colour in enumerate(FRAME_COLOURS):
        inverted = [255 - c for c in colour]
        got = frame_colour(image, i, 60)
        assert all(abs(a - b) <= 1 for a, b in zip(got, inverted, strict=True)), (i, got)


# -- the curves graph ------------------------------------------------------------------------


def test_the_curves_graph_and_its_defaults() -> None:
    graph = catalogue()["curves"]
    assert graph.runtime == "vips"
    for name in ("all", "red", "green", "blue"):
        assert graph.params[name].type == "curve"
        assert graph.params[name].default == IDENTITY_CURVE
    assert graph.params["smooth"].default is True
    assert graph.params["strength"].default == 1.0
    assert [n.op for n in graph.definition.nodes] == ["fit", "lut"]
    source = texture(64, 48)
    out = vload(ok(run("curves", png(source)))["data"])
    assert same_pixels(out, source)  # PNG, identity curves: the image as it was


def test_the_curves_graph_applies_its_params() -> None:
    source = texture(64, 48)
    query = {"all": S_CURVE, "blue": "0:20,255:235", "smooth": False, "width": 32}
    out = vload(ok(run("curves", png(source), **query))["data"])
    assert (out.width, out.height, out.bands) == (32, 24, 3)
    small = source.resize(0.5)
    expected = op(small, all=S_CURVE, blue="0:20,255:235", smooth=False)
    assert same_pixels(out, expected)


@pytest.mark.parametrize(
    ("param", "raw", "why"),
    [
        ("all", "0:0,300:255", "outside 0-255"),
        ("red", "0:0", "at least 2 points"),
        ("green", "0:0,9:1,9:2", "two points at in=9"),
        ("blue", "dark", "at least 2 points"),
        ("strength", "1.5", "at most 1"),
    ],
)
def test_the_curves_graph_refuses_a_bad_curve(param: str, raw: str, why: str) -> None:
    with pytest.raises(InvalidParam) as info:
        run("curves", b"", **{param: raw})
    assert info.value.code == "invalid_param" and info.value.status == 400
    assert info.value.details["param"] == param
    assert info.value.message.startswith(f"parameter '{param}' ") and why in info.value.message
