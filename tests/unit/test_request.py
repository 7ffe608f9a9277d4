"""URL -> typed request: graph spec, input, params, Accept negotiation and the cache key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from multidict import MultiDict, MultiDictProxy

from imgserver.catalogue import Catalogue
from imgserver.errors import (
    ImgServerError,
    InvalidInput,
    InvalidParam,
    UnknownGraph,
    UnsupportedFormat,
)
from imgserver.formats import AUTO, negotiate
from imgserver.params import Param
from imgserver.request import (
    MAX_INPUT_LENGTH,
    ImageRequest,
    canonical_input,
    parse_params,
    parse_request,
    split_graph_spec,
)

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"
SRC = "https://images.example.com/demo/cat.jpg"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load(GRAPHS)


def query(*pairs: tuple[str, str], source: str | None = SRC) -> MultiDict[str]:
    items = ([("input", source)] if source is not None else []) + list(pairs)
    return MultiDict(items)


def parse(
    catalogue: Catalogue,
    spec: str,
    *pairs: tuple[str, str],
    source: str | None = SRC,
    accept: str = "",
    avif: bool = False,
    jxl: bool = False,
) -> ImageRequest:
    return parse_request(
        spec,
        query(*pairs, source=source),
        accept=accept,
        catalogue=catalogue,
        avif_enabled=avif,
        jxl_enabled=jxl,
    )


def key(catalogue: Catalogue, spec: str, *pairs: tuple[str, str], **kw: Any) -> str:
    return parse(catalogue, spec, *pairs, **kw).key


def write_graph(directory: Path, name: str, definition: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(definition), encoding="utf-8")
    return path


# -- graph spec --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("resize", ("resize", None)),
        ("resize.jpg", ("resize", "jpg")),
        ("resize.webp", ("resize", "webp")),
        ("std-dev.png", ("std-dev", "png")),
        ("resize.", ("resize", "")),
        ("resize.tar.gz", ("resize", "tar.gz")),
        (".jpg", ("", "jpg")),
    ],
)
def test_split_graph_spec(spec: str, expected: tuple[str, str | None]) -> None:
    assert split_graph_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "fmt", "negotiated"),
    [
        ("passthrough.jpg", "jpeg", False),
        ("passthrough.jpeg", "jpeg", False),
        ("passthrough.JPG", "jpeg", False),
        ("passthrough.png", "png", False),
        ("passthrough.webp", "webp", False),
        ("passthrough.avif", "avif", False),  # explicit avif is allowed even when not negotiated
        ("passthrough.gif", "gif", False),
        ("passthrough.jxl", "jxl", False),
        ("passthrough", AUTO, True),
    ],
)
def test_graph_spec_format(catalogue: Catalogue, spec: str, fmt: str, negotiated: bool) -> None:
    req = parse(catalogue, spec)
    assert req.graph.name == "passthrough"
    assert req.format == fmt
    assert req.negotiated is negotiated


def test_jpg_and_jpeg_share_a_key(catalogue: Catalogue) -> None:
    assert key(catalogue, "resize.jpg", ("width", "10")) == key(
        catalogue, "resize.jpeg", ("width", "10")
    )


@pytest.mark.parametrize("ext", ["bmp", "tiff", "svg", "heic", "", "tar.gz", "jpg2", "we bp"])
def test_unsupported_extension(catalogue: Catalogue, ext: str) -> None:
    with pytest.raises(UnsupportedFormat) as info:
        parse(catalogue, f"resize.{ext}")
    assert info.value.status == 415
    assert info.value.code == "unsupported_format"
    assert "jpeg" in info.value.details["formats"]


@pytest.mark.parametrize(
    "spec",
    [
        "nosuchgraph",
        "nosuchgraph.jpg",
        "Resize",
        "RESIZE.jpg",
        "re size",
        "resize\n",
        "../resize",
        "",
        ".jpg",
        "-resize",
        "_fit",
        "a" * 65,
        "résize",
        "resize%2Ejpg",
    ],
)
def test_unknown_graph(catalogue: Catalogue, spec: str) -> None:
    with pytest.raises(UnknownGraph) as info:
        parse(catalogue, spec)
    assert info.value.status == 404
    assert info.value.code == "unknown_graph"
    assert sorted(info.value.details["graphs"]) == sorted(catalogue)


def test_unknown_graph_checked_before_format_and_input(catalogue: Catalogue) -> None:
    with pytest.raises(UnknownGraph):
        parse(catalogue, "nosuchgraph.bmp", source=None)


def test_format_checked_before_input(catalogue: Catalogue) -> None:
    with pytest.raises(UnsupportedFormat):
        parse(catalogue, "resize.bmp", source=None)


# -- input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pairs",
    [
        [],
        [("input", "")],
        [("input", "   ")],
        [("input", SRC), ("input", SRC)],
        [("input", SRC), ("input", "https://other.example.com/x.jpg")],
    ],
    ids=["missing", "empty", "blank", "duplicated-same", "duplicated-different"],
)
def test_input_missing_empty_or_duplicated(catalogue: Catalogue, pairs: list) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_request(
            "resize",
            MultiDict(pairs),
            accept="",
            catalogue=catalogue,
            avif_enabled=False,
        )
    assert info.value.status == 400
    assert info.value.code == "invalid_input"


@pytest.mark.parametrize(
    "raw",
    [
        "demo/x.jpg",
        "/demo/x.jpg",
        "x.jpg",
        "//images.example.com/x.jpg",
        "http:/images.example.com/x.jpg",
        "http:images.example.com/x.jpg",
        "http:///x.jpg",
        "https://",
        "ftp://images.example.com/x.jpg",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:image/png;base64,iVBORw0KGgo=",
        "gopher://images.example.com/x",
        "http://user:secret@images.example.com/x.jpg",
        "http://user@images.example.com/x.jpg",
        "https://:secret@images.example.com/x.jpg",
        "http://images.example.com:99999/x.jpg",
        "http://images.example.com\\@evil.example/x.jpg",
        "http://exa mple.com/x.jpg",
        "http://exa<mple.com/x.jpg",
        "http://images.example.com:0/x.jpg",
        "https://images.example.com/" + "a" * MAX_INPUT_LENGTH,
        "upload:",
        "upload:../etc/passwd",
        "upload:a/b",
        "upload:a b",
        "upload:" + "a" * 65,
        "upload:abc?x=1",
        "UPLOAD:abc",
    ],
)
def test_input_refused(raw: str) -> None:
    with pytest.raises(InvalidInput) as info:
        canonical_input(raw)
    assert info.value.status == 400
    assert info.value.code == "invalid_input"


def test_input_too_long_message() -> None:
    with pytest.raises(InvalidInput, match="longer than"):
        canonical_input("https://images.example.com/" + "a" * MAX_INPUT_LENGTH)


def test_credentials_message() -> None:
    with pytest.raises(InvalidInput, match="credentials"):
        canonical_input("https://u:p@images.example.com/x.jpg")


@pytest.mark.parametrize(
    "raw",
    [
        "upload:abc",
        "upload:0190f3a4b5c6d7e8f9a0b1c2",
        "upload:A-b_9",
        "upload:" + "a" * 64,
    ],
)
def test_upload_input(raw: str) -> None:
    assert canonical_input(raw) == raw
    assert canonical_input(f"  {raw}  ") == raw


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        (SRC, SRC),
        ("  https://images.example.com/demo/cat.jpg\t", SRC),
        ("HTTPS://IMAGES.EXAMPLE.COM/demo/cat.jpg", SRC),
        ("https://Images.Example.Com/demo/cat.jpg", SRC),
        ("https://images.example.com:443/demo/cat.jpg", SRC),
        ("https://images.example.com/demo/cat.jpg#frag", SRC),
        ("https://images.example.com/demo/cat.jpg#", SRC),
        ("https://images.example.com/demo/./x/../cat.jpg", SRC),
        ("http://images.example.com:80/a.jpg", "http://images.example.com/a.jpg"),
        ("https://images.example.com", "https://images.example.com/"),
        ("http://images.example.com:8080/a.jpg", "http://images.example.com:8080/a.jpg"),
        ("https://images.example.com:80/a.jpg", "https://images.example.com:80/a.jpg"),
        ("https://images.example.com/a.jpg?v=2", "https://images.example.com/a.jpg?v=2"),
        ("https://images.example.com/a b.jpg", "https://images.example.com/a%20b.jpg"),
        ("http://[2001:db8::1]:80/a.jpg", "http://[2001:db8::1]/a.jpg"),
        ("http://bücher.example/a.jpg", "http://xn--bcher-kva.example/a.jpg"),
    ],
)
def test_input_canonical_form(raw: str, canonical: str) -> None:
    assert canonical_input(raw) == canonical


@pytest.mark.parametrize(
    "variant",
    [
        "HTTPS://IMAGES.EXAMPLE.COM/demo/cat.jpg",
        "https://images.example.com:443/demo/cat.jpg",
        "https://images.example.com/demo/cat.jpg#top",
        " https://images.example.com/demo/cat.jpg ",
    ],
)
def test_equivalent_inputs_share_a_key(catalogue: Catalogue, variant: str) -> None:
    assert key(catalogue, "resize.jpg", source=variant) == key(catalogue, "resize.jpg")


def test_input_query_string_is_part_of_the_key(catalogue: Catalogue) -> None:
    assert key(catalogue, "resize.jpg", source=SRC + "?v=1") != key(
        catalogue, "resize.jpg", source=SRC + "?v=2"
    )


# -- params ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("graph", "name", "raw", "expected"),
    [
        ("resize", "width", "80", 80),
        ("resize", "width", "080", 80),
        ("resize", "width", "+80", 80),
        ("resize", "width", " 80 ", 80),
        ("resize", "width", "1", 1),
        ("resize", "width", "16384", 16384),
        ("resize", "height", "300", 300),
        ("resize", "quality", "100", 100),
        ("resize", "upscale", "true", True),
        ("resize", "upscale", "TRUE", True),
        ("resize", "upscale", "1", True),
        ("resize", "upscale", "yes", True),
        ("resize", "upscale", "on", True),
        ("resize", "upscale", "false", False),
        ("resize", "upscale", "0", False),
        ("resize", "upscale", "no", False),
        ("resize", "upscale", "Off", False),
        ("resize", "mode", "crop", "crop"),
        ("resize", "gravity", "north-east", "north-east"),
        ("resize", "gravity", "smart", "smart"),
        ("desaturate", "amount", "0.5", 0.5),
        ("desaturate", "amount", ".25", 0.25),
        ("desaturate", "amount", "1", 1.0),
        ("desaturate", "amount", "0", 0.0),
        ("desaturate", "amount", "5e-1", 0.5),
        ("gaussianblur", "std-dev-x", "100", 100.0),
        ("crop", "cropwidth", "50", 50),
        ("crop", "x", "0", 0),
        ("curves", "all", "0:0,64:40,192:220,255:255", "0:0,64:40,192:220,255:255"),
        ("curves", "all", "255:255,0:0", "0:0,255:255"),  # sorted
        ("curves", "red", " 0 : 10 , 255.0 : 245.50 ", "0:10,255:245.5"),
        ("curves", "green", "000:0,12.25:3,0255:255", "0:0,12.25:3,255:255"),
        ("curves", "blue", ",".join(f"{i * 8}:{i * 8}" for i in range(32)), None),
    ],
)
def test_param_typed(catalogue: Catalogue, graph: str, name: str, raw: str, expected: Any) -> None:
    expected = raw if expected is None else expected  # None: already canonical
    params, nocache = parse_params(catalogue[graph], query((name, raw)))
    assert params[name] == expected
    assert type(params[name]) is type(expected)
    assert nocache is False


@pytest.mark.parametrize(
    ("graph", "name", "raw", "why"),
    [
        ("resize", "width", "", "whole number"),
        ("resize", "width", "abc", "whole number"),
        ("resize", "width", "8.0", "whole number"),
        ("resize", "width", "1e2", "whole number"),
        ("resize", "width", "0x10", "whole number"),
        ("resize", "width", "1 0", "whole number"),
        ("resize", "width", "9" * 13, "at most 16384"),
        ("resize", "width", "99999999999999999999999999", "at most 16384"),
        ("resize", "height", "+" + "9" * 40, "at most 16384"),
        ("resize", "width", "-" + "9" * 26, "at least 1"),
        ("resize", "width", "0", "at least 1"),
        ("resize", "width", "-5", "at least 1"),
        ("resize", "width", "16385", "at most 16384"),
        ("resize", "height", "100000", "at most 16384"),
        ("resize", "quality", "101", "at most 100"),
        ("resize", "quality", "0", "at least 1"),
        ("resize", "upscale", "2", "true or false"),
        ("resize", "upscale", "", "true or false"),
        ("resize", "upscale", "maybe", "true or false"),
        ("resize", "mode", "FIT", "one of"),
        ("resize", "mode", "zoom", "one of"),
        ("resize", "mode", "", "one of"),
        ("resize", "gravity", "middle", "one of"),
        ("desaturate", "amount", "nan", "finite"),
        ("desaturate", "amount", "NaN", "finite"),
        ("desaturate", "amount", "inf", "finite"),
        ("desaturate", "amount", "-inf", "finite"),
        ("desaturate", "amount", "Infinity", "finite"),
        ("desaturate", "amount", "1e999", "finite"),
        ("desaturate", "amount", "half", "number"),
        ("desaturate", "amount", "", "number"),
        ("desaturate", "amount", "1.5", "at most 1"),
        ("desaturate", "amount", "-0.1", "at least 0"),
        ("gaussianblur", "std-dev-y", "1500.5", "at most 1500"),
        ("crop", "x", "-1", "at least 0"),
        ("curves", "all", "", "control points in:out"),
        ("curves", "all", "  ", "control points in:out"),
        ("curves", "all", "128:128", "at least 2 points"),
        ("curves", "all", "0:0;255:255", "at least 2 points"),
        ("curves", "all", ",".join(f"{i}:{i}" for i in range(33)), "33 points: at most 32"),
        ("curves", "red", "0:0,256:255", "'256:255' outside 0-255"),
        ("curves", "red", "0:0,255:255.5", "'255:255.5' outside 0-255"),
        ("curves", "green", "0:0,-1:5,255:255", "'-1:5' that is not in:out"),
        ("curves", "green", "0:0,a:b,255:255", "'a:b' that is not in:out"),
        ("curves", "green", "0:0,64,255:255", "'64' that is not in:out"),
        ("curves", "green", "0:0:0,255:255", "'0:0:0' that is not in:out"),
        ("curves", "blue", "0:0,1e2:50,255:255", "'1e2:50' that is not in:out"),
        ("curves", "blue", "0:0,.5:1,255:255", "'.5:1' that is not in:out"),
        ("curves", "blue", "0:0,nan:1,255:255", "'nan:1' that is not in:out"),
        ("curves", "blue", "0:0,,255:255", "an empty point"),
        ("curves", "blue", "0:0,64:10,64.0:20,255:255", "two points at in=64"),
        ("curves", "all", "hello", "at least 2 points"),
        ("curves", "all", "0:0," + "1" * 1100 + ":1", "at most 1024 characters"),
    ],
)
def test_param_refused(catalogue: Catalogue, graph: str, name: str, raw: str, why: str) -> None:
    g = catalogue[graph]
    with pytest.raises(InvalidParam) as info:
        parse_params(g, query((name, raw)))
    err = info.value
    assert err.status == 400
    assert err.code == "invalid_param"
    assert why in err.message
    assert err.details["param"] == name
    assert err.details["params"] == {n: p.to_json() for n, p in g.params.items()}


@pytest.mark.parametrize(
    ("graph", "name"),
    [
        ("resize", "bogus"),
        ("resize", "Width"),
        ("resize", "WIDTH"),
        ("resize", ""),
        ("resize", "amount"),
        ("passthrough", "mode"),
        ("noop", "quality"),
        ("resize", "input2"),
        ("resize", "key"),
        ("resize", "signature"),
    ],
)
def test_unknown_param(catalogue: Catalogue, graph: str, name: str) -> None:
    g = catalogue[graph]
    with pytest.raises(InvalidParam) as info:
        parse_params(g, query((name, "1")))
    err = info.value
    assert err.status == 400
    assert err.details["param"] == name
    assert f"'{name}'" in err.message
    assert set(err.details["params"]) == set(g.params)
    assert {"width", "height"} <= set(err.details["params"])
    for schema in err.details["params"].values():
        assert set(schema) == {"type", "default", "minimum", "maximum", "values", "description"}


def test_unknown_param_error_round_trips_as_json(catalogue: Catalogue) -> None:
    with pytest.raises(InvalidParam) as info:
        parse_params(catalogue["resize"], query(("bogus", "1")))
    body = json.loads(json.dumps({"error": info.value.to_dict()}))
    assert body["error"]["code"] == "invalid_param"
    assert body["error"]["params"]["mode"]["values"] == ["fit", "fill", "crop"]


@pytest.mark.parametrize(
    "pairs",
    [
        [("width", "10"), ("width", "10")],
        [("width", "10"), ("width", "20")],
        [("width", "10"), ("height", "5"), ("width", "20")],
        [("_nocache", "1"), ("_nocache", "1")],
        [("mode", "fit"), ("mode", "crop")],
    ],
)
def test_duplicated_param_refused(catalogue: Catalogue, pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidParam, match="more than once") as info:
        parse_params(catalogue["resize"], query(*pairs))
    assert info.value.details["param"] == pairs[0][0]


def test_duplicated_param_refused_through_a_proxy(catalogue: Catalogue) -> None:
    """aiohttp hands handlers a MultiDictProxy (request.query)."""
    q = MultiDictProxy(query(("width", "10"), ("width", "20")))
    with pytest.raises(InvalidParam, match="more than once"):
        parse_params(catalogue["resize"], q)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("yes", True),
        ("", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("off", False),
        ("FALSE", False),
    ],
)
def test_nocache(catalogue: Catalogue, raw: str, expected: bool) -> None:
    params, nocache = parse_params(catalogue["resize"], query(("_nocache", raw)))
    assert nocache is expected
    assert "_nocache" not in params


def test_nocache_does_not_enter_the_key(catalogue: Catalogue) -> None:
    req = parse(catalogue, "resize.jpg", ("_nocache", "1"))
    assert req.nocache is True
    assert req.key == key(catalogue, "resize.jpg")


@pytest.mark.parametrize("name", ["_x", "_", "_cache", "_NOCACHE", "_nocache_", "_key"])
def test_unknown_reserved_key_refused(catalogue: Catalogue, name: str) -> None:
    with pytest.raises(InvalidParam, match="reserved") as info:
        parse_params(catalogue["resize"], query((name, "1")))
    assert info.value.details["param"] == name
    assert "width" in info.value.details["params"]


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ("resize", {"mode": "fit", "gravity": "centre", "upscale": False, "quality": 80}),
        ("passthrough", {"quality": 80}),
        ("compress", {"quality": "auto", "quality-target": 80}),
        ("desaturate", {"grainsize": 300, "samples": 4, "amount": 1.0, "quality": 80}),
        (
            "gaussianblur",
            {"std-dev-x": 1.5, "std-dev-y": 1.5, "abyss-policy": "clamp", "quality": 80},
        ),
        ("crop", {"x": 0, "y": 0, "quality": 80}),  # cropwidth/cropheight have no default
        ("autocontrast", {"cutoff": 0.0, "quality": 80}),
        ("noop", {}),
    ],
)
def test_defaults_applied(catalogue: Catalogue, graph: str, expected: dict[str, Any]) -> None:
    params, _ = parse_params(catalogue[graph], query())
    assert params == expected


def test_input_is_not_a_param(catalogue: Catalogue) -> None:
    params, _ = parse_params(catalogue["passthrough"], query())
    assert "input" not in params


# -- a graph with every parameter type, written to tmp_path -----------------------------------

TYPED_GRAPH: dict[str, Any] = {
    "description": "every parameter type",
    "runtime": "vips",
    "params": {
        "bg": {"type": "color", "default": "#FFF", "description": "background"},
        "tint": {"type": "color"},
        "label": {"type": "string", "default": "hi"},
        "level": {"type": "enum", "values": ["low", "high"], "default": "low"},
        "ratio": {"type": "number", "default": 0.5, "minimum": -1, "maximum": 1},
        "count": {"type": "int", "default": 3, "minimum": 0, "maximum": 10},
        "flag": {"type": "bool", "default": True},
    },
}


@pytest.fixture
def typed_catalogue(tmp_path: Path) -> Catalogue:
    write_graph(tmp_path / "graphs", "typed", TYPED_GRAPH)
    return Catalogue.load(tmp_path / "graphs")


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("tint", "#ff0000", "#ff0000"),
        ("tint", "ff0000", "#ff0000"),
        ("tint", "#FF0000", "#ff0000"),
        ("tint", "#f00", "#ff0000"),
        ("tint", "F00", "#ff0000"),
        ("tint", "#ff000080", "#ff000080"),
        ("tint", "#ff0000ff", "#ff0000"),  # opaque alpha is the same colour
        ("tint", " #abc ", "#aabbcc"),
        ("label", "hello world", "hello world"),
        ("label", "", ""),
        ("level", "high", "high"),
        ("ratio", "-1", -1.0),
        ("ratio", "-0", 0.0),
        ("count", "10", 10),
        ("flag", "no", False),
    ],
)
def test_typed_params(typed_catalogue: Catalogue, name: str, raw: str, expected: Any) -> None:
    params, _ = parse_params(typed_catalogue["typed"], query((name, raw)))
    assert params[name] == expected
    assert type(params[name]) is type(expected)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("tint", "red"),
        ("tint", "#ff00"),
        ("tint", "#ff00000"),
        ("tint", "#gg0000"),
        ("tint", "##ff0000"),
        ("tint", ""),
        ("tint", "rgb(1,2,3)"),
        ("label", "x" * 257),
        ("level", "medium"),
        ("level", "LOW"),
        ("ratio", "1.0001"),
        ("ratio", "nan"),
        ("count", "11"),
        ("count", "3.0"),
        ("flag", "y"),
    ],
)
def test_typed_params_refused(typed_catalogue: Catalogue, name: str, raw: str) -> None:
    with pytest.raises(InvalidParam) as info:
        parse_params(typed_catalogue["typed"], query((name, raw)))
    assert info.value.details["param"] == name
    assert "bg" in info.value.details["params"]


def test_typed_defaults(typed_catalogue: Catalogue) -> None:
    params, _ = parse_params(typed_catalogue["typed"], query())
    assert params == {
        "bg": "#ffffff",
        "label": "hi",
        "level": "low",
        "ratio": 0.5,
        "count": 3,
        "flag": True,
    }


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("bg", "#fff"), ("bg", "FFFFFF")),
        (("bg", "#FFFFFFFF"), None),  # the default, spelled differently, == left out
        (("tint", "#abc"), ("tint", "aabbccff")),
        (("ratio", "0.5"), ("ratio", ".50")),
        (("ratio", "0.5"), None),
        (("ratio", "0"), ("ratio", "-0")),
        (("count", "3"), ("count", "003")),
        (("flag", "yes"), None),
        (("flag", "on"), ("flag", "1")),
    ],
)
def test_typed_equivalent_values_share_a_key(
    typed_catalogue: Catalogue, a: tuple[str, str], b: tuple[str, str] | None
) -> None:
    first = key(typed_catalogue, "typed.png", a)
    second = key(typed_catalogue, "typed.png", *([b] if b else []))
    assert first == second


# -- cache key ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ([("width", "100"), ("height", "50")], [("height", "50"), ("width", "100")]),
        ([("mode", "crop"), ("gravity", "smart")], [("gravity", "smart"), ("mode", "crop")]),
        ([("width", "80")], [("width", "080")]),
        ([("width", "80")], [("width", "+80")]),
        ([("quality", "80")], []),  # the default == left out
        ([("mode", "fit"), ("upscale", "false")], []),
        ([("upscale", "no")], [("upscale", "0")]),
        ([("upscale", "TRUE")], [("upscale", "1")]),
        ([("_nocache", "1")], []),
    ],
)
def test_same_key(
    catalogue: Catalogue, first: list[tuple[str, str]], second: list[tuple[str, str]]
) -> None:
    assert key(catalogue, "resize.jpg", *first) == key(catalogue, "resize.jpg", *second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ([("all", "0:0,64:40,255:255")], [("all", "255:255, 64.0:40.00 ,000:0")]),
        ([("red", "0:10,255:245.5")], [("red", "255:245.50,0:10")]),
        ([("all", "0:0,255:255")], []),  # the default == left out
        ([("blue", " 0.0:0 , 255:255.0 ")], []),
    ],
)
def test_equivalent_curves_share_a_key(
    catalogue: Catalogue, first: list[tuple[str, str]], second: list[tuple[str, str]]
) -> None:
    assert key(catalogue, "curves.png", *first) == key(catalogue, "curves.png", *second)


def test_different_curves_have_different_keys(catalogue: Catalogue) -> None:
    keys = {
        key(catalogue, "curves.png", *pairs)
        for pairs in (
            [],
            [("all", "0:0,64:40,255:255")],
            [("all", "0:0,64:41,255:255")],
            [("red", "0:0,64:40,255:255")],
            [("all", "0:0,64:40,255:255"), ("smooth", "false")],
        )
    }
    assert len(keys) == 5


def test_input_position_does_not_matter(catalogue: Catalogue) -> None:
    a = MultiDict([("input", SRC), ("width", "10"), ("height", "20")])
    b = MultiDict([("height", "20"), ("width", "10"), ("input", SRC)])
    ka, kb = (
        parse_request("resize.png", q, accept="", catalogue=catalogue, avif_enabled=False).key
        for q in (a, b)
    )
    assert ka == kb


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("resize.jpg", [("width", "100")]), ("resize.jpg", [("width", "101")])),
        (("resize.jpg", [("width", "100")]), ("resize.jpg", [("height", "100")])),
        (("resize.jpg", [("width", "100")]), ("resize.jpg", [])),
        (("resize.jpg", [("quality", "79")]), ("resize.jpg", [])),
        (("resize.jpg", [("upscale", "true")]), ("resize.jpg", [])),
        (("resize.jpg", [("mode", "crop")]), ("resize.jpg", [("mode", "fill")])),
        (("resize.jpg", []), ("resize.png", [])),
        (("resize.jpg", []), ("resize.webp", [])),
        (("resize.webp", []), ("resize.avif", [])),
        (("resize.gif", []), ("resize.png", [])),
        (("resize.jpg", []), ("resize", [])),  # "auto" is not jpeg (PNG when there is alpha)
        (("resize.jpg", []), ("passthrough.jpg", [])),
        (("passthrough.jpg", []), ("compress.jpg", [])),
        (("gaussianblur.jpg", [("std-dev-x", "2")]), ("gaussianblur.jpg", [("std-dev-y", "2")])),
    ],
)
def test_different_key(catalogue: Catalogue, first: tuple, second: tuple) -> None:
    assert key(catalogue, first[0], *first[1]) != key(catalogue, second[0], *second[1])


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (SRC, "https://images.example.com/demo/dog.jpg"),
        (SRC, SRC.replace("https:", "http:")),
        (SRC, SRC.replace("images.", "img.")),
        (SRC, "https://images.example.com:8443/demo/cat.jpg"),
        (SRC, "https://images.example.com/demo/Cat.jpg"),  # paths are case-sensitive
        ("upload:abc", "upload:abd"),
        ("upload:abc", "upload:ABC"),
    ],
)
def test_different_input_different_key(catalogue: Catalogue, a: str, b: str) -> None:
    assert key(catalogue, "resize.jpg", source=a) != key(catalogue, "resize.jpg", source=b)


@pytest.mark.parametrize(
    ("accept", "avif", "jxl", "fmt"),
    [
        ("image/webp,*/*", False, False, "webp"),
        ("image/avif,image/webp,*/*", False, False, "webp"),
        ("image/avif,image/webp,*/*", True, False, "avif"),
        ("*/*", False, False, AUTO),
        ("", True, False, AUTO),
        # JPEG XL only when enabled and named: Safari's Accept names it, image/* and */* never
        ("image/webp,image/avif,image/jxl,image/heic,*/*;q=0.8", False, False, "webp"),
        ("image/webp,image/avif,image/jxl,image/heic,*/*;q=0.8", False, True, "jxl"),
        ("image/webp,image/avif,image/jxl,*/*;q=0.8", True, True, "avif"),
        ("image/jxl;q=0,image/webp", False, True, "webp"),
        ("image/*,*/*;q=0.8", False, True, AUTO),
    ],
)
def test_negotiated_format_is_in_the_key(
    catalogue: Catalogue, accept: str, avif: bool, jxl: bool, fmt: str
) -> None:
    req = parse(catalogue, "resize", accept=accept, avif=avif, jxl=jxl)
    assert req.negotiated is True
    assert req.format == fmt
    assert req.canonical()["format"] == fmt
    other = parse(catalogue, "resize", accept="image/png", avif=False)
    assert (req.key == other.key) is (fmt == AUTO)


def test_negotiated_webp_shares_the_explicit_webp_result(catalogue: Catalogue) -> None:
    assert key(catalogue, "resize", accept="image/webp") == key(catalogue, "resize.webp")


def test_accept_ignored_with_an_extension(catalogue: Catalogue) -> None:
    req = parse(catalogue, "resize.png", accept="image/avif,image/webp", avif=True)
    assert (req.format, req.negotiated) == ("png", False)


def test_key_shape_and_stability(catalogue: Catalogue) -> None:
    keys = {key(catalogue, "resize.jpg", ("width", "10")) for _ in range(3)}
    (k,) = keys
    assert len(k) == 64
    assert k == k.lower()
    int(k, 16)
    # a catalogue loaded again from the same files gives the same key
    again = Catalogue.load(GRAPHS)
    assert key(again, "resize.jpg", ("width", "10")) == k


def test_canonical_form(catalogue: Catalogue) -> None:
    req = parse(catalogue, "resize.jpg", ("width", "10"), ("mode", "crop"))
    c = req.canonical()
    assert c["graph"] == "resize"
    assert c["digest"] == catalogue["resize"].digest
    assert c["format"] == "jpeg"
    assert c["input"] == SRC
    assert list(c["params"]) == sorted(c["params"])
    assert c["params"]["width"] == 10
    assert c["params"]["mode"] == "crop"


def test_every_shipped_graph_gives_a_distinct_key(catalogue: Catalogue) -> None:
    keys = {key(catalogue, f"{name}.png") for name in catalogue}
    assert len(keys) == len(catalogue)


# -- editing a graph definition changes the key ------------------------------------------------


def _edit_none(d: dict[str, Any]) -> None:
    pass


def _edit_default(d: dict[str, Any]) -> None:
    d["params"]["quality"]["default"] = 81


def _edit_node_arg(d: dict[str, Any]) -> None:
    d["nodes"]["resize"]["args"]["gravity"] = "north"  # the params stay the same


def _edit_encode(d: dict[str, Any]) -> None:
    d["encode"]["progressive"] = True


def _edit_maximum(d: dict[str, Any]) -> None:
    d["params"]["quality"]["maximum"] = 90


def _edit_runtime_op(d: dict[str, Any]) -> None:
    d["nodes"]["grey"] = {"op": "desaturate", "in": "resize", "args": {"amount": 0.5}}
    d["output"] = "grey"


def _edit_enum_values(d: dict[str, Any]) -> None:
    d["params"]["mode"]["values"] = ["fit", "crop"]


@pytest.mark.parametrize(
    ("edit", "changes"),
    [
        (_edit_none, False),
        (_edit_default, True),
        (_edit_node_arg, True),
        (_edit_encode, True),
        (_edit_maximum, True),
        (_edit_runtime_op, True),
        (_edit_enum_values, True),
    ],
)
def test_editing_a_graph_changes_the_key(tmp_path: Path, edit: Any, changes: bool) -> None:
    original = json.loads((GRAPHS / "resize.json").read_text())
    before = Catalogue.load(GRAPHS)
    edited = json.loads(json.dumps(original))
    edit(edited)
    write_graph(tmp_path, "resize", edited)
    after = Catalogue.load(tmp_path)
    # the explicit values are the same on both sides, so only the definition differs
    pairs = (("quality", "80"), ("mode", "fit"), ("width", "10"))
    k1 = key(before, "resize.jpg", *pairs)
    k2 = key(after, "resize.jpg", *pairs)
    assert (k1 != k2) is changes
    assert (before["resize"].digest != after["resize"].digest) is changes


def test_reformatting_a_graph_file_keeps_the_key(tmp_path: Path) -> None:
    """The digest is over the normalised definition, not the file's bytes."""
    original = json.loads((GRAPHS / "resize.json").read_text())
    shuffled = dict(reversed(list(original.items())))
    shuffled["params"] = dict(reversed(list(original["params"].items())))
    (tmp_path / "resize.json").write_text(json.dumps(shuffled, indent=7, sort_keys=True))
    after = Catalogue.load(tmp_path)
    assert after["resize"].digest == Catalogue.load(GRAPHS)["resize"].digest


