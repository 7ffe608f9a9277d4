"""``graphs/schema.json``: the JSON Schema of a graph file, generated from the op registry.

The catalogue validates every graph file against it at start-up (after its own checks, which
give the friendlier messages), editors can use it while a graph is written, and
``python -m imgserver schema`` prints it; a test keeps the committed file equal to this.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .runtime.registry import ENCODE_ARGS, OPS, PARAM_TYPES, RUNTIMES, Arg, Op

MAX_NODES = 32  # nodes in one graph
MAX_STRING = 256  # characters of a string value
COLOR_PATTERN = r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$"
# A tone curve: control points in:out (each 0..255, whole or decimal) separated by commas,
# spaces allowed around them; the parameter parser checks the ranges and the order.
MAX_CURVE_POINTS = 32
MAX_CURVE = 1024  # characters of a curve value
CURVE_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
# ... and in the schemas, a number from 0 to 255 (no leading zeros: a stricter spelling)
_CURVE_VALUE = r"(?:(?:25[0-4]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?:\.[0-9]+)?|255(?:\.0+)?)"
_CURVE_POINT = rf"\s*{_CURVE_VALUE}\s*:\s*{_CURVE_VALUE}\s*"
CURVE_PATTERN = rf"^{_CURVE_POINT}(?:,{_CURVE_POINT}){{1,{MAX_CURVE_POINTS - 1}}}$"
PARAM_NAME_PATTERN = r"^[^_=][^=]*$"  # not empty, no leading "_" (reserved), no "="
NODE_ID_PATTERN = r"^(?!source$)[^_]"  # not "source", no leading "_" (added nodes)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


def value_schema(
    kind: str, minimum: float | None, maximum: float | None, values: Sequence[str] | None
) -> dict[str, Any]:
    """The JSON Schema of a value of a parameter or argument type (``PARAM_TYPES``), with its
    range or its values: graph files' constants here, query values in ``openapi.py``."""
    schema: dict[str, Any]
    if kind in ("int", "number"):
        schema = {"type": "integer" if kind == "int" else "number"}
        if minimum is not None:
            schema["minimum"] = minimum
        if maximum is not None:
            schema["maximum"] = maximum
        if values:  # words the parameter takes besides numbers (quality: auto)
            schema = {"anyOf": [schema, {"type": "string", "enum": list(values)}]}
    elif kind == "bool":
        schema = {"type": "boolean"}
    elif kind == "enum":
        schema = {"type": "string", "enum": list(values or ())}
    elif kind == "color":
        schema = {"type": "string", "pattern": COLOR_PATTERN}
    elif kind == "curve":
        schema = {"type": "string", "maxLength": MAX_CURVE, "pattern": CURVE_PATTERN}
    else:
        schema = {"type": "string", "maxLength": MAX_STRING}
    return schema


def _value(arg: Arg) -> dict[str, Any]:
    """The schema of a constant for ``arg``."""
    schema: dict[str, Any]
    if arg.type == "source":  # another image: only ever from a parameter, never a constant
        schema = {"type": "null"}
    else:
        schema = value_schema(arg.type, arg.minimum, arg.maximum, arg.values)
    if arg.optional:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def _args(args: Mapping[str, Arg]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            name: {
                "description": arg.description,
                "anyOf": [_value(arg), _ref("paramRef")],
            }
            for name, arg in args.items()
        },
    }


def _inputs(op: Op) -> dict[str, Any]:
    listed = {
        "type": "array",
        "items": {"type": "string"},
        "minItems": len(op.inputs),
        "maxItems": len(op.inputs),
    }
    return {"anyOf": [{"type": "string"}, listed]} if len(op.inputs) == 1 else listed


def _node(op: Op) -> dict[str, Any]:
    properties: dict[str, Any] = {"op": {"const": op.name}}
    if op.inputs:  # an op that makes an image (fill, delaunay) takes no "in"
        properties["in"] = {
            "description": f"The node(s) it takes ({', '.join(op.inputs)}), or 'source'.",
            **_inputs(op),
        }
    properties["args"] = _args(op.args)
    return {
        "description": op.description,
        "type": "object",
        "required": ["op"] if len(op.inputs) < 2 else ["op", "in"],
        "additionalProperties": False,
        "properties": properties,
    }


def _param() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type"],
        "additionalProperties": False,
        "properties": {
            "type": {"enum": list(PARAM_TYPES)},
            "default": {"type": ["integer", "number", "boolean", "string"]},
            "minimum": {"type": "number"},
            "maximum": {"type": "number"},
            "values": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "description": {"type": "string"},
        },
    }


def graph_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a graph file."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "imgserver graph",
        "description": "One graph: its parameters, a small DAG of operations, and how the "
        "result is encoded. Generated from the op registry (GET /ops).",
        "type": "object",
        "required": ["description", "runtime"],
        "additionalProperties": False,
        "properties": {
            "description": {"type": "string", "minLength": 1},
            "runtime": {"enum": list(RUNTIMES)},
            "params": {
                "type": "object",
                "propertyNames": {"pattern": PARAM_NAME_PATTERN},
                "additionalProperties": _ref("param"),
            },
            "nodes": {
                "type": "object",
                "maxProperties": MAX_NODES,
                "propertyNames": {"pattern": NODE_ID_PATTERN},
                "additionalProperties": _ref("node"),
            },
            "output": {"type": "string", "description": "The node whose image is the result."},
            "encode": _args(ENCODE_ARGS),
        },
        "$defs": {
            "paramRef": {
                "description": "The value of one of the graph's parameters.",
                "type": "object",
                "required": ["param"],
                "additionalProperties": False,
                "properties": {"param": {"type": "string"}},
            },
            "param": _param(),
            "node": {"oneOf": [_ref(f"op-{name}") for name in OPS]},
            **{f"op-{name}": _node(op) for name, op in OPS.items()},
        },
    }


def schema_text() -> str:
    """The schema as ``graphs/schema.json`` holds it."""
    return json.dumps(graph_schema(), indent=2) + "\n"
