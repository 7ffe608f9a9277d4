"""GEGL as the reference for the operations imgflo ran on GEGL: Debian's ``gegl`` command line
runs a chain of operations on a PNG the test made, and ``ssim`` compares its answer with ours.

``gegl in.png -o out.png -- op prop=value … svg:screen aux=[ gegl:load path=other.png ]``: the
chain's first op reads ``in.png``; an ``aux=[ … ]`` gives a blend op its second ("aux") input.
GEGL writes 16-bit PNGs; ``reference`` answers 8-bit sRGB (or grey) like ours, cropped to the
area of ``in.png`` (GEGL grows some extents: a blur's, a Sobel filter's).
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import pyvips

GEGL = "gegl"


def require_gegl() -> None:
    if shutil.which(GEGL) is None:
        pytest.fail("Debian's gegl is not installed: run `make test` (it installs it)")


def reference(
    directory: Path,
    source: pyvips.Image,
    chain: list[str],
    *,
    shift: tuple[int, int] = (0, 0),
    whole: bool = False,
    **aux: pyvips.Image,
) -> pyvips.Image:
    """GEGL's result of ``chain`` on ``source``; ``aux`` images are saved as ``{name}.png`` in
    ``directory`` for the chain to load (write ``path=@name`` for them). ``shift`` moves the
    area taken by that many pixels (to undo an op's own shift); ``whole``: GEGL's whole result,
    whatever its size (a rotation's)."""
    require_gegl()
    tag = uuid.uuid4().hex[:8]
    src = directory / f"gegl-in-{tag}.png"
    out = directory / f"gegl-out-{tag}.png"
    source.pngsave(str(src))
    paths = {}
    for name, image in aux.items():
        paths[name] = directory / f"gegl-{name}-{tag}.png"
        image.pngsave(str(paths[name]))
    words = []
    for word in chain:
        for name, path in paths.items():
            word = word.replace(f"@{name}", str(path))
        words.append(word)
    done = subprocess.run(
        [GEGL, str(src), "-o", str(out), "--", *words], capture_output=True, timeout=300
    )
    if done.returncode != 0 or not out.exists():
        raise AssertionError(f"gegl failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    image = pyvips.Image.new_from_buffer(out.read_bytes(), "")
    image = image.colourspace("b-w" if image.bands < 3 else "srgb")  # 16 -> 8 bits
    if image.format != "uchar":
        image = image.cast("uchar")
    if whole:
        return image
    x, y = _offset(image, source)
    return image.crop(x + shift[0], y + shift[1], source.width, source.height)


def _offset(image: pyvips.Image, source: pyvips.Image) -> tuple[int, int]:
    """Where ``source``'s area starts in GEGL's (possibly grown) result: GEGL grows an extent
    evenly on both sides."""
    return (image.width - source.width) // 2, (image.height - source.height) // 2


def ssim(a: pyvips.Image, b: pyvips.Image) -> float:
    """Mean SSIM over every band (alpha included), 8-bit values, Gaussian window sigma 1.5."""
    assert (a.width, a.height, a.bands) == (b.width, b.height, b.bands), (a, b)
    x, y = a.cast("float"), b.cast("float")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(image: pyvips.Image) -> pyvips.Image:
        return image.gaussblur(1.5, precision="float")

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    value = ((mx * my * 2 + c1) * (sxy * 2 + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(value.avg())


def imgcmp(directory: Path, a: pyvips.Image, b: pyvips.Image, tolerance: float = 1.5) -> str:
    """``gegl-imgcmp``, the check imgflo's own tests ran (at 1.5): AssertionError unless every
    pixel is within ``tolerance`` (CIE ΔE) of the other image's; its report otherwise."""
    tag = uuid.uuid4().hex[:8]
    paths = [directory / f"imgcmp-{name}-{tag}.png" for name in ("a", "b")]
    for image, path in zip((a, b), paths, strict=True):
        image.pngsave(str(path))
    done = subprocess.run(
        ["gegl-imgcmp", *map(str, paths), str(tolerance)], capture_output=True, timeout=60
    )
    report = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0 and "identical" in report, report
    return report
