"""The worker-process side of a job: set libvips up once, then run graphs on request.

``execute`` never raises: it answers ``{"ok": True, ...result}`` or ``{"ok": False, "error"}``
with an error from API.md's vocabulary, so a bad image can only ever fail its own job.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)


def init(threads: int) -> None:
    """Configure libvips for a server process. Call before anything else imports pyvips."""
    os.environ["VIPS_CONCURRENCY"] = str(threads)
    import pyvips

    pyvips.cache_set_max(0)  # results are cached by the service, not libvips
    pyvips.block_untrusted_set(True)  # never run loaders libvips marks as unsafe
    pyvips.concurrency_set(threads)


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
            job["definition"], job["params"], job["format"], job["source"],
            job["source_format"], Limits(**job["limits"]),
        )  # fmt: skip
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
        "data": outcome.data,
        "format": outcome.format,
        "width": outcome.width,
        "height": outcome.height,
        "frames": outcome.frames,
        "warnings": outcome.warnings,
    }
