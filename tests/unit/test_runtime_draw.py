"""imgflo's colour-map and drawing graphs: ``retro`` (op ``curves``, retro-curve.c's presets),
``gradientmap`` (op ``gradient_map``, GEGL's gradient-map), ``delaunay_triangles`` (op
``delaunay``) and ``canvas`` (op ``fill``); the two that draw need no source.

Debian's GEGL has neither imgflo's retro-curve nor gradient-map, so the references here are
their definitions: the curve tables, and the gradient computed independently below."""

from __future__ import annotations

import hashlib
import itertools
import math
from typing import Any

import pytest
import pyvips

from imgserver.errors import InvalidParam
from imgserver.messages import Limits
from imgserver.runtime.registry import OPS, RETRO_PRESETS
from imgserver.runtime.vips import delaunay as delaunay_module
from imgserver.runtime.vips.curves import CURVES, IDENTITY, PRESETS, tables
from imgserver.runtime.vips.delaunay import SeedRandom, random_numbers, triangulate
from imgserver.runtime.vips.load import Context
from imgserver.runtime.vips.ops import OPERATIONS

from ..images import LIMITS, catalogue, ok, png, run, solid, texture, vload, vpixel

# -- helpers ----------------------------------------------------------------------------------


def to_linear(code: float) -> float:
    v = code / 255
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def to_code(linear: float) -> int:
    v = min(1.0, max(0.0, linear))
    v = v * 12.92 if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055
    return int(v * 255 + 0.5)


def ctx() -> Context:
    return Context(Limits(**LIMITS), None)


def op(name: str, image: pyvips.Image, **args: Any) -> pyvips.Image:
    return OPERATIONS[name]([image], {**defaults(name), **args}, ctx())


def defaults(name: str) -> dict[str, Any]:
    return {arg: spec.default for arg, spec in OPS[name].args.items()}


def ramp(alpha: int | None = None) -> pyvips.Image:
    """256 x 4 grey (as sRGB): column v has the value v."""
    xyz = pyvips.Image.xyz(256, 4)
    v = xyz[0].cast("uchar")
    image = v.bandjoin([v, v])
    if alpha is not None:
        image = image.bandjoin(v * 0 + alpha).cast("uchar")
    return image.copy(interpretation="srgb")


def row(image: pyvips.Image) -> list[list[int]]:
    """The pixels of the first row."""
    return [[int(c) for c in vpixel(image, x, 0)] for x in range(image.width)]


# -- curves and retro ---------------------------------------------------------------------------


def test_every_preset_is_declared() -> None:
    assert PRESETS == RETRO_PRESETS == OPS["curves"].args["preset"].values
    assert catalogue()["retro"].params["preset"].values == RETRO_PRESETS
    assert set(CURVES) == set(PRESETS) - {"none"}


@pytest.mark.parametrize("query", [{"preset": "sepia"}, {"strength": 1.5}, {"strength": -0.1}])
def test_retro_refuses_what_is_out_of_range(query: dict[str, Any]) -> None:
    with pytest.raises(InvalidParam):
        run("retro", png(texture(8, 8)), **query)


def test_the_curves_are_retro_curve_c_s() -> None:
    """Spot checks against imgflo-components-extra's retro-curve.c (first and last entries, a
    few in between), and the composition: each channel's curve, then the common one."""
    prog_r, prog_g, prog_b, prog_a = CURVES["prog"]
    assert prog_r[:3] == (58, 58, 58) and prog_r[32:36] == (59, 60, 60, 61) and prog_r[255] == 212
    assert prog_g[0] == 40 and prog_g[255] == 255 and prog_b[0] == 45 and prog_b[255] == 198
    assert prog_a[:6] == (0, 1, 3, 4, 6, 7) and prog_a[252:] == (252, 253, 254, 255)
    assert CURVES["indie"][0][:13] == (50,) * 13 and CURVES["indie"][1][255] == 252
    assert CURVES["batcave"][2][20:24] == (0, 0, 1, 1) and CURVES["batcave"][0][255] == 255
    assert CURVES["country"][2][0] == 97 and CURVES["country"][2][255] == 176
    for preset in ("indie", "batcave", "country"):
        assert CURVES[preset][3] == IDENTITY
    red, green, blue = tables("prog")
    assert all(red[v] == prog_a[prog_r[v]] for v in range(256))
    assert all(blue[v] == prog_a[prog_b[v]] for v in range(256))
    assert green == tuple(prog_a[prog_g[v]] for v in range(256))


