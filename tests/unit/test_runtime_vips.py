"""The libvips runtime, run in-process through ``execute`` on generated images.

Every test decodes the result and looks at its size, bands, interpretation and pixels.
"""

from __future__ import annotations

from typing import Any

import pytest
import pyvips

from imgserver.formats import sniff

from ..images import (
    BLUE,
    FRAME_COLOURS,
    GREEN,
    GREY,
    RED,
    YELLOW,
    alpha_png,
    animation,
    busy_patch,
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
    png,
    png16,
    png_bit_depth,
    png_colour_type,
    quadrant,
    run,
    solid,
    texture,
    vload,
    vpixel,
    with_metadata,
    with_orientation,
)

OUTPUT_FORMATS = ("jpeg", "png", "webp", "avif", "gif")


@pytest.fixture
def thumbnail_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record every pyvips.Image.thumbnail_source call (shrink-on-load) and pass it on."""
    calls: list[dict[str, Any]] = []
    original = pyvips.Image.thumbnail_source

    def spy(source: pyvips.Source, width: int, **kwargs: Any) -> pyvips.Image:
        calls.append({"width": width, **kwargs})
        return original(source, width, **kwargs)

    monkeypatch.setattr(pyvips.Image, "thumbnail_source", staticmethod(spy))
    return calls


# -- every graph, every format ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", [*OUTPUT_FORMATS, "auto"])
@pytest.mark.parametrize("graph", sorted(catalogue()))
def test_every_graph_produces_a_decodable_image(graph: str, fmt: str) -> None:
    src = jpeg(texture(120, 80))
    draws = not catalogue()[graph].definition.needs_source  # its width x height is its size
    r = ok(run(graph, src, fmt, width=60, **({"height": 40} if draws else {})))
    out = vload(r["data"])
    assert sniff(r["data"]) == r["format"]
    if graph == "noop":
        assert (r["format"], r["data"]) == ("jpeg", src)
        return
    assert r["format"] == ("jpeg" if fmt == "auto" else fmt)
    assert (out.width, out.height) == (r["width"], r["height"]) == (60, 40)
    assert out.format == "uchar"
    assert r["frames"] == 1 and r["warnings"] == []


def test_execute_answers_with_the_result_fields() -> None:
    r = ok(run("passthrough", jpeg(texture(64, 48)), "png"))
    assert set(r) == {
        "ok",
        "data",
        "format",
        "width",
        "height",
        "frames",
        "warnings",
        "quality",
        "quality_note",
    }
    assert isinstance(r["data"], bytes)


# -- EXIF orientation -------------------------------------------------------------------------

# A 200x100 stored image with a red 40x40 mark in its stored top-left corner.
# Orientation 6 (rotate 90 clockwise to show): the mark ends up top-right of a 100x200 image.
# Orientation 8 (rotate 90 anticlockwise): bottom-left.
UPRIGHT = {6: ("top-right", (60, 0)), 8: ("bottom-left", (0, 160))}
OTHER_CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


def _check_upright(out: pyvips.Image, orientation: int) -> None:
    mark, _ = UPRIGHT[orientation]
    assert close(corner(out, mark), RED, 40), corner(out, mark)
    for c in OTHER_CORNERS:
        if c != mark:
            assert close(corner(out, c), BLUE, 40), (c, corner(out, c))


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotation_through_shrink_on_load(orientation: int, thumbnail_calls: list) -> None:
    src = with_orientation(marked(200, 100, 40), orientation)
    r = ok(run("passthrough", src, "png", width=50))
    out = vload(r["data"])
    assert (out.width, out.height) == (r["width"], r["height"]) == (50, 100)
    _check_upright(out, orientation)
    assert len(thumbnail_calls) == 1


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotation_through_full_decode(orientation: int, thumbnail_calls: list) -> None:
    src = with_orientation(marked(200, 100, 40), orientation)
    out = vload(ok(run("crop", src, "png"))["data"])
    assert (out.width, out.height) == (100, 200)
    _check_upright(out, orientation)
    # crop coordinates are upright ones: the mark is exactly where the upright image has it
    _, (x, y) = UPRIGHT[orientation]
    r = ok(run("crop", src, "png", x=x, y=y, cropwidth=40, cropheight=40))
    patch = vload(r["data"])
    assert (patch.width, patch.height) == (40, 40)
    assert close(mean(patch), RED, 25), mean(patch)
    assert thumbnail_calls == []


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotation_before_resize_crop(orientation: int) -> None:
    src = with_orientation(marked(200, 100, 40), orientation)
    out = vload(
        ok(
            run(
                "resize",
                src,
                "png",
                width=40,
                height=40,
                mode="crop",
                gravity="south" if orientation == 8 else "north",
            )
        )["data"]
    )
    assert (out.width, out.height) == (40, 40)
    mark, _ = UPRIGHT[orientation]
    assert close(corner(out, mark), RED, 40)


# -- colour: CMYK, ICC profiles, 16 bits, grey ------------------------------------------------


@pytest.mark.parametrize("icc", [True, False], ids=["icc", "no-icc"])
@pytest.mark.parametrize(("graph", "query"), [("passthrough", {"width": 32}), ("crop", {})])
@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_cmyk_becomes_srgb(icc: bool, graph: str, query: dict, fmt: str) -> None:
    src = cmyk_jpeg((255, 0, 0, 0), icc=icc)  # pure cyan ink
    assert vload(src).interpretation == "cmyk"
    r = ok(run(graph, src, fmt, **query))
    out = vload(r["data"])
    assert out.bands == 3 and out.interpretation == "srgb" and out.format == "uchar"
    r_, g, b = vpixel(out, 5, 5)
    assert r_ < 40 and g > 120 and b > 190 and b > g, (r_, g, b)  # cyan-ish, not red or black


@pytest.mark.parametrize("saver", ["png", "jpeg"])
@pytest.mark.parametrize(("graph", "query"), [("passthrough", {"width": 32}), ("crop", {})])
def test_icc_tagged_rgb_is_converted_to_srgb(saver: str, graph: str, query: dict) -> None:
    src = p3_tagged(RED, saver=saver)
    # Read as plain numbers, sRGB red stored in Display P3 is about (234, 51, 35) ...
    assert close(vpixel(vload(src), 5, 5), (234, 51, 35), 6)
    out = vload(ok(run(graph, src, "png", **query))["data"])
    # ... and converted through its profile it is red again.
    assert out.bands == 3
    assert close(vpixel(out, 5, 5), RED, 6), vpixel(out, 5, 5)


@pytest.mark.parametrize(
    ("colour", "bands", "expected"),
    [((65535, 32896, 0), 3, (255, 128, 0)), ((32896,), 1, (128,))],
    ids=["rgb16", "grey16"],
)
@pytest.mark.parametrize(("graph", "query"), [("passthrough", {"width": 32}), ("crop", {})])
def test_16_bit_becomes_8_bit(
    colour: tuple, bands: int, expected: tuple, graph: str, query: dict
) -> None:
    r = ok(run(graph, png16(colour), "png", **query))
    assert png_bit_depth(r["data"]) == 8
    out = vload(r["data"])
    assert out.format == "uchar" and out.bands == bands
    assert close(vpixel(out, 5, 5), expected, 1), vpixel(out, 5, 5)


@pytest.mark.parametrize(
    ("graph", "query"), [("passthrough", {"width": 32}), ("passthrough", {}), ("crop", {})]
)
def test_grey_stays_one_band(graph: str, query: dict) -> None:
    out = vload(ok(run(graph, jpeg(solid(64, 48, (100,))), "jpeg", **query))["data"])
    assert out.bands == 1 and out.interpretation == "b-w"
    assert close(vpixel(out, 5, 5), (100,), 2)


# -- alpha ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "webp", "avif", "gif"])
@pytest.mark.parametrize(("graph", "query"), [("passthrough", {"width": 32}), ("crop", {})])
def test_alpha_is_kept(fmt: str, graph: str, query: dict) -> None:
    out = vload(ok(run(graph, alpha_png(), fmt, **query))["data"])
    assert out.bands == 4 and out.hasalpha()
    assert corner(out, "top-left")[3] == 0
    assert close(corner(out, "top-right"), (*RED, 255), 4)


@pytest.mark.parametrize(("graph", "query"), [("passthrough", {"width": 32}), ("crop", {})])
def test_alpha_is_flattened_onto_white_for_jpeg(graph: str, query: dict) -> None:
    out = vload(ok(run(graph, alpha_png(), "jpeg", **query))["data"])
    assert out.bands == 3
    assert close(corner(out, "top-left"), (255, 255, 255), 3)  # transparent black -> white
    assert close(corner(out, "top-right"), RED, 6)


def test_grey_alpha_is_flattened_onto_white() -> None:
    src = png(solid(32, 32, (0, 0)).join(solid(32, 32, (200, 255)), "horizontal"))
    out = vload(ok(run("passthrough", src, "jpeg"))["data"])
    assert out.bands == 1
    assert close(corner(out, "top-left"), (255,), 3) and close(corner(out, "top-right"), (200,), 3)


@pytest.mark.parametrize(
    ("src", "expected"),
    [(jpeg(texture(64, 64)), "jpeg"), (png(texture(64, 64)), "jpeg"), (alpha_png(), "png")],
    ids=["jpeg", "opaque-png", "alpha-png"],
)
def test_auto_format(src: bytes, expected: str) -> None:
    r = ok(run("passthrough", src, "auto"))
    assert r["format"] == expected == sniff(r["data"])


# -- metadata ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
@pytest.mark.parametrize(
    ("graph", "query"), [("passthrough", {}), ("passthrough", {"width": 60}), ("crop", {"x": 1})]
)
def test_metadata_is_stripped(fmt: str, graph: str, query: dict) -> None:
    src = with_metadata(texture(120, 80))
    assert metadata_fields(src) == {"exif-data", "icc-profile-data", "xmp-data"}
    data = ok(run(graph, src, fmt, **query))["data"]
    assert metadata_fields(data) == set()
    assert b"TestMaker" not in data and b"TestXMP" not in data


# -- animation --------------------------------------------------------------------------------

# 4 frames of 80x60 in FRAME_COLOURS; (graph, query, page width, page height)
ANIMATED_CASES = [
    ("passthrough", {"width": 40}, 40, 30),
    ("passthrough", {"height": 15}, 20, 15),
    ("crop", {"x": 10, "cropwidth": 35}, 35, 60),
    ("crop", {"y": 30, "width": 40}, 40, 15),
    ("resize", {"width": 40, "height": 40, "mode": "crop"}, 40, 40),
    ("resize", {"width": 40, "height": 20, "mode": "fill"}, 40, 20),
    ("gaussianblur", {"width": 40}, 40, 30),
]


@pytest.mark.parametrize("saver", ["gif", "webp"])
@pytest.mark.parametrize("fmt", ["gif", "webp", "auto"])
@pytest.mark.parametrize(("graph", "query", "width", "height"), ANIMATED_CASES)
def test_animation_keeps_every_frame(
    saver: str, fmt: str, graph: str, query: dict, width: int, height: int
) -> None:
    r = ok(run(graph, animation(saver=saver), fmt, **query))
    assert r["format"] == ("gif" if fmt == "auto" else fmt)
    assert (r["width"], r["height"], r["frames"]) == (width, height, 4)
    image, page_height, n = pages(r["data"])
    assert (image.width, page_height, n, image.height) == (width, height, 4, 4 * height)
    for i, colour in enumerate(FRAME_COLOURS):
        assert close(frame_colour(image, i, page_height), colour, 6), (i, colour)
    assert r["warnings"] == []


@pytest.mark.parametrize("saver", ["gif", "webp"])
@pytest.mark.parametrize("fmt", ["jpeg", "png"])
@pytest.mark.parametrize(("graph", "query", "width", "height"), ANIMATED_CASES)
def test_animation_to_a_still_format_is_the_first_frame(
    saver: str, fmt: str, graph: str, query: dict, width: int, height: int
) -> None:
    r = ok(run(graph, animation(saver=saver), fmt, **query))
    assert (r["width"], r["height"], r["frames"]) == (width, height, 1)
    out = vload(r["data"])
    assert (out.width, out.height) == (width, height)
    assert close(mean(out)[:3], FRAME_COLOURS[0], 6)


def test_animated_desaturate_greys_every_frame() -> None:
    r = ok(run("desaturate", animation(), "gif", width=40))
    image, page_height, n = pages(r["data"])
    assert n == 4 and page_height == 30
    # c2g makes a frame of one colour white: the frames are greyed one by one (taken together,
    # each would have the others' colours around it)
    for i in range(n):
        assert close(frame_colour(image, i, page_height), (255, 255, 255), 2)


@pytest.mark.parametrize("saver", ["gif", "webp"])
@pytest.mark.parametrize(("graph", "query"), [("passthrough", {"width": 40}), ("crop", {})])
def test_max_frames_cuts_the_animation_with_a_warning(saver: str, graph: str, query: dict) -> None:
    r = ok(run(graph, animation(saver=saver), saver, limits={"max_frames": 2}, **query))
    image, page_height, n = pages(r["data"])
    assert r["frames"] == n == 2 and image.height == 2 * page_height
    assert [close(frame_colour(image, i, page_height), FRAME_COLOURS[i], 6) for i in (0, 1)] == [
        True,
        True,
    ]
    assert any("2 of its 4 frames" in w for w in r["warnings"]), r["warnings"]


def test_noop_keeps_an_animation_untouched() -> None:
    src = animation()
    r = ok(run("noop", src, "jpeg", limits={"max_frames": 2}))
    assert r["data"] == src and r["format"] == "gif" and r["frames"] == 4


# -- shrink-on-load ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("graph", "query", "shrinks"),
    [
        ("passthrough", {"width": 50}, True),
        ("passthrough", {"height": 50}, True),
        ("resize", {"width": 50, "height": 50, "mode": "crop"}, True),
        ("compress", {"width": 50}, True),
        ("passthrough", {}, False),
        ("crop", {"width": 50}, False),
        ("crop", {"x": 10, "cropwidth": 100}, False),
    ],
)
def test_shrink_on_load(graph: str, query: dict, shrinks: bool, thumbnail_calls: list) -> None:
    ok(run(graph, jpeg(texture(200, 100)), "jpeg", **query))
    assert len(thumbnail_calls) == (1 if shrinks else 0)
    if shrinks:
        assert "fail_on=error" in thumbnail_calls[0]["option_string"]


# -- passthrough, noop ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "size"),
    [
        ({}, (300, 200)),
        ({"width": 150}, (150, 100)),
        ({"height": 50}, (75, 50)),
        ({"width": 150, "height": 50}, (75, 50)),
        ({"width": 100, "height": 100}, (100, 67)),
        ({"width": 600}, (300, 200)),  # never upscales
        ({"height": 400}, (300, 200)),
        ({"width": 900, "height": 400}, (300, 200)),
    ],
)
def test_passthrough_fits_inside_the_box(query: dict, size: tuple[int, int]) -> None:
    r = ok(run("passthrough", png(halves(300, 200)), "png", **query))
    out = vload(r["data"])
    assert (out.width, out.height) == (r["width"], r["height"]) == size
    assert close(corner(out, "top-left"), RED, 4) and close(corner(out, "bottom-right"), BLUE, 4)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "auto"])
@pytest.mark.parametrize(
    "src",
    [jpeg(texture(64, 48)), png(texture(64, 48)), animation(), animation(saver="webp")],
    ids=["jpeg", "png", "gif", "webp"],
)
def test_noop_returns_the_source_bytes(fmt: str, src: bytes) -> None:
    r = ok(run("noop", src, fmt, width=10))
    assert r["data"] == src
    assert r["format"] == sniff(src)


# -- crop -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "size", "origin"),
    [
        ({"x": 10, "y": 20, "cropwidth": 50, "cropheight": 40}, (50, 40), (10, 20)),
        ({"x": 10, "y": 20}, (190, 130), (10, 20)),  # to the edges
        ({"x": 150, "cropwidth": 100}, (50, 150), (150, 0)),  # clamped
        ({"y": 100, "cropheight": 100}, (200, 50), (0, 100)),  # clamped
        ({"x": 199, "y": 149}, (1, 1), (199, 149)),
        ({"cropwidth": 1000, "cropheight": 1000}, (200, 150), (0, 0)),
    ],
)
def test_crop_cuts_the_rectangle(
    query: dict, size: tuple[int, int], origin: tuple[int, int]
) -> None:
    r = ok(run("crop", png(coords(200, 150)), "png", **query))
    out = vload(r["data"])
    assert (out.width, out.height) == (r["width"], r["height"]) == size
    x, y = origin
    assert vpixel(out, 0, 0) == [x, y, 0]
    assert vpixel(out, size[0] - 1, size[1] - 1) == [x + size[0] - 1, y + size[1] - 1, 0]


def test_crop_then_fit() -> None:
    r = ok(run("crop", png(coords(200, 150)), "png", x=100, cropwidth=100, cropheight=50, width=50))
    assert (r["width"], r["height"]) == (50, 25)


@pytest.mark.parametrize(
    ("query", "param"), [({"x": 200}, "x"), ({"y": 150}, "y"), ({"x": 500, "y": 500}, "x")]
)
def test_crop_origin_outside_is_invalid_param(query: dict, param: str) -> None:
    r = run("crop", png(coords(200, 150)), "png", **query)
    assert r["ok"] is False
    assert r["error"]["code"] == "invalid_param"
    assert r["error"]["param"] == param
    assert "200x150" in r["error"]["message"]


# -- gaussianblur -----------------------------------------------------------------------------


def _row(out: pyvips.Image, y: int) -> list[float]:
    return [out(x, y)[0] for x in range(24, 40)]


def _col(out: pyvips.Image, x: int) -> list[float]:
    return [out(x, y)[0] for y in range(24, 40)]


SHARP = [255.0] * 8 + [0.0] * 8  # across the edge at 32 of the quadrant image


@pytest.mark.parametrize(
    ("query", "along_x", "along_y"),
    [
        ({}, True, True),  # default 1.5 both ways
        ({"std-dev-x": 3, "std-dev-y": 3}, True, True),
        ({"std-dev-x": 3, "std-dev-y": 0}, True, False),
        ({"std-dev-x": 0, "std-dev-y": 3}, False, True),
        ({"std-dev-x": 0, "std-dev-y": 0}, False, False),
    ],
)
def test_gaussianblur_smooths_the_edges(query: dict, along_x: bool, along_y: bool) -> None:
    out = vload(ok(run("gaussianblur", png(quadrant(64)), "png", **query))["data"])
    row, col = _row(out, 10), _col(out, 10)  # across the vertical edge, across the horizontal
    assert (row != SHARP) == along_x, row
    assert (col != SHARP) == along_y, col
    if along_x:
        assert 0 < row[7] < 255 and 0 < row[8] < 255 and row == sorted(row, reverse=True)
    # far from both edges nothing changes
    assert vpixel(out, 5, 5)[0] == 255 and vpixel(out, 58, 58)[0] == 0


def test_gaussianblur_x_wider_than_y() -> None:
    query = {"std-dev-x": 4, "std-dev-y": 1}
    out = vload(ok(run("gaussianblur", png(quadrant(64)), "png", **query))["data"])
    row, col = _row(out, 10), _col(out, 10)
    spread = lambda values: sum(1 for v in values if 5 < v < 250)  # noqa: E731
    assert spread(row) > spread(col) > 0


def test_gaussianblur_does_not_darken_transparent_edges() -> None:
    query = {"std-dev-x": 3, "std-dev-y": 3}
    out = vload(ok(run("gaussianblur", alpha_png(), "png", **query))["data"])
    for x in range(28, 38):  # across the transparent | red edge
        r_, g, b, a = vpixel(out, x, 10)
        assert 0 < a < 256
        if a > 16:
            assert r_ > 240 and g < 10 and b < 10, (x, r_, g, b, a)


# -- desaturate -------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "bands"), [("png", 1), ("jpeg", 1), ("webp", 3), ("gif", 3)])
def test_desaturate_fully_is_grey(fmt: str, bands: int) -> None:
    out = vload(ok(run("desaturate", png(texture(64, 48)), fmt))["data"])
    assert out.bands in (bands, bands + 1)  # libvips' gif loader always adds alpha
    if bands == 3:
        assert (out[0] - out[1]).abs().max() <= 2 and (out[1] - out[2]).abs().max() <= 2
    assert out[0].max() - out[0].min() > 100  # still has the picture's lightness


@pytest.mark.parametrize(
    ("amount", "expected"), [(1, (255, 255, 255)), (0.5, (255, 188, 188)), (0, (255, 0, 0))]
)
def test_desaturate_amount(amount: float, expected: tuple) -> None:
    """c2g (GEGL's) makes an image of one colour white; amount mixes that with the original,
    in linear light (GEGL's mix)."""
    out = vload(ok(run("desaturate", png(solid(32, 32, RED)), "png", amount=amount))["data"])
    pixel = vpixel(out, 5, 5)
    if out.bands == 1:
        pixel = pixel * 3
    assert close(pixel, expected, 1), pixel


def test_desaturate_keeps_alpha() -> None:
    for amount in (1, 0.5):
        out = vload(ok(run("desaturate", alpha_png(), "png", amount=amount))["data"])
        assert out.hasalpha()
        assert corner(out, "top-left")[-1] == 0 and corner(out, "top-right")[-1] == 255


# -- resize -----------------------------------------------------------------------------------

# a 300x200 source
RESIZE_CASES = [
    ({"width": 100, "height": 100, "mode": "fit"}, (100, 67)),
    ({"width": 100, "height": 100, "mode": "fill"}, (100, 100)),
    ({"width": 100, "height": 100, "mode": "crop"}, (100, 100)),
    ({"width": 150, "height": 30, "mode": "crop"}, (150, 30)),
    ({"width": 30, "height": 150, "mode": "crop"}, (30, 150)),
    ({"width": 100, "mode": "crop"}, (100, 67)),  # one side only: a fit
    ({"height": 50, "mode": "fill"}, (75, 50)),
    ({"width": 600}, (300, 200)),  # never upscales ...
    ({"width": 400, "height": 100, "mode": "crop"}, (300, 100)),
    ({"width": 400, "height": 400, "mode": "crop"}, (300, 200)),
    ({"width": 400, "height": 100, "mode": "fill"}, (300, 100)),
    ({"width": 600, "upscale": True}, (600, 400)),  # ... unless asked to
    ({"width": 600, "height": 100, "mode": "crop", "upscale": True}, (600, 100)),
    ({"width": 600, "height": 600, "mode": "fill", "upscale": True}, (600, 600)),
    ({"width": 600, "upscale": False}, (300, 200)),
]


@pytest.mark.parametrize(("query", "size"), RESIZE_CASES)
def test_resize_dimensions(query: dict, size: tuple[int, int]) -> None:
    r = ok(run("resize", jpeg(texture(300, 200)), "jpeg", **query))
    out = vload(r["data"])
    assert (out.width, out.height) == (r["width"], r["height"]) == size


@pytest.mark.parametrize(
    ("src", "gravity", "expected"),
    [
        (halves(100, 200), "north", RED),
        (halves(100, 200), "south", BLUE),
        (halves(100, 200), "north-east", RED),
        (halves(100, 200).rot90(), "east", RED),
        (halves(100, 200).rot90(), "west", BLUE),
        (halves(100, 200).rot90(), "south-west", BLUE),
    ],
)
def test_resize_crop_gravity(src: pyvips.Image, gravity: str, expected: tuple) -> None:
    out = vload(
        ok(run("resize", png(src), "png", width=100, height=100, mode="crop", gravity=gravity))[
            "data"
        ]
    )
    assert (out.width, out.height) == (100, 100)
    assert close(mean(out), expected, 2), mean(out)


def test_resize_crop_centre_is_the_middle() -> None:
    out = vload(
        ok(run("resize", png(halves(100, 200)), "png", width=100, height=100, mode="crop"))["data"]
    )
    assert close(corner(out, "top-left"), RED, 2) and close(corner(out, "bottom-left"), BLUE, 2)


@pytest.mark.parametrize("gravity", ["smart", "attention", "entropy"])
@pytest.mark.parametrize("saver", ["png", "jpeg"])
def test_resize_smart_crop_finds_the_interesting_part(gravity: str, saver: str) -> None:
    src = busy_patch()
    src_bytes = png(src) if saver == "png" else jpeg(src, q=95)
    out = vload(
        ok(run("resize", src_bytes, "png", width=100, height=100, mode="crop", gravity=gravity))[
            "data"
        ]
    )
    assert (out.width, out.height) == (100, 100)
    assert mean(out)[1] < 100  # it holds the red and black patch, not only grey
    centre = vload(ok(run("resize", src_bytes, "png", width=100, height=100, mode="crop"))["data"])
    assert close(mean(centre), GREY, 3)  # the middle is plain grey


# -- compress ---------------------------------------------------------------------------------


def test_compress_makes_a_big_jpeg_smaller_and_progressive() -> None:
    src = jpeg(texture(300, 200), q=98)
    r = ok(run("compress", src, "jpeg"))
    assert r["format"] == "jpeg" and len(r["data"]) < len(src) / 2
    out = vload(r["data"])
    assert (out.width, out.height) == (300, 200)
    assert out.get("jpeg-multiscan") == 1  # progressive


@pytest.mark.parametrize("quality", [30, 75, 95])
def test_compress_keeps_a_source_it_cannot_improve(quality: int) -> None:
    src = jpeg(texture(64, 64), q=20, optimize_coding=True, keep="none")
    r = ok(run("compress", src, "jpeg", quality=quality))
    assert r["data"] == src


def flat_art(width: int = 256, height: int = 256) -> pyvips.Image:
    """Graphics: a few flat colours in blocks (what a palette holds without loss)."""
    image = solid(width, height, BLUE)
    for i, colour in enumerate([RED, GREEN, YELLOW, GREY]):
        image = image.insert(solid(width // 5, height // 5, colour), i * width // 5, i * 20)
    return image


def test_compress_quantises_png_graphics() -> None:
    src = png(flat_art())
    assert png_colour_type(src) == 2
    r = ok(run("compress", src, "png"))
    assert png_colour_type(r["data"]) == 3  # palette
    assert len(r["data"]) < len(src)
    out = vload(r["data"])
    assert (out.width, out.height) == (256, 256)
    assert (out.cast("int") - vload(src).cast("int")).abs().max() <= 2  # no visible change


def test_compress_keeps_a_many_coloured_png_lossless() -> None:
    """A photograph-like PNG is not dithered into 256 colours: it stays lossless, re-deflated
    with adaptive filters (smaller than the plain encoding it came as)."""
    src = png(texture(256, 256))
    r = ok(run("compress", src, "png"))
    assert png_colour_type(r["data"]) == 2  # truecolour
    assert len(r["data"]) < len(src)
    assert (vload(r["data"]).cast("int") - vload(src).cast("int")).abs().max() == 0


def test_compress_png_checks_the_quantised_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """A quantisation that shows (the colour count let it through): the SSIMULACRA2 check
    keeps it lossless."""
    from imgserver.runtime.vips import png as png_module

    monkeypatch.setattr(png_module, "SAMPLE_COLOURS", 64**3)  # any image is tried
    scores: list[float] = []
    real_score = png_module.score
    monkeypatch.setattr(
        png_module, "score", lambda a, b: scores.append(real_score(a, b)) or scores[-1]
    )
    r = ok(run("compress", png(texture(256, 256)), "png"))
    assert png_colour_type(r["data"]) == 2
    assert len(scores) == 1 and scores[0] < png_module.PALETTE_MIN_SCORE


@pytest.mark.parametrize("bands", [1, 2, 3, 4])
def test_compress_png_is_lossless_in_every_layout(bands: int) -> None:
    """grey, grey + alpha, RGB, RGBA: oxipng gets the pixels as they are and gives them back."""
    image = texture(200, 120)
    if bands < 3:
        image = image.colourspace("b-w")
    if bands in (2, 4):
        image = image.bandjoin((pyvips.Image.xyz(200, 120)[0] + 40).cast("uchar"))
    src = png(image)
    r = ok(run("compress", src, "png"))
    out = vload(r["data"])
    assert out.bands == bands and len(r["data"]) < len(src)
    assert (out.cast("int") - vload(src).cast("int")).abs().max() == 0


def test_png_effort_by_size_and_threads() -> None:
    from imgserver.runtime.vips.png import effort

    small, photo = effort(300 * 300), effort(2560 * 1600)
    assert len(small.filters) > len(photo.filters) and small.deflate > photo.deflate
    assert effort(2560 * 1600, threads=2).filters == ("MinSum", "Entropy")  # a trial per thread
    assert effort(2560 * 1600, threads=8) == effort(2560 * 1600, threads=2)


def test_compress_quantised_png_keeps_alpha() -> None:
    r = ok(run("compress", alpha_png(), "png"))
    out = vload(r["data"])
    assert out.hasalpha() and corner(out, "top-left")[3] == 0
    assert close(corner(out, "top-right"), (*RED, 255), 4)


@pytest.mark.parametrize(
    "src",
    [
        jpeg(texture(128, 96), q=20),
        jpeg(texture(128, 96), q=60),
        jpeg(texture(128, 96), q=97),
        jpeg(solid(64, 64, GREY), q=50, optimize_coding=True),
        png(texture(128, 96)),
        png(solid(64, 64, GREY), compression=9),
        alpha_png(),
        animation(),
        animation(saver="webp"),
    ],
    ids=["jpeg20", "jpeg60", "jpeg97", "flat-jpeg", "png", "flat-png", "alpha-png", "gif", "webp"],
)
def test_compress_is_never_larger_than_the_source(src: bytes) -> None:
    r = ok(run("compress", src, sniff(src)))
    assert len(r["data"]) <= len(src)
    assert r["format"] == sniff(src) == sniff(r["data"])


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("graph", "query"),
    [("passthrough", {"width": 50}), ("crop", {}), ("resize", {}), ("compress", {})],
)
def test_too_many_pixels_from_the_header(graph: str, query: dict, thumbnail_calls: list) -> None:
    r = run(graph, jpeg(texture(300, 200)), "jpeg", limits={"max_source_pixels": 59_999}, **query)
    assert r["ok"] is False and r["error"]["code"] == "too_many_pixels"
    assert thumbnail_calls == []  # refused before any decode
    assert ok(run(graph, jpeg(texture(300, 200)), "jpeg", limits={"max_source_pixels": 60_000}))


@pytest.mark.parametrize(
    "query",
    [
        {"width": 16000, "height": 16000, "mode": "fill", "upscale": True},
        {"width": 16000, "upscale": True},
        {"width": 16000, "height": 16000, "mode": "crop", "upscale": True},
        {"width": 16000, "height": 16000, "mode": "crop", "gravity": "attention", "upscale": True},
        {"width": 16000, "height": 9000, "mode": "crop", "gravity": "north", "upscale": True},
    ],
)
def test_too_many_output_pixels(query: dict, thumbnail_calls: list) -> None:
    r = run("resize", jpeg(texture(100, 100)), "jpeg", **query)
    assert r["ok"] is False and r["error"]["code"] == "too_many_pixels", r
    assert r["error"]["limit"] == 25_000_000
    # refused before libvips computed it: a thumbnail with a crop is computed eagerly
    assert all("crop" not in call for call in thumbnail_calls)


def _truncated_jpeg() -> bytes:
    data = jpeg(texture(300, 200))
    return data[: len(data) // 2]


def _truncated_png() -> bytes:
    data = png(texture(64, 64))
    return data[: len(data) // 2]


UNDECODABLE = {
    "truncated-jpeg": _truncated_jpeg(),
    "garbage-after-png-header": png(texture(64, 64))[:16] + b"garbage!" * 64,
    "garbage-after-png-signature": b"\x89PNG\r\n\x1a\n" + b"garbage!" * 64,
    "truncated-png": _truncated_png(),
    "garbage-after-jpeg-soi": b"\xff\xd8\xff" + b"garbage!" * 64,
    "truncated-gif": bytes(texture(80, 60).gifsave_buffer())[:1500],
}


@pytest.mark.parametrize("src", UNDECODABLE.values(), ids=UNDECODABLE.keys())
@pytest.mark.parametrize(
    ("graph", "query"),
    [("passthrough", {"width": 50}), ("passthrough", {}), ("crop", {}), ("compress", {})],
)
def test_undecodable_source(src: bytes, graph: str, query: dict) -> None:
    r = run(graph, src, "jpeg", **query)
    assert r["ok"] is False, "an undecodable image must not produce a result"
    assert r["error"]["code"] == "undecodable_source", r["error"]
    assert r["error"]["message"]


def _heic_without_its_codec() -> bytes:
    """An AVIF relabelled as HEVC: the HEIF container parses, the codec is not there."""
    avif = bytes(texture(16, 16).heifsave_buffer(compression="av1"))
    return avif.replace(b"av01", b"hvc1").replace(b"avif", b"heic").replace(b"av1C", b"hvcC")


@pytest.mark.parametrize(
    "src", [*UNDECODABLE.values(), _heic_without_its_codec()], ids=[*UNDECODABLE, "heic"]
)
def test_a_decoder_error_is_told_in_our_words(src: bytes, caplog: pytest.LogCaptureFixture) -> None:
    """The client reads a message of ours naming the format; the decoder's own text (the
    libheif plugin's, libjpeg's...) goes to the worker process's log only."""
    caplog.set_level("INFO", logger="imgserver.runtime.execute")
    r = run("passthrough", src, "jpeg")
    fmt = sniff(src).upper()
    assert r["error"] == {
        "code": "undecodable_source",
        "message": f"the {fmt} source cannot be decoded: it is corrupt, truncated, or uses a "
        "feature of the format that is not supported",
    }
    assert "undecodable_source" in caplog.text  # the library's words were logged