def test_copied_graph_under_another_name_has_another_key(tmp_path: Path) -> None:
    shutil.copy(GRAPHS / "resize.json", tmp_path / "resize.json")
    shutil.copy(GRAPHS / "resize.json", tmp_path / "resize2.json")
    cat = Catalogue.load(tmp_path)
    assert cat["resize"].digest == cat["resize2"].digest
    assert key(cat, "resize.jpg") != key(cat, "resize2.jpg")


# -- Accept negotiation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "avif", "expected"),
    [
        ("", False, AUTO),
        ("", True, AUTO),
        ("*/*", True, AUTO),
        ("image/*", True, AUTO),
        ("image/jpeg", False, AUTO),
        ("image/png,image/jpeg", True, AUTO),
        ("image/webp", False, "webp"),
        ("IMAGE/WEBP", False, "webp"),
        ("image/webp,*/*;q=0.8", False, "webp"),
        ("text/html, image/webp;q=0.5, */*;q=0.1", False, "webp"),
        ("image/webp;q=0", False, AUTO),
        ("image/webp;q=0.0", False, AUTO),
        ("image/webp; q=0", False, AUTO),
        ("image/webp;q=0.001", False, "webp"),
        ("image/avif", False, AUTO),
        ("image/avif", True, "avif"),
        ("image/avif,image/webp", False, "webp"),
        ("image/avif,image/webp", True, "avif"),
        ("image/webp,image/avif", True, "avif"),
        ("image/avif;q=0,image/webp", True, "webp"),
        ("image/avif;q=0,image/webp;q=0", True, AUTO),
        # a current Chrome
        (
            "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
            False,
            "webp",
        ),
        (
            "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
            True,
            "avif",
        ),
        ("image/webpx", False, AUTO),
        (",,;", False, AUTO),
    ],
)
def test_negotiate(accept: str, avif: bool, expected: str) -> None:
    assert negotiate(accept, avif_enabled=avif) == expected


def test_every_error_here_is_an_imgserver_error(catalogue: Catalogue) -> None:
    for spec, pairs, source in [
        ("nosuch", [], SRC),
        ("resize.bmp", [], SRC),
        ("resize", [], None),
        ("resize", [("width", "x")], SRC),
    ]:
        with pytest.raises(ImgServerError) as info:
            parse(catalogue, spec, *pairs, source=source)
        assert 400 <= info.value.status < 500


@pytest.mark.parametrize(
    ("param", "raw", "why"),
    [
        (Param("n", "int"), "9" * 30, "must be a whole number of at most 12 digits"),
        (Param("n", "int", minimum=1), "9" * 30, "must be a whole number of at most 12 digits"),
        (Param("n", "int", maximum=10), "-" + "9" * 30, "must be a whole number of at most 12"),
        (Param("n", "int", maximum=10), "9" * 30, "must be at most 10"),
    ],
)
def test_an_over_long_whole_number_names_the_bound_it_passes(
    param: Param, raw: str, why: str
) -> None:
    with pytest.raises(InvalidParam) as caught:
        param.parse(raw)
    assert why in caught.value.message