def test_country_raises_the_contrast_of_red_only() -> None:
    """retro-curve.c's 8-bit path: red gets (v/255 - 0.5)·1.1 + 0.45 first; green and blue,
    meant to, do not (their results are overwritten)."""
    red, green, blue = tables("country")
    r_curve, g_curve, b_curve, _ = CURVES["country"]
    assert green == g_curve and blue == b_curve
    for v in (0, 10, 24, 25, 26, 64, 128, 200, 254, 255):
        contrasted = min(1.0, max(0.0, (v / 255 - 0.5) * 1.1 - 0.05 + 0.5))
        assert abs(red[v] - r_curve[int(contrasted * 255)]) <= 1, v  # float32 vs double
    assert red[0] == r_curve[0] and red[24] == r_curve[0] and red[255] == r_curve[255]


def expected_curved(preset: str, colour: tuple[int, int, int]) -> list[int]:
    """retro-curve's 8-bit result for one colour, computed from the tables."""
    out = [tables(preset)[c][colour[c]] for c in range(3)]
    if preset == "indie":
        top = max(out)
        out = [c + int((top - c) * 0.1 + 0.5) for c in out]
    return out


COLOURS = [(0, 0, 0), (255, 255, 255), (10, 200, 100), (128, 64, 250), (33, 33, 33)]


@pytest.mark.parametrize("preset", ["prog", "indie", "batcave", "country"])
@pytest.mark.parametrize("srgb", [True, False], ids=["srgb", "linear"])
def test_exact_curve_values_on_solid_colours(preset: str, srgb: bool) -> None:
    for colour in COLOURS:
        out = op("curves", solid(4, 3, colour), preset=preset, strength=1.0, srgb=srgb)
        assert out.bands == 3 and out.format == "uchar"
        assert vpixel(out, 3, 2) == expected_curved(preset, colour), colour


def test_indie_moves_channels_towards_the_brightest() -> None:
    colour = (10, 200, 100)
    curved = [tables("indie")[c][colour[c]] for c in range(3)]
    out = vpixel(op("curves", solid(2, 2, colour), preset="indie", strength=1.0), 0, 0)
    assert max(out) == max(curved)
    assert all(o >= c for o, c in zip(out, curved, strict=True)) and out != curved


def test_strength_zero_and_none_leave_the_image_as_it_is() -> None:
    image = texture(40, 30)
    for args in ({"strength": 0.0}, {"preset": "none", "strength": 1.0}):
        out = op("curves", image, **args)
        assert out.write_to_memory() == image.write_to_memory()


@pytest.mark.parametrize("strength", [0.25, 0.5, 0.75])
def test_strength_mixes_on_srgb_values_or_in_linear_light(strength: float) -> None:
    colour = (200, 40, 90)
    curved = expected_curved("batcave", colour)
    srgb = vpixel(op("curves", solid(2, 2, colour), preset="batcave", strength=strength), 0, 0)
    mixed = [
        round(strength * c + (1 - strength) * v, 6) for c, v in zip(curved, colour, strict=True)
    ]
    assert all(abs(o - m) <= 0.5 + 1e-6 for o, m in zip(srgb, mixed, strict=True)), (srgb, mixed)
    linear = op("curves", solid(2, 2, colour), preset="batcave", strength=strength, srgb=False)
    expected = [
        to_code(strength * to_linear(c) + (1 - strength) * to_linear(v))
        for c, v in zip(curved, colour, strict=True)
    ]
    assert all(abs(o - e) <= 1 for o, e in zip(vpixel(linear, 0, 0), expected, strict=True))
    assert vpixel(linear, 0, 0) != srgb  # mixing in linear light is lighter


def test_retro_batcave_as_imgflo_asks_for_it() -> None:
    """imgflo-server's test request: /graph/retro.png?input=…&preset=batcave (strength 0.5 and
    srgb true by default): the curved image at half opacity over the original, on sRGB values."""
    graph = catalogue()["retro"]
    assert {n: graph.params[n].default for n in ("preset", "strength", "srgb")} == {
        "preset": "prog",
        "strength": 0.5,
        "srgb": True,
    }
    source = texture(64, 48)
    out = vload(ok(run("retro", png(source), preset="batcave"))["data"])
    assert (out.width, out.height, out.bands) == (64, 48, 3)
    lut = tables("batcave")
    for x, y in [(0, 0), (10, 5), (33, 21), (63, 47), (50, 12)]:
        v = [int(c) for c in vpixel(source, x, y)]
        mixed = [(lut[c][v[c]] + v[c]) / 2 for c in range(3)]
        assert all(abs(o - m) <= 0.5 for o, m in zip(vpixel(out, x, y), mixed, strict=True))


