"""The Pillow runtime, run in-process through ``execute`` on generated images.

The catalogue's graphs run on libvips; here each one gets a Pillow twin (the same JSON with
``"runtime": "pillow"``), so both runtimes answer the same cases. ``autocontrast`` is Pillow's own.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import pyvips
from PIL import Image

from imgserver.catalogue import Graph
from imgserver.formats import sniff

from ..images import (
    BLUE,
    FRAME_COLOURS,
    RED,
    alpha_png,
    animation,
    builtin_profile,
    catalogue,
    close,
    cmyk_jpeg,
    coords,
    corner,
    frame_colour,
    halves,
    jpeg,
    marked,
    mean,
    metadata_fields,
    ok,
    p3_tagged,
    pages,
    pillow_graph,
    pillow_twin,
    pload,
    png,
    png16,
    png_bit_depth,
    png_colour_type,
    quadrant,
    run,
    solid,
    texture,
    to_pil,
    vload,
    vpixel,
    with_metadata,
    with_orientation,
)
from .test_runtime_vips import ANIMATED_CASES, RESIZE_CASES, UNDECODABLE, UPRIGHT

OUTPUT_FORMATS = ("jpeg", "png", "webp", "avif", "gif")
TWINS = ("compress", "crop", "gaussianblur", "noop", "passthrough", "resize")
# The catalogue's desaturate is c2g, libvips only: the Pillow runtime's desaturate op in a graph
DESATURATE = {
    "params": {"amount": {"type": "number", "default": 1, "minimum": 0, "maximum": 1}},
    "nodes": {
        "fit": {"op": "fit", "args": {"width": {"param": "width"}, "height": {"param": "height"}}},
        "grey": {"op": "desaturate", "in": "fit", "args": {"amount": {"param": "amount"}}},
    },
    "output": "grey",
}


@pytest.fixture(scope="module")
def g(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Graph]:
    """Pillow twins of the catalogue's graphs, by name."""
    directory = tmp_path_factory.mktemp("pillow-graphs")
    graphs = {name: pillow_twin(name, directory) for name in TWINS}
    graphs["autocontrast"] = catalogue()["autocontrast"]
    graphs["desaturate"] = pillow_graph(directory, "desaturate", **DESATURATE)
    assert {graph.runtime for graph in graphs.values()} == {"pillow"}
    return graphs


