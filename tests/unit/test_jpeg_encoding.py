"""How JPEG results are encoded, in both runtimes: progressive, mozjpeg's trellis and table 2
(libvips), chroma subsampling chosen by the pixels (not by the quality), and max-bytes still
lowering the quality until the result fits. Also bench/bdrate.py, the measure these settings
were chosen by, against cases whose answer is known."""

from __future__ import annotations

import io
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import pyvips
from PIL import Image, JpegImagePlugin

from imgserver.catalogue import Graph
from imgserver.runtime.jpeg import (
    CHROMA_EDGE_SHARE,
    SAMPLE_GRID,
    SAMPLE_TILE,
    SAMPLE_WHOLE,
    full_chroma,
    sample_boxes,
)
from imgserver.runtime.vips import encode as vips_encode

from ..images import REPO, jpeg, ok, pillow_twin, png, run, texture

sys.path.insert(0, str(REPO))
from bench.bdrate import bd_rate, rate_at

# JPEG SOF component sampling as Pillow reports it: 0 is 4:4:4, 2 is 4:2:0
FULL, HALF = 0, 2


def photo(width: int = 640, height: int = 480) -> pyvips.Image:
    """Smooth colour gradients with noise: a photograph's chroma (no sharp colour edges)."""
    noise = pyvips.Image.gaussnoise(width, height, sigma=12, mean=0)
    base = texture(width, height).gaussblur(4).cast("float")
    return (base + noise.bandjoin([noise, noise])).cast("uchar").copy(interpretation="srgb")


def graphic(width: int = 640, height: int = 480) -> pyvips.Image:
    """Coloured text on coloured bands: sharp colour edges, what 4:2:0 smears."""
    image = pyvips.Image.black(width, height).new_from_image([0, 0, 200])
    for i, y in enumerate(range(0, height, 40)):
        colour = [255, 0, 0] if i % 2 else [0, 160, 0]
        text = pyvips.Image.text(f"Sale {i}: 50% off today", dpi=200, width=width - 20)
        ink = text.new_from_image(colour).bandjoin(text).copy(interpretation="srgb")
        image = image.composite2(ink, "over", x=10, y=y)[:3]
    return image.cast("uchar").copy(interpretation="srgb")