def test_alpha_is_kept_and_grey_gains_colour() -> None:
    """The curved image keeps the original's alpha (imgflo's retro-curve dropped it, which made
    transparent areas opaque): it lies over the original as the original is."""
    colour = (100, 150, 200)
    pixels = [solid(1, 1, (*colour, a)) for a in (0, 128, 255)]
    source = pixels[0].join(pixels[1], "horizontal").join(pixels[2], "horizontal")
    rgba = op("curves", source.copy(interpretation="srgb"), preset="prog", strength=1.0)
    curved = expected_curved("prog", colour)
    a = 128 / 255
    out_a = a + a - a * a  # Sa = Da = a: svg:src-over
    mixed = [(a * c + a * (1 - a) * v) / out_a for c, v in zip(curved, colour, strict=True)]
    assert rgba.bands == 4
    assert vpixel(rgba, 0, 0)[3] == 0
    assert vpixel(rgba, 1, 0)[3] == int(out_a * 255 + 0.5)
    assert all(abs(o - m) <= 0.5 for o, m in zip(vpixel(rgba, 1, 0), mixed, strict=False))
    assert vpixel(rgba, 2, 0) == [*curved, 255]
    grey = op("curves", solid(3, 3, (90,)), preset="prog", strength=1.0)
    assert grey.bands == 3 and grey.interpretation == "srgb"
    assert vpixel(grey, 1, 1) == expected_curved("prog", (90, 90, 90))


# -- gradient_map and gradientmap -------------------------------------------------------------


def hexrgb(colour: str) -> tuple[int, ...]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def gradient_model(t: float, stops: list[float], colours: list[str]) -> list[float]:
    """The gradient at t, on sRGB codes (an independent model: stops sorted, colours constant
    before the first and after the last, linear in between)."""
    points = sorted(zip(stops, [hexrgb(c) for c in colours], strict=True), key=lambda p: p[0])
    if t <= points[0][0]:
        return list(points[0][1])
    for (s0, c0), (s1, c1) in itertools.pairwise(points):
        if s0 < t <= s1:
            w = (t - s0) / (s1 - s0)
            return [a + w * (b - a) for a, b in zip(c0, c1, strict=True)]
    return list(points[-1][1])


def test_gradient_with_several_stops_as_imgflo_asks_for_it() -> None:
    """imgflo-server's test request "gradient_multiple_stops": a black-to-white ramp, five
    colours at 0, 0.3, 0.5, 0.7, 0.9, srgb, opacity 0.9 (laid over the ramp in linear light)."""
    colours = ["#555555", "#ff0000", "#00ff00", "#0000ff", "#dddddd"]
    stops = [0.0, 0.3, 0.5, 0.7, 0.9]
    query: dict[str, Any] = {f"color{i + 1}": c for i, c in enumerate(colours)}
    query |= {f"stop{i + 1}": s for i, s in enumerate(stops)}
    out = vload(ok(run("gradientmap", png(ramp()), srgb=True, opacity=0.9, **query))["data"])
    assert (out.width, out.height, out.bands) == (256, 4, 3)
    for v, pixel in enumerate(row(out)):
        mapped = gradient_model(v / 255, stops, colours)
        expected = [to_code(0.9 * to_linear(m) + 0.1 * to_linear(v)) for m in mapped]
        assert all(abs(p - e) <= 1 for p, e in zip(pixel, expected, strict=True)), (v, pixel)
    assert row(out)[0] == [to_code(0.9 * to_linear(0x55))] * 3
    assert row(out)[255] == [to_code(0.9 * to_linear(0xDD) + 0.1)] * 3


def test_exact_colours_at_the_stops() -> None:
    colours = ["#102030", "#ff8000", "#00c0ff", "#f0f0f0", "#ffffff"]
    stops = [0.0, 0.2, 0.6, 1.0, 1.0]  # grey 0, 51, 153, 255
    args = {f"color{i + 1}": c for i, c in enumerate(colours)}
    args |= {f"stop{i + 1}": s for i, s in enumerate(stops)}
    out = row(op("gradient_map", ramp(), srgb=True, **args))
    for v, colour in [(0, "#102030"), (51, "#ff8000"), (153, "#00c0ff"), (255, "#f0f0f0")]:
        assert out[v] == list(hexrgb(colour)), v
    for v in (20, 100, 200):  # in between: the model
        expected = gradient_model(v / 255, stops, colours)
        assert all(abs(o - e) <= 0.5 for o, e in zip(out[v], expected, strict=True)), v


