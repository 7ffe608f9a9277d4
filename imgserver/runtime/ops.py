"""The registry of graph operations: names, argument types, and which runtimes implement them.

This module declares; ``vips.py`` and ``pillow.py`` implement. It imports no image library, so
the frontend can validate graphs without loading libvips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

VIPS = "vips"
PILLOW = "pillow"
RUNTIMES = (VIPS, PILLOW)

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


@dataclass(frozen=True)
class Arg:
    """One argument of an operation. ``None`` is allowed (and means "not given") if optional."""

    type: str  # int, number, bool, string, enum, color
    default: Any = None
    optional: bool = False
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Op:
    name: str
    description: str
    args: MappingProxyType[str, Arg]
    runtimes: frozenset[str] = frozenset(RUNTIMES)
    scales: bool = False  # a resize: when it reads the source directly, the loader shrinks on load


def _op(
    name: str,
    description: str,
    scales: bool = False,
    runtimes: tuple[str, ...] = RUNTIMES,
    **args: Arg,
) -> Op:
    return Op(name, description, MappingProxyType(args), frozenset(runtimes), scales)


_SIZE = Arg("int", optional=True)

OPS: MappingProxyType[str, Op] = MappingProxyType(
    {
        op.name: op
        for op in (
            _op(
                "fit",
                "Scale to fit inside width x height, keeping the aspect ratio.",
                True,
                width=_SIZE,
                height=_SIZE,
                upscale=Arg("bool", False),
            ),
            _op(
                "resize",
                "Resize: fit inside the box, fill it exactly (stretch), or cover it "
                "and crop by gravity.",
                True,
                width=_SIZE,
                height=_SIZE,
                mode=Arg("enum", "fit", values=RESIZE_MODES),
                gravity=Arg("enum", "centre", values=GRAVITIES),
                upscale=Arg("bool", False),
            ),
            _op(
                "crop",
                "Cut out a rectangle (clamped to the image).",
                x=Arg("int", 0),
                y=Arg("int", 0),
                width=_SIZE,
                height=_SIZE,
            ),
            _op(
                "gaussblur",
                "Gaussian blur with separate standard deviations in x and y.",
                sigma_x=Arg("number", 1.5),
                sigma_y=Arg("number", 1.5),
            ),
            _op(
                "desaturate",
                "Remove colour: 1 is fully grey, 0 leaves the image unchanged.",
                amount=Arg("number", 1.0),
            ),
            _op(
                "autocontrast",
                "Stretch the histogram so the darkest pixel is black and the "
                "lightest white, ignoring `cutoff` percent at each end.",
                runtimes=(PILLOW,),
                cutoff=Arg("number", 0.0),
            ),
        )
    }
)

# Options of a graph's "encode" section.
ENCODE_ARGS: MappingProxyType[str, Arg] = MappingProxyType(
    {
        "quality": Arg("int", 80),  # 1-100 for JPEG, WebP, AVIF, PNG palette quantisation
        "progressive": Arg("bool", False),  # progressive JPEG, interlaced PNG (not with
        # optimize: Adam7 makes a PNG larger) and GIF
        "optimize": Arg("bool", False),  # spend CPU for smaller files
        "palette": Arg("bool", False),  # quantise PNG to a palette when one holds it unseen
        "keep_source_if_smaller": Arg("bool", False),  # never larger than the source
        "copy_source": Arg("bool", False),  # send the source bytes unchanged (noop)
    }
)


@dataclass(frozen=True)
class Limits:
    """The limits a worker enforces while running a job (from settings)."""

    max_source_pixels: int
    max_output_pixels: int
    max_frames: int


@dataclass
class Outcome:
    """What running a graph produced (in the worker process)."""

    data: bytes
    format: str
    width: int
    height: int
    frames: int = 1
    warnings: list[str] = field(default_factory=list)


def resolve(args: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Replace ``{"param": name}`` references with the request's values."""
    return {k: params.get(v["param"]) if isinstance(v, dict) else v for k, v in args.items()}