def sampling(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG"
        return int(JpegImagePlugin.get_sampling(im))


def progressive(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as im:
        return bool(im.info.get("progressive"))


@pytest.fixture(scope="module")
def pillow_passthrough(tmp_path_factory: pytest.TempPathFactory) -> Graph:
    return pillow_twin("passthrough", tmp_path_factory.mktemp("pillow-jpeg"))


# -- chroma by content -------------------------------------------------------------------------


def test_a_photo_needs_no_full_chroma_and_a_graphic_does() -> None:
    assert not full_chroma(photo())
    assert full_chroma(graphic())


def test_grey_images_have_no_chroma_to_keep() -> None:
    assert not full_chroma(graphic().colourspace("b-w"))
    assert not full_chroma(graphic().colourspace("b-w").bandjoin(255))  # grey + alpha


def vimage(a: np.ndarray) -> pyvips.Image:
    return pyvips.Image.new_from_array(a).copy(interpretation="srgb")


def test_the_share_of_colour_edges_decides() -> None:
    tile = np.zeros((100, 100, 3), dtype=np.uint8)
    edges = int(CHROMA_EDGE_SHARE * tile.shape[0] * tile.shape[1])  # pixels moved by averaging
    tile[0, : 2 * (edges + 1) : 2] = (255, 0, 0)  # one red pixel in each of edges + 1 blocks
    assert full_chroma(vimage(tile))  # each moves by 96 levels of Cr (its neighbours by 32)
    tile[0, 2 * (edges + 1) :] = (255, 0, 0)  # a red line: its blocks are half red, half black
    assert full_chroma(vimage(tile))
    tile[:] = 0
    tile[0, : 2 * edges : 2] = (255, 0, 0)  # one too few
    assert not full_chroma(vimage(tile))


def test_small_images_are_judged_whole_and_large_ones_by_tiles() -> None:
    assert sample_boxes(250, 250) == [(0, 0, 250, 250)]
    boxes = sample_boxes(5000, 3000)
    assert SAMPLE_WHOLE < 5000 * 3000 and len(boxes) == SAMPLE_GRID**2
    assert all(x % 2 == 0 and y % 2 == 0 for x, y, _, _ in boxes)  # on the 2x2 blocks
    assert all(w == h == SAMPLE_TILE for _, _, w, h in boxes)
    assert {(x, y) for x, y, _, _ in boxes} >= {(0, 0), (5000 - SAMPLE_TILE, 3000 - SAMPLE_TILE)}
    assert all(x + w <= 5000 and y + h <= 3000 for x, y, w, h in boxes)
    thin = sample_boxes(40_000, 40)  # a long strip: tiles no higher than the image
    assert all(h == 40 and y == 0 for _, y, _, h in thin)


@pytest.mark.parametrize("quality", [50, 80, 90, 98])
def test_vips_subsampling_follows_the_content_at_every_quality(quality: int) -> None:
    for image, expected in ((photo(), HALF), (graphic(), FULL)):
        r = ok(run("passthrough", png(image), "jpeg", quality=quality))
        assert sampling(r["data"]) == expected


@pytest.mark.parametrize("quality", [50, 95])
def test_pillow_subsampling_follows_the_content(pillow_passthrough: Graph, quality: int) -> None:
    for image, expected in ((photo(), HALF), (graphic(), FULL)):
        r = ok(run(pillow_passthrough, png(image), "jpeg", quality=quality))
        assert sampling(r["data"]) == expected


def test_a_large_graphic_is_sampled_and_still_kept_sharp() -> None:
    big = graphic(1600, 900)  # 1.44 MP: judged on 16 tiles
    assert big.width * big.height > SAMPLE_WHOLE
    r = ok(run("passthrough", png(big), "jpeg"))
    assert sampling(r["data"]) == FULL


# -- progressive, mozjpeg ----------------------------------------------------------------------


@pytest.mark.parametrize("graph", ["passthrough", "resize", "compress"])
def test_vips_jpeg_results_are_progressive(graph: str) -> None:
    r = ok(run(graph, jpeg(photo(), q=95), "jpeg", width=320))
    assert progressive(r["data"])


def test_pillow_jpeg_results_are_progressive(pillow_passthrough: Graph) -> None:
    r = ok(run(pillow_passthrough, png(photo()), "jpeg", width=320))
    assert progressive(r["data"])


def test_vips_uses_mozjpeg_table_2_not_the_standard_one() -> None:
    """At quality 50 a table is written as it is: table 2's first row is 12, 17, 20, 21, ...
    (the standard table's: 16, 11, 10, 16, ...). Proves that the libvips in use is built on
    mozjpeg: libjpeg-turbo's would ignore quant_table."""
    r = ok(run("passthrough", png(photo()), "jpeg", quality=50))
    with Image.open(io.BytesIO(r["data"])) as im:
        luma = list(im.quantization[0])
    assert luma[:8] == [12, 17, 20, 21, 30, 34, 56, 63]


def test_large_results_are_encoded_at_the_standard_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above JPEG_TRELLIS_MAX_PIXELS (a photo compressed at full size): libjpeg's standard
    table (first row 16, 11, 10, 16, ... at quality 50), still progressive."""
    monkeypatch.setattr(vips_encode, "JPEG_TRELLIS_MAX_PIXELS", 100 * 100)
    r = ok(run("passthrough", png(photo()), "jpeg", quality=50))
    with Image.open(io.BytesIO(r["data"])) as im:
        assert list(im.quantization[0])[:8] == [16, 11, 10, 16, 24, 40, 51, 61]
    assert progressive(r["data"])


def test_trellis_makes_smaller_files_than_plain_libjpeg_at_the_same_setting() -> None:
    image = photo()
    r = ok(run("passthrough", png(image), "jpeg", quality=80))
    plain = image.jpegsave_buffer(Q=80, quant_table=2, optimize_coding=True, interlace=True)
    assert len(r["data"]) < len(plain)


def test_max_bytes_still_lowers_the_quality_until_it_fits() -> None:
    src = png(photo())
    full = ok(run("transform", src, "jpeg", quality=90))
    limit = len(full["data"]) * 2 // 3
    fitted = ok(run("transform", src, "jpeg", quality=90, **{"max-bytes": limit}))
    assert len(fitted["data"]) <= limit and 30 <= fitted["quality"] < 90
    assert progressive(fitted["data"]) and sampling(fitted["data"]) == HALF


# -- BD-rate -----------------------------------------------------------------------------------

RATES = [1000.0, 2000.0, 4000.0, 8000.0, 16000.0]
SCORES = [40.0, 55.0, 68.0, 78.0, 85.0]


def test_bd_rate_of_a_curve_with_a_fifth_fewer_bytes_is_minus_20_percent() -> None:
    assert bd_rate(RATES, SCORES, [r * 0.8 for r in RATES], SCORES) == pytest.approx(-0.2)
    assert bd_rate(RATES, SCORES, RATES, SCORES) == pytest.approx(0.0, abs=1e-12)


def test_bd_rate_of_a_curve_shifted_up_in_quality() -> None:
    """log-rate linear in score (slope a): a curve Δ points better needs exp(-aΔ) the bytes."""
    scores = [30.0, 45.0, 60.0, 75.0, 90.0]
    a = math.log(2) / 15
    rates = [100 * math.exp(a * s) for s in scores]
    better = [s + 6 for s in scores]
    assert bd_rate(rates, scores, rates, better) == pytest.approx(math.exp(-a * 6) - 1)
    assert bd_rate(rates, better, rates, scores) == pytest.approx(math.exp(a * 6) - 1)


def test_bd_rate_ignores_the_order_of_the_points_and_refuses_disjoint_curves() -> None:
    shuffled = [2, 0, 4, 1, 3]
    r = [RATES[i] * 0.9 for i in shuffled]
    s = [SCORES[i] for i in shuffled]
    assert bd_rate(RATES, SCORES, r, s) == pytest.approx(-0.1)
    with pytest.raises(ValueError, match="do not overlap"):
        bd_rate(RATES, SCORES, RATES, [x + 100 for x in SCORES])
    with pytest.raises(ValueError, match="two points"):
        bd_rate(RATES, SCORES, [1.0, 2.0], [50.0, 50.0])


def test_rate_at_a_score_on_the_curve() -> None:
    assert rate_at(RATES, SCORES, 68.0) == pytest.approx(4000.0, rel=0.05)
    assert rate_at(RATES, SCORES, 99.0) is None


def test_the_bench_modules_are_where_the_tests_import_them_from() -> None:
    assert Path(sys.modules["bench.bdrate"].__file__ or "").parent == REPO / "bench"
