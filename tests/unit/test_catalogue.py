"""The graph catalogue: shipped graphs load, their schemas, and broken files are refused."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imgserver.catalogue import PARAM_TYPES, Catalogue, GraphError, load_graph
from imgserver.errors import UnknownGraph
from imgserver.graphdef import Node, ParamRef

from ..images import ok, png, run, solid, vload, vpixel

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"
SHIPPED = sorted(p.stem for p in GRAPHS.glob("*.json") if p.name != "schema.json")
PARAM_KEYS = {"type", "default", "minimum", "maximum", "values", "description"}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load(GRAPHS)


def test_ships_the_expected_graphs() -> None:
    assert {
        "autocontrast",
        "canvas",
        "compress",
        "crop",
        "curves",
        "delaunay_triangles",
        "desaturate",
        "gaussianblur",
        "gradientmap",
        "noop",
        "passthrough",
        "resize",
        "retro",
    } <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_graph_loads(catalogue: Catalogue, name: str) -> None:
    graph = catalogue.get_graph(name)
    assert graph.name == name
    assert graph.runtime in ("vips", "pillow")
    assert graph.description
    assert len(graph.digest) == 64
    assert graph == load_graph(GRAPHS / f"{name}.json")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_graph_json_shape(catalogue: Catalogue, name: str) -> None:
    body = json.loads(json.dumps(catalogue[name].to_json()))
    assert set(body) == {"name", "description", "runtime", "needs_input", "params"}
    assert body["name"] == name
    assert body["needs_input"] is (name not in {"canvas", "delaunay_triangles"})  # they draw
    params = body["params"]
    assert {"width", "height"} <= set(params)
    for pname, schema in params.items():
        assert set(schema) == PARAM_KEYS, pname
        assert schema["type"] in PARAM_TYPES
        assert isinstance(schema["description"], str) and schema["description"], pname
        if schema["type"] == "enum":
            assert schema["values"] and schema["default"] in schema["values"] + [None]
        elif pname == "quality":  # the encoder's quality takes auto besides 1-100
            assert schema["type"] == "int" and schema["values"] == ["auto"]
        else:
            assert schema["values"] is None
        if schema["type"] not in ("int", "number"):
            assert schema["minimum"] is None and schema["maximum"] is None
        if schema["default"] not in (None, "auto") and schema["minimum"] is not None:
            assert schema["minimum"] <= schema["default"] <= schema["maximum"]
    draws = not catalogue[name].definition.needs_source  # width x height: the size it draws
    for size in ("width", "height"):
        assert params[size] == {
            "type": "int",
            "default": params[size]["default"] if draws else None,
            "minimum": 1,
            "maximum": 16384,
            "values": None,
            "description": params[size]["description"],
        }
        assert (params[size]["default"] is not None) is draws


def test_max_dimension_is_the_size_maximum() -> None:
    cat = Catalogue.load(GRAPHS, max_dimension=2000)
    assert cat["resize"].params["width"].maximum == 2000
    assert cat["resize"].params["height"].maximum == 2000


def test_catalogue_is_a_sorted_read_only_mapping(catalogue: Catalogue) -> None:
    assert list(catalogue) == sorted(SHIPPED)
    assert len(catalogue) == len(SHIPPED)
    assert "resize" in catalogue
    with pytest.raises(TypeError):
        catalogue._graphs["x"] = catalogue["resize"]  # type: ignore[index]
    with pytest.raises(TypeError):
        catalogue["resize"].params["x"] = None  # type: ignore[index]


def test_get_graph_unknown(catalogue: Catalogue) -> None:
    with pytest.raises(UnknownGraph) as info:
        catalogue.get_graph("nope")
    assert info.value.status == 404
    assert info.value.details["graphs"] == sorted(SHIPPED)


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(GraphError, match="no graph files"):
        Catalogue.load(tmp_path)


# -- the normalised definition ----------------------------------------------------------------


def nodes(graph: Any) -> dict[str, Node]:
    return {n.id: n for n in graph.definition.nodes}


@pytest.mark.parametrize(
    ("name", "has_fit"),
    [
        ("autocontrast", False),  # its "fit" node uses width/height
        ("compress", False),
        ("crop", True),  # crop's width/height are cropwidth/cropheight: fit after it
        ("desaturate", False),
        ("gaussianblur", False),
        ("passthrough", False),
        ("resize", False),
        ("noop", False),  # copies the source: nothing to fit
        ("retro", False),
        ("curves", False),
        ("gradientmap", False),
        ("delaunay_triangles", False),  # width and height are the size it draws
        ("canvas", False),
    ],
)
def test_implicit_fit(catalogue: Catalogue, name: str, has_fit: bool) -> None:
    graph = catalogue[name]
    assert ("_fit" in nodes(graph)) is has_fit
    if has_fit:
        assert graph.definition.output == "_fit"
        assert graph.definition.nodes[-1] == Node(
            "_fit",
            "fit",
            ("crop",),
            {"width": ParamRef("width"), "height": ParamRef("height")},
        )


def test_noop_copies_the_source(catalogue: Catalogue) -> None:
    noop = catalogue["noop"]
    assert noop.copies_source
    assert noop.definition.nodes == ()
    assert noop.definition.output == "source"
    assert not catalogue["passthrough"].copies_source


def test_nodes_in_dependency_order(catalogue: Catalogue) -> None:
    ids = [n.id for n in catalogue["gaussianblur"].definition.nodes]
    assert ids == ["fit", "blur"]


def test_defaults_of_unset_args_are_filled_in(catalogue: Catalogue) -> None:
    fit = nodes(catalogue["passthrough"])["fit"]
    assert fit.args["upscale"] is False
    assert fit.inputs == ("source",)
    encode = catalogue["passthrough"].definition.encode
    assert encode["quality"] == ParamRef("quality")
    assert encode["copy_source"] is False


# -- broken graph files -----------------------------------------------------------------------

BASE: dict[str, Any] = {
    "description": "a test graph",
    "runtime": "vips",
    "params": {
        "amount": {"type": "number", "default": 1, "minimum": 0, "maximum": 1},
        "quality": {"type": "int", "default": 80, "minimum": 1, "maximum": 100},
        "mode": {"type": "enum", "values": ["fit", "crop"], "default": "fit"},
        "flag": {"type": "bool", "default": False},
    },
    "nodes": {
        "fit": {"op": "fit", "args": {"width": {"param": "width"}, "height": {"param": "height"}}},
        "grey": {"op": "desaturate", "in": "fit", "args": {"amount": {"param": "amount"}}},
    },
    "output": "grey",
    "encode": {"quality": {"param": "quality"}},
}


def edit(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    d = copy.deepcopy(BASE)
    change(d)
    return d


def with_lut(args: dict[str, Any], **params: Any) -> dict[str, Any]:
    """BASE with a last node "tone", op lut with ``args``, and ``params`` added."""
    return edit(
        lambda d: (
            d["params"].update(params),
            d["nodes"].update(tone={"op": "lut", "in": "grey", "args": args}),
            d.update(output="tone"),
        )
    )


def write(directory: Path, name: str, content: Any) -> Path:
    path = directory / f"{name}.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_base_is_valid(tmp_path: Path) -> None:
    graph = load_graph(write(tmp_path, "base", BASE))
    assert [n.id for n in graph.definition.nodes] == ["fit", "grey"]


BROKEN: list[tuple[str, Any, str]] = [
    ("bad-json", '{"description": "x",', "not readable JSON"),
    ("not-utf8", "\udcff", "not readable JSON"),
    ("top-level-list", [1, 2], "top level must be an object"),
    ("no-description", edit(lambda d: d.pop("description")), "'description'"),
    ("bad-runtime", edit(lambda d: d.update(runtime="gegl")), "'runtime'"),
    ("unknown-key", edit(lambda d: d.update(outputs="grey")), "unknown key(s) 'outputs'"),
    (
        "unknown-node-key",
        edit(lambda d: d["nodes"]["grey"].update(inputs="fit")),
        "node 'grey': unknown key(s) 'inputs'",
    ),
    (
        "unknown-param-key",
        edit(lambda d: d["params"]["amount"].update(step=0.1)),
        "param 'amount': unknown key(s) 'step'",
    ),
    (
        "unknown-op",
        edit(lambda d: d["nodes"]["grey"].update(op="sharpen")),
        "node 'grey': unknown op 'sharpen'",
    ),
    (
        "unknown-arg",
        edit(lambda d: d["nodes"]["grey"]["args"].update(strength=1)),
        "node 'grey': unknown key(s) 'strength'",
    ),
    (
        "op-not-in-runtime",
        edit(lambda d: d["nodes"]["grey"].update(op="autocontrast", args={})),
        "op 'autocontrast' is not available in the vips runtime",
    ),
    (
        "missing-param",
        edit(lambda d: d["nodes"]["grey"]["args"].update(amount={"param": "strength"})),
        "refers to an unknown param 'strength'",
    ),
    (
        "param-ref-extra-key",
        edit(lambda d: d["nodes"]["grey"]["args"].update(amount={"param": "amount", "x": 1})),
        "unknown key(s) 'x'",
    ),
    (
        "int-arg-fed-by-bool",
        edit(lambda d: d["encode"].update(quality={"param": "flag"})),
        "arg 'quality' is int, param 'flag' is bool",
    ),
    (
        "int-arg-fed-by-number",
        edit(lambda d: d["encode"].update(quality={"param": "amount"})),
        "arg 'quality' is int, param 'amount' is number",
    ),
    (
        "enum-not-subset",
        edit(
            lambda d: (
                d["params"].update(
                    how={"type": "enum", "values": ["fit", "zoom"], "default": "fit"}
                ),
                d["nodes"].update(
                    size={"op": "resize", "in": "grey", "args": {"mode": {"param": "how"}}}
                ),
                d.update(output="size"),
            )
        ),
        "param 'how' allows values that 'mode' does not",
    ),
    (
        "required-arg-without-default",
        edit(lambda d: d["params"]["amount"].pop("default")),
        "param 'amount' needs a default for 'amount'",
    ),
    (
        "const-arg-wrong-type",
        edit(lambda d: d["nodes"]["grey"]["args"].update(amount="all")),
        "arg 'amount' must be a constant of type number",
    ),
    (
        "const-enum-arg-unknown",
        edit(
            lambda d: (
                d["nodes"].update(size={"op": "resize", "in": "grey", "args": {"mode": "zoom"}}),
                d.update(output="size"),
            )
        ),
        "arg 'mode' must be a constant of type enum",
    ),
    (
        "const-int-arg-is-bool",
        edit(lambda d: d["encode"].update(quality=True)),
        "arg 'quality' must be a constant of type int",
    ),
    (
        "const-curve-out-of-range",
        with_lut({"all": "0:0,128:300,255:255"}),
        "node 'tone': arg 'all' has a point '128:300' outside 0-255",
    ),
    (
        "const-curve-one-point",
        with_lut({"red": "128:128"}),
        "node 'tone': arg 'red' needs at least 2 points",
    ),
    (
        "const-curve-duplicate-in",
        with_lut({"green": "0:0,64:10,64:20,255:255"}),
        "node 'tone': arg 'green' has two points at in=64",
    ),
    (
        "const-curve-garbage",
        with_lut({"blue": "s-curve"}),
        "node 'tone': arg 'blue' needs at least 2 points",
    ),
    (
        "const-curve-not-a-string",
        with_lut({"all": [[0, 0], [255, 255]]}),
        "node 'tone': arg 'all' must be a constant of type curve",
    ),
    (
        "curve-arg-fed-by-string",
        with_lut({"all": {"param": "s"}}, s={"type": "string", "default": "0:0,255:255"}),
        "arg 'all' is curve, param 's' is string",
    ),
    (
        "number-arg-fed-by-curve",
        with_lut({"strength": {"param": "c"}}, c={"type": "curve", "default": "0:0,255:255"}),
        "arg 'strength' is number, param 'c' is curve",
    ),
    (
        "curve-default-invalid",
        with_lut({"all": {"param": "c"}}, c={"type": "curve", "default": "0:0,255:256"}),
        "param 'c': the default is not valid: parameter 'c' has a point '255:256' outside 0-255",
    ),
    (
        "curve-param-with-bounds",
        with_lut({"all": {"param": "c"}}, c={"type": "curve", "default": "0:0,1:1", "maximum": 9}),
        "param 'c': minimum/maximum must be numbers on int/number params",
    ),
    (
        "cycle",
        edit(
            lambda d: d.update(
                nodes={
                    "a": {"op": "desaturate", "in": "b"},
                    "b": {"op": "desaturate", "in": "a"},
                },
                output="a",
            )
        ),
        "cycle: a -> b -> a",
    ),
    (
        "self-loop",
        edit(lambda d: d["nodes"]["grey"].update({"in": "grey"})),
        "cycle: grey -> grey",
    ),
    (
        "unknown-input-node",
        edit(lambda d: d["nodes"]["grey"].update({"in": "blur"})),
        "node 'grey' takes input from unknown node 'blur'",
    ),
    (
        "two-inputs",
        edit(lambda d: d["nodes"]["grey"].update({"in": ["fit", "source"]})),
        "'in' must name one node",
    ),
    (
        "unused-node",
        edit(lambda d: d["nodes"].update(extra={"op": "desaturate", "in": "source"})),
        "not connected to the output: extra",
    ),
    (
        "output-names-no-node",
        edit(lambda d: d.update(output="blur")),
        "'output' names no node: 'blur'",
    ),
    (
        "output-left-out",
        edit(lambda d: d.pop("output")),
        "not connected to the output: fit, grey",
    ),
    ("node-called-source", edit(lambda d: d["nodes"].update(source={"op": "fit"})), "ids must"),
    ("node-id-underscore", edit(lambda d: d["nodes"].update(_fit={"op": "fit"})), "ids must"),
    (
        "too-many-nodes",
        edit(lambda d: d.update(nodes={f"n{i}": {"op": "fit"} for i in range(33)})),
        "at most 32 nodes",
    ),
    (
        "param-name-underscore",
        edit(lambda d: d["params"].update(_secret={"type": "int", "default": 1})),
        "names must not be empty or start with '_'",
    ),
    (
        "param-name-empty",
        edit(lambda d: d["params"].update({"": {"type": "int", "default": 1}})),
        "names must not be empty",
    ),
    (
        "param-name-input",
        edit(lambda d: d["params"].update(input={"type": "string", "default": "x"})),
        "param 'input'",
    ),
    (
        "param-bad-type",
        edit(lambda d: d["params"].update(x={"type": "float", "default": 1})),
        "param 'x': 'type' must be one of",
    ),
    (
        "default-above-maximum",
        edit(lambda d: d["params"]["quality"].update(default=101)),
        "param 'quality': the default is not valid: parameter 'quality' must be at most 100",
    ),
    (
        "default-below-minimum",
        edit(lambda d: d["params"]["amount"].update(default=-1)),
        "param 'amount': the default is not valid",
    ),
    (
        "default-wrong-type",
        edit(lambda d: d["params"]["quality"].update(default="high")),
        "param 'quality': the default is not valid",
    ),
    (
        "default-float-for-int",
        edit(lambda d: d["params"]["quality"].update(default=80.5)),
        "param 'quality': the default is not valid",
    ),
    (
        "default-bool-for-int",
        edit(lambda d: d["params"]["quality"].update(default=True)),
        "param 'quality': the default is not valid",
    ),
    (
        "default-not-in-enum",
        edit(lambda d: d["params"]["mode"].update(default="fill")),
        "param 'mode': the default is not valid",
    ),
    (
        "minimum-above-maximum",
        edit(lambda d: d["params"]["quality"].update(minimum=100, maximum=1, default=None)),
        "param 'quality': minimum is above maximum",
    ),
    (
        "bounds-on-a-bool",
        edit(lambda d: d["params"]["flag"].update(minimum=0)),
        "param 'flag': minimum/maximum must be numbers",
    ),
    (
        "bound-not-a-number",
        edit(lambda d: d["params"]["quality"].update(maximum="100")),
        "param 'quality': minimum/maximum must be numbers",
    ),
    (
        "enum-without-values",
        edit(lambda d: d["params"]["mode"].pop("values")),
        "param 'mode': an enum needs 'values'",
    ),
    (
        "enum-empty-values",
        edit(lambda d: d["params"]["mode"].update(values=[], default=None)),
        "param 'mode': an enum needs 'values'",
    ),
    (
        "values-on-an-int",
        edit(lambda d: d["params"]["quality"].update(values=["1"])),
        "param 'quality': only enums have 'values'",
    ),
    (
        "width-as-number",
        edit(lambda d: d["params"].update(width={"type": "number", "maximum": 100})),
        "param 'width': width and height are always of type int",
    ),
    (
        "height-as-string",
        edit(lambda d: d["params"].update(height={"type": "string"})),
        "param 'height': width and height are always of type int",
    ),
    ("params-not-object", edit(lambda d: d.update(params=[])), "'params' must be an object"),
    ("nodes-not-object", edit(lambda d: d.update(nodes=[])), "'nodes' must be an object"),
    (
        "args-not-object",
        edit(lambda d: d["nodes"]["grey"].update(args=[1])),
        "'args' must be an object",
    ),
    (
        "unknown-encode-option",
        edit(lambda d: d["encode"].update(lossless=True)),
        "encode: unknown key(s) 'lossless'",
    ),
]


@pytest.mark.parametrize(("name", "content", "problem"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_graph(tmp_path: Path, name: str, content: Any, problem: str) -> None:
    if content == "\udcff":
        path = tmp_path / f"{name}.json"
        path.write_bytes(b"\xff\xfe{}")
    else:
        path = write(tmp_path, name, content)
    with pytest.raises(GraphError) as info:
        load_graph(path)
    message = str(info.value)
    assert str(path) in message
    assert problem in message
    # the catalogue refuses to start with it, too
    with pytest.raises(GraphError, match=name):
        Catalogue.load(tmp_path)


@pytest.mark.parametrize("filename", ["Resize.json", "re size.json", "_x.json", "-x.json"])
def test_bad_file_name(tmp_path: Path, filename: str) -> None:
    path = tmp_path / filename
    path.write_text(json.dumps(BASE))
    with pytest.raises(GraphError, match="file name") as info:
        load_graph(path)
    assert filename in str(info.value)


def test_one_broken_file_stops_the_catalogue(tmp_path: Path) -> None:
    write(tmp_path, "good", BASE)
    write(tmp_path, "bad", edit(lambda d: d.update(output="nope")))
    with pytest.raises(GraphError, match=r"bad\.json"):
        Catalogue.load(tmp_path)


# -- valid variations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "fit_input"),
    [
        ({"description": "bare", "runtime": "vips"}, "source"),
        ({"description": "bare", "runtime": "pillow"}, "source"),
        (
            {
                "description": "grey only",
                "runtime": "vips",
                "nodes": {"g": {"op": "desaturate"}},
                "output": "g",
            },
            "g",
        ),
        (
            {
                "description": "autocontrast",
                "runtime": "pillow",
                "nodes": {"c": {"op": "autocontrast", "args": {"cutoff": 2}}},
                "output": "c",
            },
            "c",
        ),
    ],
)
def test_implicit_fit_added(tmp_path: Path, content: dict[str, Any], fit_input: str) -> None:
    graph = load_graph(write(tmp_path, "g", content))
    last = graph.definition.nodes[-1]
    assert last.id == "_fit"
    assert last.inputs == (fit_input,)
    assert last.args["width"] == ParamRef("width")
    assert last.args["height"] == ParamRef("height")
    assert graph.definition.output == "_fit"
    assert {"width", "height"} <= set(graph.params)


def test_graph_may_override_width(tmp_path: Path) -> None:
    content = edit(
        lambda d: d["params"].update(width={"type": "int", "default": 100, "maximum": 50000})
    )
    graph = load_graph(write(tmp_path, "g", content))
    assert graph.params["width"].default == 100
    assert graph.params["width"].maximum == 50000
    assert graph.params["height"].maximum == 16384


def test_defaults_are_typed(tmp_path: Path) -> None:
    content = edit(
        lambda d: d["params"].update(
            c={"type": "color", "default": "ABC"},
            n={"type": "number", "default": 1},
            b={"type": "bool", "default": True},
        )
    )
    graph = load_graph(write(tmp_path, "g", content))
    assert graph.params["c"].default == "#aabbcc"
    assert graph.params["n"].default == 1.0 and isinstance(graph.params["n"].default, float)
    assert graph.params["amount"].default == 1.0
    assert graph.params["b"].default is True


def test_int_param_may_feed_a_number_arg(tmp_path: Path) -> None:
    content = edit(
        lambda d: (
            d["params"].update(level={"type": "int", "default": 1, "minimum": 0, "maximum": 1}),
            d["nodes"]["grey"]["args"].update(amount={"param": "level"}),
        )
    )
    load_graph(write(tmp_path, "g", content))


def test_enum_param_subset_may_feed_an_enum_arg(tmp_path: Path) -> None:
    content = edit(
        lambda d: (
            d["nodes"].update(
                size={"op": "resize", "in": "grey", "args": {"mode": {"param": "mode"}}}
            ),
            d.update(output="size"),
        )
    )
    load_graph(write(tmp_path, "g", content))


def test_curves_are_canonical_in_the_definition(tmp_path: Path) -> None:
    """A constant curve, and a curve parameter's default, are kept in one spelling: sorted, the
    numbers as the parameter parser writes them (so a respelt file keeps its digest)."""
    content = with_lut(
        {"all": " 255:255.0, 0:0 ,64.50:40 ", "red": {"param": "c"}},
        c={"type": "curve", "default": "255.0:250,0:5"},
    )
    graph = load_graph(write(tmp_path, "g", content))
    tone = nodes(graph)["tone"]
    assert tone.args["all"] == "0:0,64.5:40,255:255"
    assert tone.args["red"] == ParamRef("c") and graph.params["c"].default == "0:5,255:250"
    assert tone.args["green"] == tone.args["blue"] == "0:0,255:255"  # the op's default
    respelt = with_lut(
        {"all": "0:0,64.5:40,255:255", "red": {"param": "c"}},
        c={"type": "curve", "default": "0:5,255:250"},
    )
    assert load_graph(write(tmp_path, "g", respelt)).digest == graph.digest


def test_colour_constants_are_canonical_in_the_definition(tmp_path: Path) -> None:
    """'#F00', 'f00' and '#ff0000ff' are one colour, written as the parameter parser writes it
    (the runtimes read that spelling only)."""
    spellings = ("#F00", "f00", "#FF0000", "#ff0000FF")
    digests = set()
    for spelling in spellings:
        content = edit(
            lambda d, c=spelling: (
                d["nodes"].pop("grey"),
                d["nodes"].update(
                    turn={"op": "rotate", "in": "fit", "args": {"degrees": 45, "background": c}}
                ),
                d.update(output="turn"),
            )
        )
        graph = load_graph(write(tmp_path, "g", content))
        assert nodes(graph)["turn"].args["background"] == "#ff0000"
        digests.add(graph.digest)
        out = vload(ok(run(graph, png(solid(20, 20, (0, 0, 255)))))["data"])
        assert vpixel(out, 0, 0)[:3] == [255, 0, 0], spelling  # a corner: the background
    assert len(digests) == 1


def test_optional_arg_fed_by_param_without_default(tmp_path: Path) -> None:
    content = edit(
        lambda d: (
            d["params"].update(cw={"type": "int", "minimum": 1}),
            d["nodes"].update(c={"op": "crop", "in": "grey", "args": {"width": {"param": "cw"}}}),
            d.update(output="c"),
        )
    )
    graph = load_graph(write(tmp_path, "g", content))
    assert graph.params["cw"].default is None
