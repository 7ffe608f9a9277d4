"""The decoder allow-list and Pillow's bomb check, as set up by ``execute.init`` in real worker
processes (spawned through ``ProcessPool``, so this test process is never changed).

Each probe is first shown to load in this process, where ``init`` never ran: a refusal in the
worker process is then the allow-list's doing, not a broken sample.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pyvips
from PIL import Image

from imgserver.messages import Limits, RenderFailed, RenderJob
from imgserver.pool import ProcessPool
from imgserver.runtime.execute import init_options
from imgserver.settings import Settings

from ..images import catalogue, jpeg, pillow_twin, png, texture

TARGETS = "tests.decoder_targets"

SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="6">'
    b'<rect width="8" height="6" fill="red"/></svg>'
)
MATRIX = b"2 2\n1 2\n3 4\n"  # libvips' matrix text format (matrixload)


def pillow_saved(fmt: str, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (8, 6), "red").save(out, fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def samples() -> dict[str, bytes]:
    image = texture(8, 6)
    return {"jpeg": jpeg(image), "png": png(image), "svg": SVG, "matrix": MATRIX}


@pytest.fixture(scope="module")
def pillow_samples() -> dict[str, bytes]:
    return {
        "PNG": pillow_saved("PNG"),
        "JPEG": pillow_saved("JPEG"),
        "PPM": pillow_saved("PPM"),
        "PGM": pillow_saved("PPM", "L"),
        "EPS": pillow_saved("EPS"),  # Image.open reads its header without Ghostscript
        "BMP": pillow_saved("BMP"),
        "ICO": pillow_saved("ICO"),
        "TGA": pillow_saved("TGA"),
    }


def loads_here(data: bytes) -> bool:
    image = pyvips.Image.new_from_source(pyvips.Source.new_from_memory(data), "")
    image.avg()
    return True


async def started(**options: Any) -> ProcessPool:
    pool = ProcessPool(1, 1, deadline=60.0, module=TARGETS, init_options=options)
    await pool.open()
    return pool


@pytest.fixture
async def default_pool() -> AsyncIterator[ProcessPool]:
    """A worker process set up as the service sets them up by default."""
    pool = await started(**init_options(Settings.from_env({})))
    yield pool
    await pool.close()


def test_init_options_come_from_settings() -> None:
    assert init_options(Settings.from_env({})) == {"svg": False, "max_source_pixels": 50_000_000}
    s = Settings.from_env({"IMGSERVER_ENABLE_SVG": "1", "IMGSERVER_MAX_SOURCE_PIXELS": "1000"})
    assert init_options(s) == {"svg": True, "max_source_pixels": 1000}


async def test_libvips_loads_only_the_allowed_formats_after_init(
    default_pool: ProcessPool, samples: dict[str, bytes]
) -> None:
    assert all(loads_here(data) for data in samples.values())
    loaded = (await default_pool.run({"op": "vips", "sources": samples}))["loaded"]
    assert loaded["jpeg"] is None and loaded["png"] is None, loaded
    for name in ("svg", "matrix"):
        assert loaded[name] is not None, (name, loaded)


async def test_the_svg_switch_unblocks_svg_and_nothing_else(samples: dict[str, bytes]) -> None:
    pool = await started(svg=True, max_source_pixels=50_000_000)
    try:
        loaded = (await pool.run({"op": "vips", "sources": samples}))["loaded"]
    finally:
        await pool.close()
    assert loaded["jpeg"] is None and loaded["png"] is None and loaded["svg"] is None, loaded
    assert loaded["matrix"] is not None, loaded


async def test_every_untrusted_operation_is_blocked_after_init(
    default_pool: ProcessPool,
) -> None:
    """What libvips flags untrusted is blocked (block_untrusted_set). In this build every such
    operation is a loader, so the loader allow-list blocks them too: removing only the
    block_untrusted call would not fail this test today, a build with untrusted savers would."""
    untrusted = (await default_pool.run({"op": "untrusted"}))["untrusted"]
    assert "VipsForeignLoadSvgSource" in untrusted  # librsvg is flagged untrusted
    assert untrusted and all(untrusted.values()), untrusted
    pool = await started(svg=True)
    try:
        with_svg = (await pool.run({"op": "untrusted"}))["untrusted"]
    finally:
        await pool.close()
    open_ops = sorted(name for name, blocked in with_svg.items() if not blocked)
    assert open_ops and all(name.startswith("VipsForeignLoadSvg") for name in open_ops), open_ops


async def test_pillow_opens_only_the_allowed_formats_after_init(
    default_pool: ProcessPool, pillow_samples: dict[str, bytes]
) -> None:
    for data in pillow_samples.values():
        Image.open(io.BytesIO(data))  # every sample opens where init never ran
    opened = (await default_pool.run({"op": "pillow", "sources": pillow_samples}))["opened"]
    assert opened["PNG"] is None and opened["JPEG"] is None, opened
    for fmt in ("PPM", "PGM", "EPS", "BMP", "ICO", "TGA"):
        assert opened[fmt] is not None and "UnidentifiedImageError" in opened[fmt], (fmt, opened)


async def test_pillow_refuses_images_over_the_source_limit_after_init(tmp_path: Path) -> None:
    """MAX_IMAGE_PIXELS is set once per process from IMGSERVER_MAX_SOURCE_PIXELS: Pillow itself
    refuses more pixels than that while opening, whatever limit a job carries."""
    over, at = png(texture(1001, 1000)), png(texture(1000, 1000))
    Image.open(io.BytesIO(over))  # Pillow's own default lets it through here
    pool = await started(max_source_pixels=1_000_000)
    try:
        opened = (await pool.run({"op": "pillow", "sources": {"over": over, "at": at}}))["opened"]
        graph = pillow_twin("passthrough", tmp_path)
        job = RenderJob(
            graph.name,
            graph.definition,
            {},
            "png",
            "png",
            Limits(max_source_pixels=50_000_000, max_output_pixels=25_000_000, max_frames=500),
        )
        result = await pool.run({"op": "job", "job": job}, over)
    finally:
        await pool.close()
    assert opened["at"] is None, opened
    assert opened["over"] is not None and "DecompressionBombError" in opened["over"], opened
    assert "1000000 pixels" in opened["over"]
    assert isinstance(result, RenderFailed) and result.error.code == "too_many_pixels", result


async def test_numpy_is_imported_only_by_a_process_that_runs_a_numpy_op(
    default_pool: ProcessPool,
) -> None:
    """numpy adds 80-120 MB to a process's address space, which the worker memory limit counts:
    a worker that never runs desaturate or enhancelowres does not load it."""
    limits = Limits(max_source_pixels=50_000_000, max_output_pixels=25_000_000, max_frames=500)
    source = png(texture(40, 30))
    probe = {"op": "modules", "env": "OPENBLAS_NUM_THREADS"}
    for name in ("passthrough", "desaturate"):
        graph = catalogue()[name]
        job = RenderJob(name, graph.definition, {}, "png", "png", limits)
        result = await default_pool.run({"op": "job", "job": job}, source)
        assert not isinstance(result, RenderFailed), result
        loaded = await default_pool.run(probe)
        assert loaded == {"numpy": name == "desaturate", "env": "1"}, (name, loaded)
