"""The libvips runtime's pipeline: ``run`` takes a job through its steps (``load``, the
operations of ``ops``, ``encode``)."""

from __future__ import annotations

import pyvips

from ...errors import UnsupportedSource
from ...formats import AUTO, OUTPUT_FORMATS
from ...graphdef import SOURCE, resolve
from ...messages import Rendered, RenderJob
from ..registry import OPS
from .encode import finish
from .load import Context, inspect, load
from .ops import OPERATIONS, resize, sized


def run(job: RenderJob, data: bytes | memoryview) -> Rendered:
    """Run ``job``'s graph on the source ``data``."""
    definition, params = job.definition, job.params
    animate = job.format == AUTO or OUTPUT_FORMATS[job.format].animated
    if definition.copies_source and job.source_format == "svg":  # it may carry scripts
        raise UnsupportedSource("an SVG source is only rasterised, never passed through")
    source = inspect(data, job.source_format, job.limits, animate=animate)
    ctx = Context(job.limits, source)
    if definition.copies_source:
        return Rendered(
            bytes(data), job.source_format, source.width, source.height, source.pages_in_file
        )

    results: dict[str, pyvips.Image] = {}
    first = definition.nodes[0] if definition.nodes else None
    for node in definition.nodes:
        args = resolve(node.args, params)
        (inp,) = node.inputs
        if node is first and inp == SOURCE and OPS[node.op].scales and sized(args):
            results[node.id] = resize(None, args, ctx)  # shrink-on-load from the bytes
            continue
        image = results[inp] if inp != SOURCE else load(ctx)
        results[node.id] = OPERATIONS[node.op](image, args, ctx)
    out = definition.output
    image = results[out] if out != SOURCE else load(ctx)
    return finish(image, job.format, resolve(definition.encode, params), ctx)
