"""quality=auto: the search's bounds (fake, deterministic score curves), the metric, and real
encodes through both runtimes (JPEG, WebP, AVIF), max-bytes after auto, the cache key."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import pyvips
from multidict import MultiDict

from imgserver.catalogue import QUALITY_TARGET
from imgserver.errors import InvalidParam
from imgserver.request import parse_params, parse_request
from imgserver.runtime import perceptual
from imgserver.runtime.quality import AUTO_MAX_TRIALS, auto
from imgserver.runtime.vips.encode import encode

from ..images import GREY, catalogue, jpeg, png, run, solid, texture

# -- the search, on score curves made up for the test -------------------------------------------


def counted(curve: Any) -> tuple[list[int], Any]:
    calls: list[int] = []

    def score(q: int) -> float:
        calls.append(q)
        return float(curve(q))

    return calls, score


@pytest.mark.parametrize(
    "curve",
    [
        lambda q: q,  # linear
        lambda q: 100 - 0.02 * (100 - q) ** 2,  # steep near 100, like a photo's
        lambda q: 30 + 0.6 * q,
        lambda q: 100 - 60 * (1 - q / 100) ** 0.5,
    ],
)
@pytest.mark.parametrize("target", [50.0, 72.5, 80.0, 90.0])
def test_auto_finds_the_lowest_quality_that_reaches_the_target(curve: Any, target: float) -> None:
    calls, score = counted(curve)
    choice = auto(score, target)
    lowest = next(q for q in range(1, 101) if curve(q) >= target)
    assert choice.quality == lowest and choice.reached and choice.note == ""
    assert choice.score is not None and choice.score >= target
    assert choice.trials == len(calls) <= AUTO_MAX_TRIALS


def test_auto_never_tries_more_than_its_cap() -> None:
    # a score that is not monotonic: below the target everywhere but at a few scattered spots
    for seed in range(50):
        spots = {(seed * 37 + k * 11) % 100 + 1 for k in range(3)}
        calls, score = counted(lambda q, s=spots: 90 if q in s else 10)
        choice = auto(score, 80)
        assert len(calls) <= AUTO_MAX_TRIALS and choice.trials == len(calls)
        assert 1 <= choice.quality <= 100
        assert choice.reached == (choice.quality in spots)  # reached only where it was seen


def test_auto_cap_can_be_lowered() -> None:
    calls, score = counted(lambda q: q)
    choice = auto(score, 80, max_trials=2)
    assert len(calls) == 2 and choice.trials == 2
    assert choice.reached and choice.score is not None and choice.score >= 80


def test_a_target_not_reached_at_quality_100_gives_100_and_says_so() -> None:
    calls, score = counted(lambda q: 60 + q / 10)  # at most 70
    choice = auto(score, 80)
    assert (choice.quality, choice.reached, choice.note) == (100, False, "target-not-reached")
    assert calls[-1] == 100 and len(calls) <= AUTO_MAX_TRIALS


def test_an_easy_image_gets_a_low_quality() -> None:
    calls, score = counted(lambda q: 95 + q / 100)  # reaches 80 everywhere
    choice = auto(score, 80)
    assert (choice.quality, choice.reached) == (1, True)
    assert len(calls) <= 4


def test_the_time_cap_stops_the_search() -> None:
    ticks = itertools.count(0, 30)  # every look at the clock: 30 s later
    calls, score = counted(lambda q: q)
    choice = auto(score, 99.5, seconds=10, clock=lambda: float(next(ticks)))
    assert len(calls) == 1  # 70: a miss; then the time was up
    assert (choice.quality, choice.reached) == (100, False)  # not known to reach: the highest
    ticks = itertools.count(0, 30)
    calls, score = counted(lambda q: q)
    choice = auto(score, 50, seconds=10, clock=lambda: float(next(ticks)))
    assert len(calls) == 1 and (choice.quality, choice.reached) == (70, True)  # the one seen


# -- the metric ---------------------------------------------------------------------------------


def photo_like(width: int = 240, height: int = 160) -> pyvips.Image:
    """Smooth gradients, soft noise and a few edges: an image encoders lose detail on."""
    noise = pyvips.Image.gaussnoise(width, height, sigma=12, mean=0, seed=7)
    base = texture(width, height).gaussblur(3)
    edges = solid(width // 3, height // 2, (20, 200, 40))
    image = (base.cast("float") + noise).insert(edges, width // 3, height // 4)
    return image.cast("uchar").copy(interpretation="srgb").copy_memory()


def test_identical_images_score_100() -> None:
    image = photo_like()
    assert perceptual.ssimulacra2(image, image) == pytest.approx(100.0, abs=1e-6)


def test_the_score_falls_with_the_quality() -> None:
    image = photo_like()
    scores = [
        perceptual.ssimulacra2(image, perceptual.decode(jpeg(image, q=q))) for q in (10, 40, 70, 95)
    ]
    assert scores == sorted(scores) and scores[0] < 60 < scores[-1]


def test_the_metric_compares_images_of_one_size_only() -> None:
    with pytest.raises(ValueError, match="one size"):
        perceptual.ssimulacra2(photo_like(240, 160), photo_like(120, 80))


def test_tiny_and_grey_images_are_scored() -> None:
    grey = solid(5, 3, (90,))
    assert perceptual.ssimulacra2(grey, grey) == pytest.approx(100.0, abs=1e-6)


def test_the_sample_is_the_image_when_small_else_a_mosaic_on_the_16_px_grid() -> None:
    assert perceptual.sample_boxes(200, 100) == ([(0, 0, 200, 100)], 1)
    boxes, across = perceptual.sample_boxes(2560, 1600)
    side = perceptual.SAMPLE_TILE
    assert across == perceptual.SAMPLE_TILES and len(boxes) == across**2
    assert all(x % 16 == 0 and y % 16 == 0 for x, y, _, _ in boxes)
    assert all(x + side <= 2560 and y + side <= 1600 for x, y, _, _ in boxes)
    assert boxes[0][:2] == (0, 0) and boxes[-1][0] + side > 2560 - 16  # spread to the edges
    image = photo_like(1000, 700)
    sample = perceptual.sample(image, "jpeg")
    assert (sample.width, sample.height) == (side * across, side * across)
    # WebP: one piece from the middle (its encoder reacts to seams between tiles)
    (box,), _ = perceptual.sample_boxes(2560, 1600, seamless=True)
    assert box == (1024, 544, side * across, side * across)
    assert perceptual.sample(image, "webp").width == side * across


# -- real encodes -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
def test_auto_is_the_lowest_quality_reaching_the_target(fmt: str) -> None:
    image = photo_like()  # small: the sample is the whole image, so the check is exact
    r = run("passthrough", png(image), fmt, quality="auto", **{QUALITY_TARGET: 75})
    assert r["ok"] and r["quality_note"] == ""
    q = r["quality"]
    assert isinstance(q, int) and 1 <= q < 100
    aim = 75 + perceptual.MARGIN  # what the search aims at on a sample
    assert perceptual.ssimulacra2(image, perceptual.decode(r["data"])) >= aim
    below = encode(image, fmt, {"quality": q - 1})
    assert perceptual.ssimulacra2(image, perceptual.decode(below)) < aim


def test_a_higher_target_gets_a_higher_quality() -> None:
    src = png(photo_like())
    low = run("passthrough", src, "jpeg", quality="auto", **{QUALITY_TARGET: 60})
    high = run("passthrough", src, "jpeg", quality="auto", **{QUALITY_TARGET: 88})
    assert low["quality"] < high["quality"] and len(low["data"]) < len(high["data"])


def test_a_flat_image_reaches_the_target_at_a_low_quality() -> None:
    r = run("compress", png(solid(300, 200, GREY)), "jpeg")
    assert r["ok"] and r["quality"] is not None and r["quality"] < 30 and r["quality_note"] == ""


def test_an_image_that_cannot_reach_the_target_gets_100_and_says_so() -> None:
    noise = pyvips.Image.gaussnoise(96, 64, sigma=80, mean=128, seed=3)
    image = noise.bandjoin([noise.rotate(180), noise.flip("horizontal")])
    src = png(image.cast("uchar").copy(interpretation="srgb"))
    r = run("passthrough", src, "webp", quality="auto", **{QUALITY_TARGET: 100})
    assert r["ok"] and (r["quality"], r["quality_note"]) == (100, "target-not-reached")


def test_the_pillow_runtime_searches_too(tmp_path: Any) -> None:
    from ..images import pillow_twin

    graph = pillow_twin("passthrough", tmp_path)
    image = photo_like()
    r = run(graph, png(image), "jpeg", quality="auto", **{QUALITY_TARGET: 75})
    assert r["ok"] and r["quality_note"] == "" and 1 <= r["quality"] < 100
    assert perceptual.ssimulacra2(image, perceptual.decode(r["data"])) >= 75


def test_max_bytes_lowers_the_quality_auto_chose() -> None:
    src = png(photo_like(400, 300))
    chosen = run("transform", src, "jpeg", quality="auto")
    assert chosen["ok"] and chosen["quality"] > 30
    limit = len(chosen["data"]) * 3 // 4
    fitted = run("transform", src, "jpeg", quality="auto", **{"max-bytes": limit})
    assert fitted["ok"] and len(fitted["data"]) <= limit
    assert 30 <= fitted["quality"] < chosen["quality"]


def test_png_and_gif_ignore_auto() -> None:
    r = run("compress", png(photo_like()), "png")
    assert r["ok"] and r["quality"] is None and r["quality_note"] == ""


# -- parameters and the cache key ---------------------------------------------------------------


def key(query: str, graph: str = "compress.jpg") -> str:
    q = MultiDict([("input", "http://example.com/a.jpg"), *_pairs(query)])
    return parse_request(graph, q, accept="", catalogue=catalogue(), avif_enabled=False).key


def _pairs(query: str) -> list[tuple[str, str]]:
    return [tuple(p.split("=", 1)) for p in query.split("&") if p]  # type: ignore[misc]


def test_the_key_holds_auto_and_its_target() -> None:
    assert key("") == key("quality=auto") == key("quality=auto&quality-target=80")
    assert key("quality-target=70") != key("")
    assert key("quality=75") != key("")
    # a numeric quality: the target means nothing, and is not in the key
    assert key("quality=75&quality-target=70") == key("quality=75")


def test_every_graph_takes_auto() -> None:
    for name, graph in catalogue().items():
        if "quality" not in graph.params:
            continue
        params, _ = parse_params(graph, MultiDict(quality="auto"))
        assert params["quality"] == "auto" and params[QUALITY_TARGET] == 80, name


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ({"quality": "best"}, "whole number or auto"),
        ({"quality": "0"}, "at least 1"),
        ({QUALITY_TARGET: "101"}, "at most 100"),
        ({QUALITY_TARGET: "high"}, "must be a number"),
    ],
)
def test_bad_auto_parameters_are_invalid_param(query: dict[str, str], why: str) -> None:
    with pytest.raises(InvalidParam, match=why):
        parse_params(catalogue()["passthrough"], MultiDict(query))