def test_stops_out_of_order_are_taken_in_order_of_position() -> None:
    ordered = {"color1": "#000000", "stop1": 0.0, "color2": "#ff0000", "stop2": 0.4}
    ordered |= {"color3": "#0000ff", "stop3": 0.8, "color4": "#ffffff", "stop4": 1.0}
    shuffled = {"color1": "#0000ff", "stop1": 0.8, "color2": "#ffffff", "stop2": 1.0}
    shuffled |= {"color3": "#000000", "stop3": 0.0, "color4": "#ff0000", "stop4": 0.4}
    a = op("gradient_map", ramp(), srgb=True, **ordered)
    b = op("gradient_map", ramp(), srgb=True, **shuffled)
    assert a.write_to_memory() == b.write_to_memory()
    assert row(a)[102] == [255, 0, 0] and row(a)[204] == [0, 0, 255]


def test_equal_stops_make_a_hard_edge_and_the_ends_hold_their_colours() -> None:
    args = {"color1": "#ff0000", "stop1": 0.2, "color2": "#00ff00", "stop2": 0.5}
    args |= {"color3": "#0000ff", "stop3": 0.5, "color4": "#0000ff", "stop4": 0.8}
    args |= {"color5": "#0000ff", "stop5": 0.8}
    out = row(op("gradient_map", ramp(), srgb=True, **args))
    assert all(out[v] == [255, 0, 0] for v in range(52))  # before the first stop
    assert all(out[v] == [0, 0, 255] for v in range(128, 256))  # after the edge at 0.5
    assert out[127][1] > 245 and out[127][0] < 10  # green just below the edge


def test_the_default_gradient_gives_the_luminance() -> None:
    """Black at 0 to white at 1: in linear light (the default) or on sRGB values alike, a grey
    value maps to itself: a colour image becomes GEGL's gray of it."""
    image = texture(60, 40)
    grey = op("greyscale", image)
    for srgb in (False, True):
        out = op("gradient_map", image, srgb=srgb)
        assert out.bands == 3
        assert abs(out - grey.bandjoin([grey, grey])).max() <= 1
    ramp_out = op("gradient_map", ramp())
    assert abs(ramp_out - ramp()).max() <= 1


def test_srgb_decides_where_the_grey_value_and_the_mix_are() -> None:
    args = {"color1": "#000000", "color2": "#ff0000"}
    linear = row(op("gradient_map", ramp(), **args))
    srgb = row(op("gradient_map", ramp(), srgb=True, **args))
    for v in (64, 128, 192):
        assert srgb[v] == [v, 0, 0]  # Y' = v, mixed on sRGB values: red = v
        assert abs(linear[v][0] - v) <= 1  # Y = lin(v) mixed in linear light: the same red
    two = {"color1": "#ff0000", "color2": "#0000ff"}
    mid_srgb = row(op("gradient_map", ramp(), srgb=True, **two))[128]
    mid_linear = row(op("gradient_map", ramp(), **two))[128]
    assert mid_srgb != mid_linear


def test_opacity_and_alpha() -> None:
    args = {"color1": "#ff0000", "color2": "#ff0000"}
    out = row(op("gradient_map", ramp(), opacity=0.5, **args))
    assert out[0] == [to_code(0.5), 0, 0] and out[255][0] == 255
    assert out[255][1] == to_code(0.5 * to_linear(255))
    half = row(op("gradient_map", ramp(), **{"color1": "#ff000080", "color2": "#ff000080"}))
    assert half[0] == [to_code(128 / 255), 0, 0]  # the colour's own alpha, over black
    assert op("gradient_map", ramp()).bands == 3
    with_alpha = row(op("gradient_map", ramp(alpha=100), **args))
    a = 100 / 255  # the effect's alpha is the pixel's: red (Sa = a) over black (Da = a)
    out_a = a + a - a * a
    assert with_alpha[0] == [to_code(a / out_a), 0, 0, int(out_a * 255 + 0.5)]
    untouched = op("gradient_map", ramp(), opacity=0.0, **args)
    assert untouched.write_to_memory() == ramp().write_to_memory()


