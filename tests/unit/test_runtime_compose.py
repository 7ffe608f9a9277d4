"""The compositing ops (composite with its blend modes, opacity, fill, greyscale) against GEGL,
their definition for imgflo's graphs, and graphs as DAGs: a node taking several inputs, the
source read by several nodes, a graph that draws its image without a source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pyvips

from imgserver.catalogue import GraphError, load_graph
from imgserver.graphdef import SOURCE
from imgserver.messages import Limits, RenderJob
from imgserver.runtime.execute import execute
from imgserver.runtime.vips.compose import MODES
from imgserver.runtime.vips.load import Context
from imgserver.runtime.vips.ops import OPERATIONS

from ..gegl import reference, ssim
from ..images import LIMITS, png, texture, vload, vpixel

W, H = 120, 90
GEGL_OP = {
    "over": "svg:src-over",
    "screen": "svg:screen",
    "overlay": "svg:overlay",
    "darken": "svg:darken",
    "lighten": "svg:lighten",
    "colour-dodge": "svg:color-dodge",
    "colour-burn": "svg:color-burn",
    "hard-light": "svg:hard-light",
    "soft-light": "gegl:soft-light",
    "difference": "svg:difference",
    "exclusion": "svg:exclusion",
    "add": "svg:plus",
}


def ctx() -> Context:
    return Context(Limits(**LIMITS), None)


def base_image(alpha: bool) -> pyvips.Image:
    image = texture(W, H)
    if alpha:
        xyz = pyvips.Image.xyz(W, H)
        image = image.bandjoin((xyz[0] * 255 / W).cast("uchar"))
    return image.copy(interpretation="srgb")


def overlay_image(alpha: bool) -> pyvips.Image:
    xyz = pyvips.Image.xyz(W, H)
    r = ((xyz[1] * 3 + xyz[0]) % 256).cast("uchar")
    g = (255 - xyz[0] * 2).cast("uchar")
    b = ((xyz[0] // 10 + xyz[1] // 10) % 2 * 200 + 30).cast("uchar")
    image = r.bandjoin([g, b])
    if alpha:
        image = image.bandjoin((xyz[1] * 255 / H).cast("uchar"))
    return image.copy(interpretation="srgb")


def composite(base: pyvips.Image, overlay: pyvips.Image, **args: Any) -> pyvips.Image:
    return OPERATIONS["composite"]([base, overlay], {"mode": "over", **args}, ctx())


@pytest.mark.gegl
@pytest.mark.parametrize("mode", sorted(GEGL_OP))
@pytest.mark.parametrize(
    ("srgb", "alpha"), [(False, False), (True, True)], ids=["linear-opaque", "srgb-alpha"]
)
def test_blend_modes_match_gegl(tmp_path: Path, mode: str, srgb: bool, alpha: bool) -> None:
    base, overlay = base_image(alpha), overlay_image(alpha)
    ours = composite(base, overlay, mode=mode, srgb=srgb)
    chain = [GEGL_OP[mode], f"srgb={'true' if srgb else 'false'}", "aux=[", "gegl:load"]
    if mode == "add":  # svg:plus has no srgb property: it adds whatever it is given
        chain = [GEGL_OP[mode], "aux=[", "gegl:load"]
        if srgb:
            pytest.skip("svg:plus only adds linear light")
    theirs = reference(tmp_path, base, [*chain, "path=@aux", "]"], aux=overlay)
    if theirs.bands != ours.bands:  # GEGL adds an alpha band to an opaque result
        assert theirs.bands == ours.bands + 1 and theirs[ours.bands].min() == 255
        theirs = theirs[: ours.bands]
    assert ssim(ours, theirs) >= 0.99, mode


def test_multiply_is_the_product_on_opaque_images() -> None:
    """GEGL has no svg:multiply to compare with: on opaque images it is S·D."""
    base, overlay = base_image(False), overlay_image(False)
    for srgb in (False, True):
        ours = composite(base, overlay, mode="multiply", srgb=srgb)
        x, y = 37, 55
        d, s = vpixel(base, x, y), vpixel(overlay, x, y)
        if srgb:
            expected = [round(dv * sv / 255) for dv, sv in zip(d, s, strict=True)]
            assert vpixel(ours, x, y) == pytest.approx(expected, abs=1)
        else:
            assert ours.bands == 3 and ours.format == "uchar"


@pytest.mark.gegl
def test_a_grey_base_gives_a_grey_result_like_gegl(tmp_path: Path) -> None:
    base = texture(W, H).colourspace("b-w")
    overlay = overlay_image(False)
    ours = composite(base, overlay, mode="colour-dodge", srgb=True)
    assert ours.bands == 1 and ours.interpretation == "b-w"
    theirs = reference(
        tmp_path,
        base,
        ["svg:color-dodge", "srgb=true", "aux=[", "gegl:load", "path=@o", "]"],
        o=overlay,
    )
    assert ssim(ours, theirs[:1]) >= 0.99


def test_the_overlay_is_placed_at_x_y() -> None:
    base = pyvips.Image.black(W, H, bands=3).copy(interpretation="srgb").cast("uchar")
    overlay = (pyvips.Image.black(10, 10, bands=3) + 255).cast("uchar").copy(interpretation="srgb")
    out = composite(base, overlay, x=20, y=30)
    assert (out.width, out.height, out.bands) == (W, H, 3)
    assert vpixel(out, 25, 35) == [255, 255, 255]
    assert vpixel(out, 19, 35) == [0, 0, 0] and vpixel(out, 25, 29) == [0, 0, 0]
    assert vpixel(out, 30, 40) == [0, 0, 0]


@pytest.mark.gegl
@pytest.mark.parametrize("value", [0.0, 0.3, 0.7, 1.0])
def test_opacity_matches_gegl(tmp_path: Path, value: float) -> None:
    image = base_image(True)
    ours = OPERATIONS["opacity"]([image], {"value": value}, ctx())
    theirs = reference(tmp_path, image, ["gegl:opacity", f"value={value}"])
    assert ours.bands == 4
    assert ssim(ours[3], theirs[3]) >= 0.99
    assert abs(ours[3].avg() - image[3].avg() * value) < 1


def test_opacity_gives_an_opaque_image_alpha() -> None:
    out = OPERATIONS["opacity"]([texture(W, H)], {"value": 0.5}, ctx())
    assert out.bands == 4 and out[3].min() == out[3].max() == 128


@pytest.mark.gegl
@pytest.mark.parametrize("alpha", [False, True], ids=["opaque", "alpha"])
def test_greyscale_matches_gegl_gray(tmp_path: Path, alpha: bool) -> None:
    image = base_image(alpha)
    ours = OPERATIONS["greyscale"]([image], {}, ctx())
    assert ours.bands == (2 if alpha else 1) and ours.interpretation == "b-w"
    theirs = reference(tmp_path, image, ["gegl:gray"])
    assert ssim(ours, theirs) >= 0.99


@pytest.mark.parametrize(
    ("color", "bands", "pixel"),
    [
        ("#ff00ff", 3, [255, 0, 255]),
        ("#102030", 3, [16, 32, 48]),
        ("#ff000080", 4, [255, 0, 0, 128]),
    ],
)
def test_fill(color: str, bands: int, pixel: list[int]) -> None:
    out = OPERATIONS["fill"]([], {"width": 30, "height": 20, "color": color}, ctx())
    assert (out.width, out.height, out.bands) == (30, 20, bands)
    assert vpixel(out, 29, 19) == pixel
    assert out.min() == min(pixel) and out.max() == max(pixel)


# -- graphs as DAGs ---------------------------------------------------------------------------


def graph(tmp_path: Path, raw: dict[str, Any], name: str = "g") -> Any:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"description": "a test graph", "runtime": "vips", **raw}))
    return load_graph(path)


def render(g: Any, source: bytes, fmt: str = "png", **params: Any) -> pyvips.Image:
    job = RenderJob(g.name, g.definition, params, fmt, "png" if source else "", Limits(**LIMITS))
    outcome = execute(job, source)
    assert not hasattr(outcome, "error"), outcome
    return vload(outcome.data)


def test_a_node_may_take_the_source_and_another_node(tmp_path: Path) -> None:
    """imgflo's halodarken shape: the source feeds a chain, and is blended with its end."""
    g = graph(
        tmp_path,
        {
            "nodes": {
                "grey": {"op": "greyscale"},
                "dodge": {
                    "op": "composite",
                    "in": ["grey", "source"],
                    "args": {"mode": "screen", "srgb": True},
                },
            },
            "output": "dodge",
        },
    )
    assert g.definition.uses() == {"_fit": 1, "dodge": 1, SOURCE: 2, "grey": 1}
    src = texture(W, H)
    out = render(g, png(src))
    grey = OPERATIONS["greyscale"]([src], {}, ctx())
    expected = composite(grey, src, mode="screen", srgb=True)
    assert ssim(out, expected) > 0.999