@pytest.fixture
def resize_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every size Pillow is asked to resize to (ImageOps.fit resizes through it too)."""
    sizes: list[tuple[int, int]] = []
    original = Image.Image.resize

    def spy(self: Image.Image, size: Any, *args: Any, **kwargs: Any) -> Image.Image:
        sizes.append(tuple(size))
        return original(self, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", spy)
    return sizes


@pytest.mark.parametrize("fmt", [*OUTPUT_FORMATS, "auto"])
@pytest.mark.parametrize("name", [*TWINS, "autocontrast"])
def test_every_graph_produces_a_decodable_image(g: dict, name: str, fmt: str) -> None:
    src = jpeg(texture(120, 80))
    r = ok(run(g[name], src, fmt, width=60))
    assert sniff(r["data"]) == r["format"]
    if name == "noop":
        assert (r["format"], r["data"]) == ("jpeg", src)
        return
    out = vload(r["data"])
    assert r["format"] == ("jpeg" if fmt == "auto" else fmt)
    assert (out.width, out.height) == (r["width"], r["height"]) == (60, 40)
    assert r["frames"] == 1 and r["warnings"] == []


# -- EXIF orientation -------------------------------------------------------------------------


def _check_upright(out: pyvips.Image, orientation: int) -> None:
    mark, _ = UPRIGHT[orientation]
    assert close(corner(out, mark), RED, 40), corner(out, mark)
    for c in ("top-left", "top-right", "bottom-left", "bottom-right"):
        if c != mark:
            assert close(corner(out, c), BLUE, 40), (c, corner(out, c))


@pytest.mark.parametrize("orientation", [6, 8])
@pytest.mark.parametrize(
    ("name", "query", "size"),
    [
        ("passthrough", {"width": 50}, (50, 100)),
        ("passthrough", {"width": 50, "height": 50}, (25, 50)),  # JPEG draft on load
        ("crop", {}, (100, 200)),
        # draft works on the stored pixels, the box is upright: a 100x50 box must not be
        # applied to the stored 200x100 image, or the result comes out 50x50
        ("resize", {"width": 100, "height": 50, "mode": "fill"}, (100, 50)),
        ("resize", {"width": 50, "height": 100, "mode": "fill"}, (50, 100)),
    ],
)
def test_exif_rotation(g: dict, orientation: int, name: str, query: dict, size: tuple) -> None:
    src = with_orientation(marked(200, 100, 40), orientation)
    r = ok(run(g[name], src, "png", **query))
    out = vload(r["data"])
    assert (out.width, out.height) == (r["width"], r["height"]) == size
    _check_upright(out, orientation)


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotation_crop_coordinates_are_upright(g: dict, orientation: int) -> None:
    src = with_orientation(marked(200, 100, 40), orientation)
    _, (x, y) = UPRIGHT[orientation]
    out = vload(ok(run(g["crop"], src, "png", x=x, y=y, cropwidth=40, cropheight=40))["data"])
    assert (out.width, out.height) == (40, 40)
    assert close(mean(out), RED, 25)


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotation_with_resize_crop(g: dict, orientation: int) -> None:
    src = with_orientation(marked(400, 200, 80), orientation)
    out = vload(ok(run(g["resize"], src, "png", width=100, height=50, mode="crop"))["data"])
    assert (out.width, out.height) == (100, 50)


# -- colour -----------------------------------------------------------------------------------


@pytest.mark.parametrize("icc", [True, False], ids=["icc", "no-icc"])
@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_cmyk_becomes_srgb(g: dict, icc: bool, fmt: str) -> None:
    src = cmyk_jpeg((255, 0, 0, 0), icc=icc)
    assert pload(src).mode == "CMYK"
    out = vload(ok(run(g["passthrough"], src, fmt, width=32))["data"])
    assert out.bands == 3 and out.interpretation == "srgb"
    r_, g_, b = vpixel(out, 5, 5)
    assert r_ < 40 and g_ > 120 and b > 190, (r_, g_, b)


@pytest.mark.parametrize("saver", ["png", "jpeg"])
def test_icc_tagged_rgb_is_converted_to_srgb(g: dict, saver: str) -> None:
    out = vload(ok(run(g["passthrough"], p3_tagged(RED, saver=saver), "png"))["data"])
    assert close(vpixel(out, 5, 5), RED, 6), vpixel(out, 5, 5)


def test_unusable_profile_is_dropped_with_a_warning(g: dict) -> None:
    out = io.BytesIO()
    to_pil(texture(64, 48)).save(out, "PNG", icc_profile=b"not a profile" * 20)
    r = ok(run(g["passthrough"], out.getvalue(), "png"))
    assert any("colour profile" in w for w in r["warnings"])
    assert close(vpixel(vload(r["data"]), 63, 0), vpixel(texture(64, 48), 63, 0), 1)


@pytest.mark.parametrize(
    ("colour", "bands", "expected"),
    [((65535, 32896, 0), 3, (255, 128, 0)), ((32896,), 1, (128,))],
    ids=["rgb16", "grey16"],
)
@pytest.mark.parametrize("query", [{}, {"width": 32}])
def test_16_bit_becomes_8_bit(
    g: dict, colour: tuple, bands: int, expected: tuple, query: dict
) -> None:
    r = ok(run(g["passthrough"], png16(colour), "png", **query))
    assert png_bit_depth(r["data"]) == 8
    out = vload(r["data"])
    assert out.format == "uchar" and out.bands == bands
    assert close(vpixel(out, 5, 5), expected, 1), vpixel(out, 5, 5)


# -- alpha ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "webp", "avif", "gif"])
def test_alpha_is_kept(g: dict, fmt: str) -> None:
    out = vload(ok(run(g["passthrough"], alpha_png(), fmt, width=32))["data"])
    assert out.bands == 4
    assert corner(out, "top-left")[3] == 0
    assert close(corner(out, "top-right"), (*RED, 255), 4)


@pytest.mark.parametrize("fmt", ["png", "webp", "gif"])
def test_grey_alpha_is_kept(g: dict, fmt: str) -> None:
    src = png(solid(32, 32, (0, 0)).join(solid(32, 32, (200, 255)), "horizontal"))
    out = vload(ok(run(g["passthrough"], src, fmt))["data"])
    assert out.hasalpha()
    assert corner(out, "top-left")[-1] == 0 and close(corner(out, "top-right")[-1:], (255,), 0)


@pytest.mark.parametrize("src", [alpha_png(), png(solid(64, 64, (0, 0)))], ids=["rgba", "la"])
def test_alpha_is_flattened_onto_white_for_jpeg(g: dict, src: bytes) -> None:
    out = vload(ok(run(g["passthrough"], src, "jpeg"))["data"])
    assert not out.hasalpha()
    assert close(corner(out, "top-left"), (255,) * out.bands, 3)


@pytest.mark.parametrize(
    ("mode", "icc"), [("P", False), ("P", True), ("RGB", False), ("RGB", True), ("L", False)]
)
def test_trns_transparency_is_kept(g: dict, mode: str, icc: bool) -> None:
    """A tRNS chunk (transparent palette entry or colour) is alpha too, profile or not."""
    im = Image.new("RGB", (64, 64), (0, 0, 0))
    im.paste(RED, (32, 0, 64, 64))
    options: dict[str, Any] = {"icc_profile": builtin_profile("srgb")} if icc else {}
    if mode == "P":
        im = im.quantize(4)
        options["transparency"] = im.getpixel((0, 0))
    elif mode == "L":
        im = im.convert("L")
        options["transparency"] = 0
    else:
        options["transparency"] = (0, 0, 0)
    out = io.BytesIO()
    im.save(out, "PNG", **options)
    assert pload(out.getvalue()).mode == mode
    result = vload(ok(run(g["passthrough"], out.getvalue(), "png"))["data"])
    assert result.hasalpha()
    assert corner(result, "top-left")[-1] == 0 and corner(result, "top-right")[-1] == 255


@pytest.mark.parametrize(
    ("src", "expected"),
    [(jpeg(texture(64, 64)), "jpeg"), (png(texture(64, 64)), "jpeg"), (alpha_png(), "png")],
    ids=["jpeg", "opaque-png", "alpha-png"],
)
def test_auto_format(g: dict, src: bytes, expected: str) -> None:
    r = ok(run(g["passthrough"], src, "auto"))
    assert r["format"] == expected == sniff(r["data"])


# -- metadata ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
@pytest.mark.parametrize("query", [{}, {"width": 60}])
def test_metadata_is_stripped(g: dict, fmt: str, query: dict) -> None:
    data = ok(run(g["passthrough"], with_metadata(texture(120, 80)), fmt, **query))["data"]
    assert metadata_fields(data) == set()
    assert b"TestMaker" not in data and b"TestXMP" not in data


# -- animation --------------------------------------------------------------------------------


@pytest.mark.parametrize("saver", ["gif", "webp"])
@pytest.mark.parametrize("fmt", ["gif", "webp", "auto"])
@pytest.mark.parametrize(("name", "query", "width", "height"), ANIMATED_CASES)
def test_animation_keeps_every_frame(
    g: dict, saver: str, fmt: str, name: str, query: dict, width: int, height: int
) -> None:
    r = ok(run(g[name], animation(saver=saver), fmt, **query))
    assert r["format"] == ("gif" if fmt == "auto" else fmt)
    assert (r["width"], r["height"], r["frames"]) == (width, height, 4)
    image, page_height, n = pages(r["data"])
    assert (image.width, page_height, n) == (width, height, 4)
    for i, colour in enumerate(FRAME_COLOURS):
        assert close(frame_colour(image, i, page_height), colour, 6), (i, colour)


@pytest.mark.parametrize("saver", ["gif", "webp"])
@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_animation_to_a_still_format_is_the_first_frame(g: dict, saver: str, fmt: str) -> None:
    r = ok(run(g["passthrough"], animation(saver=saver), fmt, width=40))
    assert (r["width"], r["height"], r["frames"]) == (40, 30, 1)
    assert close(mean(vload(r["data"]))[:3], FRAME_COLOURS[0], 6)


@pytest.mark.parametrize("saver", ["gif", "webp"])
def test_max_frames_cuts_the_animation_with_a_warning(g: dict, saver: str) -> None:
    r = ok(run(g["passthrough"], animation(saver=saver), saver, limits={"max_frames": 2}))
    image, page_height, n = pages(r["data"])
    assert r["frames"] == n == 2
    assert close(frame_colour(image, 1, page_height), FRAME_COLOURS[1], 6)
    assert any("cut to 2" in w for w in r["warnings"]), r["warnings"]


# -- operations -------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "size"), RESIZE_CASES)
def test_resize_dimensions_match_libvips(g: dict, query: dict, size: tuple) -> None:
    r = ok(run(g["resize"], jpeg(texture(300, 200)), "jpeg", **query))
    out = vload(r["data"])
    assert (out.width, out.height) == (r["width"], r["height"]) == size


@pytest.mark.parametrize(
    ("src", "gravity", "expected"),
    [
        (halves(100, 200), "north", RED),
        (halves(100, 200), "south", BLUE),
        (halves(100, 200).rot90(), "east", RED),
        (halves(100, 200).rot90(), "west", BLUE),
    ],
)
def test_resize_crop_gravity(g: dict, src: pyvips.Image, gravity: str, expected: tuple) -> None:
    out = vload(
        ok(run(g["resize"], png(src), "png", width=100, height=100, mode="crop", gravity=gravity))[
            "data"
        ]
    )
    assert (out.width, out.height) == (100, 100)
    assert close(mean(out), expected, 2), mean(out)


@pytest.mark.parametrize(
    ("query", "size", "origin"),
    [
        ({"x": 10, "y": 20, "cropwidth": 50, "cropheight": 40}, (50, 40), (10, 20)),
        ({"x": 150, "cropwidth": 100}, (50, 150), (150, 0)),
        ({"x": 199, "y": 149}, (1, 1), (199, 149)),
    ],
)
def test_crop(g: dict, query: dict, size: tuple, origin: tuple) -> None:
    out = vload(ok(run(g["crop"], png(coords(200, 150)), "png", **query))["data"])
    assert (out.width, out.height) == size
    assert vpixel(out, 0, 0) == [*origin, 0]


@pytest.mark.parametrize(("query", "param"), [({"x": 200}, "x"), ({"y": 150}, "y")])
def test_crop_origin_outside_is_invalid_param(g: dict, query: dict, param: str) -> None:
    r = run(g["crop"], png(coords(200, 150)), "png", **query)
    assert r["ok"] is False
    assert (r["error"]["code"], r["error"]["param"]) == ("invalid_param", param)


@pytest.mark.parametrize(
    ("query", "along_x", "along_y"),
    [
        ({}, True, True),
        ({"std-dev-x": 3, "std-dev-y": 0}, True, False),
        ({"std-dev-x": 0, "std-dev-y": 3}, False, True),
        ({"std-dev-x": 0, "std-dev-y": 0}, False, False),
    ],
)
def test_gaussianblur(g: dict, query: dict, along_x: bool, along_y: bool) -> None:
    out = vload(ok(run(g["gaussianblur"], png(quadrant(64)), "png", **query))["data"])
    sharp = [255.0] * 8 + [0.0] * 8
    row = [out(x, 10)[0] for x in range(24, 40)]
    col = [out(10, y)[0] for y in range(24, 40)]
    assert (row != sharp) == along_x and (col != sharp) == along_y, (row, col)


def test_gaussianblur_does_not_darken_transparent_edges(g: dict) -> None:
    query = {"std-dev-x": 3, "std-dev-y": 3}
    out = vload(ok(run(g["gaussianblur"], alpha_png(), "png", **query))["data"])
    alphas = []
    for x in range(26, 40):
        r_, g_, b, a = vpixel(out, x, 10)
        alphas.append(a)
        if a > 16:
            assert r_ > 240 and g_ < 10 and b < 10, (x, r_, g_, b, a)
    assert min(alphas) > 0 and max(alphas) < 256 and len(set(alphas)) > 5  # the edge is soft


@pytest.mark.parametrize("amount", [1, 0.5, 0])
def test_desaturate(g: dict, amount: float) -> None:
    out = vload(ok(run(g["desaturate"], png(solid(32, 32, RED)), "png", amount=amount))["data"])
    pixel = vpixel(out, 5, 5)
    if amount == 1:
        assert out.bands == 1 and 50 < pixel[0] < 150
    elif amount == 0:
        assert close(pixel, RED, 1)
    else:
        r_, g_, b = pixel
        assert 100 < r_ < 250 and 10 < g_ < 100 and g_ == b


def test_autocontrast_stretches_a_low_contrast_image(g: dict) -> None:
    low = (texture(64, 64).cast("float") * 50 / 255 + 100).cast("uchar")
    assert (low.min(), low.max()) == (100, 150)
    for query in ({}, {"width": 32}):
        out = vload(ok(run(g["autocontrast"], png(low), "png", **query))["data"])
        for band in range(3):
            assert out[band].min() <= 2 and out[band].max() >= 253


def test_autocontrast_cutoff_clips_more(g: dict) -> None:
    low = (texture(64, 64).cast("float") * 50 / 255 + 100).cast("uchar")
    plain = vload(ok(run(g["autocontrast"], png(low), "png"))["data"])
    clipped = vload(ok(run(g["autocontrast"], png(low), "png", cutoff=10))["data"])
    assert (clipped[0] == 255).avg() > (plain[0] == 255).avg()


def test_autocontrast_keeps_alpha(g: dict) -> None:
    out = vload(ok(run(g["autocontrast"], alpha_png(), "png"))["data"])
    assert out.bands == 4 and corner(out, "top-left")[3] == 0


# -- encoding ---------------------------------------------------------------------------------


def test_compress_keeps_a_source_it_cannot_improve(g: dict) -> None:
    src = jpeg(texture(64, 64), q=20, optimize_coding=True, keep="none")
    assert ok(run(g["compress"], src, "jpeg"))["data"] == src


@pytest.mark.parametrize(
    "src",
    [png(texture(128, 96)), alpha_png(), png(solid(64, 64, (90, 128)))],
    ids=["rgb", "rgba", "grey-alpha"],
)
def test_compress_png_is_quantised_or_kept(g: dict, src: bytes) -> None:
    r = ok(run(g["compress"], src, "png"))
    assert len(r["data"]) <= len(src)
    assert r["data"] == src or png_colour_type(r["data"]) == 3
    assert vload(r["data"]).hasalpha() == vload(src).hasalpha()


def test_palette_png_from_grey_alpha(g: dict, tmp_path: Path) -> None:
    graph = pillow_graph(tmp_path, "palette", {}, "source", encode={"palette": True})
    src = png(solid(32, 32, (0, 0)).join(solid(32, 32, (200, 255)), "horizontal"))
    r = ok(run(graph, src, "png"))
    assert png_colour_type(r["data"]) == 3
    out = vload(r["data"])
    assert corner(out, "top-left")[-1] == 0 and close(corner(out, "top-right"), (200,) * 3)


# -- errors -----------------------------------------------------------------------------------


def test_too_many_pixels_from_the_header(g: dict) -> None:
    src = jpeg(texture(300, 200))
    r = run(g["passthrough"], src, "jpeg", limits={"max_source_pixels": 59_999})
    assert r["ok"] is False and r["error"]["code"] == "too_many_pixels"
    assert ok(run(g["passthrough"], src, "jpeg", limits={"max_source_pixels": 60_000}))


def test_source_limit_does_not_leak_into_pillow(g: dict) -> None:
    run(g["passthrough"], jpeg(texture(300, 200)), "jpeg", limits={"max_source_pixels": 1000})
    pload(png(texture(200, 200)))  # 40,000 pixels: opens fine afterwards


@pytest.mark.parametrize(
    "query",
    [
        {"width": 16000, "height": 16000, "mode": "fill", "upscale": True},
        {"width": 16000, "upscale": True},
        {"width": 16000, "height": 16000, "mode": "crop", "upscale": True},
    ],
)
def test_too_many_output_pixels_is_refused_before_resizing(
    g: dict, query: dict, resize_sizes: list
) -> None:
    r = run(g["resize"], jpeg(texture(100, 100)), "jpeg", **query)
    assert r["ok"] is False and r["error"]["code"] == "too_many_pixels", r
    assert all(w * h <= 25_000_000 for w, h in resize_sizes), resize_sizes


@pytest.mark.parametrize("src", UNDECODABLE.values(), ids=UNDECODABLE.keys())
@pytest.mark.parametrize("query", [{}, {"width": 50, "height": 50}])
def test_undecodable_source(g: dict, src: bytes, query: dict) -> None:
    r = run(g["passthrough"], src, "jpeg", **query)
    assert r["ok"] is False
    assert r["error"]["code"] == "undecodable_source", r["error"]
