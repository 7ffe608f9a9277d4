"""The floor: the image libraries called directly, one process per core (``spawn`` pool).

Each process reads every source into memory once (``init``), so a call measures only decode +
resize + encode: no HTTP, no queue, no storage. Both libraries strip metadata on output, as the
service and thumbor do.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

SOURCES: dict[str, bytes] = {}
LIBRARY = ""


def init(library: str, paths: list[str], threads: int) -> None:
    """Pool initializer: load the sources, set the library up like the service's workers."""
    global LIBRARY
    LIBRARY = library
    os.environ["VIPS_CONCURRENCY"] = str(threads)
    for p in paths:
        SOURCES[Path(p).name] = Path(p).read_bytes()
    if library == "pyvips":
        import pyvips

        pyvips.cache_set_max(0)  # a repeated source must not come from libvips' cache
        pyvips.concurrency_set(threads)
    else:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None  # sizes are ours; no bomb warning


def resize(name: str, width: int, quality: int = 80) -> bytes:
    """One source (by file name) to ``width`` px wide, JPEG at ``quality``."""
    data = SOURCES[name]
    if LIBRARY == "pyvips":
        import pyvips

        image = pyvips.Image.thumbnail_buffer(data, width)
        return bytes(image.jpegsave_buffer(Q=quality, keep="none"))

    from PIL import Image

    image = Image.open(io.BytesIO(data))
    height = max(1, round(image.height * width / image.width))
    image.draft("RGB", (width, height))  # JPEG: decode at 1/2, 1/4 or 1/8 scale
    if image.mode != "RGB":
        image = image.convert("RGB")
    # what Image.thumbnail does (reduce by an integer factor, then Lanczos), at exactly width
    image = image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=2.0)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def warm() -> int:
    """A no-op call that makes the pool start its process."""
    return os.getpid()
