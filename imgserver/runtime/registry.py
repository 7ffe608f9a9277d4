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

from ..graphdef import MAX_DPR, ArgValue

VIPS = "vips"
PILLOW = "pillow"
RUNTIMES = (VIPS, PILLOW)
# "curve": a tone curve's control points, "in:out,in:out,..." (params.parse_curve)
PARAM_TYPES = ("int", "number", "bool", "string", "enum", "color", "curve")
# An argument may also be a "source": another image to fetch, an http(s) URL or upload:{id}
# (a string parameter feeds it; the worker fetches it under the same rules as the input).
ARG_TYPES = (*PARAM_TYPES, "source")

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
    "focal",
)
PLACES = GRAVITIES[:9]  # where a thing goes: the centre or a compass point
FLIPS = ("none", "horizontal", "vertical", "both")
RESIZE_MODES = ("fit", "fill", "crop", "pad")
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
ABYSS_POLICIES = ("none", "clamp", "black", "white")  # what a blur sees outside the image
INTERPOLATORS = ("nearest", "bilinear", "bicubic")
MAX_CANVAS = 16384  # a side of an image an op makes (fill, delaunay)
RETRO_PRESETS = ("none", "prog", "indie", "batcave", "country")
# Bounds that keep an op's worst case on a large image under the job deadline (README).
MAX_SIGMA = 1500.0  # gaussblur: GEGL's own maximum
MAX_MOTION = 1000.0  # motion_blur: GEGL's own maximum
IDENTITY_CURVE = "0:0,255:255"  # a curve that changes nothing


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
    common: Mapping[str, Arg] | None = None,
    **args: Arg,
) -> Op:
    """An op; ``common``: arguments it shares with others (given before its own)."""
    merged = MappingProxyType({**(common or {}), **args})
    return Op(name, description, merged, inputs, frozenset(runtimes), scales, frames)


def _size(side: str) -> Arg:
    return Arg("int", optional=True, minimum=1, description=f"The box's {side} in pixels.")


def _side(side: str) -> Arg:
    return Arg("int", optional=True, minimum=1, maximum=MAX_CANVAS, description=f"The {side}.")


_UPSCALE = Arg("bool", False, description="Allow making the image larger than it is.")
_BACKGROUND = Arg("color", "#ffffff", description="Fills padding and rotated corners.")
_RESIZE = {
    "width": _size("width"),
    "height": _size("height"),
    "mode": Arg("enum", "fit", values=RESIZE_MODES, description="How to meet the box."),
    "gravity": Arg(
        "enum",
        "centre",
        values=GRAVITIES,
        description="What mode=crop keeps (focal: the point focus_x, focus_y); where mode=pad "
        "puts the image.",
    ),
    "focus_x": Arg("number", 0.5, minimum=0, maximum=1, description="Focal point, 0 = left."),
    "focus_y": Arg("number", 0.5, minimum=0, maximum=1, description="Focal point, 0 = top."),
    "upscale": _UPSCALE,
    "background": _BACKGROUND,
}

_TRANSFORM = {
    **_RESIZE,
    "dpr": Arg("number", 1.0, minimum=1, maximum=MAX_DPR, description="Multiplies the box."),
    "trim": Arg(
        "number",
        0.0,
        minimum=0,
        maximum=255,
        description="Cut away a uniform border of the top-left pixel's colour, this far apart "
        "(0: off).",
    ),
    "rotate": Arg(
        "number",
        0.0,
        minimum=-360,
        maximum=360,
        description="Degrees clockwise, any angle; multiples of 90 are exact.",
    ),
    "flip": Arg("enum", "none", values=FLIPS, description="Mirror the image."),
    "pad": Arg("int", 0, minimum=0, maximum=1000, description="A border on every side, in px."),
    "blur": Arg("number", 0.0, minimum=0, maximum=100, description="Gaussian blur sigma."),
    "sharpen": Arg("number", 0.0, minimum=0, maximum=10, description="Unsharp mask sigma."),
    "brightness": Arg("number", 1.0, minimum=0, maximum=4, description="1: unchanged."),
    "contrast": Arg("number", 1.0, minimum=0, maximum=4, description="1: unchanged."),
    "saturation": Arg("number", 1.0, minimum=0, maximum=4, description="1: unchanged."),
    "watermark": Arg(
        "source",
        optional=True,
        description="An image laid over the result: an http(s) URL or upload:{id}, fetched "
        "under the input's rules and limits.",
    ),
    "watermark_position": Arg(
        "enum", "south-east", values=PLACES, description="Where the watermark goes."
    ),
    "watermark_opacity": Arg(
        "number", 1.0, minimum=0, maximum=1, description="The watermark's opacity."
    ),
    "watermark_scale": Arg(
        "number",
        0.0,
        minimum=0,
        maximum=1,
        description="The watermark's width as a share of the result's (0: its own size).",
    ),
    "watermark_margin": Arg(
        "int", 0, minimum=0, maximum=1000, description="Its distance from the edges, in px."
    ),
}


