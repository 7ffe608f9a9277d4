"""libvips runtime, step 2: the operations, one per op of the registry that names the vips
runtime (``OPERATIONS``), grouped by family: ``geometry.py``, ``filters.py``, ``colour.py``,
``compose.py``, ``curves.py`` (retro's curves), ``gradient.py`` (gradient map), ``effect.py`` (an
effect laid over the original, shared by those two), ``delaunay.py`` (the triangle pattern),
``transform.py`` and ``trim.py`` (the transform op), ``mix.py``, and the colour arithmetic they
share, ``space.py``; computed in numpy, and so imported on first use (``on_demand``): ``c2g.py``,
``denoise.py`` and ``lut.py`` (curves through control points). An operation takes its input
images (as many as the registry's ``inputs``), its resolved arguments and the job's context, and
gives an image. Most take one image: ``one`` adapts them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence

import pyvips

from ...graphdef import Args
from . import colour, compose, curves, delaunay, filters, geometry, gradient, mix, transform
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


def on_demand(module: str, name: str) -> Operation:
    """The operation of one image ``name`` of the sibling ``module``, imported on its first call.
    For the ops computed in numpy: importing numpy (and its OpenBLAS) adds some 80-120 MB to a
    process's address space, which the worker memory limit (``RLIMIT_AS``) counts; only the
    processes that run those ops should carry it."""

    def operation(images: Sequence[pyvips.Image], args: Args, ctx: Context) -> pyvips.Image:
        fn: OneImage = getattr(importlib.import_module(f".{module}", __package__), name)
        (image,) = images
        return fn(image, args, ctx)

    operation.__name__ = name
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
    "transform": one(transform.transform),
    "curves": one(curves.curves),
    "gradient_map": one(gradient.gradient_map),
    "delaunay": delaunay.delaunay,
    "sobel": one(filters.sobel),
    "motion_blur": one(filters.motion_blur),
    "brightness_contrast": one(colour.brightness_contrast),
    "rotate": one(geometry.rotate),
    "c2g": on_demand("c2g", "c2g"),
    "mix": mix.mix,
    "denoise": on_demand("denoise", "denoise"),
    "lut": on_demand("lut", "lut"),
}

# Ops that, as a graph's first node reading the source, decode it shrunk on load (they take
# their arguments and the context, and read the source themselves).
FROM_SOURCE: Mapping[str, Callable[[Args, Context], pyvips.Image]] = {
    "fit": lambda args, ctx: geometry.resize(None, args, ctx),
    "resize": lambda args, ctx: geometry.resize(None, args, ctx),
    "transform": lambda args, ctx: transform.transform(None, args, ctx),
}