def test_a_node_read_twice_is_made_once(tmp_path: Path) -> None:
    g = graph(
        tmp_path,
        {
            "nodes": {
                "fit": {"op": "fit", "args": {"width": {"param": "width"}}},
                "o": {"op": "opacity", "in": "fit", "args": {"value": 0.5}},
                "c": {"op": "composite", "in": ["fit", "o"], "args": {"mode": "over"}},
            },
            "output": "c",
        },
    )
    out = render(g, png(texture(240, 180)), width=120)
    assert (out.width, out.height) == (120, 90)


def test_a_graph_that_draws_needs_no_source(tmp_path: Path) -> None:
    g = graph(
        tmp_path,
        {
            "params": {
                "color": {"type": "color", "default": "#ff00ff"},
                "width": {"type": "int", "default": 64, "minimum": 1, "maximum": 1000},
                "height": {"type": "int", "default": 32, "minimum": 1, "maximum": 1000},
            },
            "nodes": {
                "canvas": {
                    "op": "fill",
                    "args": {
                        "color": {"param": "color"},
                        "width": {"param": "width"},
                        "height": {"param": "height"},
                    },
                }
            },
            "output": "canvas",
        },
    )
    assert not g.definition.needs_source
    out = render(g, b"", color="#00ff00", width=64, height=32)
    assert (out.width, out.height) == (64, 32) and vpixel(out, 5, 5) == [0, 255, 0]


@pytest.mark.parametrize(
    ("node", "problem"),
    [
        ({"op": "composite", "in": "source"}, "'in' must list 2 nodes"),
        ({"op": "composite", "in": ["source"]}, "'in' must list 2 nodes"),
        ({"op": "fill", "in": "source", "args": {"width": 1, "height": 1}}, "takes no 'in'"),
        ({"op": "composite", "in": ["source", "nope"]}, "unknown node 'nope'"),
    ],
)
def test_inputs_are_checked(tmp_path: Path, node: dict[str, Any], problem: str) -> None:
    with pytest.raises(GraphError, match=problem):
        graph(tmp_path, {"nodes": {"n": node}, "output": "n"})


def test_every_blend_mode_is_declared() -> None:
    from imgserver.runtime.registry import BLEND_MODES

    assert set(MODES) == set(BLEND_MODES)