def test_gradientmap_takes_imgflo_s_inports() -> None:
    params = catalogue()["gradientmap"].params
    for i in range(1, 6):
        assert params[f"color{i}"].default == ("#000000" if i == 1 else "#ffffff")
        assert params[f"stop{i}"].default == (0 if i == 1 else 1)
        assert (params[f"stop{i}"].minimum, params[f"stop{i}"].maximum) == (0, 1)
    assert params["srgb"].default is False and params["opacity"].default == 1


@pytest.mark.parametrize("query", [{"stop3": 1.01}, {"opacity": 2}, {"color2": "#12345"}])
def test_gradientmap_refuses_what_is_out_of_range(query: dict[str, Any]) -> None:
    with pytest.raises(InvalidParam):
        run("gradientmap", png(texture(8, 8)), **query)


# -- delaunay and delaunay_triangles -----------------------------------------------------------


def test_seedrandom_gives_its_published_sequence() -> None:
    """seedrandom's README: ``seedrandom('hello.')()`` is always 0.9282578795792454."""
    assert SeedRandom("hello.")() == 0.9282578795792454
    numbers = random_numbers("abc", 1000, -200, 300)
    assert all(-200 <= n < 300 for n in numbers) and len(set(numbers)) == 1000


def test_each_list_restarts_the_generator() -> None:
    """noflo-seedrandom's RandomArray seeds a fresh generator for every list it makes."""
    assert hashlib.md5(b"foobar").hexdigest() == "3858f62230ac3c915f300c664312c63f"
    rng = SeedRandom("3858f")
    expected = [-200 + rng() * 500 for _ in range(5)]
    assert random_numbers("3858f", 5, -200, 300) == expected
    assert random_numbers("3858f", 5, -200, 300) == expected
    assert random_numbers("3858f6", 5, -200, 300) != expected


def circumcircle(a: Any, b: Any, c: Any) -> tuple[float, float, float]:
    (ax, ay), (bx, by), (cx, cy) = a, b, c
    d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    ux = (ax**2 + ay**2) * (by - cy) + (bx**2 + by**2) * (cy - ay) + (cx**2 + cy**2) * (ay - by)
    uy = (ax**2 + ay**2) * (cx - bx) + (bx**2 + by**2) * (ax - cx) + (cx**2 + cy**2) * (bx - ax)
    ux, uy = ux / d, uy / d
    return ux, uy, (ax - ux) ** 2 + (ay - uy) ** 2


def hull_area(points: list[tuple[float, float]]) -> tuple[float, int]:
    def cross(o: Any, a: Any, b: Any) -> float:
        return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))

    pts = sorted(points)
    lower: list[Any] = []
    upper: list[Any] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = lower[:-1] + upper[:-1]
    n = len(hull)
    twice = sum(
        hull[i][0] * hull[(i + 1) % n][1] - hull[(i + 1) % n][0] * hull[i][1] for i in range(n)
    )
    return abs(twice) / 2, n


@pytest.mark.parametrize("seed", ["foobar", "imgflo", "", "ünïcode ✓"])
def test_the_triangulation_is_delaunay(seed: str) -> None:
    digest = hashlib.md5(seed.encode()).hexdigest()
    xs = random_numbers(digest, 50, -200, 300)
    points = list(zip(xs, random_numbers(digest[:5], 50, -200, 300), strict=True))
    triangles = triangulate(points)
    area, hull = hull_area(points)
    # all of them but, as delaunay.js (its supertriangle is finite), a sliver along the hull
    complete = 2 * len(points) - 2 - hull
    assert complete - 2 <= len(triangles) <= complete
    assert len(set(map(frozenset, triangles))) == len(triangles)
    total = 0.0
    for tri in triangles:
        a, b, c = (points[i] for i in tri)
        total += abs((b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])) / 2
        ux, uy, r2 = circumcircle(a, b, c)
        for k, p in enumerate(points):
            if k not in tri:
                assert (p[0] - ux) ** 2 + (p[1] - uy) ** 2 >= r2 * (1 - 1e-9), (tri, k)
    assert total <= area * (1 + 1e-9)  # no overlap
    assert total == pytest.approx(area, rel=1e-9) or len(triangles) < complete


