"""Chained inputs: ``input=/graph/…`` names another request of this service, whose result is the
input. Parsing, keys, depth, and which sources a chain fetches."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from multidict import MultiDict

from imgserver.catalogue import Catalogue
from imgserver.errors import InvalidInput, InvalidParam, SourceNotAllowed, UnknownGraph
from imgserver.messages import decode_job, encode_job
from imgserver.request import CHAIN_PREFIX, MAX_CHAIN, ImageRequest, check_sources, parse_request
from imgserver.settings import Settings

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"
SRC = "https://images.example.com/cat.jpg"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load(GRAPHS)


def inner_path(graph: str = "resize.png", source: str = SRC, **params: object) -> str:
    return f"/graph/{graph}?" + urlencode({"input": source, **params})


def parse(catalogue: Catalogue, spec: str, source: str, **params: object) -> ImageRequest:
    query = MultiDict([("input", source), *((k, str(v)) for k, v in params.items())])
    return parse_request(spec, query, accept="image/webp", catalogue=catalogue, avif_enabled=False)


def test_a_chained_input_is_parsed_as_a_request(catalogue: Catalogue) -> None:
    req = parse(catalogue, "gaussianblur.jpg", inner_path(width=300, mode="crop", height=200))
    assert req.inner is not None
    assert req.input == CHAIN_PREFIX + req.inner.key
    assert (req.inner.graph.name, req.inner.format, req.inner.input) == ("resize", "png", SRC)
    assert req.inner.params["width"] == 300 and req.inner.params["mode"] == "crop"
    assert list(req.sources()) == [SRC]


def test_the_outer_key_follows_the_inner_one(catalogue: Catalogue) -> None:
    a = parse(catalogue, "gaussianblur.jpg", inner_path(width=300))
    b = parse(catalogue, "gaussianblur.jpg", inner_path(width=301))
    again = parse(catalogue, "gaussianblur.jpg", inner_path(width=300))
    plain = parse(catalogue, "gaussianblur.jpg", SRC)
    assert a.key != b.key and a.key == again.key and a.key != plain.key


def test_an_inner_request_without_extension_is_auto(catalogue: Catalogue) -> None:
    """The Accept header is the outer client's: the inner result is not negotiated."""
    req = parse(catalogue, "passthrough", inner_path("resize"))
    assert req.format == "webp" and req.negotiated
    assert req.inner is not None and req.inner.format == "auto" and not req.inner.negotiated


def test_a_signed_inner_path_is_accepted(catalogue: Catalogue) -> None:
    req = parse(
        catalogue, "passthrough.jpg", "/graph/key1/abcdef/resize.png?" + "input=" + quote(SRC)
    )
    assert req.inner is not None and req.inner.graph.name == "resize"


def chain(depth: int) -> str:
    """An input nesting ``depth`` graphs (each a passthrough of the next)."""
    source = SRC
    for _ in range(depth):
        source = inner_path("passthrough.png", source)
    return source


def test_chains_are_at_most_four_graphs(catalogue: Catalogue) -> None:
    req = parse(catalogue, "passthrough.jpg", chain(MAX_CHAIN - 1))
    depth, inner = 1, req.inner
    while inner is not None:
        depth, inner = depth + 1, inner.inner
    assert depth == MAX_CHAIN
    with pytest.raises(InvalidInput, match="at most 4 graphs"):
        parse(catalogue, "passthrough.jpg", chain(MAX_CHAIN))


def test_the_job_carries_its_chain(catalogue: Catalogue) -> None:
    req = parse(catalogue, "passthrough.jpg", chain(2))
    job = req.job("t1")
    assert job.inner is not None and job.inner.inner is not None and job.inner.inner.inner is None
    assert job.input == CHAIN_PREFIX + job.inner.key
    assert job.inner.task_id is None
    assert decode_job(encode_job(job)) == job


@pytest.mark.parametrize(
    ("source", "error", "match"),
    [
        (inner_path("nosuchgraph.png"), UnknownGraph, "nosuchgraph"),
        (inner_path(width="wide"), InvalidParam, "width"),
        (inner_path(_nocache=1), InvalidInput, "outer request"),
        ("/graph/", InvalidInput, "/graph/"),
        ("/graph/a/b/c/d/resize.png?input=x", InvalidInput, "/graph/"),
        (inner_path(source="file:///etc/passwd"), InvalidInput, "http"),
        ("/graph/resize.png", InvalidInput, "exactly one 'input'"),
    ],
)
def test_a_bad_inner_request_is_refused_like_any(
    catalogue: Catalogue, source: str, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        parse(catalogue, "passthrough.jpg", source)


def test_the_allow_list_applies_at_the_end_of_the_chain(catalogue: Catalogue) -> None:
    settings = Settings(allowed_sources="*.example.com")
    check_sources(parse(catalogue, "passthrough.jpg", chain(3)), settings)
    elsewhere = chain(2).replace("images.example.com", "evil.example.org")
    with pytest.raises(SourceNotAllowed, match=r"evil\.example\.org"):
        check_sources(parse(catalogue, "passthrough.jpg", elsewhere), settings)
