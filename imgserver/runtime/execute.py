"""The worker-process side of a job: set libvips and Pillow up once for untrusted input, then
run graphs on request.

``execute`` never raises: it answers :class:`Rendered` or :class:`RenderFailed` with an error
from the API's vocabulary, so a bad image can only ever fail its own job.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import TYPE_CHECKING, Any

from ..errors import ImgServerError, Internal, TooManyPixels, UndecodableSource
from ..messages import RenderFailed, RenderJob, RenderOutcome
from .registry import VIPS

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)


# The only loaders libvips may use on untrusted bytes: JPEG, PNG, WebP, GIF, AVIF/HEIF, TIFF.
# (HEVC-coded HEIF goes to pillow-heif: this libheif has no HEVC decoder.)
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
PILLOW_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "AVIF", "HEIF")


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
    os.environ["RAYON_NUM_THREADS"] = str(threads)  # oxipng's thread pool (PNG compress)
    # numpy's BLAS (the numpy ops use none of it) would start a thread pool per process
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import pyvips
    from PIL import Image

    pyvips.cache_set_max(0)  # results are cached by the service, not libvips
    pyvips.block_untrusted_set(True)  # never run loaders libvips marks as unsafe
    pyvips.operation_block_set("VipsForeignLoad", True)  # and of the rest, only ours:
    for loader in LOADERS + ((SVG_LOADER,) if svg else ()):
        pyvips.operation_block_set(loader, False)
    pyvips.concurrency_set(threads)
    import pillow_heif

    # HEVC HEIF (iPhone photos): pillow-heif decodes it, with as many threads as libvips
    # has in this process; thumbnails, depth maps and auxiliary images are never read.
    pillow_heif.options.DECODE_THREADS = threads
    pillow_heif.options.THUMBNAILS = False
    pillow_heif.options.DEPTH_IMAGES = False
    pillow_heif.options.AUX_IMAGES = False
    pillow_heif.register_heif_opener()
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


def execute(job: RenderJob, source: bytes | memoryview) -> RenderOutcome:
    """Run one job on its source's bytes. Never raises: a failure is a RenderFailed whose error
    message is public (no library's own words: those go to this process's log)."""
    import pyvips
    from PIL import Image

    from .pillow.pipeline import run as run_pillow
    from .vips.pipeline import run as run_vips

    run = run_vips if job.definition.runtime == VIPS else run_pillow
    try:
        return run(job, source)
    except ImgServerError as exc:
        return RenderFailed(exc.failure())
    except pyvips.Error as exc:
        return _failed(UndecodableSource(_cannot_decode(job)), job, str(exc.detail or exc.message))
    except Image.DecompressionBombError as exc:
        return _failed(TooManyPixels(f"the {_name(job)} source has too many pixels"), job, str(exc))
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # Pillow's decode errors
        return _failed(UndecodableSource(_cannot_decode(job)), job, str(exc))
    except MemoryError:
        return RenderFailed(TooManyPixels("the image needs too much memory").failure())
    except Exception:
        log.exception("graph %s failed", job.graph)
        return RenderFailed(Internal("the graph failed unexpectedly").failure())


def _name(job: RenderJob) -> str:
    return job.source_format.upper()


def _cannot_decode(job: RenderJob) -> str:
    if not job.source_format:  # a graph that draws: nothing was decoded
        return "the image could not be made"
    return (
        f"the {_name(job)} source cannot be decoded: it is corrupt, truncated, or uses a "
        "feature of the format that is not supported"
    )


def _failed(error: ImgServerError, job: RenderJob, library_text: str) -> RenderFailed:
    """The public error; the library's own words are logged here, never sent."""
    first = library_text.strip().splitlines()
    log.info("graph %s: %s: %s", job.graph, error.code, first[0][:300] if first else "")
    return RenderFailed(error.failure())
