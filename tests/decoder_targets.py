"""Probes of the decoder allow-list, run inside spawned worker processes after the real
``execute.init`` (see tests/unit/test_decoders.py). Nothing here imports pyvips or Pillow at module
level: the worker process must be set up before libvips is loaded.
"""

from __future__ import annotations

import io
from typing import Any

UNTRUSTED = 16  # VipsOperationFlags
BLOCKED = 32


def init(threads: int, memory_limit: int = 0, **options: Any) -> None:
    from imgserver.runtime import execute

    execute.init(threads, memory_limit, **options)


def execute(job: dict[str, Any], source: Any = None) -> Any:
    op = job["op"]
    if op == "vips":
        return {"loaded": {name: _vips_loads(data) for name, data in job["sources"].items()}}
    if op == "pillow":
        return {"opened": {name: _pillow_opens(data) for name, data in job["sources"].items()}}
    if op == "untrusted":
        return _untrusted()
    if op == "modules":  # what this process has imported, and an environment variable
        import os
        import sys

        return {"numpy": "numpy" in sys.modules, "env": os.environ.get(job["env"])}
    if op == "job":  # a real job, through the real entry point
        from imgserver.runtime import execute as real

        return real.execute(job["job"], source)
    raise ValueError(op)


def _vips_loads(data: bytes) -> str | None:
    """None when libvips decodes ``data``, else its error."""
    import pyvips

    try:
        image = pyvips.Image.new_from_source(pyvips.Source.new_from_memory(data), "")
        image.avg()
    except pyvips.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def _pillow_opens(data: bytes) -> str | None:
    """None when Pillow opens ``data`` (header only), else its error."""
    from PIL import Image

    try:
        Image.open(io.BytesIO(data))
    except Exception as exc:  # which error it is, is the answer
        return f"{type(exc).__name__}: {exc}"
    return None


def _untrusted() -> dict[str, Any]:
    """Every operation libvips flags untrusted, and whether it is blocked."""
    import pyvips
    from pyvips import ffi, vips_lib

    found: dict[str, bool] = {}

    def visit(gtype: int) -> None:
        try:
            op = pyvips.Operation.new_from_name(pyvips.nickname_find(gtype))
        except pyvips.Error:  # abstract classes
            op = None
        if op is not None:
            flags = vips_lib.vips_operation_get_flags(op.pointer)
            if flags & UNTRUSTED:
                found[pyvips.type_name(gtype)] = bool(flags & BLOCKED)

        def child(sub: int, a: Any, b: Any) -> Any:
            visit(sub)
            return ffi.NULL

        pyvips.type_map(gtype, child)

    visit(pyvips.type_from_name("VipsOperation"))
    return {"untrusted": found}
