"""The worker-process side of a job: set libvips up once, then run graphs on request.

``execute`` never raises: it answers ``{"ok": True, ...result}`` or ``{"ok": False, "error"}``
with an error from API.md's vocabulary, so a bad image can only ever fail its own job.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)


# The only loaders libvips may use on untrusted bytes: JPEG, PNG, WebP, GIF, AVIF/HEIF, TIFF.
LOADERS = (
    "VipsForeignLoadJpeg",
    "VipsForeignLoadPng",
    "VipsForeignLoadWebp",
    "VipsForeignLoadNsgif",
    "VipsForeignLoadHeif",
    "VipsForeignLoadTiff",
)
# librsvg, with IMGSERVER_ENABLE_SVG only. libvips marks it untrusted, so this unblocks it
# against block_untrusted too. (The pyvips-binary build has no PDF loader to unblock.)
SVG_LOADER = "VipsForeignLoadSvg"
PILLOW_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "AVIF")


def init_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of ``init`` that come from settings (the pool passes them on)."""
    return {"svg": settings.enable_svg, "max_source_pixels": settings.max_source_pixels}


def init(
    threads: int, memory_limit: int = 0, *, svg: bool = False, max_source_pixels: int = 0
) -> None:
    """Set up a worker process for untrusted input. Call before anything imports pyvips.

    ``memory_limit`` caps the process's address space (bytes; 0: none): an image that needs
    more fails this job (or kills this process, which the pool replaces), nothing else.
    ``svg`` unblocks libvips' SVG loader. ``max_source_pixels`` (0: Pillow's default) becomes
    Pillow's own bomb check, process-wide: Image.open refuses an image over it (rounded up to
    an even number: Pillow refuses at twice its MAX_IMAGE_PIXELS).
    """
    if memory_limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    os.environ["VIPS_CONCURRENCY"] = str(threads)
    import pyvips
    from PIL import Image

    pyvips.cache_set_max(0)  # results are cached by the service, not libvips
    pyvips.block_untrusted_set(True)  # never run loaders libvips marks as unsafe
    pyvips.operation_block_set("VipsForeignLoad", True)  # and of the rest, only ours:
    for loader in LOADERS + ((SVG_LOADER,) if svg else ()):
        pyvips.operation_block_set(loader, False)
    pyvips.concurrency_set(threads)
    if max_source_pixels:
        # Pillow warns over MAX_IMAGE_PIXELS and refuses over twice that: refuse over ours.
        # (The runtime checks each job's own limit exactly; the warning would be noise.)
        Image.MAX_IMAGE_PIXELS = (max_source_pixels + 1) // 2
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    # Pillow: only our formats' plugins (no EPS/Ghostscript, no PDF, no exotic decoders)
    Image.init()
    for fmt in list(Image.OPEN):
        if fmt not in PILLOW_FORMATS:
            Image.OPEN.pop(fmt, None)
    # Image.open tries every id in Image.ID and looks each up in OPEN: keep the two in step
    Image.ID[:] = [fmt for fmt in Image.ID if fmt in Image.OPEN]


def execute(job: dict[str, Any]) -> dict[str, Any]:
    """Run one graph; the payload is built by ``worker.Worker`` (see ``build_payload``)."""
    import pyvips
    from PIL import Image

    from ..errors import ImgServerError, Internal, TooManyPixels, UndecodableSource
    from . import pillow, vips
    from .ops import Limits

    run = vips.run if job["definition"]["runtime"] == "vips" else pillow.run
    try:
        outcome = run(
            job["definition"],
            job["params"],
            job["format"],
            job["source"],
            job["source_format"],
            Limits(**job["limits"]),
        )
    except ImgServerError as exc:
        return {"ok": False, "error": exc.to_dict()}
    except pyvips.Error as exc:
        detail = str(exc.detail or exc.message).strip().splitlines()
        message = detail[0] if detail else "libvips could not decode the image"
        return {"ok": False, "error": UndecodableSource(message[:300]).to_dict()}
    except Image.DecompressionBombError as exc:
        return {"ok": False, "error": TooManyPixels(str(exc)[:300]).to_dict()}
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # Pillow's decode errors
        return {"ok": False, "error": UndecodableSource(str(exc)[:300]).to_dict()}
    except MemoryError:
        return {"ok": False, "error": TooManyPixels("the image needs too much memory").to_dict()}
    except Exception:
        log.exception("graph %s failed", job.get("graph"))
        return {"ok": False, "error": Internal("the graph failed unexpectedly").to_dict()}
    return {
        "ok": True,
        "data": bytes(outcome.data),  # not a view of the shared source
        "format": outcome.format,
        "width": outcome.width,
        "height": outcome.height,
        "frames": outcome.frames,
        "warnings": outcome.warnings,
    }
