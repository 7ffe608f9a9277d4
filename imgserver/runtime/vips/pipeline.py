"""The libvips runtime's pipeline: ``run`` takes a job through its steps: the source (``load``:
read once, shrunk on load when the first node scales it), the graph's nodes in dependency
order (the operations of ``ops``; a node may take several images), the result (``encode``)."""

from __future__ import annotations

import pyvips

from ...errors import UnsupportedSource
from ...formats import AUTO, OUTPUT_FORMATS
from ...graphdef import SOURCE, Definition, resolve
from ...messages import Rendered, RenderJob
from ...records import Params
from ..registry import OPS
from .encode import finish
from .geometry import sized
from .load import Context, inspect, load
from .ops import FROM_SOURCE, OPERATIONS


def run(job: RenderJob, data: bytes | memoryview) -> Rendered:
    """Run ``job``'s graph on the source ``data`` (empty for a graph that reads none)."""
    definition, params = job.definition, job.params
    if definition.copies_source and job.source_format == "svg":  # it may carry scripts
        raise UnsupportedSource("an SVG source is only rasterised, never passed through")
    source = None
    if definition.needs_source:
        source = inspect(data, job.source_format, job.limits, animate=_animates(job))
    ctx = Context(job.limits, source, assets=job.assets)
    if definition.copies_source:
        src = ctx.src
        return Rendered(bytes(data), job.source_format, src.width, src.height, src.pages_in_file)
    image = _evaluate(definition, params, ctx)
    return finish(image, job.format, resolve(definition.encode, params), ctx)


def _animates(job: RenderJob) -> bool:
    """Whether an animated source stays animated: the output format can hold frames, and
    every op of the graph runs frame by frame."""
    fmt_animates = job.format == AUTO or OUTPUT_FORMATS[job.format].animated
    return fmt_animates and all(OPS[node.op].frames for node in job.definition.nodes)


def _evaluate(definition: Definition, params: Params, ctx: Context) -> pyvips.Image:
    """The output node's image. Each node's image is made once; one read by more than one
    node is made in memory first, so it is neither computed twice nor read twice from a
    sequential source."""
    uses = definition.uses()
    images: dict[str, pyvips.Image] = {}

    def image_of(name: str) -> pyvips.Image:
        if name == SOURCE and SOURCE not in images:
            images[SOURCE] = load(ctx)
        return images[name]

    for i, node in enumerate(definition.nodes):
        args = resolve(node.args, params)
        if (
            i == 0
            and node.inputs == (SOURCE,)
            and uses.get(SOURCE) == 1
            and node.op in FROM_SOURCE
            and sized(args)
            and ctx.src.decode is None
        ):
            image = FROM_SOURCE[node.op](args, ctx)  # shrink-on-load, from the bytes
        else:
            image = OPERATIONS[node.op]([image_of(name) for name in node.inputs], args, ctx)
        images[node.id] = image.copy_memory() if uses.get(node.id, 0) > 1 else image
    return image_of(definition.output)
