"""SVG sources through the service: rasterised when IMGSERVER_ENABLE_SVG is set, no external
reference ever followed, and refused as before when the switch is off.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import Origin, Service
from ..images import svg, vload
from .test_hostile import CLIENT_TIMEOUT, ask, assert_healthy, unique
from .test_uploads import get_bytes, upload, wait_image

NS = 'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'


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
