"""graphs/schema.json and GET /ops, both generated from the op registry, and the catalogue's
checks that come from it (argument ranges)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from imgserver.catalogue import GraphError, _check_schema, load_graph
from imgserver.graphschema import graph_schema, schema_text
from imgserver.runtime.registry import ENCODE_ARGS, OPS, RUNTIMES, ops_json

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"
SHIPPED = sorted(p for p in GRAPHS.glob("*.json") if p.name != "schema.json")


def test_the_committed_schema_is_the_generated_one() -> None:
    """Regenerate with: python -m imgserver schema > graphs/schema.json"""
    assert (GRAPHS / "schema.json").read_text() == schema_text()


def test_the_schema_is_a_valid_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(graph_schema())


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_graph_matches_the_schema(path: Path) -> None:
    jsonschema.validate(json.loads(path.read_text()), graph_schema())


GOOD: dict[str, Any] = {
    "description": "d",
    "runtime": "vips",
    "nodes": {"b": {"op": "gaussblur", "args": {"sigma_x": 2, "sigma_y": {"param": "s"}}}},
    "params": {"s": {"type": "number", "default": 1, "minimum": 0}},
    "output": "b",
}


THIRTY_THREE = ",".join(f"{i}:{i}" for i in range(33))  # one point too many


def test_the_schema_takes_a_curve() -> None:
    graph = {
        "description": "d",
        "runtime": "vips",
        "params": {"c": {"type": "curve", "default": "0:0,255:255"}},
        "nodes": {
            "t": {
                "op": "lut",
                "args": {
                    "all": " 0:0, 64.5:40 ,255:255",
                    "red": {"param": "c"},
                    "green": ",".join(f"{i}:{i}" for i in range(32)),
                },
            }
        },
        "output": "t",
    }
    jsonschema.validate(graph, graph_schema())
    lut = graph_schema()["$defs"]["op-lut"]["properties"]["args"]["properties"]["all"]
    assert lut["anyOf"][0]["type"] == "string" and lut["anyOf"][0]["pattern"]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda g: g["nodes"]["b"].update(op="sharpen"), "nodes/b"),
        (lambda g: g["nodes"]["b"]["args"].update(sigma_x="2"), "nodes/b"),
        (lambda g: g["nodes"]["b"]["args"].update(sigma_x=-1), "nodes/b"),
        (lambda g: g["nodes"]["b"]["args"].update(radius=1), "nodes/b"),
        (lambda g: g["nodes"]["b"].update({"in": ["source", "source"]}), "nodes/b"),
        (lambda g: g.update(encode={"quality": 101}), "encode/quality"),
        (lambda g: g.update(runtime="opencv"), "runtime"),
        (lambda g: g["params"].update(_secret={"type": "int"}), "params"),
        (lambda g: g["nodes"].update(source={"op": "fit"}), "nodes"),
        (lambda g: g["nodes"].update(b={"op": "lut", "args": {"all": "0:0"}}), "nodes/b"),
        (lambda g: g["nodes"].update(b={"op": "lut", "args": {"red": "0:0;9:9"}}), "nodes/b"),
        (lambda g: g["nodes"].update(b={"op": "lut", "args": {"blue": "0:0,-1:2"}}), "nodes/b"),
        (lambda g: g["nodes"].update(b={"op": "lut", "args": {"all": THIRTY_THREE}}), "nodes/b"),
        (lambda g: g["params"].update(c={"type": "curves"}), "params/c"),
    ],
)
def test_the_schema_refuses_what_the_registry_does_not_allow(change: Any, where: str) -> None:
    graph = json.loads(json.dumps(GOOD))
    jsonschema.validate(graph, graph_schema())
    change(graph)
    with pytest.raises(GraphError, match=f"does not match graphs/schema.json at {where}"):
        _check_schema(graph)


def test_ops_lists_every_op_with_its_arguments_and_runtimes() -> None:
    body = json.loads(json.dumps(ops_json()))
    assert set(body["ops"]) == set(OPS)
    assert body["runtimes"] == list(RUNTIMES)
    assert set(body["encode"]) == set(ENCODE_ARGS)
    blur = body["ops"]["gaussblur"]
    assert blur["inputs"] == ["image"] and blur["runtimes"] == ["pillow", "vips"]
    assert blur["args"]["sigma_x"] == {
        "type": "number",
        "default": 1.5,
        "optional": False,
        "values": None,
        "minimum": 0,
        "maximum": 1500,  # GEGL's, and affordable (README: the filters' worst cases)
        "description": "Standard deviation in x.",
    }
    assert body["ops"]["autocontrast"]["runtimes"] == ["pillow"]
    assert body["ops"]["resize"]["args"]["mode"]["values"] == ["fit", "fill", "crop", "pad"]
    for op in body["ops"].values():
        assert op["description"] and all(a["description"] for a in op["args"].values())
    lut = body["ops"]["lut"]
    assert lut["runtimes"] == ["vips"] and lut["frames"] is True
    assert set(lut["args"]) == {"all", "red", "green", "blue", "smooth", "strength"}
    for channel in ("all", "red", "green", "blue"):
        assert lut["args"][channel]["type"] == "curve"
        assert lut["args"][channel]["default"] == "0:0,255:255"
    assert lut["args"]["smooth"]["default"] is True


def write(tmp_path: Path, graph: dict[str, Any]) -> Path:
    path = tmp_path / "g.json"
    path.write_text(json.dumps(graph))
    return path


def test_a_parameter_wider_than_its_argument_is_refused(tmp_path: Path) -> None:
    graph = json.loads(json.dumps(GOOD))
    graph["nodes"]["b"] = {"op": "desaturate", "args": {"amount": {"param": "s"}}}
    graph["params"]["s"] = {"type": "number", "default": 1, "minimum": 0, "maximum": 2}
    with pytest.raises(
        GraphError, match=r"param 's' allows values outside 'amount''s range \(0..1\)"
    ):
        load_graph(write(tmp_path, graph))
    graph["params"]["s"]["maximum"] = 1
    assert load_graph(write(tmp_path, graph)).params["s"].maximum == 1


def test_a_constant_outside_its_argument_range_is_refused(tmp_path: Path) -> None:
    graph = json.loads(json.dumps(GOOD))
    graph["nodes"]["b"]["args"]["sigma_x"] = -0.5
    with pytest.raises(GraphError, match=r"arg 'sigma_x' must be in 0\.\."):
        load_graph(write(tmp_path, graph))
