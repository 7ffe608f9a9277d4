"""A graph definition, normalised and typed: what a worker process runs.

``catalogue.py`` builds one from a graph file (after validating it against the op registry);
the runtimes run it. An argument is a constant or a reference to one of the graph's parameters
(:class:`ParamRef`), resolved against the request's typed values when the graph runs.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from .records import ParamValue

SOURCE = "source"  # the node id of the source image
MAX_DPR = 4  # the transform op's dpr at most


class ParamRef(msgspec.Struct, frozen=True):
    """``{"param": name}`` in a graph file: the value of the request's parameter ``name``."""

    param: str


ArgValue = ParamValue | None  # None: not given (an optional argument)
ArgSpec = ArgValue | ParamRef
Args = dict[str, ArgValue]


class Node(msgspec.Struct, frozen=True):
    id: str
    op: str
    inputs: tuple[str, ...]  # node ids, or SOURCE
    args: dict[str, ArgSpec]


class Definition(msgspec.Struct, frozen=True):
    runtime: str  # "vips" or "pillow"
    nodes: tuple[Node, ...]  # in dependency order
    output: str  # a node id, or SOURCE
    encode: dict[str, ArgSpec]

    @property
    def copies_source(self) -> bool:
        """The graph sends the source bytes unchanged (``noop``)."""
        return self.encode.get("copy_source") is True

    @property
    def needs_source(self) -> bool:
        """The graph reads the source (a graph that only draws, like ``canvas``, does not)."""
        return self.output == SOURCE or any(SOURCE in node.inputs for node in self.nodes)

    def uses(self) -> dict[str, int]:
        """How many nodes (and the output) read each node's image, by node id or SOURCE."""
        counts: dict[str, int] = {self.output: 1}
        for node in self.nodes:
            for name in node.inputs:
                counts[name] = counts.get(name, 0) + 1
        return counts


def resolve(args: Mapping[str, ArgSpec], params: Mapping[str, ParamValue]) -> Args:
    """The arguments with every parameter reference replaced by the request's value."""
    return {k: params.get(v.param) if isinstance(v, ParamRef) else v for k, v in args.items()}


# Typed reads of resolved arguments (the catalogue checked their types against the registry).


def int_arg(args: Args, name: str) -> int | None:
    """An int argument; None when not given."""
    value = args.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def number_arg(args: Args, name: str, default: float = 0.0) -> float:
    """A number (or int) argument; ``default`` when not given."""
    value = args.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return default


def bool_arg(args: Args, name: str) -> bool:
    return args.get(name) is True


def text_arg(args: Args, name: str, default: str) -> str:
    """A string, enum or colour argument; ``default`` when not given."""
    value = args.get(name)
    return value if isinstance(value, str) else default


def dpr_box(args: Args) -> Args:
    """The transform op's arguments with the box (``width``, ``height``) multiplied by ``dpr``
    (1 to MAX_DPR), as either runtime resizes to it."""
    dpr = max(1.0, min(MAX_DPR, number_arg(args, "dpr", 1.0)))
    box = dict(args)
    for side in ("width", "height"):
        value = int_arg(args, side)
        box[side] = None if value is None else max(1, round(value * dpr))
    return box