def test_triangles_sharing_an_edge_paint_each_pixel_once() -> None:
    width, height = 37, 23
    corners = [(-0.3, 1.7), (35.2, -2.0), (36.9, 22.6), (0.4, 24.0)]
    counts = [0] * (width * height)
    for tri in ((0, 1, 2), (0, 2, 3)):
        for y, x0, x1 in delaunay_module._spans([corners[i] for i in tri], width, height):
            for x in range(x0, x1):
                counts[y * width + x] += 1
    assert max(counts) == 1
    assert counts.count(0) < 2 * (width + height)  # only along the quadrilateral's edges


def draw(**query: Any) -> pyvips.Image:
    return vload(ok(run("delaunay_triangles", b"", **query))["data"])


def test_delaunay_foobar_as_imgflo_asks_for_it() -> None:
    """imgflo-server's test request: delaunay_triangles.png?seed=foobar&width=100&height=100"""
    result = ok(run("delaunay_triangles", b"", seed="foobar", width=100, height=100))
    image = vload(result["data"])
    assert (image.width, image.height, image.bands) == (100, 100, 3)
    assert image.interpretation == "srgb"
    again = ok(run("delaunay_triangles", b"", seed="foobar", width=100, height=100))
    assert again["data"] == result["data"]
    digest = hashlib.md5(b"foobar").hexdigest()
    reds = random_numbers(digest[:10], 10, 0, 255)
    greens = random_numbers(digest[:15], 10, 0, 255)
    blues = random_numbers(digest[:20], 10, 0, 255)
    palette = {
        tuple(int(0.9 * math.floor(c + 0.5) + 0.1 * 0xDD + 0.5) for c in rgb)
        for rgb in zip(reds, greens, blues, strict=True)
    } | {(0xDD,) * 3}
    grid = [(x, y) for x in range(0, 100, 3) for y in range(0, 100, 3)]
    seen = {tuple(int(v) for v in vpixel(image, x, y)) for x, y in grid}
    assert seen <= palette and len(seen) >= 3


def test_the_same_seed_gives_the_same_bytes_another_seed_another_image() -> None:
    a = OPERATIONS["delaunay"]([], {"seed": "one", "width": 80, "height": 60}, ctx())
    b = OPERATIONS["delaunay"]([], {"seed": "one", "width": 80, "height": 60}, ctx())
    c = OPERATIONS["delaunay"]([], {"seed": "two", "width": 80, "height": 60}, ctx())
    assert a.write_to_memory() == b.write_to_memory()
    assert a.write_to_memory() != c.write_to_memory()


def test_delaunay_size_defaults_and_limits() -> None:
    assert OPS["delaunay"].inputs == () and not OPS["delaunay"].frames
    graph = catalogue()["delaunay_triangles"]
    assert not graph.definition.needs_source
    assert (graph.params["width"].default, graph.params["height"].default) == (600, 400)
    assert graph.params["seed"].type == "string"
    image = draw()
    assert (image.width, image.height) == (600, 400)
    for bad in ({"width": 0}, {"height": 16385}, {"width": "wide"}):
        with pytest.raises(InvalidParam):
            run("delaunay_triangles", b"", **bad)
    too_big = run("delaunay_triangles", b"", width=5000, height=5001)
    assert not too_big["ok"] and too_big["error"]["code"] == "too_many_pixels"


# -- canvas -----------------------------------------------------------------------------------


def test_canvas() -> None:
    graph = catalogue()["canvas"]
    assert not graph.definition.needs_source
    image = vload(ok(run("canvas", b""))["data"])
    assert (image.width, image.height, image.bands) == (600, 400, 3)
    assert image.min() == 0 and vpixel(image, 599, 399) == [255, 0, 255]
    teal = vload(ok(run("canvas", b"", color="#87a9a7", width=30, height=20))["data"])
    assert (teal.width, teal.height) == (30, 20) and vpixel(teal, 0, 0) == [0x87, 0xA9, 0xA7]
    with pytest.raises(InvalidParam):
        run("canvas", b"", color="magenta")


def test_a_canvas_too_wide_for_webp_is_refused_clearly() -> None:
    from multidict import MultiDict

    from imgserver.messages import Limits, RenderFailed, RenderJob
    from imgserver.request import parse_params
    from imgserver.runtime.execute import execute

    from ..images import LIMITS, catalogue

    g = catalogue()["canvas"]
    params, _ = parse_params(g, MultiDict({"width": "16384", "height": "10"}))
    out = execute(RenderJob(g.name, g.definition, params, "webp", "", Limits(**LIMITS)), b"")
    assert isinstance(out, RenderFailed) and out.error.code == "too_many_pixels"
    assert "at most 16383 pixels a side" in out.error.message
