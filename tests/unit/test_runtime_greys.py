"""imgflo's colour graphs: the ops c2g (GEGL's c2g), mix (GEGL's mix) and denoise (GEGL's
noise-reduction), each compared with Debian's GEGL, and the graphs desaturate and enhancelowres.

c2g is randomised, in GEGL and here (GEGL draws new random numbers on every run; ours has a fixed
seed), so one run of it is never equal to another: its comparisons ask that ours be as close to a
run of GEGL as another run of GEGL is (the SSIM of two GEGL runs is the yardstick), with a margin
for the spread of that statistic from run to run (about ±0.005 at 100 iterations, ±0.01 at 10,
measured), and that the local means agree (SSIM after a Gaussian blur of 2 px, which averages
the sampling noise away: 0.997-0.998 between two GEGL runs, and for ours).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pyvips

from imgserver.errors import InvalidParam
from imgserver.messages import Limits
from imgserver.runtime.vips import c2g as c2g_module
from imgserver.runtime.vips import denoise as denoise_module
from imgserver.runtime.vips.load import Context
from imgserver.runtime.vips.ops import OPERATIONS

from ..gegl import reference, ssim
from ..images import (
    LIMITS,
    RED,
    catalogue,
    close,
    ok,
    png,
    run,
    solid,
    texture,
    vload,
    vpixel,
)

W, H = 120, 90


def ctx() -> Context:
    return Context(Limits(**LIMITS), None)


def op(name: str, *images: pyvips.Image, **args: object) -> pyvips.Image:
    return OPERATIONS[name](list(images), args, ctx())


def blurred(image: pyvips.Image) -> pyvips.Image:
    return image.gaussblur(2).cast("uchar")


def with_alpha(image: pyvips.Image) -> pyvips.Image:
    """``image`` with an alpha: the left quarter fully transparent, then rising downwards."""
    xyz = pyvips.Image.xyz(image.width, image.height)
    ramp = xyz[1] * 255 / (image.height - 1)
    alpha = (xyz[0] < image.width // 4).ifthenelse(0, ramp).cast("uchar")
    return image.bandjoin(alpha).copy(interpretation="srgb")


def isoluminant(width: int = W, height: int = H) -> pyvips.Image:
    """A checkerboard of a red and a green of the same luminance (Y 0.159 and 0.157)."""
    xyz = pyvips.Image.xyz(width, height)
    cell = (xyz[0] // 20 + xyz[1] // 15) % 2
    return cell.ifthenelse([200, 60, 60], [60, 124, 60]).cast("uchar").copy(interpretation="srgb")


def noisy(width: int = W, height: int = H) -> pyvips.Image:
    """A disc on a background, over the texture, with Gaussian noise (sigma 10): edges to keep
    and noise to remove."""
    xyz = pyvips.Image.xyz(width, height)
    disc = (xyz[0] - width / 2) ** 2 + (xyz[1] - height / 2) ** 2 < (height / 3) ** 2
    shapes = np.asarray(disc.ifthenelse([250, 240, 30], [40, 60, 160])).astype(float)
    base = np.asarray(texture(width, height)).astype(float)
    noise = np.random.default_rng(7).normal(0, 10, (height, width, 3))
    values = np.clip(0.5 * base + 0.5 * shapes + noise + 0.5, 0, 255).astype(np.uint8)
    return pyvips.Image.new_from_array(values).copy(interpretation="srgb")


def gegl_c2g(tmp_path: Path, image: pyvips.Image, *props: str) -> tuple[pyvips.Image, ...]:
    """Two independent runs of GEGL's c2g (its grey band, and its alpha)."""
    return tuple(reference(tmp_path, image, ["gegl:c2g", *props]) for _ in range(2))


# -- c2g ----------------------------------------------------------------------------------------


@pytest.mark.gegl
@pytest.mark.parametrize(
    ("image", "args", "props", "margin"),
    [
        (texture(W, H), {}, [], 0.02),  # GEGL's defaults (imgflo's desaturate): noisy
        (texture(W, H), {"iterations": 100}, ["iterations=100"], 0.01),
        (
            isoluminant(),
            {"iterations": 100, "enhance_shadows": True},
            ["iterations=100", "enhance-shadows=true"],
            0.01,
        ),
        (texture(W, H), {"radius": 30, "samples": 8}, ["radius=30", "samples=8"], 0.02),
    ],
    ids=["defaults", "100-iterations", "enhance-shadows", "radius-30"],
)
def test_c2g_is_as_close_to_gegl_as_gegl_is_to_itself(
    tmp_path: Path, image: pyvips.Image, args: dict, props: list[str], margin: float
) -> None:
    first, second = (g[0] for g in gegl_c2g(tmp_path, image, *props))
    ours = op("c2g", image, **args)
    assert ours.bands == 1 and ours.interpretation == "b-w" and ours.format == "uchar"
    yardstick = ssim(second, first)
    assert ssim(ours, first) >= yardstick - margin, (ssim(ours, first), yardstick)
    assert ssim(blurred(ours), blurred(first)) >= ssim(blurred(second), blurred(first)) - 0.005
    assert abs(ours.avg() - first.avg()) < 1.5


