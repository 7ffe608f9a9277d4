"""The op registry: every operation a graph file may use, with its arguments (type, range,
default), its image inputs, and which runtimes implement it.

This module declares; ``vips/ops.py`` and ``pillow/ops.py`` implement (a test fails when a
runtime lacks an op it is declared for, or implements one it is not). Everything else is
generated from it: the catalogue's validation of graph files, ``graphs/schema.json``
(``imgserver/graphschema.py``) and ``GET /ops``. It imports no image library, so the frontend
can validate graphs without loading libvips.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..graphdef import ArgValue

VIPS = "vips"
PILLOW = "pillow"
RUNTIMES = (VIPS, PILLOW)
ARG_TYPES = ("int", "number", "bool", "string", "enum", "color")

GRAVITIES = (
    "centre",
    "north",
    "south",
    "east",
    "west",
    "north-east",
    "north-west",
    "south-east",
    "south-west",
    "smart",
    "attention",
    "entropy",
)
RESIZE_MODES = ("fit", "fill", "crop")
BLEND_MODES = (
    "over",
    "multiply",
    "screen",
    "overlay",
    "darken",
    "lighten",
    "colour-dodge",
    "colour-burn",
    "hard-light",
    "soft-light",
    "difference",
    "exclusion",
    "add",
)
MAX_CANVAS = 16384  # a side of an image an op makes (fill, delaunay)


@dataclass(frozen=True)
class Arg:
    """One argument of an operation. ``None`` is allowed (and means "not given") if optional."""

    type: str  # one of ARG_TYPES
    default: ArgValue = None
    optional: bool = False
    values: tuple[str, ...] = ()  # an enum's values
    minimum: float | None = None  # an int's or number's range
    maximum: float | None = None
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "default": self.default,
            "optional": self.optional,
            "values": list(self.values) or None,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "description": self.description,
        }


@dataclass(frozen=True)
class Op:
    name: str
    description: str
    args: Mapping[str, Arg]
    inputs: tuple[str, ...] = ("image",)  # names of the images it takes, in order; () makes one
    runtimes: frozenset[str] = frozenset(RUNTIMES)
    scales: bool = False  # a resize: when it reads the source directly, the loader shrinks on load
    frames: bool = True  # runs on every frame of an animation (else: only the first frame is kept)

    def to_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "inputs": list(self.inputs),
            "runtimes": sorted(self.runtimes),
            "frames": self.frames,
            "args": {name: arg.to_json() for name, arg in self.args.items()},
        }


def _op(
    name: str,
    description: str,
    *,
    inputs: tuple[str, ...] = ("image",),
    scales: bool = False,
    frames: bool = True,
    runtimes: tuple[str, ...] = RUNTIMES,
    **args: Arg,
) -> Op:
    return Op(
        name, description, MappingProxyType(args), inputs, frozenset(runtimes), scales, frames
    )


def _size(side: str) -> Arg:
    return Arg("int", optional=True, minimum=1, description=f"The box's {side} in pixels.")


def _side(side: str) -> Arg:
    return Arg("int", optional=True, minimum=1, maximum=MAX_CANVAS, description=f"The {side}.")


_UPSCALE = Arg("bool", False, description="Allow making the image larger than it is.")

OPS: Mapping[str, Op] = MappingProxyType(
    {
        op.name: op
        for op in (
            _op(
                "fit",
                "Scale to fit inside width x height, keeping the aspect ratio.",
                scales=True,
                width=_size("width"),
                height=_size("height"),
                upscale=_UPSCALE,
            ),
            _op(
                "resize",
                "Resize: fit inside the box, fill it exactly (stretch), or cover it and crop "
                "by gravity.",
                scales=True,
                width=_size("width"),
                height=_size("height"),
                mode=Arg("enum", "fit", values=RESIZE_MODES, description="How to meet the box."),
                gravity=Arg(
                    "enum", "centre", values=GRAVITIES, description="What mode=crop keeps."
                ),
                upscale=_UPSCALE,
            ),
            _op(
                "crop",
                "Cut out a rectangle (clamped to the image).",
                x=Arg("int", 0, minimum=0, description="Left edge."),
                y=Arg("int", 0, minimum=0, description="Top edge."),
                width=Arg("int", optional=True, minimum=1, description="Width; default: all."),
                height=Arg("int", optional=True, minimum=1, description="Height; default: all."),
            ),
            _op(
                "gaussblur",
                "Gaussian blur with separate standard deviations in x and y.",
                sigma_x=Arg("number", 1.5, minimum=0, description="Standard deviation in x."),
                sigma_y=Arg("number", 1.5, minimum=0, description="Standard deviation in y."),
            ),
            _op(
                "desaturate",
                "Remove colour: 1 is fully grey, 0 leaves the image unchanged.",
                amount=Arg("number", 1.0, minimum=0, maximum=1, description="How much."),
            ),
            _op(
                "greyscale",
                "Colour to grey by luminance in linear light (GEGL's gray); alpha is kept.",
                runtimes=(VIPS,),
            ),
            _op(
                "composite",
                "Blend the overlay onto the base (SVG compositing, as GEGL's svg:* operations): "
                "in linear light, or on sRGB values with srgb; the result has the base's size "
                "and colour model.",
                inputs=("base", "overlay"),
                runtimes=(VIPS,),
                frames=False,
                mode=Arg("enum", "over", values=BLEND_MODES, description="The blend mode."),
                srgb=Arg("bool", False, description="Blend sRGB-encoded values, not linear light."),
                x=Arg("int", 0, description="Where the overlay's left edge goes on the base."),
                y=Arg("int", 0, description="Where the overlay's top edge goes on the base."),
            ),
            _op(
                "opacity",
                "Multiply the alpha by value (an opaque image gains an alpha band).",
                runtimes=(VIPS,),
                value=Arg("number", 1.0, minimum=0, maximum=1, description="The opacity."),
            ),
            _op(
                "fill",
                "A canvas of one colour.",
                inputs=(),
                runtimes=(VIPS,),
                frames=False,
                width=Arg(
                    "int", minimum=1, maximum=MAX_CANVAS, optional=True, description="Width."
                ),
                height=Arg(
                    "int", minimum=1, maximum=MAX_CANVAS, optional=True, description="Height."
                ),
                color=Arg("color", "#000000", description="The colour, #rrggbb or #rrggbbaa."),
            ),
            _op(
                "autocontrast",
                "Stretch the histogram so the darkest pixel is black and the lightest white, "
                "ignoring `cutoff` percent at each end.",
                runtimes=(PILLOW,),
                cutoff=Arg("number", 0.0, minimum=0, maximum=49, description="Percent ignored."),
            ),
            _op(
                "c2g",
                "Colour to grey keeping local contrast (GEGL's c2g, the STRESS method): each "
                "pixel is placed between envelopes of the colours sampled at random within "
                "radius. Deterministic (a fixed seed); beyond a fixed amount of work the "
                "envelopes are computed on a shrunk copy. Alpha is kept.",
                runtimes=(VIPS,),
                radius=Arg(
                    "int", 300, minimum=2, maximum=6000, description="Neighbourhood, in pixels."
                ),
                samples=Arg(
                    "int", 4, minimum=1, maximum=1000, description="Samples per iteration."
                ),
                iterations=Arg(
                    "int",
                    10,
                    minimum=1,
                    maximum=1000,
                    description="Iterations averaged: more are less noisy and cost more.",
                ),
                enhance_shadows=Arg(
                    "bool", False, description="Boost detail in shadows, at the cost of noise."
                ),
            ),
            _op(
                "mix",
                "Interpolate linearly from the input (ratio 0) to aux (ratio 1), colour and "
                "alpha, in linear light (GEGL's mix); the result has the input's size and "
                "colour model.",
                inputs=("input", "aux"),
                runtimes=(VIPS,),
                ratio=Arg("number", 0.5, minimum=0, maximum=1, description="How much of aux."),
            ),
            _op(
                "denoise",
                "Edge-preserving smoothing, repeated (GEGL's noise-reduction): a pixel moves "
                "half way towards those neighbours that do not make any axis through it more "
                "curved. Alpha is kept.",
                runtimes=(VIPS,),
                iterations=Arg(
                    "int", 4, minimum=0, maximum=8, description="Passes: more are smoother."
                ),
            ),
        )
    }
)

# Options of a graph's "encode" section.
ENCODE_ARGS: Mapping[str, Arg] = MappingProxyType(
    {
        "quality": Arg(
            "int",
            80,
            minimum=1,
            maximum=100,
            description="1-100 for JPEG, WebP, AVIF, and PNG palette quantisation.",
        ),
        "progressive": Arg(
            "bool",
            False,
            description="Progressive JPEG, interlaced PNG (not with optimize) and GIF.",
        ),
        "optimize": Arg("bool", False, description="Spend CPU for smaller files."),
        "palette": Arg(
            "bool", False, description="Quantise PNG to a palette when one holds it unseen."
        ),
        "keep_source_if_smaller": Arg(
            "bool", False, description="Never larger than the source: send it when it is smaller."
        ),
        "copy_source": Arg("bool", False, description="Send the source bytes unchanged."),
    }
)


def ops_json() -> dict[str, Any]:
    """The body of ``GET /ops``."""
    return {
        "ops": {name: op.to_json() for name, op in OPS.items()},
        "encode": {name: arg.to_json() for name, arg in ENCODE_ARGS.items()},
        "runtimes": list(RUNTIMES),
    }
