"""SVG sources behind IMGSERVER_ENABLE_SVG: sniffing, rasterising under the pixel limits, no
external reference ever followed, and everything refused as before when the switch is off.

The in-process runtime tests run libvips without ``execute.init`` (so svgload is not blocked
here); that the worker processes unblock it only with the switch is tests/test_decoders.py's.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from imgserver.errors import UnsupportedSource
from imgserver.formats import SVG_HEAD, mime_of, require_source_format, sniff
from imgserver.runtime.execute import execute
from imgserver.uploads import read_capped

from .conftest import Origin, Service
from .images import LIMITS, catalogue, pillow_twin, vload, vpixel
from .test_hostile import CLIENT_TIMEOUT, ask, assert_healthy, unique
from .test_uploads import get_bytes, upload, wait_image

NS = 'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'


def svg(width: int = 64, height: int = 48, body: str = "", prolog: str = "") -> bytes:
    """A red ``width`` x ``height`` SVG (plus ``body``), after ``prolog``."""
    rect = f'<rect width="{width}" height="{height}" fill="#ff0000"/>'
    return f'{prolog}<svg {NS} width="{width}" height="{height}">{rect}{body}</svg>'.encode()


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
    return execute(
        {
            "graph": g.name,
            "definition": dict(g.definition),
            "params": params,
            "format": fmt,
            "source": data,
            "source_format": "svg",
            "limits": dict(LIMITS),
        }
    )


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


# -- through the service ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def svg_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = Service(
        tmp_path_factory.mktemp("svg"),
        {
            "IMGSERVER_ENABLE_SVG": "1",
            "IMGSERVER_WORKERS": "1",
            "IMGSERVER_JOB_DEADLINE": "8",
        },
    )
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture
async def session() -> AsyncIterator[Any]:
    import aiohttp

    async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as s:
        yield s


class Fifo:
    """A named pipe that records whether anything opened it for reading."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self.opened = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        fd = os.open(self.path, os.O_WRONLY)  # blocks until a reader opens the pipe
        self.opened.set()
        with contextlib.suppress(OSError):
            os.write(fd, b"<!ENTITY leaked 'root:x:0:0'>secret")
        os.close(fd)

    def close(self) -> None:
        """Release the writer (open the pipe ourselves, after the fact has been checked)."""
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self._thread.join(5)
        os.close(fd)


def referencing(file_url: str, http_url: str) -> list[bytes]:
    """SVGs that would read ``file_url`` and fetch ``http_url`` if references were followed."""
    entities = f'<!DOCTYPE svg [<!ENTITY f SYSTEM "{file_url}"><!ENTITY h SYSTEM "{http_url}">]>'
    return [
        svg(body="<text y='20'>&f;&h;</text>", prolog='<?xml version="1.0"?>\n' + entities),
        svg(
            body=f'<image xlink:href="{file_url}" width="8" height="8"/>'
            f'<image href="{http_url}" width="8" height="8"/>'
        ),
        svg(body=f'<use href="{file_url}#a"/><use xlink:href="{http_url}#b"/>'),
        svg(body=f"<style>@import url({http_url}); rect {{ fill: url({file_url}#g) }}</style>"),
        svg(
            body=f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{file_url}" '
            f'parse="text"/><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
            f'href="{http_url}" parse="text"/>'
        ),
        svg(prolog=f'<?xml version="1.0"?><?xml-stylesheet type="text/css" href="{http_url}"?>'),
    ]


async def test_svg_is_rasterised(svg_service: Service, origin: Origin, session) -> None:
    src = origin.add(unique("/svg") + ".svg", svg(64, 48), content_type="image/svg+xml")
    answer = await ask(session, svg_service, "passthrough.png", src, width=32)
    assert answer.image is not None, answer
    assert (answer.image.format, answer.image.width, answer.image.height) == ("png", 32, 24)
    answer = await ask(
        session, svg_service, "resize.webp", src, width=128, height=128, mode="crop", upscale="true"
    )
    assert answer.image is not None and (answer.image.width, answer.image.height) == (128, 128)


@pytest.mark.parametrize(
    "spec,params,expect",
    [
        ("passthrough.png", {}, (422, "too_many_pixels")),  # declares 100000 x 100000
        ("passthrough.png", {"width": 10}, (422, "too_many_pixels")),
        ("autocontrast.png", {}, (415, "unsupported_source")),  # a Pillow graph
        ("noop", {}, (415, "unsupported_source")),
    ],
)
async def test_svg_refusals(
    svg_service: Service, origin: Origin, session, spec, params, expect
) -> None:
    data = svg(100_000, 100_000) if expect[1] == "too_many_pixels" else svg()
    src = origin.add(unique("/svg") + ".svg", data, content_type="image/svg+xml")
    answer = await ask(session, svg_service, spec, src, **params)
    assert (answer.status, answer.code) == expect
    await assert_healthy(session, svg_service, origin)


async def test_no_reference_is_ever_followed(
    svg_service: Service, origin: Origin, session, tmp_path: Path
) -> None:
    fifo = Fifo(tmp_path / "secret")
    probe = unique("/svg-probe")
    origin.add(probe, b"<!ENTITY leaked 'x'>", content_type="text/plain")
    try:
        for i, data in enumerate(referencing(fifo.path.as_uri(), origin.url(probe))):
            src = origin.add(unique("/svg") + ".svg", data, content_type="image/svg+xml")
            spec = ("passthrough.png", "resize.jpg")[i % 2]
            answer = await ask(session, svg_service, spec, src, width=16)
            assert answer.status in (301, 422), answer  # rendered without them, or refused
        assert not fifo.opened.is_set(), "a file:// reference was opened"
        assert origin.hits(probe) == 0, "an http reference was fetched"
    finally:
        fifo.close()
    await assert_healthy(session, svg_service, origin)


async def test_svg_upload_is_rasterised_and_its_original_is_not_served_as_svg(
    svg_service: Service,
) -> None:
    data = svg(40, 30, prolog="<!--" + "x" * 100 + "-->")  # the root comes after 64 bytes
    status, _, image = await upload(svg_service, data, content_type="image/svg+xml")
    assert status == 201, image
    assert image["format"] == "svg"
    done = await wait_image(svg_service, image["id"])
    assert done["status"] == "completed", done
    status, content_type, result = await get_bytes(done["compressed_url"])
    assert status == 200 and content_type == "image/png"
    assert vload(result).width == 40
    status, content_type, original = await get_bytes(done["original_url"])
    assert status == 200 and original == data
    assert content_type == "application/octet-stream"  # never image/svg+xml: it could script

    # its size is only known to libvips, in the worker: accepted, and the task says why not
    status, _, image = await upload(svg_service, svg(100_000, 100_000), raw=True)
    assert status == 201, image
    done = await wait_image(svg_service, image["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "too_many_pixels", done


async def test_svg_off_is_refused_as_before(service: Service, origin: Origin, session) -> None:
    src = origin.add(unique("/svg") + ".svg", svg(), content_type="image/svg+xml")
    answer = await ask(session, service, "passthrough.png", src)
    assert (answer.status, answer.code) == (415, "unsupported_source")
    status, _, body = await upload(service, svg(), content_type="image/svg+xml")
    assert (status, body["error"]["code"]) == (415, "unsupported_source")
    assert "SVG/XML is not enabled" in body["error"]["message"]
