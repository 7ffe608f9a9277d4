"""The Pillow runtime's pipeline: ``run`` takes a job through its steps (``load``, the
operations of ``ops``, ``encode``)."""

from __future__ import annotations

from PIL import Image

from ...errors import UnsupportedSource
from ...formats import AUTO, OUTPUT_FORMATS
from ...graphdef import SOURCE, Definition, bool_arg, int_arg, resolve
from ...messages import Rendered, RenderJob
from ...records import Params
from ..registry import OPS
from .encode import finish
from .load import Context, draft, frames_of, open_source
from .ops import OPERATIONS


def run(job: RenderJob, data: bytes | memoryview) -> Rendered:
    """Run ``job``'s graph on the source ``data``."""
    if job.source_format == "svg":  # Pillow has no SVG decoder; libvips graphs rasterise SVG
        raise UnsupportedSource("SVG sources are decoded by libvips graphs only, not Pillow ones")
    definition, params = job.definition, job.params
    ctx = Context(job.limits, assets=job.assets)
    im = open_source(data, job.limits)
    n_frames = getattr(im, "n_frames", 1)
    if definition.copies_source:
        return Rendered(bytes(data), job.source_format, im.width, im.height, n_frames)
    animate = (
        n_frames > 1
        and (job.format == AUTO or OUTPUT_FORMATS[job.format].animated)
        and all(OPS[node.op].frames for node in definition.nodes)
    )

    nodes = definition.nodes
    if nodes and nodes[0].inputs == (SOURCE,) and OPS[nodes[0].op].scales:
        first = resolve(nodes[0].args, params)
        draft(im, int_arg(first, "width"), int_arg(first, "height"))

    plain = im.mode in ("RGB", "RGBA", "L", "LA") and not im.info.get("icc_profile")
    frames, durations = frames_of(im, animate, job.limits, ctx)
    upright = frames[0].size
    frames = [_evaluate(definition, params, frame, ctx) for frame in frames]
    enc = resolve(definition.encode, params)
    rendered = finish(frames, durations, im.info.get("loop", 0), job.format, enc, ctx)
    if (
        bool_arg(enc, "keep_source_if_smaller")
        and plain
        and rendered.format == job.source_format
        and (rendered.width, rendered.height) == upright
        and rendered.frames == n_frames
        and len(rendered.data) >= len(data)
    ):
        rendered.data = bytes(data)
    return rendered


def _evaluate(
    definition: Definition, params: Params, source: Image.Image, ctx: Context
) -> Image.Image:
    """The output node's image for one frame of the source, each node made once."""
    images: dict[str, Image.Image] = {SOURCE: source}
    for node in definition.nodes:
        args = resolve(node.args, params)
        images[node.id] = OPERATIONS[node.op]([images[n] for n in node.inputs], args, ctx)
    return images[definition.output]
