"""SVG sources behind IMGSERVER_ENABLE_SVG: sniffing, rasterising under the pixel limits, no
external reference ever followed, and everything refused as before when the switch is off.

The in-process runtime tests run libvips without ``execute.init`` (so svgload is not blocked
here); that the worker processes unblock it only with the switch is tests/unit/test_decoders.py's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from imgserver.errors import UnsupportedSource
from imgserver.formats import SVG_HEAD, mime_of, require_source_format, sniff
from imgserver.uploads import read_capped

from ..images import LIMITS, catalogue, pillow_twin, render, svg, vload, vpixel

# -- sniffing ---------------------------------------------------------------------------------

SVG_DOCUMENTS = [
    ("bare", svg()),
    ("xml-declaration", svg(prolog='<?xml version="1.0" encoding="UTF-8"?>\n')),
    ("bom-and-blanks", b"\xef\xbb\xbf \n\t" + svg()),
    (
        "doctype",
        svg(
            prolog='<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
            '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
        ),
    ),
    ("internal-subset", svg(prolog='<!DOCTYPE svg [<!ENTITY a "b"><!ENTITY c "d">]>')),
    ("comments-and-pi", svg(prolog='<!-- made - by hand --><?xml-stylesheet href="a.css"?>\n')),
    ("prefixed-root", b'<svg:svg xmlns:svg="http://www.w3.org/2000/svg" width="4" height="4"/>'),
    ("self-closing", b"<svg/>"),
]

NOT_SVG = [
    ("html-with-svg", b"<!DOCTYPE html><html><body><svg width='1'/></body></html>"),
    ("html-bare", b"<html><svg/></html>"),
    ("other-xml", b'<?xml version="1.0"?><rss version="2.0"><svg/></rss>'),
    ("svg-like-name", b"<svgfoo/>"),
    ("root-too-late", b"<!--" + b" " * SVG_HEAD + b"--><svg/>"),
    ("text", b"svg width=1"),
    ("pdf", b"%PDF-1.7\n"),
]


@pytest.mark.parametrize("data", [d for _, d in SVG_DOCUMENTS], ids=[n for n, _ in SVG_DOCUMENTS])
def test_sniffed_as_svg_only_when_enabled(data: bytes) -> None:
    assert sniff(data, svg=True) == "svg"
    assert require_source_format(data, svg=True) == "svg"
    assert sniff(data) is None
    with pytest.raises(UnsupportedSource, match="SVG/XML is not enabled"):
        require_source_format(data)


@pytest.mark.parametrize("data", [d for _, d in NOT_SVG], ids=[n for n, _ in NOT_SVG])
def test_not_svg_even_when_enabled(data: bytes) -> None:
    assert sniff(data, svg=True) is None
    with pytest.raises(UnsupportedSource) as info:
        require_source_format(data, svg=True)
    assert info.value.status == 415 and info.value.code == "unsupported_source"


def test_enabled_hints_say_what_is_missing() -> None:
    with pytest.raises(UnsupportedSource, match="XML without an <svg> root element"):
        require_source_format(b'<?xml version="1.0"?><rss/>', svg=True)
    with pytest.raises(UnsupportedSource, match="PDF is not supported"):
        require_source_format(b"%PDF-1.7\n", svg=True)


@pytest.mark.parametrize(
    "prolog",
    [b"<??>" * 250, b"<!---->" * 140, b"<?" * 500, b"<!--" * 250, b"<!DOCTYPE [" * 90],
    ids=["pis", "comments", "open-pis", "open-comments", "open-doctypes"],
)
def test_a_hostile_prolog_costs_linear_time(prolog: bytes) -> None:
    import time

    started = time.perf_counter()
    for _ in range(20):
        assert sniff(prolog + b"x", svg=True) is None
    assert time.perf_counter() - started < 0.5  # backtracking would take minutes


def test_svg_bytes_are_never_labelled_svg() -> None:
    assert mime_of("svg") == "application/octet-stream"


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_upload_reading_waits_for_the_root_element_only_when_enabled() -> None:
    long_prolog = svg(prolog="<!--" + "x" * 200 + "-->")
    assert sniff(long_prolog[:64], svg=True) is None  # the first bytes cannot tell
    assert await read_capped(_chunks(long_prolog), 10_000, svg=True) == long_prolog
    with pytest.raises(UnsupportedSource, match="not an image we decode"):
        await read_capped(_chunks(long_prolog), 10_000)  # off: refused from the first bytes

    async def binary_then_endless() -> AsyncIterator[bytes]:
        yield b"BM" + b"\0" * 100
        raise AssertionError("read on after the first bytes showed it is not an image")

    with pytest.raises(UnsupportedSource, match="unrecognised leading bytes"):
        await read_capped(binary_then_endless(), 10_000, svg=True)


# -- the runtime, in this process --------------------------------------------------------------


def run_svg(graph: Any, data: bytes, fmt: str = "png", **params: Any) -> dict[str, Any]:
    g = catalogue()[graph] if isinstance(graph, str) else graph
    return render(g, params, fmt, data, "svg")


def test_rasterised_at_the_requested_size() -> None:
    r = run_svg("passthrough", svg(64, 48), width=32)
    assert r["ok"], r
    assert (r["format"], r["width"], r["height"]) == ("png", 32, 24)
    assert [round(v) for v in vpixel(vload(r["data"]), 16, 12)[:3]] == [255, 0, 0]


@pytest.mark.parametrize(
    "data",
    [svg(100_000, 100_000), b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 8000 8000"/>'],
    ids=["width-height", "viewbox"],
)
def test_declared_size_over_the_pixel_limit_is_refused(data: bytes) -> None:
    r = run_svg("passthrough", data, width=10)
    assert r["ok"] is False and r["error"]["code"] == "too_many_pixels", r
    assert r["error"]["limit"] == LIMITS["max_source_pixels"]


def test_pillow_graphs_refuse_svg(tmp_path: Path) -> None:
    r = run_svg(pillow_twin("passthrough", tmp_path), svg())
    assert r["ok"] is False and r["error"]["code"] == "unsupported_source", r
    assert "libvips graphs only" in r["error"]["message"]


def test_noop_never_passes_svg_through() -> None:
    r = run_svg("noop", svg(), fmt="auto")
    assert r["ok"] is False and r["error"]["code"] == "unsupported_source", r
