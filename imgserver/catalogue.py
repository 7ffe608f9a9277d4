"""The graph catalogue: loads ``graphs/*.json``, validates every definition at start-up.

A graph file is data::

    {
      "description": "...",
      "runtime": "vips" | "pillow",
      "params": {"<name>": {"type", "default", "minimum", "maximum", "values", "description"}},
      "nodes": {"<id>": {"op": "<op>", "in": "source" | "<id>",
                         "args": {"<arg>": <const> | {"param": "<name>"}}}},
      "output": "<id>" | "source",
      "encode": {"quality": <const> | {"param": ...}, ...}
    }

Every graph takes ``width`` and ``height``; when no node uses them, a final ``fit`` node is added.
A file is checked against the op registry (``runtime/registry.py``: ops, their arguments' types
and ranges, their inputs, the runtimes that implement them) and then against the JSON Schema
generated from it (``graphschema.py``, committed as ``graphs/schema.json``). A broken file
raises :class:`GraphError` naming the file and the problem.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema

from .errors import InvalidParam, UnknownGraph
from .graphdef import SOURCE, ArgSpec, Definition, Node, ParamRef
from .graphschema import COLOR_PATTERN, MAX_NODES, graph_schema
from .params import PARAM_TYPES, Param, curve_text, normalise_color, number_text, parse_curve
from .runtime.registry import AUTO_QUALITY, ENCODE_ARGS, OPS, RUNTIMES, Arg
from .runtime.registry import AUTO_TARGET as TARGET

QUALITY_TARGET = "quality-target"  # the implicit parameter beside a quality that takes auto
SCHEMA_FILE = "schema.json"  # beside the graphs: their JSON Schema, not a graph
GRAPH_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_COLOR = re.compile(COLOR_PATTERN)

# Arg types a parameter of each type may feed.
_FEEDS = {
    "int": {"int", "number"},
    "number": {"number"},
    "bool": {"bool"},
    "string": {"string", "source"},
    "color": {"color"},
    "curve": {"curve"},
    "enum": {"enum", "string"},
}


class GraphError(ValueError):
    """A graph definition file is broken."""


@dataclass(frozen=True)
class Graph:
    name: str
    description: str
    runtime: str
    params: Mapping[str, Param]
    definition: Definition  # normalised: what the worker runs
    digest: str  # sha256 of the normalised definition
    auto_quality: str | None = None  # the parameter that feeds the encoder's quality (takes auto)

    @property
    def copies_source(self) -> bool:
        return self.definition.copies_source

    @functools.cached_property
    def source_params(self) -> tuple[str, ...]:
        """The parameters that name another image to fetch (they feed a "source" argument):
        checked and fetched like the input."""
        ops = {node.op: OPS[node.op] for node in self.definition.nodes}
        return tuple(
            dict.fromkeys(
                value.param
                for node in self.definition.nodes
                for name, value in node.args.items()
                if isinstance(value, ParamRef) and ops[node.op].args[name].type == "source"
            )
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "runtime": self.runtime,
            "needs_input": self.definition.needs_source,
            "params": {n: p.to_json() for n, p in self.params.items()},
        }


class Catalogue(Mapping[str, Graph]):
    """All graphs, by name. Immutable once loaded."""

    def __init__(self, graphs: Mapping[str, Graph]) -> None:
        self._graphs = MappingProxyType(dict(sorted(graphs.items())))

    @classmethod
    def load(
        cls, directory: Path, *, max_dimension: int = 16384, auto_target: float = TARGET
    ) -> Catalogue:
        files = sorted(f for f in directory.glob("*.json") if f.name != SCHEMA_FILE)
        if not files:
            raise GraphError(f"{directory}: no graph files (*.json)")
        return cls(
            {
                f.stem: load_graph(f, max_dimension=max_dimension, auto_target=auto_target)
                for f in files
            }
        )

    def __getitem__(self, name: str) -> Graph:
        return self._graphs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._graphs)

    def __len__(self) -> int:
        return len(self._graphs)

    def get_graph(self, name: str) -> Graph:
        """The graph called ``name``, or 404 unknown_graph listing the ones we have."""
        try:
            return self._graphs[name]
        except KeyError:
            raise UnknownGraph(f"no graph named '{name}'", graphs=list(self._graphs)) from None


def load_graph(path: Path, *, max_dimension: int = 16384, auto_target: float = TARGET) -> Graph:
    """Load and validate one graph file; GraphError names the file and the problem."""
    name = path.stem
    try:
        if not GRAPH_NAME.match(name):
            raise GraphError("the file name must be a lower-case graph name ([a-z0-9_-])")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise GraphError(f"not readable JSON: {exc}") from None
        graph = _build(name, raw, max_dimension, auto_target)
        _check_schema(raw)
        return graph
    except GraphError as exc:
        raise GraphError(f"graph file {path}: {exc}") from None


def _check_schema(raw: Any) -> None:
    """GraphError unless ``raw`` matches graphs/schema.json (checked after ``_build``, whose
    messages are the friendlier ones, so this only catches what it does not check)."""
    validator = jsonschema.Draft202012Validator(graph_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(raw))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise GraphError(f"does not match graphs/schema.json at {where}: {error.message}")


def _build(name: str, raw: Any, max_dimension: int, auto_target: float = TARGET) -> Graph:
    if not isinstance(raw, dict):
        raise GraphError("the top level must be an object")
    _only(raw, {"description", "runtime", "params", "nodes", "output", "encode"}, "graph")
    description = raw.get("description")
    if not isinstance(description, str) or not description:
        raise GraphError("'description' must be a non-empty string")
    runtime = raw.get("runtime")
    if runtime not in RUNTIMES:
        raise GraphError(f"'runtime' must be one of {', '.join(RUNTIMES)}")

    feeds = raw["encode"].get("quality") if isinstance(raw.get("encode"), dict) else None
    auto = feeds.get("param") if isinstance(feeds, dict) else None  # quality=auto's parameter
    params = _params(raw.get("params", {}), max_dimension, auto, auto_target)
    if auto is not None and QUALITY_TARGET not in params:
        auto = None  # not an int parameter: it takes no auto
    nodes = raw.get("nodes", {})
    if not isinstance(nodes, dict) or len(nodes) > MAX_NODES:
        raise GraphError(f"'nodes' must be an object of at most {MAX_NODES} nodes")
    output = raw.get("output", SOURCE)
    encode = _args(raw.get("encode", {}), ENCODE_ARGS, params, "encode")

    checked: dict[str, dict[str, Any]] = {}
    for node_id, node in nodes.items():
        checked[node_id] = _node(node_id, node, runtime, params)
    if output != SOURCE and output not in checked:
        raise GraphError(f"'output' names no node: {output!r}")
    order = _topological(checked, output)

    uses_size = any(
        isinstance(v, dict) and v.get("param") in ("width", "height")
        for n in checked.values()
        for v in n["args"].values()
    )
    if not uses_size and not encode.get("copy_source"):
        # Every graph takes width and height: fit the output into them.
        size_args = {"width": {"param": "width"}, "height": {"param": "height"}}
        checked["_fit"] = {"op": "fit", "in": [output], "args": size_args}
        order.append("_fit")
        output = "_fit"

    canonical = {  # what the digest is taken over (its form is kept: digests stay the same)
        "runtime": runtime,
        "nodes": [{"id": i, **checked[i]} for i in order],
        "output": output,
        "encode": encode,
        # the target is a setting: it enters a request's cache key (a parameter of quality=auto
        # requests), not the digest of every result made from the graph
        "params": {n: p.to_json() for n, p in params.items() if n != QUALITY_TARGET},
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()
    nodes = tuple(
        Node(i, checked[i]["op"], tuple(checked[i]["in"]), _typed(checked[i]["args"]))
        for i in order
    )
    if auto is not None and encode.get("quality_target") is None:
        encode["quality_target"] = {"param": QUALITY_TARGET}
    definition = Definition(runtime, nodes, output, _typed(encode))
    return Graph(name, description, runtime, MappingProxyType(params), definition, digest, auto)


def _typed(args: dict[str, Any]) -> dict[str, ArgSpec]:
    """Checked arguments, with ``{"param": name}`` as a ParamRef."""
    return {k: ParamRef(v["param"]) if isinstance(v, dict) else v for k, v in args.items()}


def _only(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise GraphError(f"{where}: unknown key(s) {', '.join(map(repr, extra))}")


def _params(
    raw: Any, max_dimension: int, auto: str | None = None, auto_target: float = TARGET
) -> dict[str, Param]:
    """The graph's parameters, with the implicit ones: ``width`` and ``height``; and when
    ``auto`` (the parameter feeding the encoder's quality) is an int, it takes ``auto`` too, and
    ``quality-target`` (default ``auto_target``) says what quality=auto aims at."""
    if not isinstance(raw, dict):
        raise GraphError("'params' must be an object")
    spec = raw.get(auto) if auto is not None else None
    if isinstance(spec, dict) and spec.get("type") == "int":
        raw = {
            QUALITY_TARGET: {
                "type": "number",
                "default": auto_target,
                "minimum": 0,
                "maximum": 100,
                "description": f"With {auto}=auto: the SSIMULACRA2 score to reach (90: visually "
                "lossless, 80: very high quality, 70: high, 50: medium); ignored otherwise.",
            },
            **raw,
        }
    size_doc = "Fit the result inside this many pixels ({}); the aspect ratio is kept."
    raw = {
        "width": {
            "type": "int",
            "minimum": 1,
            "maximum": max_dimension,
            "description": size_doc.format("width"),
        },
        "height": {
            "type": "int",
            "minimum": 1,
            "maximum": max_dimension,
            "description": size_doc.format("height"),
        },
        **raw,
    }
    params: dict[str, Param] = {}
    for pname, spec in raw.items():
        where = f"param {pname!r}"
        if not isinstance(pname, str) or pname.startswith("_") or not pname or "=" in pname:
            raise GraphError(f"{where}: names must not be empty or start with '_'")
        if pname == "input":
            raise GraphError(f"{where}: 'input' is the source, it cannot be a parameter")
        if not isinstance(spec, dict):
            raise GraphError(f"{where}: must be an object")
        _only(spec, {"type", "default", "minimum", "maximum", "values", "description"}, where)
        ptype = spec.get("type")
        if ptype not in PARAM_TYPES:
            raise GraphError(f"{where}: 'type' must be one of {', '.join(PARAM_TYPES)}")
        if pname in ("width", "height") and ptype != "int":
            raise GraphError(f"{where}: width and height are always of type int")
        values = spec.get("values")
        if ptype == "enum":
            if not (
                isinstance(values, list) and values and all(isinstance(v, str) for v in values)
            ):
                raise GraphError(f"{where}: an enum needs 'values', a list of strings")
            values = tuple(values)
        elif values is not None:
            raise GraphError(f"{where}: only enums have 'values'")
        elif pname == auto and ptype == "int":
            values = (AUTO_QUALITY,)  # quality=auto: the lowest quality that reaches the target
        low, high = spec.get("minimum"), spec.get("maximum")
        for b in (low, high):
            if b is not None and (ptype not in ("int", "number") or not _is_number(b)):
                raise GraphError(f"{where}: minimum/maximum must be numbers on int/number params")
        if low is not None and high is not None and low > high:
            raise GraphError(f"{where}: minimum is above maximum")
        param = Param(pname, ptype, None, low, high, values, str(spec.get("description", "")))
        default = spec.get("default")
        if default is not None:
            try:
                default = param.parse(_as_query(default))
            except InvalidParam as exc:
                raise GraphError(f"{where}: the default is not valid: {exc.message}") from None
        params[pname] = Param(pname, ptype, default, low, high, values, param.description)
    return params


def _as_query(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _node(node_id: Any, node: Any, runtime: str, params: dict[str, Param]) -> dict[str, Any]:
    where = f"node {node_id!r}"
    if not isinstance(node_id, str) or not node_id or node_id == SOURCE or node_id.startswith("_"):
        raise GraphError(f"{where}: ids must be non-empty, not 'source', not start with '_'")
    if not isinstance(node, dict):
        raise GraphError(f"{where}: must be an object")
    _only(node, {"op", "in", "args"}, where)
    op = OPS.get(node.get("op", ""))
    if op is None:
        raise GraphError(f"{where}: unknown op {node.get('op')!r}; known: {', '.join(OPS)}")
    if runtime not in op.runtimes:
        raise GraphError(f"{where}: op {op.name!r} is not available in the {runtime} runtime")
    wanted = len(op.inputs)
    inputs = node.get("in", SOURCE if wanted == 1 else [])
    if isinstance(inputs, str):
        inputs = [inputs]
    if not (
        isinstance(inputs, list)
        and len(inputs) == wanted
        and all(isinstance(i, str) for i in inputs)
    ):
        names = ", ".join(op.inputs)
        raise GraphError(
            f"{where}: 'in' must name one node (or 'source')"
            if wanted == 1
            else f"{where}: op {op.name!r} makes an image: it takes no 'in'"
            if wanted == 0
            else f"{where}: 'in' must list {wanted} nodes (or 'source'): {names}"
        )
    return {
        "op": op.name,
        "in": inputs,
        "args": _args(node.get("args", {}), op.args, params, where),
    }


def _args(
    raw: Any, spec: Mapping[str, Arg], params: dict[str, Param], where: str
) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise GraphError(f"{where}: 'args' must be an object")
    _only(raw, set(spec), where)
    out: dict[str, Any] = {}
    for aname, arg in spec.items():
        value = raw.get(aname, arg.default)
        if isinstance(value, dict):
            _only(value, {"param"}, f"{where}: arg {aname!r}")
            pname = value.get("param")
            param = params.get(pname) if isinstance(pname, str) else None
            if param is None:
                raise GraphError(f"{where}: arg {aname!r} refers to an unknown param {pname!r}")
            if arg.type not in _FEEDS[param.type]:
                raise GraphError(
                    f"{where}: arg {aname!r} is {arg.type}, param {pname!r} is {param.type}"
                )
            if arg.type == "enum" and not set(param.values or ()) <= set(arg.values):
                raise GraphError(f"{where}: param {pname!r} allows values that {aname!r} does not")
            if param.default is None and not arg.optional:
                raise GraphError(f"{where}: param {pname!r} needs a default for {aname!r}")
            if not _within(param.minimum, param.maximum, arg):
                raise GraphError(
                    f"{where}: param {pname!r} allows values outside {aname!r}'s range "
                    f"({_range(arg)})"
                )
        elif not _const_ok(value, arg):
            raise GraphError(f"{where}: arg {aname!r} must be a constant of type {arg.type}")
        elif arg.type in ("int", "number") and value is not None and not _within(value, value, arg):
            raise GraphError(f"{where}: arg {aname!r} must be in {_range(arg)}")
        elif arg.type == "color" and isinstance(value, str):
            value = normalise_color(value.removeprefix("#"))  # '#FFF' as a URL's would be
        elif arg.type == "curve" and isinstance(value, str):
            try:
                value = curve_text(parse_curve(value))  # one spelling: one digest
            except ValueError as exc:
                raise GraphError(f"{where}: arg {aname!r} {exc}") from None
        out[aname] = value
    return out


def _within(low: float | None, high: float | None, arg: Arg) -> bool:
    """Whether the declared values low..high lie inside the arg's range (bounds not declared
    on one side are not checked there: the runtime clamps)."""
    if arg.minimum is not None and low is not None and low < arg.minimum:
        return False
    return not (arg.maximum is not None and high is not None and high > arg.maximum)


def _range(arg: Arg) -> str:
    low = "" if arg.minimum is None else number_text(arg.minimum)
    high = "" if arg.maximum is None else number_text(arg.maximum)
    return f"{low}..{high}"


def _const_ok(value: Any, arg: Arg) -> bool:
    if value is None:
        return arg.optional
    if arg.type == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if arg.type == "number":
        return _is_number(value)
    if arg.type == "bool":
        return isinstance(value, bool)
    if arg.type == "enum":
        return value in arg.values
    if arg.type == "color":
        return isinstance(value, str) and bool(_COLOR.match(value))
    if arg.type == "curve":  # a string: its points are checked by the caller
        return isinstance(value, str)
    if arg.type == "source":  # another image to fetch: only ever from a parameter
        return False
    return isinstance(value, str)


def _topological(nodes: dict[str, dict[str, Any]], output: str) -> list[str]:
    """Node ids in dependency order, refusing unknown inputs, cycles and unused nodes."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1: visiting, 2: done

    def visit(node_id: str, path: tuple[str, ...]) -> None:
        if node_id == SOURCE or state.get(node_id) == 2:
            return
        if node_id not in nodes:
            raise GraphError(f"node {path[-1]!r} takes input from unknown node {node_id!r}")
        if state.get(node_id) == 1:
            raise GraphError(f"cycle: {' -> '.join((*path, node_id))}")
        state[node_id] = 1
        for dep in nodes[node_id]["in"]:
            visit(dep, (*path, node_id))
        state[node_id] = 2
        order.append(node_id)

    visit(output, ())
    unused = sorted(set(nodes) - set(order))
    if unused:
        raise GraphError(f"node(s) not connected to the output: {', '.join(unused)}")
    return order
