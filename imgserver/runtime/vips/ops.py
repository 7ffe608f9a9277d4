"""libvips runtime, step 2: the operations, one per op of the registry that names the vips
runtime (``OPERATIONS``), grouped by family: ``geometry.py``, ``filters.py``, ``colour.py``,
``compose.py`` (and the colour arithmetic they share, ``space.py``). An operation takes its
input images (as many as the registry's ``inputs``), its resolved arguments and the job's
context, and gives an image. Most take one image: ``one`` adapts them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pyvips

from ...graphdef import Args
from . import c2g, colour, compose, denoise, filters, geometry, mix
from .load import Context

Operation = Callable[[Sequence[pyvips.Image], Args, Context], pyvips.Image]
OneImage = Callable[[pyvips.Image, Args, Context], pyvips.Image]


def one(fn: OneImage) -> Operation:
    """An operation of one image, as the pipeline calls operations."""

    def operation(images: Sequence[pyvips.Image], args: Args, ctx: Context) -> pyvips.Image:
        (image,) = images
        return fn(image, args, ctx)

    operation.__name__ = fn.__name__
    return operation


OPERATIONS: Mapping[str, Operation] = {
    "fit": one(geometry.resize),
    "resize": one(geometry.resize),
    "crop": one(geometry.crop),
    "gaussblur": one(filters.gaussblur),
    "desaturate": one(colour.desaturate),
    "greyscale": one(colour.greyscale),
    "composite": compose.composite,
    "opacity": one(compose.opacity),
    "fill": compose.fill,
    "c2g": one(c2g.c2g),
    "mix": mix.mix,
    "denoise": one(denoise.denoise),
}
