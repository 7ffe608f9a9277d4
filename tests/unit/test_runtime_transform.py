"""The ``transform`` graph, step by step, on generated images: geometry exact where the meaning
is exact (box, dpr, modes, gravity, focal point, trim, rotation by 90, flip, pad), pixels where
a colour step is defined (brightness, contrast, saturation, background), the watermark, the
fixed order of the steps, max-bytes, and shrink-on-load from the source."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pyvips
from multidict import MultiDict

from imgserver.errors import InvalidParam
from imgserver.formats import sniff
from imgserver.messages import Limits, Rendered, RenderFailed, RenderJob
from imgserver.request import parse_params
from imgserver.runtime.execute import execute

from ..images import (
    BLUE,
    GREEN,
    LIMITS,
    RED,
    catalogue,
    close,
    jpeg,
    marked,
    pillow_twin,
    png,
    solid,
    texture,
    vload,
    vpixel,
)

MARK = "https://marks.example.com/logo.png"


Run = Callable[..., Any]


@pytest.fixture(params=["vips", "pillow"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Run:
    """``run(src, fmt, assets, **query)`` on each runtime in turn (a test that only libvips
    can pass is marked ``vips_only``)."""
    if request.param == "pillow":
        if request.node.get_closest_marker("vips_only"):
            pytest.skip("libvips only")
        graph = pillow_twin("transform", tmp_path)
    else:
        graph = catalogue()["transform"]

    def render(
        src: bytes, fmt: str = "png", assets: dict[str, bytes] | None = None, **query: Any
    ) -> Any:
        raw = MultiDict({k.replace("_", "-"): _text(v) for k, v in query.items()})
        params, _ = parse_params(graph, raw)
        limits = Limits(**LIMITS)
        job = RenderJob(graph.name, graph.definition, params, fmt, sniff(src), limits, assets or {})
        return execute(job, src)

    return render


def _text(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def ok(outcome: Any) -> pyvips.Image:
    assert isinstance(outcome, Rendered), outcome
    image = vload(outcome.data)
    assert (image.width, image.height) == (outcome.width, outcome.height)
    return image


# -- the box -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "size"),
    [
        ({"width": 100}, (100, 75)),
        ({"width": 100, "dpr": 2}, (200, 150)),
        ({"height": 60, "dpr": 1.5}, (120, 90)),
        ({"width": 100, "height": 100}, (100, 75)),
        ({"width": 100, "height": 100, "mode": "fill"}, (100, 100)),
        ({"width": 100, "height": 100, "mode": "crop"}, (100, 100)),
        ({"width": 100, "height": 100, "mode": "pad"}, (100, 100)),
        ({"width": 800}, (400, 300)),  # never upscaled unless asked
        ({"width": 800, "upscale": True}, (800, 600)),
    ],
)
def test_the_box(run: Run, query: dict[str, Any], size: tuple[int, int]) -> None:
    out = ok(run(jpeg(texture(400, 300)), **query))
    assert (out.width, out.height) == size


def test_pad_mode_fills_the_box_with_the_background(run: Run) -> None:
    out = ok(run(png(texture(400, 200)), width=100, height=100, mode="pad", background="#ff0000"))
    assert vpixel(out, 50, 5) == [255, 0, 0] and vpixel(out, 50, 94) == [255, 0, 0]
    assert vpixel(out, 50, 50) != [255, 0, 0]
    top = ok(run(png(texture(400, 200)), width=100, height=100, mode="pad", gravity="north"))
    assert vpixel(top, 50, 94) == [255, 255, 255] and vpixel(top, 50, 5) != [255, 255, 255]


@pytest.mark.parametrize(
    ("gravity", "colour"),
    [("west", RED), ("east", BLUE), ("centre", GREEN)],
)
def test_crop_keeps_the_side_gravity_names(
    run: Run, gravity: str, colour: tuple[int, int, int]
) -> None:
    src = solid(300, 100, GREEN).insert(solid(100, 100, RED), 0, 0)
    src = src.insert(solid(100, 100, BLUE), 200, 0)
    out = ok(run(png(src), width=50, height=50, mode="crop", gravity=gravity))
    assert close(vpixel(out, 25, 25), colour)


@pytest.mark.parametrize(("fx", "colour"), [(0.05, RED), (0.95, BLUE), (0.5, GREEN)])
def test_focal_gravity_centres_the_crop_on_the_point(run: Run, fx: float, colour: tuple) -> None:
    src = solid(300, 100, GREEN).insert(solid(100, 100, RED), 0, 0)
    src = src.insert(solid(100, 100, BLUE), 200, 0)
    out = ok(
        run(png(src), width=50, height=50, mode="crop", gravity="focal", focus_x=fx, focus_y=0.5)
    )
    assert close(vpixel(out, 25, 25), colour)


# -- trim --------------------------------------------------------------------------------------


def bordered(width: int = 400, height: int = 300) -> pyvips.Image:
    """A texture of 200x100 inside a uniform green border, at (100, 100)."""
    return solid(width, height, (0, 200, 0)).insert(texture(200, 100), 100, 100)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_trim_cuts_the_border_away(run: Run, fmt: str) -> None:
    src = png(bordered()) if fmt == "png" else jpeg(bordered(), q=95)
    out = ok(run(src, trim=40))
    assert (out.width, out.height) == (200, 100)


def test_trim_then_resize_uses_the_trimmed_box(run: Run) -> None:
    out = ok(run(jpeg(bordered(1600, 1200).resize(1), q=95), trim=40, width=100))
    # the content (200x100 in 1600x1200) trimmed first, then fitted to 100 wide
    assert (out.width, out.height) == (100, 50)


def test_trim_of_an_image_that_is_all_border_leaves_it(run: Run) -> None:
    out = ok(run(png(solid(60, 40, RED)), trim=10))
    assert (out.width, out.height) == (60, 40)


# -- rotate, flip, pad -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("degrees", "size", "where"),
    [(90, (100, 200), (90, 5)), (180, (200, 100), (190, 90)), (270, (100, 200), (5, 190))],
)
def test_rotation_by_quarter_turns_is_exact(
    run: Run, degrees: int, size: tuple, where: tuple
) -> None:
    src = marked(200, 100, 20)  # red 20x20 in the top-left corner
    out = ok(run(png(src), rotate=degrees))
    assert (out.width, out.height) == size
    assert vpixel(out, *where) == [255, 0, 0]  # clockwise: top-left goes top-right at 90


def test_any_angle_fills_the_corners_with_the_background(run: Run) -> None:
    out = ok(run(png(solid(100, 100, BLUE)), rotate=45, background="#00ff00"))
    assert out.width > 140 and out.height > 140
    assert close(vpixel(out, 1, 1), GREEN) and close(vpixel(out, 70, 70), BLUE)


@pytest.mark.parametrize(
    ("flip", "where"),
    [("none", (5, 5)), ("horizontal", (195, 5)), ("vertical", (5, 95)), ("both", (195, 95))],
)
def test_flip(run: Run, flip: str, where: tuple[int, int]) -> None:
    out = ok(run(png(marked(200, 100, 20)), flip=flip))
    assert vpixel(out, *where) == [255, 0, 0]


def test_pad_puts_a_border_of_background_on_every_side(run: Run) -> None:
    out = ok(run(png(solid(40, 20, RED)), pad=10, background="#0000ff"))
    assert (out.width, out.height) == (60, 40)
    assert vpixel(out, 5, 5) == [0, 0, 255] and vpixel(out, 30, 20) == [255, 0, 0]


def test_the_order_is_fixed_whatever_the_query(run: Run) -> None:
    """resize -> rotate -> pad: a 90° turn of a 100-wide fit, then 10 px of pad."""
    out = ok(run(png(texture(400, 200)), pad=10, rotate=90, width=100))
    assert (out.width, out.height) == (50 + 20, 100 + 20)


# -- filters and colour ------------------------------------------------------------------------


def test_blur_and_sharpen_change_an_edge_the_right_way(run: Run) -> None:
    src = png(solid(100, 100, (0, 0, 0)).insert(solid(50, 100, (255, 255, 255)), 50, 0))
    plain, blurred, sharp = (ok(run(src, **q)) for q in ({}, {"blur": 3}, {"sharpen": 2}))
    assert vpixel(plain, 48, 50) == [0, 0, 0]
    assert vpixel(blurred, 48, 50)[0] > 30  # the edge is smeared
    assert sharp.deviate() >= plain.deviate()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"brightness": 1.5}, [150, 75, 30]),
        ({"contrast": 2}, [72, 0, 0]),
        ({"brightness": 0}, [0, 0, 0]),
    ],
)
def test_brightness_and_contrast(run: Run, query: dict[str, float], expected: list[int]) -> None:
    out = ok(run(png(solid(10, 10, (100, 50, 20))), **query))
    assert vpixel(out, 5, 5) == pytest.approx(expected, abs=1)


def test_saturation_zero_is_grey_and_one_is_unchanged(run: Run) -> None:
    src = png(solid(10, 10, (200, 40, 40)))
    grey = vpixel(ok(run(src, saturation=0)), 5, 5)
    assert max(grey) - min(grey) <= 2
    assert vpixel(ok(run(src, saturation=1)), 5, 5) == [200, 40, 40]


def test_background_fills_alpha_for_jpeg(run: Run) -> None:
    src = png(solid(10, 10, (255, 0, 0, 0)))
    out = ok(run(src, "jpeg", background="#00ff00"))
    assert close(vpixel(out, 5, 5), GREEN)


# -- watermark ---------------------------------------------------------------------------------


def test_watermark_position_margin_and_opacity(run: Run) -> None:
    mark = png(solid(20, 10, RED))
    src = png(solid(200, 100, BLUE))
    out = ok(
        run(
            src,
            assets={MARK: mark},
            watermark=MARK,
            watermark_position="north-west",
            watermark_margin=5,
        )
    )
    assert vpixel(out, 10, 10) == [255, 0, 0] and vpixel(out, 2, 2) == [0, 0, 255]
    corner = ok(run(src, assets={MARK: mark}, watermark=MARK))  # default: south-east, no margin
    assert vpixel(corner, 195, 95) == [255, 0, 0] and vpixel(corner, 100, 50) == [0, 0, 255]
    faded = ok(run(src, assets={MARK: mark}, watermark=MARK, watermark_opacity=0.5))
    assert vpixel(faded, 195, 95) == pytest.approx([128, 0, 127], abs=2)


def test_watermark_scale_is_a_share_of_the_width(run: Run) -> None:
    mark = png(solid(20, 10, RED))
    out = ok(
        run(
            png(solid(200, 100, BLUE)),
            assets={MARK: mark},
            watermark=MARK,
            watermark_scale=0.5,
            watermark_position="north-west",
        )
    )
    assert vpixel(out, 95, 45) == [255, 0, 0] and vpixel(out, 105, 55) == [0, 0, 255]


def test_a_watermark_with_alpha_keeps_its_holes(run: Run) -> None:
    mark = png(solid(20, 20, (255, 0, 0, 0)).insert(solid(10, 10, (255, 0, 0, 255)), 5, 5))
    out = ok(run(png(solid(100, 100, BLUE)), assets={MARK: mark}, watermark=MARK))
    assert vpixel(out, 82, 82) == [0, 0, 255] and vpixel(out, 90, 90) == [255, 0, 0]


def test_a_watermark_that_is_not_a_url_is_invalid_param(run: Run) -> None:
    with pytest.raises(InvalidParam, match="'watermark'"):
        run(png(solid(10, 10, RED)), watermark="ftp://example.com/x.png")


# -- max-bytes ---------------------------------------------------------------------------------


def test_max_bytes_lowers_the_quality_until_it_fits(run: Run) -> None:
    src = jpeg(texture(400, 300))
    full = run(src, "jpeg", quality=90)
    assert isinstance(full, Rendered) and full.quality == 90
    limit = len(full.data) // 2
    fitted = run(src, "jpeg", quality=90, max_bytes=limit)
    assert isinstance(fitted, Rendered)
    assert len(fitted.data) <= limit and fitted.quality is not None and 30 <= fitted.quality < 90
    one_more = run(src, "jpeg", quality=fitted.quality + 1)
    assert isinstance(one_more, Rendered) and len(one_more.data) > limit  # the highest that fits


def test_max_bytes_too_small_even_at_quality_30_is_422(run: Run) -> None:
    out = run(jpeg(texture(400, 300)), "webp", max_bytes=50)
    assert isinstance(out, RenderFailed)
    assert out.error.code == "too_many_pixels" and "even at quality 30" in out.error.message


# -- shrink-on-load ----------------------------------------------------------------------------


@pytest.mark.vips_only
def test_a_transform_that_scales_down_decodes_at_reduced_size(run: Run, monkeypatch) -> None:
    calls: list[int] = []
    original = pyvips.Image.thumbnail_source

    def spy(source: pyvips.Source, width: int, **kwargs: Any) -> pyvips.Image:
        calls.append(width)
        return original(source, width, **kwargs)

    monkeypatch.setattr(pyvips.Image, "thumbnail_source", staticmethod(spy))
    out = ok(run(jpeg(texture(1600, 1200)), width=200, rotate=90, blur=1))
    assert (out.width, out.height) == (150, 200)
    assert calls == [200]  # the loader shrank it: no full-size decode


def test_the_interest_finders_are_libvips_only(tmp_path: Path) -> None:
    graph = pillow_twin("transform", tmp_path)
    query = {"width": "10", "height": "10", "mode": "crop", "gravity": "smart"}
    params, _ = parse_params(graph, MultiDict(query))
    src = png(texture(40, 30))
    job = RenderJob(graph.name, graph.definition, params, "png", "png", Limits(**LIMITS))
    out = execute(job, src)
    assert isinstance(out, RenderFailed) and out.error.code == "invalid_param"
    assert "libvips" in out.error.message


@pytest.mark.parametrize("query", [{"rotate": 33}, {"rotate": 90}, {"flip": "vertical"}])
def test_steps_that_read_out_of_order_work_on_a_shrunk_jpeg(run: Run, query: dict) -> None:
    """The loader's sequential decode is made in memory before a rotation or a flip."""
    out = ok(run(jpeg(texture(1600, 1200)), "jpeg", width=400, **query))  # (it used to fail)
    assert max(out.width, out.height) >= 400


def test_a_large_blur_is_still_a_blur(run: Run) -> None:
    src = png(solid(200, 100, (0, 0, 0)).insert(solid(100, 100, (255, 255, 255)), 100, 0))
    out = ok(run(src, blur=20))
    row = [vpixel(out, x, 50)[0] for x in (60, 90, 100, 110, 140)]
    assert row == sorted(row) and row[0] < 60 and row[-1] > 195 and 100 < row[2] < 160
