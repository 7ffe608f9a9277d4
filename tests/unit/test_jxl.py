"""JPEG XL results (libjxl through imagecodecs), from both runtimes: decoded back with libjxl,
they have the right size, colours and alpha, and quality means what it means to cjxl."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from ..images import (
    BLUE,
    RED,
    alpha_png,
    close,
    halves,
    jpeg,
    ok,
    pillow_twin,
    png,
    run,
    solid,
    texture,
    vload,
)


def decoded(data: bytes) -> np.ndarray:
    assert data[:2] == b"\xff\x0a"  # a bare JPEG XL codestream
    return imagecodecs.jpegxl_decode(data)


@pytest.fixture(params=["vips", "pillow"])
def resize(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    return "resize" if request.param == "vips" else pillow_twin("resize", tmp_path)


def test_resized_to_jpeg_xl(resize) -> None:
    result = ok(run(resize, png(halves(200, 100, RED, BLUE)), "jxl", width=100, quality=90))
    assert (result["format"], result["width"], result["height"]) == ("jxl", 100, 50)
    assert result["quality"] == 90
    pixels = decoded(result["data"])
    assert pixels.shape == (50, 100, 3)
    assert close(pixels[5, 50], RED, 6) and close(pixels[45, 50], BLUE, 6)


def test_alpha_is_kept(resize) -> None:
    pixels = decoded(ok(run(resize, alpha_png(64, 64), "jxl"))["data"])
    assert pixels.shape == (64, 64, 4)
    assert pixels[32, 5, 3] == 0 and pixels[32, 60, 3] == 255
    assert close(pixels[32, 60][:3], RED, 6)


def test_grey_stays_grey(resize) -> None:
    grey = solid(32, 32, (90, 90, 90)).colourspace("b-w")
    pixels = decoded(ok(run(resize, png(grey), "jxl"))["data"])
    assert pixels.shape == (32, 32) and abs(int(pixels[16, 16]) - 90) <= 3


def test_quality_trades_bytes_and_100_is_lossless() -> None:
    src = jpeg(texture(256, 192), q=95)
    sizes = [len(ok(run("compress", src, "jxl", quality=q))["data"]) for q in (40, 75, 95)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1] / 2
    lossless = ok(run("resize", png(texture(64, 48)), "jxl", quality=100))["data"]
    assert (decoded(lossless) == vload(png(texture(64, 48))).numpy()).all()


def test_max_bytes_lowers_the_quality() -> None:
    src = jpeg(texture(400, 300), q=95)
    result = ok(run("transform", src, "jxl", quality=95, **{"max-bytes": 9000}))
    assert len(result["data"]) <= 9000 and result["quality"] < 95