def _curve(channels: str) -> Arg:
    return Arg(
        "curve",
        IDENTITY_CURVE,
        description=f"The curve of {channels}: control points in:out, 0-255, e.g. "
        "0:0,64:40,192:220,255:255.",
    )


def _gradient_map() -> Op:
    """The gradient_map op: color1..color5 at stop1..stop5 (GEGL gradient-map's defaults:
    black at 0, the others white at 1), srgb, opacity."""
    args = {}
    for i in range(1, 6):
        colour = "#000000" if i == 1 else "#ffffff"
        args[f"color{i}"] = Arg("color", colour, description=f"Colour {i}, #rrggbb or #rrggbbaa.")
        args[f"stop{i}"] = Arg(
            "number",
            0.0 if i == 1 else 1.0,
            minimum=0,
            maximum=1,
            description=f"Where colour {i} is, as a grey value 0..1.",
        )
    args["srgb"] = Arg(
        "bool", False, description="Grey as sRGB-encoded luminance, colours mixed on sRGB values."
    )
    args["opacity"] = Arg(
        "number", 1.0, minimum=0, maximum=1, description="Opacity of the mapped image."
    )
    return Op(
        "gradient_map",
        "Grey values mapped through a gradient of up to five colours at stops in 0..1 (GEGL's "
        "gradient-map; stops taken in order of position), laid over the image at opacity in "
        "linear light.",
        MappingProxyType(args),
        runtimes=frozenset((VIPS,)),
    )


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
                "Resize: fit inside the box, fill it exactly (stretch), cover it and crop by "
                "gravity, or fit inside it and pad it to the exact box with the background.",
                scales=True,
                common=_RESIZE,
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
                "Gaussian blur with separate standard deviations in x and y (GEGL's "
                "gaussian-blur): libvips blurs linear light, Pillow sRGB-encoded values.",
                sigma_x=Arg(
                    "number",
                    1.5,
                    minimum=0,
                    maximum=MAX_SIGMA,
                    description="Standard deviation in x.",
                ),
                sigma_y=Arg(
                    "number",
                    1.5,
                    minimum=0,
                    maximum=MAX_SIGMA,
                    description="Standard deviation in y.",
                ),
                abyss=Arg(
                    "enum",
                    "clamp",
                    values=ABYSS_POLICIES,
                    description="What the blur sees outside the image: its edge pixels "
                    "(clamp), black, white, or nothing (none: transparent, black on an image "
                    "without alpha).",
                ),
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
                colour=Arg(
                    "bool",
                    False,
                    description="A colour overlay gives a grey base colour (as GEGL 0.3's svg "
                    "ops, which imgflo ran; GEGL 0.4 keeps the base's model).",
                ),
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
                "transform",
                "Everything a page needs in one op, in a fixed order: trim, crop box or focal "
                "point, resize (dpr), rotate, flip, pad, blur, sharpen, colour, watermark "
                "(on Pillow, all but the interest finders: gravity smart/attention/entropy).",
                scales=True,
                frames=False,
                common=_TRANSFORM,
            ),
            _op(
                "autocontrast",
                "Stretch the histogram so the darkest pixel is black and the lightest white, "
                "ignoring `cutoff` percent at each end.",
                runtimes=(PILLOW,),
                cutoff=Arg("number", 0.0, minimum=0, maximum=49, description="Percent ignored."),
            ),
            _op(
                "curves",
                "imgflo's retro presets: per-channel curves on sRGB values (retro-curve's), "
                "laid over the image at strength; a grey image becomes a colour one.",
                runtimes=(VIPS,),
                preset=Arg(
                    "enum", "prog", values=RETRO_PRESETS, description="The curves ('none': as is)."
                ),
                strength=Arg(
                    "number", 0.5, minimum=0, maximum=1, description="Opacity of the curved image."
                ),
                srgb=Arg("bool", True, description="Blend sRGB-encoded values, not linear light."),
            ),
            _op(
                "lut",
                "Tone curves through control points in:out (0-255) on 8-bit sRGB values, "
                "applied as one lookup table: red, green and blue each through its own curve, "
                "then all three through `all`, moved `strength` of the way from the original. "
                "Smooth: a monotone cubic through the points (PCHIP, it never overshoots); else "
                "straight lines; flat before the first point and after the last. Alpha is kept; "
                "a grey image stays grey unless red, green and blue differ.",
                runtimes=(VIPS,),
                all=_curve("every colour channel, after its own"),
                red=_curve("red"),
                green=_curve("green"),
                blue=_curve("blue"),
                smooth=Arg(
                    "bool", True, description="A smooth curve through the points, else lines."
                ),
                strength=Arg(
                    "number",
                    1.0,
                    minimum=0,
                    maximum=1,
                    description="Opacity of the curved image over the original.",
                ),
            ),
            _gradient_map(),
            _op(
                "delaunay",
                "imgflo's Delaunay triangle pattern: 50 points and 10 colours drawn from the seed "
                "(the same seed, the same image), on #dddddd.",
                inputs=(),
                runtimes=(VIPS,),
                frames=False,
                seed=Arg("string", "", description="Any text: the pattern's seed."),
                width=Arg("int", 600, minimum=1, maximum=MAX_CANVAS, description="Width."),
                height=Arg("int", 400, minimum=1, maximum=MAX_CANVAS, description="Height."),
            ),
            _op(
                "sobel",
                "Sobel edge detection on each colour channel in linear light (GEGL's "
                "edge-sobel); alpha is kept.",
                runtimes=(VIPS,),
                horizontal=Arg("bool", True, description="Detect horizontal change."),
                vertical=Arg("bool", True, description="Detect vertical change."),
                keep_sign=Arg(
                    "bool",
                    True,
                    description="With one direction only: mid-grey is no change (else the "
                    "magnitude).",
                ),
                blur_x=Arg(
                    "number",
                    0.0,
                    minimum=0,
                    maximum=MAX_SIGMA,
                    description="Deviation in x of a Gaussian blur (abyss clamp) done first, "
                    "unrounded: a gaussblur node before would round its smooth result to 8 "
                    "bits, which the filter turns into contour lines.",
                ),
                blur_y=Arg(
                    "number",
                    0.0,
                    minimum=0,
                    maximum=MAX_SIGMA,
                    description="Deviation in y of that blur.",
                ),
            ),
            _op(
                "motion_blur",
                "Linear motion blur (GEGL's motion-blur-linear): each pixel the mean of the "
                "line of `length` pixels through it at `angle`; outside the image is "
                "transparent, so the edges fade (an opaque image gains alpha).",
                runtimes=(VIPS,),
                length=Arg("number", 10.0, minimum=0, maximum=MAX_MOTION, description="In pixels."),
                angle=Arg(
                    "number",
                    0.0,
                    minimum=-180,
                    maximum=180,
                    description="Degrees clockwise from the x axis (90: vertical).",
                ),
            ),
            _op(
                "brightness_contrast",
                "Contrast scaled about mid-grey, then brightness added, in linear light "
                "(GEGL's brightness-contrast); alpha is kept.",
                runtimes=(VIPS,),
                brightness=Arg(
                    "number", 0.0, minimum=-3, maximum=3, description="Added after contrast."
                ),
                contrast=Arg(
                    "number", 1.0, minimum=-5, maximum=5, description="Scale about 50% grey."
                ),
            ),
            _op(
                "rotate",
                "Rotate about the centre by any angle, clockwise (counter_clockwise: the other "
                "way, as GEGL's rotate); the result is the rotated image's bounding box, its "
                "corners filled with `background`. Multiples of 90 degrees are exact.",
                runtimes=(VIPS,),
                degrees=Arg("number", 0.0, minimum=-360, maximum=360, description="The angle."),
                counter_clockwise=Arg(
                    "bool", False, description="Turn counter-clockwise (GEGL's direction)."
                ),
                background=Arg(
                    "color",
                    "#00000000",
                    description="The corners' colour, #rrggbb or #rrggbbaa (transparent).",
                ),
                interpolate=Arg(
                    "enum",
                    "bilinear",
                    values=INTERPOLATORS,
                    description="How pixels between the source's are made.",
                ),
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
                    "int",
                    4,
                    minimum=0,
                    maximum=32,
                    description="Passes: more are smoother (as many as fit the work limit).",
                ),
            ),
        )
    }
)

AUTO_QUALITY = "auto"  # a quality parameter's value that asks for the lowest quality reaching:
AUTO_TARGET = 80.0  # this SSIMULACRA2 score by default (runtime/perceptual.py; a setting)

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
        "background": Arg(
            "color", "#ffffff", description="Fills alpha for a format that has none (JPEG)."
        ),
        "quality_target": Arg(
            "number",
            optional=True,
            minimum=0,
            maximum=100,
            description="With quality auto: the SSIMULACRA2 score to reach (default: the "
            "IMGSERVER_AUTO_QUALITY_TARGET setting).",
        ),
        "max_bytes": Arg(
            "int",
            optional=True,
            minimum=1,
            description="Lower the quality (never below 30) until the result fits in this many "
            "bytes.",
        ),
    }
)


def ops_json() -> dict[str, Any]:
    """The body of ``GET /ops``."""
    return {
        "ops": {name: op.to_json() for name, op in OPS.items()},
        "encode": {name: arg.to_json() for name, arg in ENCODE_ARGS.items()},
        "runtimes": list(RUNTIMES),
    }