@pytest.mark.gegl
def test_c2g_keeps_alpha_and_skips_transparent_samples_like_gegl(tmp_path: Path) -> None:
    image = with_alpha(texture(W, H))
    (first, second) = gegl_c2g(tmp_path, image, "iterations=100")
    ours = op("c2g", image, iterations=100)
    assert ours.bands == 2
    assert (ours[1] == image[3]).min() == 255  # alpha unchanged
    assert (ours[1].cast("int") - first[1]).abs().max() <= 1  # (GEGL's 16-bit PNG, truncated)
    assert ssim(ours[0], first[0]) >= ssim(second[0], first[0]) - 0.01


@pytest.mark.gegl
def test_c2g_envelopes_at_a_reduced_size_stay_close_to_gegl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the work budget, the envelopes come from a shrunk copy: here about a third of the
    size (measured: blurred SSIM 0.995 against GEGL, 0.998 at full size)."""
    image = texture(200, 150)
    monkeypatch.setattr(c2g_module, "WORK_BUDGET", 20_000_000)
    work = c2g_module.plan(200, 150, 300, 4, 100, c2g_module.WORK_BUDGET)
    assert 60 < work.width < 90 and work.iterations == 100
    ours = op("c2g", image, iterations=100)
    theirs = reference(tmp_path, image, ["gegl:c2g", "iterations=100"])[0]
    assert (ours.width, ours.height) == (200, 150)
    assert ssim(blurred(ours), blurred(theirs)) >= 0.99
    assert abs(ours.avg() - theirs.avg()) < 4


def test_c2g_over_the_work_limit_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    image = texture(200, 150)
    within = ctx()
    OPERATIONS["c2g"]([image], {"iterations": 2}, within)
    assert within.warnings == []
    monkeypatch.setattr(c2g_module, "WORK_BUDGET", 2_000_000)
    work = c2g_module.plan(200, 150, 300, 4, 10, c2g_module.WORK_BUDGET)
    over = ctx()
    out = OPERATIONS["c2g"]([image], {}, over)
    assert (out.width, out.height) == (200, 150)
    assert over.warnings == [
        f"the grey's envelopes were computed at {work.width}x{work.height} with "
        f"{work.iterations} iterations (the work limit)"
    ]
    assert work.width < 200


def test_c2g_is_deterministic() -> None:
    image = texture(64, 48)
    first = op("c2g", image).write_to_memory()
    assert op("c2g", image).write_to_memory() == first
    assert op("c2g", image, samples=5).write_to_memory() != first


def test_c2g_keeps_contrast_that_luminance_loses() -> None:
    """A red and a green of one luminance: plain grey is flat, c2g tells them apart."""
    image = isoluminant()
    luma = op("greyscale", image)
    grey = op("c2g", image, iterations=30)
    red, green = (10, 7), (30, 7)
    assert abs(vpixel(luma, *red)[0] - vpixel(luma, *green)[0]) <= 3
    cells = [grey.crop(x, 0, 20, 15).avg() for x in (0, 20)]
    assert abs(cells[0] - cells[1]) > 15, cells


def test_c2g_of_one_colour_is_white() -> None:
    """No range anywhere: every pixel is at the top of its envelope (as in GEGL)."""
    out = op("c2g", solid(16, 16, RED))
    assert out.min() == out.max() == 255


def test_c2g_of_a_grey_image_is_grey() -> None:
    grey = texture(40, 30).colourspace("b-w")
    out = op("c2g", grey, samples=2, iterations=3)
    assert (out.bands, out.interpretation) == (1, "b-w")


@pytest.mark.parametrize(
    ("size", "samples", "iterations"),
    [
        ((5120, 2880), 4, 10),
        ((5120, 2880), 1000, 10),
        ((200, 150), 1000, 1000),
        ((300, 200), 4, 10),
        ((1, 400_000), 4, 10),
        ((20_000, 3), 1000, 1000),
    ],
)
def test_c2g_work_stays_within_the_budget(
    size: tuple[int, int], samples: int, iterations: int
) -> None:
    width, height = size
    budget = 10**9
    for radius in (2, 300, 6000):
        work = c2g_module.plan(width, height, radius, samples, iterations, budget)
        inside = c2g_module._inside(radius, width, height)
        per_sample = 1 + c2g_module.MISS_COST * (1 / inside - 1)
        per_pixel = work.iterations * (samples * per_sample + c2g_module.ITERATION_COST)
        assert work.width * work.height * per_pixel <= budget
        assert 1 <= work.width <= width and 1 <= work.height <= height
        if min(width, height) > 100:
            assert work.iterations == iterations  # only a thin frame may take fewer
        if size == (300, 200) and radius < 6000:
            assert work == (300, 200, radius, 10)  # imgflo's defaults on a small image: all


def test_c2g_a_thin_frame_shrinks_along_its_length() -> None:
    work = c2g_module.plan(1, 400_000, 300, 4, 10, 10**8)
    assert work.width == 1 and 1 < work.height < 400_000 and work.iterations == 10
    work = c2g_module.plan(1, 400_000, 300, 1000, 1000, 10**8)
    assert work.width == work.height == 1 and 1 <= work.iterations < 1000


# -- mix ----------------------------------------------------------------------------------------


@pytest.mark.gegl
@pytest.mark.parametrize("grey_aux", [False, True], ids=["colour-aux", "grey-aux"])
def test_mix_matches_gegl(tmp_path: Path, grey_aux: bool) -> None:
    image = with_alpha(texture(W, H))
    aux = isoluminant() if not grey_aux else op("c2g", texture(W, H), iterations=2)
    ours = op("mix", image, aux, ratio=0.3)
    theirs = reference(
        tmp_path, image, ["gegl:mix", "ratio=0.3", "aux=[", "gegl:load", "path=@aux", "]"], aux=aux
    )
    assert ours.bands == 4 and theirs.bands == 4
    assert ssim(ours, theirs) >= 0.995


def test_mix_ends_are_the_images_themselves() -> None:
    image, grey = texture(W, H), op("c2g", texture(W, H), iterations=2)
    assert op("mix", image, grey, ratio=0) is image
    assert op("mix", image, grey, ratio=1) is grey


def test_mix_is_linear_in_linear_light() -> None:
    red, white = solid(8, 8, RED), solid(8, 8, (255, 255, 255))
    out = op("mix", red, white, ratio=0.5)
    assert close(vpixel(out, 3, 3), (255, 188, 188), 1)  # linear 0.5 is sRGB 188


def test_mix_gives_a_grey_input_the_luminance_of_a_colour_aux() -> None:
    grey = solid(8, 8, (0,))
    for ratio in (1.0, 0.5):
        out = op("mix", grey, solid(8, 8, RED), ratio=ratio)
        assert out.bands == 1
        # Y of red is 0.2126 (sRGB 127), and half of it 0.1063 (sRGB 92)
        assert abs(vpixel(out, 1, 1)[0] - (127 if ratio == 1 else 92)) <= 1


def test_mix_extends_a_smaller_aux_with_transparent_black() -> None:
    out = op("mix", solid(20, 10, (255, 255, 255)), solid(10, 10, RED), ratio=0.5)
    assert (out.width, out.height, out.bands) == (20, 10, 4)
    assert vpixel(out, 15, 5) == [188, 188, 188, 128]
    assert vpixel(out, 5, 5)[3] == 255


# -- denoise ------------------------------------------------------------------------------------


@pytest.mark.gegl
@pytest.mark.parametrize("iterations", [1, 4, 8])
def test_denoise_matches_gegl(tmp_path: Path, iterations: int) -> None:
    """Measured: 0.9994, 0.997, 0.996. GEGL itself differs along the edges of the chunks it
    splits an image into (its in-place passes leave a chunk's last rows and columns with fewer
    passes); those few pixels are where the two differ."""
    image = noisy()
    ours = op("denoise", image, iterations=iterations)
    theirs = reference(tmp_path, image, ["gegl:noise-reduction", f"iterations={iterations}"])
    assert ours.bands == 3
    assert ssim(ours, theirs[:3]) >= 0.995
    assert ssim(image, theirs[:3]) < 0.95  # (it did change the image)


def test_denoise_zero_iterations_changes_nothing() -> None:
    image = noisy()
    assert op("denoise", image, iterations=0) is image


def test_denoise_smooths_noise_and_keeps_edges() -> None:
    xyz = pyvips.Image.xyz(60, 40)
    clean = (xyz[0] < 30).ifthenelse(60, 200).cast("uchar")
    noise = np.random.default_rng(3).normal(0, 12, (40, 60))
    image = pyvips.Image.new_from_array(
        np.clip(np.asarray(clean) + noise + 0.5, 0, 255).astype(np.uint8)
    ).copy(interpretation="b-w")
    out = op("denoise", image, iterations=8)
    assert out.bands == 1
    assert (out.cast("float") - clean).abs().avg() < 0.7 * (image.cast("float") - clean).abs().avg()
    assert out.crop(2, 2, 24, 36).avg() < 80 and out.crop(34, 2, 24, 36).avg() > 180


def test_denoise_keeps_alpha() -> None:
    image = with_alpha(noisy())
    out = op("denoise", image, iterations=2)
    assert out.bands == 4 and (out[3] == image[3]).min() == 255


def test_denoise_beyond_the_work_limit_does_as_many_passes_as_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = noisy()
    monkeypatch.setattr(denoise_module, "WORK_BUDGET", 3 * W * H + 5)
    context = ctx()
    out = OPERATIONS["denoise"]([image], {"iterations": 32}, context)
    assert (out == op("denoise", image, iterations=3)).min() == 255
    assert context.warnings == ["the noise reduction was cut to 3 of 32 passes (the work limit)"]
    within = ctx()
    OPERATIONS["denoise"]([image], {"iterations": 3}, within)
    assert within.warnings == []


def test_enhancelowres_takes_the_apis_32_passes_on_a_small_source() -> None:
    source = noisy(40, 30)
    result = ok(run("enhancelowres", png(source), "png", iterations=32))
    assert result["warnings"] == []
    assert (vload(result["data"]) == op("denoise", source, iterations=32)).min() == 255


# -- the graphs ---------------------------------------------------------------------------------


def params(graph: str) -> dict[str, dict]:
    return {name: p.to_json() for name, p in catalogue()[graph].params.items()}


def test_desaturate_has_imgflos_inports() -> None:
    p = params("desaturate")
    assert {
        "grainsize",
        "samples",
        "amount",
        "width",
        "height",
        "quality",
        "quality-target",
    } == set(p)
    assert (p["grainsize"]["type"], p["grainsize"]["default"]) == ("int", 300)
    assert (p["grainsize"]["minimum"], p["grainsize"]["maximum"]) == (2, 6000)
    assert (p["samples"]["type"], p["samples"]["default"]) == ("int", 4)
    assert (p["samples"]["minimum"], p["samples"]["maximum"]) == (1, 1000)
    assert (p["amount"]["default"], p["amount"]["minimum"], p["amount"]["maximum"]) == (1, 0, 1)


def test_enhancelowres_has_imgflos_inport() -> None:
    p = params("enhancelowres")
    assert {"iterations", "width", "height", "quality", "quality-target"} == set(p)
    assert (p["iterations"]["type"], p["iterations"]["default"]) == ("int", 4)
    assert (p["iterations"]["minimum"], p["iterations"]["maximum"]) == (0, 32)


@pytest.mark.parametrize(
    ("graph", "query"),
    [
        ("desaturate", {"grainsize": 1}),
        ("desaturate", {"grainsize": 6001}),
        ("desaturate", {"samples": 0}),
        ("desaturate", {"samples": 1001}),
        ("desaturate", {"samples": 2.5}),
        ("desaturate", {"amount": 1.1}),
        ("enhancelowres", {"iterations": -1}),
        ("enhancelowres", {"iterations": 33}),
        ("enhancelowres", {"iterations": "many"}),
    ],
)
def test_out_of_range_is_invalid_param(graph: str, query: dict) -> None:
    with pytest.raises(InvalidParam) as info:
        run(graph, png(texture(32, 24)), "png", **query)
    assert info.value.code == "invalid_param"
    assert info.value.details["param"] == next(iter(query))


def test_desaturate_is_c2g_with_imgflos_defaults() -> None:
    source = texture(W, H)
    out = vload(ok(run("desaturate", png(source), "png"))["data"])
    assert out.bands == 1
    expected = op("c2g", source, radius=300, samples=4, iterations=10)
    assert (out == expected).min() == 255
    out = vload(ok(run("desaturate", png(source), "png", grainsize=30, samples=8))["data"])
    assert (out == op("c2g", source, radius=30, samples=8)).min() == 255


def test_enhancelowres_is_denoise() -> None:
    source = noisy()
    for iterations in (4, 0):
        query = {} if iterations == 4 else {"iterations": 0}
        out = vload(ok(run("enhancelowres", png(source), "png", **query))["data"])
        assert (out == op("denoise", source, iterations=iterations)).min() == 255
