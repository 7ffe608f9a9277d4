"""Property tests (Hypothesis) on request parsing, the cache key and the byte/address checks.

Deterministic: every test runs a fixed, derandomised set of examples with no deadline, and
Hypothesis keeps no example database.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from multidict import MultiDict

from imgserver.catalogue import Catalogue, Graph, Param, load_graph
from imgserver.errors import (
    ImgServerError,
    InvalidInput,
    InvalidParam,
    TooManyPixels,
    UnsupportedSource,
)
from imgserver.formats import EXTENSIONS, require_source_format, sniff
from imgserver.params import number_text
from imgserver.probe import check_pixels, dimensions
from imgserver.request import ImageRequest, canonical_input, parse_request
from imgserver.security import embedded_ipv4, host_allowed, ipv4_literal, is_public

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"

DETERMINISTIC = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# A graph with a parameter of every type (the shipped ones have no colour or string).
TYPED_GRAPH: dict[str, Any] = {
    "description": "every parameter type",
    "runtime": "vips",
    "params": {
        "bg": {"type": "color", "default": "#FFF"},
        "tint": {"type": "color"},
        "label": {"type": "string", "default": "hi"},
        "level": {"type": "enum", "values": ["low", "high"], "default": "low"},
        "ratio": {"type": "number", "default": 0.5, "minimum": -1, "maximum": 1},
        "count": {"type": "int", "default": 3, "minimum": 0, "maximum": 10},
        "flag": {"type": "bool", "default": True},
        "tone": {"type": "curve", "default": "0:0,255:255"},
    },
}


def _catalogue() -> Catalogue:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "typed.json"
        path.write_text(json.dumps(TYPED_GRAPH))
        typed_graph = load_graph(path)
    return Catalogue({**Catalogue.load(GRAPHS), "typed": typed_graph})


CATALOGUE = _catalogue()
NAMES = sorted(CATALOGUE)
KEY = re.compile(r"[0-9a-f]{64}")


# -- strategies -------------------------------------------------------------------------------

label = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?", fullmatch=True)
dns_name = st.lists(label, min_size=1, max_size=4).map(".".join)
hosts = st.one_of(
    dns_name,
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
    st.sampled_from(
        [
            "localhost",
            "EXAMPLE.com",
            "example.com.",
            "xn--bcher-kva.example",
            "bücher.example",
            "127.1",
            "0x7f000001",
            "[::ffff:127.0.0.1]",
        ]
    ),
)
url_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)
path_segment = st.one_of(
    st.from_regex(r"[a-zA-Z0-9._~-]{0,12}", fullmatch=True),
    url_text,
    st.sampled_from(["..", ".", "%2F", "%25", "%41", "a b", "ä", "%zz", "a;b=c", "@", ":"]),
)


@st.composite
def urls(draw: st.DrawFn) -> str:
    """Absolute http(s) URLs, written the many ways people (and attackers) write them."""
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "hTtPs"]))
    host = draw(hosts)
    port = draw(st.one_of(st.none(), st.sampled_from([80, 443, 8080]), st.integers(1, 65535)))
    path = "/".join(draw(st.lists(path_segment, max_size=4)))
    url = f"{scheme}://{host}" + (f":{port}" if port is not None else "")
    if path or draw(st.booleans()):
        url += "/" + path
    if draw(st.booleans()):
        url += "?" + draw(
            st.one_of(
                url_text, st.sampled_from(["a=1&b=2", "b=2&a=1", "x=%20", "q=a+b", "=", "&&"])
            )
        )
    if draw(st.booleans()):
        url += "#" + draw(url_text)
    return url


inputs = st.one_of(
    urls(),
    st.from_regex(r"upload:[A-Za-z0-9_-]{1,64}", fullmatch=True),
    url_text,
)


def spell_int(n: int) -> st.SearchStrategy[str]:
    options = [str(n), f" {n} "]
    if n >= 0:
        options += [f"+{n}", f"{n:06d}"]
    return st.sampled_from(options)


# A curve's values: whole, or decimals a float holds exactly (so every spelling is one value).
curve_value = st.one_of(st.integers(0, 255).map(float), st.integers(0, 1020).map(lambda n: n / 4))


def curve_points() -> st.SearchStrategy[list[tuple[float, float]]]:
    """2 to 32 control points with distinct inputs, in no particular order."""
    return st.lists(
        st.tuples(curve_value, curve_value), min_size=2, max_size=32, unique_by=lambda p: p[0]
    )


def spell_number(v: float) -> st.SearchStrategy[str]:
    whole = v.is_integer()
    options = [number_text(v), f"{v:.2f}", f"0{v:.3f}", f" {number_text(v)} "]
    return st.sampled_from(options + ([f"{int(v)}.0", f"00{int(v)}"] if whole else []))


@st.composite
def spell_curve(draw: st.DrawFn, points: list[tuple[float, float]]) -> str:
    """One of the ways to write ``points``: any order, padded, trailing and leading zeros."""
    order = draw(st.permutations(points))
    return ",".join(f"{draw(spell_number(x))}:{draw(spell_number(y))}" for x, y in order)


def spelled(param: Param) -> st.SearchStrategy[str]:
    """Valid query-string spellings of values of ``param``."""
    lo, hi = param.minimum, param.maximum
    if param.type == "int":
        return st.integers(
            int(lo if lo is not None else -(10**6)), int(hi if hi is not None else 10**6)
        ).flatmap(spell_int)
    if param.type == "number":
        floats = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
        return st.one_of(
            floats.map(repr),
            floats.map(lambda f: f"{f:.3f}"),
            st.integers(int(lo or 0), int(hi or 0)).map(str),
        )
    if param.type == "bool":
        words = st.sampled_from(["1", "0", "true", "false", "yes", "no", "on", "off"])
        return st.tuples(words, st.booleans()).map(lambda t: t[0].upper() if t[1] else t[0])
    if param.type == "enum":
        return st.sampled_from(list(param.values or ()))
    if param.type == "color":
        digits = st.sampled_from([3, 6, 8]).flatmap(
            lambda n: st.text("0123456789abcdefABCDEF", min_size=n, max_size=n)
        )
        return st.tuples(st.sampled_from(["", "#"]), digits).map("".join)
    if param.type == "curve":
        return curve_points().flatmap(spell_curve)
    return st.text(max_size=40)  # string


def spelled_in(graph: Any, name: str) -> st.SearchStrategy[str]:
    """Valid spellings of graph ``graph``'s parameter ``name``: a parameter that names another
    image (a watermark) takes a URL, like the input."""
    if name in graph.source_params:
        return urls().filter(_canonical_ok)
    return spelled(graph.params[name])


@st.composite
def valid_requests(draw: st.DrawFn, names: list[str] = NAMES) -> dict[str, Any]:
    """A valid request: graph spec, query pairs (input first), Accept."""
    name = draw(st.sampled_from(names))
    graph = CATALOGUE[name]
    ext = draw(st.sampled_from([None, *EXTENSIONS]))
    chosen = draw(st.lists(st.sampled_from(sorted(graph.params)), unique=True, max_size=5))
    pairs = [(p, draw(spelled_in(graph, p))) for p in chosen]
    source = draw(urls().filter(_canonical_ok))
    accept = draw(
        st.sampled_from(["", "image/webp", "image/avif,image/webp", "*/*", "image/png;q=0.5"])
    )
    return {
        "spec": name + (f".{ext}" if ext else ""),
        "pairs": [("input", source), *pairs],
        "accept": accept,
    }


def _canonical_ok(raw: str) -> bool:
    try:
        canonical_input(raw)
    except InvalidInput:
        return False
    return True


def build(spec: str, pairs: list[tuple[str, str]], accept: str = "") -> ImageRequest:
    return parse_request(
        spec, MultiDict(pairs), accept=accept, catalogue=CATALOGUE, avif_enabled=True
    )


def typed(req: ImageRequest) -> tuple:
    """What the key must tell apart: graph (and its definition), format, input, typed params."""
    return (
        req.graph.name,
        req.graph.digest,
        req.format,
        req.input,
        tuple(sorted((k, type(v).__name__, v) for k, v in req.params.items())),
    )


# -- curves -----------------------------------------------------------------------------------

TONE = CATALOGUE["typed"].params["tone"]


@DETERMINISTIC
@given(curve_points().flatmap(lambda pts: st.tuples(st.just(pts), spell_curve(pts))))
def test_every_spelling_of_a_curve_is_one_value(case: tuple[list, str]) -> None:
    points, raw = case
    value = TONE.parse(raw)
    assert value == ",".join(f"{number_text(x)}:{number_text(y)}" for x, y in sorted(points))
    assert TONE.parse(value) == value  # canonical: parsing it again changes nothing


@DETERMINISTIC
@given(st.one_of(st.text(max_size=60), st.text("0123456789.:, -e", max_size=60)))
def test_a_curve_is_refused_only_with_invalid_param(raw: str) -> None:
    try:
        value = TONE.parse(raw)
    except InvalidParam as exc:
        assert exc.details["param"] == "tone" and exc.message.startswith("parameter 'tone' ")
        return
    assert isinstance(value, str) and TONE.parse(value) == value


# -- canonical input --------------------------------------------------------------------------


@DETERMINISTIC
@given(inputs)
def test_canonical_input_is_idempotent(raw: str) -> None:
    try:
        once = canonical_input(raw)
    except InvalidInput:
        return
    assert canonical_input(once) == once
    assert once.startswith(("http://", "https://", "upload:"))
    assert "#" not in once  # fragments never reach a server, nor the key


@DETERMINISTIC
@given(st.text(max_size=200))
def test_canonical_input_refuses_only_with_invalid_input(raw: str) -> None:
    with contextlib.suppress(InvalidInput):
        canonical_input(raw)


@DETERMINISTIC
@given(urls(), st.sampled_from(["", "#frag", "#"]))
def test_spelling_of_scheme_host_and_default_port_does_not_matter(raw: str, tail: str) -> None:
    raw = raw.strip()  # as canonical_input does, so the fragment is appended to the URL
    assume(_canonical_ok(raw))
    scheme, rest = raw.split("://", 1)
    variant = scheme.swapcase() + "://" + rest + tail
    assert canonical_input(variant) == canonical_input(raw)


# -- parse_request ----------------------------------------------------------------------------

any_key = st.one_of(
    st.sampled_from(
        [
            "input",
            "width",
            "height",
            "quality",
            "mode",
            "gravity",
            "upscale",
            "_nocache",
            "_debug",
            "std-dev-x",
            "bg",
            "count",
            "flag",
            "ratio",
            "tint",
            "label",
            "level",
        ]
    ),
    st.text(max_size=12),
)
any_value = st.one_of(st.text(max_size=30), st.integers().map(str), st.floats().map(str), inputs)
any_spec = st.one_of(
    st.text(max_size=30),
    st.tuples(
        st.sampled_from(NAMES),
        st.sampled_from(["", ".", ".jpg", ".JPG", ".bmp", ".tar.gz", ".webp", ".avif", ".gif"]),
    ).map("".join),
)


@settings(DETERMINISTIC, max_examples=400)
@given(
    any_spec,
    st.lists(st.tuples(any_key, any_value), max_size=8),
    st.text(max_size=40),
    st.booleans(),
)
def test_parse_request_raises_only_api_client_errors(spec, pairs, accept, avif) -> None:
    try:
        req = parse_request(
            spec, MultiDict(pairs), accept=accept, catalogue=CATALOGUE, avif_enabled=avif
        )
    except ImgServerError as exc:
        assert 400 <= exc.status < 500, exc.to_dict()
        json.dumps({"error": exc.to_dict()}, default=str)  # the body can always be written
        return
    assert KEY.fullmatch(req.key)


@DETERMINISTIC
@given(valid_requests())
def test_valid_requests_parse_and_key_is_64_lowercase_hex(r: dict) -> None:
    req = build(r["spec"], r["pairs"], r["accept"])
    assert KEY.fullmatch(req.key)
    assert req.key == build(r["spec"], r["pairs"], r["accept"]).key  # stable


@DETERMINISTIC
@given(valid_requests(), st.randoms(use_true_random=False))
def test_query_order_never_changes_the_key(r: dict, rnd) -> None:
    pairs = list(r["pairs"])
    shuffled = pairs[:]
    rnd.shuffle(shuffled)
    assert build(r["spec"], shuffled, r["accept"]).key == build(r["spec"], pairs, r["accept"]).key


@DETERMINISTIC
@given(valid_requests(), st.data())
def test_a_param_at_its_default_is_the_same_as_leaving_it_out(r: dict, data) -> None:
    graph: Graph = CATALOGUE[r["spec"].partition(".")[0]]
    given_names = {k for k, _ in r["pairs"]}
    defaults = sorted(
        n for n, p in graph.params.items() if p.default is not None and n not in given_names
    )
    assume(defaults)
    name = data.draw(st.sampled_from(defaults))
    param = graph.params[name]
    spellings = [
        s for s in _default_spellings(param.default) if _parses_to(param, s, param.default)
    ]
    explicit = data.draw(st.sampled_from(spellings))
    position = data.draw(st.integers(0, len(r["pairs"])))
    pairs = list(r["pairs"])
    pairs.insert(position, (name, explicit))
    assert build(r["spec"], pairs, r["accept"]).key == build(r["spec"], r["pairs"], r["accept"]).key


def _default_spellings(value: Any) -> list[str]:
    if isinstance(value, bool):
        return ["true", "TRUE", "yes", "on", "1"] if value else ["false", "no", "off", "0"]
    if isinstance(value, int):
        return [str(value), f"+{value}", f"00{value}", f" {value} "]
    if isinstance(value, float):
        return [repr(value), f"{value:.4f}", f"{value}0"]
    if isinstance(value, str) and value.startswith("#"):
        return [value, value.upper(), value[1:], value + "ff"]
    return [str(value), f" {value} "]


def _parses_to(param: Param, raw: str, expected: Any) -> bool:
    try:
        return param.parse(raw) == expected
    except ImgServerError:
        return False


# A small domain, so that equal requests (spelled differently) come up often.
SMALL_INPUTS = [
    "http://example.com/a.jpg",
    "HTTP://EXAMPLE.com:80/a.jpg",
    "http://example.com/a.jpg#x",
    "https://example.com/a.jpg",
    "http://example.com/b.jpg",
    "http://example.com/a.jpg?v=1",
    "upload:abc",
]


@st.composite
def small_requests(draw: st.DrawFn) -> ImageRequest:
    name = draw(st.sampled_from(["resize", "passthrough", "typed"]))
    graph = CATALOGUE[name]
    ext = draw(st.sampled_from(["", ".jpg", ".jpeg", ".png", ".webp"]))
    accept = draw(st.sampled_from(["", "image/webp"]))
    values = {
        "width": st.sampled_from(["1", "2", "02"]),
        "quality": st.sampled_from(["80", "81"]),
        "mode": st.sampled_from(["fit", "crop"]),
        "upscale": st.sampled_from(["0", "1"]),
        "count": st.sampled_from(["3", "4"]),
        "flag": st.sampled_from(["yes", "no"]),
        "bg": st.sampled_from(["#fff", "#000"]),
        "ratio": st.sampled_from(["0.5", "-0"]),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(set(values) & set(graph.params))), unique=True))
    pairs = [("input", draw(st.sampled_from(SMALL_INPUTS)))]
    pairs += [(p, draw(values[p])) for p in chosen]
    return build(name + ext, pairs, accept)


@settings(DETERMINISTIC, max_examples=400)
@given(small_requests(), small_requests())
def test_requests_share_a_key_exactly_when_they_are_the_same_request(a, b) -> None:
    assert (a.key == b.key) == (typed(a) == typed(b)), (typed(a), typed(b))


@DETERMINISTIC
@given(valid_requests(), valid_requests())
def test_different_requests_never_share_a_key(r1: dict, r2: dict) -> None:
    a = build(r1["spec"], r1["pairs"], r1["accept"])
    b = build(r2["spec"], r2["pairs"], r2["accept"])
    assert (a.key == b.key) == (typed(a) == typed(b))


@DETERMINISTIC
@given(valid_requests(), st.data())
def test_changing_one_thing_changes_the_key(r: dict, data) -> None:
    req = build(r["spec"], r["pairs"], r["accept"])
    what = data.draw(st.sampled_from(["param", "format", "graph", "input"]))
    pairs = [(k, v) for k, v in r["pairs"] if k != "input"]
    source, spec, accept = dict(r["pairs"])["input"], r["spec"], r["accept"]
    if what == "param":
        name = data.draw(st.sampled_from(sorted(req.graph.params)))
        raw = data.draw(spelled_in(req.graph, name))
        pairs = [(k, v) for k, v in pairs if k != name] + [(name, raw)]
    elif what == "format":
        spec = req.graph.name + "." + data.draw(st.sampled_from(sorted(EXTENSIONS)))
    elif what == "graph":
        other = data.draw(st.sampled_from(NAMES))
        spec = other + spec[len(req.graph.name) :]
        pairs = [(k, v) for k, v in pairs if k in CATALOGUE[other].params]
    else:
        source = data.draw(urls().filter(_canonical_ok))
    changed = build(spec, [("input", source), *pairs], accept)
    assume(typed(changed) != typed(req))
    assert changed.key != req.key


# -- address checks ---------------------------------------------------------------------------

addresses = st.one_of(
    st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
    st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
    st.ip_addresses(),
)


@DETERMINISTIC
@given(
    st.one_of(
        st.text(max_size=60),
        addresses.map(str),
        addresses.map(lambda a: f"{a}%{a.version}"),
        st.integers().map(str),
    )
)
def test_is_public_never_raises_on_strings(text: str) -> None:
    assert is_public(text) in (True, False)


@DETERMINISTIC
@given(addresses)
def test_is_public_never_raises_on_addresses_and_agrees_with_their_text(ip) -> None:
    assert is_public(ip) == is_public(str(ip))
    if isinstance(ip, ipaddress.IPv6Address):
        hidden = embedded_ipv4(ip)
        if any(not is_public(v4) for v4 in hidden):
            assert not is_public(ip)  # no private IPv4 hides in a public-looking IPv6


@DETERMINISTIC
@given(st.integers(0, 2**32 - 1))
def test_ipv4_literal_reads_every_spelling_of_an_address(n: int) -> None:
    ip = ipaddress.IPv4Address(n)
    a, b, c, d = ip.packed
    for spelling in (
        str(ip),
        str(n),
        hex(n),
        f"0{n:o}",
        f"{a}.{(b << 16) | (c << 8) | d}",
        f"{a}.{b}.{(c << 8) | d}",
        f"{hex(a)}.0{b:o}.{c}.{d}",
        f"{ip}.",
    ):
        assert ipv4_literal(spelling) == ip, spelling


@DETERMINISTIC
@given(st.text(max_size=40))
def test_ipv4_literal_and_host_allowed_never_raise(text: str) -> None:
    found = ipv4_literal(text)
    assert found is None or isinstance(found, ipaddress.IPv4Address)
    host_allowed(text, ("allowed.test", "*.images.test"))


# -- bytes: sniffing and header probing -------------------------------------------------------

MAGICS = [
    b"\xff\xd8\xff",
    b"\xff\xd8\xff\xc0",
    b"\xff\xd8\xff\xe0\x00\x10",
    b"\x89PNG\r\n\x1a\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"GIF89a",
    b"GIF87a",
    b"RIFF\x00\x00\x00\x00WEBPVP8X",
    b"RIFF\x00\x00\x00\x00WEBPVP8L",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"II*\x00",
    b"MM\x00*",
    b"\x00\x00\x00\x1cftypavif",
    b"\x00\x00\x00\x18ftypheic",
]
sources = st.one_of(
    st.binary(max_size=80),
    st.tuples(st.sampled_from(MAGICS), st.binary(max_size=60)).map(b"".join),
)


@settings(DETERMINISTIC, max_examples=500)
@given(sources, st.sampled_from(["png", "gif", "jpeg", "webp", "tiff", "avif", "heif", "bmp"]))
def test_probe_never_raises(data: bytes, fmt: str) -> None:
    dims = dimensions(data, fmt)
    if dims is not None:
        w, h = dims
        assert isinstance(w, int) and isinstance(h, int) and w >= 0 and h >= 0
    try:
        check_pixels(data, fmt, 50_000_000)
    except TooManyPixels as exc:
        assert exc.status == 422


@settings(DETERMINISTIC, max_examples=500)
@given(sources)
def test_sniff_never_raises(data: bytes) -> None:
    fmt = sniff(data)
    assert fmt is None or fmt in ("jpeg", "png", "gif", "webp", "tiff", "avif", "heif")
    try:
        assert require_source_format(data) == fmt
    except UnsupportedSource as exc:
        assert fmt is None and exc.status == 415
    if fmt is not None:
        dimensions(data, fmt)  # the worker's pipeline: sniff, then probe


@pytest.mark.parametrize("cut", range(0, 34))
def test_every_truncation_of_a_webp_header_probes(cut: int) -> None:
    """The header shapes Hypothesis found broken, spelled out: every prefix of each WebP kind."""
    for chunk in (
        b"VP8L\x05\x00\x00\x00\x2f\x00\x00\x00\x00",
        b"VP8 \x0a\x00\x00\x00" + bytes(10),
        b"VP8X\x0a\x00\x00\x00" + bytes(10),
    ):
        data = (b"RIFF\x00\x00\x00\x00WEBP" + chunk)[:cut]
        dimensions(data, "webp")
