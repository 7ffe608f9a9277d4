"""Hostile sources through the real service: every one gets a JSON 4xx or a valid image.

The corpus is generated here (nothing binary is committed): truncations and seeded bit flips of
valid files in every format we decode, wrong magic bytes, things that are not images, headers
declaring 100k x 100k pixels, a small PNG that inflates to gigapixels, thousands of frames, huge
upscales, a job that overruns its deadline and one that runs into the memory limit. After each
one the service must still answer /healthz and process a good image.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import struct
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlencode

import aiohttp
import pytest
import pyvips

from ..conftest import Origin, Service
from ..images import (
    animation,
    gif_header,
    jpeg,
    jpeg_header,
    png_header,
    solid,
    texture,
    webp_header,
)
from ..procinfo import cpu_seconds, worker_pids
from .test_uploads import wait_task

# Far below the service's request deadline (25 s): a hang fails the test, it does not stall it.
CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=10)

# The API's error vocabulary for client errors (docs/api.md).
CLIENT_ERRORS = {
    400: {"invalid_input", "invalid_param"},
    403: {"signature_required", "bad_signature", "source_not_allowed", "quota_exceeded"},
    404: {"unknown_graph", "not_found"},
    413: {"source_too_large"},
    415: {"unsupported_source", "unsupported_format"},
    422: {"undecodable_source", "too_many_pixels"},
    429: {"overloaded"},
}


@dataclass
class Decoded:
    format: str
    width: int
    height: int  # of one page
    pages: int


@dataclass
class Answer:
    status: int
    code: str | None = None  # the error code, for a 4xx
    image: Decoded | None = None  # the decoded result, for a 301


def decode(data: bytes) -> Decoded:
    """Fully decode a result (every frame), failing on any decoder error."""
    head = pyvips.Image.new_from_buffer(data, "")
    loader = head.get("vips-loader")
    animated = loader.startswith(("gifload", "webpload"))
    image = pyvips.Image.new_from_buffer(data, "n=-1" if animated else "", fail_on="error")
    image.avg()  # touches every pixel
    pages = image.get("n-pages") if image.get_typeof("n-pages") and animated else 1
    page_height = image.height // pages
    return Decoded(
        loader.removesuffix("_buffer").removesuffix("load"), image.width, page_height, pages
    )


async def ask(
    session: aiohttp.ClientSession,
    service: Service,
    spec: str,
    source: str,
    copied: bytes | None = None,
    **params: object,
) -> Answer:
    """GET a graph; check the answer is a JSON client error or a redirect to a valid image.

    ``noop`` answers the source bytes unchanged after checking only the header (README): for
    it, pass the source as ``copied`` and the result must be exactly those bytes."""
    url = service.url(f"/graph/{spec}?" + urlencode({"input": source, **params}))
    started = time.monotonic()
    async with session.get(url, allow_redirects=False) as r:
        status, headers, body = r.status, r.headers, await r.read()
    assert time.monotonic() - started < CLIENT_TIMEOUT.total  # type: ignore[operator]
    if status == 301:
        async with session.get(headers["Location"]) as r:
            assert r.status == 200
            result = await r.read()
        if spec.startswith("noop"):
            assert copied is not None and result == copied
            return Answer(301)
        return Answer(301, image=decode(result))
    assert status in CLIENT_ERRORS, f"{status} is neither 301 nor a client error: {body[:400]!r}"
    assert headers["Content-Type"].startswith("application/json"), body[:200]
    error = json.loads(body)["error"]
    assert error["code"] in CLIENT_ERRORS[status], error
    assert error["message"]
    return Answer(status, code=error["code"])


def unique(prefix: str = "/hostile") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def assert_healthy(session: aiohttp.ClientSession, service: Service, origin: Origin) -> None:
    """/healthz answers and a good image (a miss, so a worker process runs) is processed."""
    async with session.get(service.url("/healthz")) as r:
        assert r.status == 200
    good = origin.add(unique("/good") + ".jpg", good_jpeg())
    answer = await ask(session, service, "passthrough.png", good, width=20)
    assert answer.image is not None and (answer.image.width, answer.image.height) == (20, 15)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as s:
        yield s


@pytest.fixture(scope="module")
def hostile_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Default limits; a job deadline shorter than the client timeout, so a runaway job would
    show as a 5xx (a failure here) rather than as a slow test."""
    svc = Service(tmp_path_factory.mktemp("hostile"), {"IMGSERVER_JOB_DEADLINE": "8"})
    svc.start()
    yield svc
    svc.stop()


# -- the corpus -------------------------------------------------------------------------------


@cache
def good_jpeg() -> bytes:
    return jpeg(texture(80, 60))


@cache
def valid(kind: str) -> bytes:
    """A valid, small source of each kind we decode."""
    image = texture(96, 64)
    if kind == "webp":
        return bytes(image.webpsave_buffer(keep="none"))  # simple lossy: a "VP8 " chunk
    if kind == "webp-lossless":
        return bytes(image.webpsave_buffer(lossless=True, keep="none"))  # "VP8L"
    if kind == "webp-alpha":
        return bytes(image.bandjoin(128).webpsave_buffer())  # extended: "VP8X", "ALPH"
    if kind == "gif-animated":
        return animation()
    if kind == "webp-animated":
        return animation(saver="webp")
    if kind == "png-alpha":
        return bytes(image.bandjoin(128).pngsave_buffer())
    if kind == "jpeg-progressive":
        return jpeg(image, interlace=True)
    ext = {"jpeg": "jpg", "tiff": "tif"}.get(kind, kind)
    return bytes(image.write_to_buffer(f".{ext}"))


KINDS = (
    "jpeg",
    "jpeg-progressive",
    "png",
    "png-alpha",
    "gif",
    "gif-animated",
    "webp",
    "webp-lossless",
    "webp-alpha",
    "webp-animated",
    "tiff",
    "avif",
)
TRUNCATIONS = ("12", "20", "33", "1/2", "-2")  # byte offsets; "1/2": half; "-2": all but 2
FLIP_SEEDS = range(8)

# Every case goes through one of these (graph spec, params), chosen by its position, so the
# corpus meets shrink-on-load, full decode, smart crop, the Pillow runtime and animations.
VARIANTS = (
    ("passthrough.png", {"width": 48}),
    ("passthrough.webp", {}),
    ("resize.jpg", {"width": 40, "height": 40, "mode": "crop", "gravity": "smart"}),
    ("autocontrast.png", {"width": 32}),
    ("passthrough.gif", {}),
    ("compress", {}),
    ("gaussianblur.jpg", {"width": 50, "std-dev-x": 3}),
    ("desaturate.webp", {"width": 40}),
    ("crop.png", {"x": 10, "y": 10, "cropwidth": 30, "cropheight": 20}),
    ("noop", {}),
)


def truncate(data: bytes, at: str) -> bytes:
    if at == "1/2":
        return data[: len(data) // 2]
    return data[: int(at)]


def flip_bits(data: bytes, seed: str) -> bytes:
    """1-6 bits flipped at seeded positions after the magic bytes."""
    rng = random.Random(seed)
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        out[rng.randrange(8, len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def zero_png(
    width: int,
    height: int,
    depth: int = 8,
    colour: int = 0,
    interlace: bool = False,
    level: int = 9,
) -> bytes:
    """A valid PNG of all-zero pixels, compressed without ever holding the raw rows."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    deflate = zlib.compressobj(level)
    parts = []

    def rows(w: int, h: int) -> None:
        line = bytes(1 + (w * depth * channels + 7) // 8)  # filter byte 0, then zeros
        per_block = max(1, (1 << 20) // len(line))
        block = line * per_block
        while h > 0:
            n = min(per_block, h)
            parts.append(deflate.compress(block if n == per_block else line * n))
            h -= n

    if interlace:  # Adam7: seven reduced images, one after the other
        for x0, y0, dx, dy in (
            (0, 0, 8, 8),
            (4, 0, 8, 8),
            (0, 4, 4, 8),
            (2, 0, 4, 4),
            (0, 2, 2, 4),
            (1, 0, 2, 2),
            (0, 1, 1, 2),
        ):
            pw, ph = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
            if pw > 0 and ph > 0:
                rows(pw, ph)
    else:
        rows(width, height)
    parts.append(deflate.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, int(interlace))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


def tiff_header(width: int, height: int) -> bytes:
    """A well-formed little-endian TIFF declaring width x height 8-bit grey, with 16 bytes."""
    entries = [
        (256, 4, width),
        (257, 4, height),
        (258, 3, 8),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 0),
        (277, 3, 1),
        (278, 4, height),
        (279, 4, 16),
    ]
    data_at = 8 + 2 + 12 * len(entries) + 4
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHII", tag, kind, 1, data_at if tag == 273 else value)
        for tag, kind, value in entries
    )
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + bytes(16)


def frames_gif(n: int, width: int, height: int) -> bytes:
    """An animated GIF of ``n`` frames, each one different (a frame shows its number in bits),
    so no encoder merges them."""
    xyz = pyvips.Image.xyz(width, height * n)
    x, y = xyz[0], xyz[1]
    frame = (y / height).floor()
    bit = (x + (y % height) * width) % 24
    on = ((frame / (2**bit)).floor() % 2) * 255
    image = on.bandjoin([on, 255 - on]).cast("uchar").copy(interpretation="srgb")
    image.set_type(pyvips.GValue.gint_type, "page-height", height)
    image.set_type(pyvips.GValue.array_int_type, "delay", [20] * n)
    image.set_type(pyvips.GValue.gint_type, "loop", 0)
    return bytes(image.gifsave_buffer())


def svg_xxe(origin: Origin, probe: str) -> bytes:
    return (
        '<?xml version="1.0"?>\n'
        '<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">'
        f'<!ENTITY ext SYSTEM "{origin.url(probe)}">]>\n'
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'width="64" height="64"><text y="20">&xxe;&ext;</text>'
        f'<image xlink:href="{origin.url(probe)}" width="64" height="64"/></svg>\n'
    ).encode()


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[], bytes]
    expect: tuple[int, str | None] | None = None  # (status, code or None: any); None: any
    content_type: str = "image/jpeg"


def mutations() -> list[Case]:
    cases = []
    for kind in KINDS:
        for at in TRUNCATIONS:
            cases.append(
                Case(f"truncated-{kind}-at-{at}", lambda k=kind, a=at: truncate(valid(k), a))
            )
        for seed in FLIP_SEEDS:
            cases.append(
                Case(
                    f"bitflip-{kind}-{seed}", lambda k=kind, s=seed: flip_bits(valid(k), f"{k}-{s}")
                )
            )
    return cases


NOT_AN_IMAGE = (415, "unsupported_source")
UNDECODABLE = (422, "undecodable_source")
TOO_MANY_PIXELS = (422, "too_many_pixels")

SPECIAL = [
    Case("zero-bytes", lambda: b"", NOT_AN_IMAGE),
    Case("one-byte", lambda: b"\xff", NOT_AN_IMAGE),
    Case("jpeg-magic-only", lambda: b"\xff\xd8\xff", UNDECODABLE),
    Case("png-magic-only", lambda: b"\x89PNG\r\n\x1a\n", UNDECODABLE),
    Case(
        "html", lambda: b"<!DOCTYPE html><html><body>hello</body></html>", NOT_AN_IMAGE, "text/html"
    ),
    Case(
        "html-as-png",
        lambda: b"  <html><head><title>404</title></head></html>",
        NOT_AN_IMAGE,
        "image/png",
    ),
    Case(
        "json", lambda: b'{"error": "not found", "image": null}', NOT_AN_IMAGE, "application/json"
    ),
    Case(
        "pdf",
        lambda: b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n",
        NOT_AN_IMAGE,
        "application/pdf",
    ),
    Case("png-body-jpeg-signature", lambda: b"\xff\xd8\xff" + valid("png")[3:], UNDECODABLE),
    Case("jpeg-body-png-signature", lambda: valid("png")[:8] + valid("jpeg")[8:], UNDECODABLE),
    Case("webp-body-gif-signature", lambda: b"GIF89a" + valid("webp")[6:], (422, None)),
    Case("png-body-webp-signature", lambda: b"RIFF\0\0\0\0WEBP" + valid("png"), (422, None)),
    Case("garbage-tiff", lambda: b"II*\x00" + random.Random(4).randbytes(2000), (422, None)),
    Case(
        "garbage-avif",
        lambda: b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf" + random.Random(5).randbytes(2000),
        (422, None),
    ),
    Case("png-100k-x-100k", lambda: png_header(100_000, 100_000), TOO_MANY_PIXELS),
    Case("webp-100k-x-100k", lambda: webp_header(100_000, 100_000), TOO_MANY_PIXELS),
    Case("gif-65535-x-65535", lambda: gif_header(65535, 65535), TOO_MANY_PIXELS),
    Case("jpeg-65535-x-65535", lambda: jpeg_header(65535, 65535), TOO_MANY_PIXELS),
    Case("tiff-100k-x-100k", lambda: tiff_header(100_000, 100_000), TOO_MANY_PIXELS),
    # ~110 kB inflating to 900 MP (112 MB of 1-bit rows): only the header may be read
    Case("png-bomb-30000-x-30000", lambda: zero_png(30000, 30000, depth=1), TOO_MANY_PIXELS),
    Case("png-lying-ihdr", lambda: png_header(1, 1) + bytes(64), UNDECODABLE),
    Case("webp-vp8l-chunk-header-only", lambda: b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0", UNDECODABLE),
]


def corpus() -> list[Case]:
    return mutations() + SPECIAL


CORPUS = corpus()


@pytest.mark.parametrize("index", range(len(CORPUS)), ids=[c.id for c in CORPUS])
async def test_hostile_source(hostile_service: Service, origin: Origin, session, index) -> None:
    case = CORPUS[index]
    spec, params = VARIANTS[index % len(VARIANTS)]
    data = case.make()
    src = origin.add(unique() + "-" + case.id, data, content_type=case.content_type)
    answer = await ask(session, hostile_service, spec, src, data, **params)
    if case.expect is not None:
        status, code = case.expect
        assert answer.status == status, (answer, case.expect)
        assert code is None or answer.code == code, (answer, case.expect)
    await assert_healthy(session, hostile_service, origin)


def shared_blocks(pid: int) -> set[str]:
    """The shared-memory blocks a process has mapped (sources in flight or kept for reuse)."""
    with open(f"/proc/{pid}/maps") as maps:
        return {line.split()[-1] for line in maps if "/dev/shm/" in line}


async def test_source_blocks_are_given_back(
    hostile_service: Service, origin: Origin, session
) -> None:
    """After the whole corpus (refusals at every step: sniffing, the pixel probe, decoding,
    limits), the frontend holds no more shared-memory blocks than it keeps for reuse: every
    fetched source was given back."""
    assert hostile_service.proc is not None
    pid = hostile_service.proc.pid
    keep = 2 * 2 + 2  # Blocks(keep=2 * workers + 2), IMGSERVER_WORKERS=2
    before = shared_blocks(pid)
    assert 0 < len(before) <= keep, before
    for _ in range(3):
        await assert_healthy(session, hostile_service, origin)
        bomb = origin.add(unique() + ".png", png_header(100_000, 100_000))
        await ask(session, hostile_service, "passthrough.png", bomb, width=20)
    assert len(shared_blocks(pid)) <= keep


async def test_svg_with_external_entities_is_refused_unread(
    hostile_service: Service, origin: Origin, session
) -> None:
    probe = unique("/xxe-probe")
    origin.add(probe, good_jpeg())
    for content_type in ("image/svg+xml", "image/png"):
        src = origin.add(unique() + ".svg", svg_xxe(origin, probe), content_type=content_type)
        for spec in ("passthrough.png", "autocontrast.png"):
            answer = await ask(session, hostile_service, spec, src, width=32)
            assert (answer.status, answer.code) == NOT_AN_IMAGE
    assert origin.hits(probe) == 0  # no entity or image reference was ever followed
    await assert_healthy(session, hostile_service, origin)


@pytest.mark.parametrize(
    "spec", ["passthrough.gif", "passthrough.png", "passthrough", "autocontrast.gif"]
)
async def test_thousands_of_frames(hostile_service: Service, origin: Origin, session, spec) -> None:
    src = origin.add(unique() + ".gif", frames_gif(3000, 4, 4), content_type="image/gif")
    answer = await ask(session, hostile_service, spec, src)
    if answer.status != 301:
        assert (answer.status, answer.code) == TOO_MANY_PIXELS
    else:
        assert answer.image is not None
        assert 1 <= answer.image.pages <= 500  # IMGSERVER_MAX_FRAMES' default
        assert (answer.image.width, answer.image.height) == (4, 4)
    await assert_healthy(session, hostile_service, origin)


UPSCALES = [
    (
        "resize.jpg",
        {"width": 16384, "height": 16384, "upscale": "true", "mode": "fill"},
        TOO_MANY_PIXELS,
    ),
    ("resize.png", {"width": 16384, "height": 16384, "upscale": "true"}, TOO_MANY_PIXELS),
    (
        "resize.webp",
        {"width": 16384, "height": 16384, "upscale": "true", "mode": "crop"},
        TOO_MANY_PIXELS,
    ),
    (
        "resize.jpg",
        {"width": 16384, "height": 16384, "upscale": "true", "mode": "crop", "gravity": "smart"},
        TOO_MANY_PIXELS,
    ),
    ("resize.jpg", {"width": 16385, "upscale": "true"}, (400, "invalid_param")),
    ("crop.jpg", {"cropwidth": 100000, "cropheight": 100000, "width": 16384}, None),
    ("passthrough.jpg", {"width": 16384, "height": 16384}, None),  # never upscales
]


@pytest.mark.parametrize(
    "spec,params,expect",
    UPSCALES,
    ids=[s + "-" + "-".join(f"{k}={v}" for k, v in p.items()) for s, p, _ in UPSCALES],
)
async def test_huge_output_requests(
    hostile_service: Service, origin: Origin, session, spec, params, expect
) -> None:
    src = origin.add(unique() + ".jpg", good_jpeg())
    answer = await ask(session, hostile_service, spec, src, **params)
    if expect is not None:
        assert (answer.status, answer.code) == expect
    else:
        assert answer.image is not None
        assert answer.image.width * answer.image.height <= 80 * 60
    await assert_healthy(session, hostile_service, origin)


# -- small limits -----------------------------------------------------------------------------

LIMITED = {
    "IMGSERVER_WORKERS": "1",
    "IMGSERVER_MAX_SOURCE_BYTES": "300000",
    "IMGSERVER_MAX_SOURCE_PIXELS": "4000000",
    "IMGSERVER_MAX_FRAMES": "50",
}


@pytest.fixture(scope="module")
def limited_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = Service(tmp_path_factory.mktemp("limited"), LIMITED)
    svc.start()
    yield svc
    svc.stop()


async def test_small_limits(limited_service: Service, origin: Origin, session) -> None:
    svc = limited_service
    # bytes: on Content-Length, and while streaming when there is none
    big = jpeg(texture(1500, 1200), q=98)
    assert len(big) > 300_000
    for length in (True, False):
        src = origin.add(unique() + ".jpg", big, length=length)
        answer = await ask(session, svc, "passthrough.jpg", src, width=50)
        assert (answer.status, answer.code) == (413, "source_too_large")

    # pixels: 2500 x 2000 = 5 MP is over 4 MP, from the header
    src = origin.add(unique() + ".png", zero_png(2500, 2000), content_type="image/png")
    answer = await ask(session, svc, "passthrough.png", src, width=50)
    assert (answer.status, answer.code) == TOO_MANY_PIXELS

    # frames: at most IMGSERVER_MAX_FRAMES of 3000
    src = origin.add(unique() + ".gif", frames_gif(3000, 4, 4))
    answer = await ask(session, svc, "passthrough.gif", src)
    assert answer.image is not None and 1 <= answer.image.pages <= 50

    # a long animation of large frames: 40 x 500 x 500 = 10 MP decoded in all would be over the
    # 4 MP a still may have, so at most 16 frames are decoded (or it is refused)
    frames = [solid(500, 500, (i * 6, 255 - i * 6, 128)) for i in range(40)]
    anim = pyvips.Image.arrayjoin(frames, across=1).copy()
    anim.set_type(pyvips.GValue.gint_type, "page-height", 500)
    anim.set_type(pyvips.GValue.array_int_type, "delay", [50] * 40)
    data = bytes(anim.gifsave_buffer())
    assert len(data) < 300_000
    for spec, params in (
        ("passthrough.gif", {"width": 100}),
        ("passthrough.webp", {}),
        ("autocontrast.gif", {"width": 100}),
    ):
        src = origin.add(unique() + ".gif", data)
        answer = await ask(session, svc, spec, src, **params)
        if answer.status != 301:
            assert (answer.status, answer.code) == TOO_MANY_PIXELS
        else:
            assert answer.image is not None
            assert 1 <= answer.image.pages <= 16, answer.image
    await assert_healthy(session, svc, origin)


# -- processing deadline and memory limit -----------------------------------------------------

# A job of several seconds on a 4000x3000 source: the longest motion blur at an angle (the
# Gaussian blur no longer grows slower with its deviation)
SLOW_GRAPH = "motionblur.jpg"
SLOW_PARAMS = {"length": 1000, "angle": 45}


async def test_job_past_its_deadline_is_stopped(start_service, origin: Origin, session) -> None:
    svc = start_service(IMGSERVER_WORKERS="1", IMGSERVER_JOB_DEADLINE="0.3")
    before = worker_pids(svc.proc.pid)
    assert len(before) == 1
    src = origin.add(unique() + ".jpg", jpeg(texture(4000, 3000)))
    url = svc.url(f"/graph/{SLOW_GRAPH}?" + urlencode({"input": src, **SLOW_PARAMS}))
    started = time.monotonic()
    async with session.get(url, allow_redirects=False) as r:
        status, body = r.status, await r.json()
    assert time.monotonic() - started < 8
    assert status == 503 and body["error"]["code"] == "timeout", body
    assert "processing stopped" in body["error"]["message"]
    after = worker_pids(svc.proc.pid)
    assert len(after) == 1 and after != before  # the runaway process was replaced
    await assert_healthy(session, svc, origin)


@cache
def deep_interlaced_png() -> bytes:
    """7000 x 7000 16-bit RGBA, interlaced (so it can only be decoded whole): 1.7 MB that need
    392 MB of pixels. Under 50 MP: only a memory limit stops it."""
    return zero_png(7000, 7000, depth=16, colour=6, interlace=True, level=1)


async def test_memory_limit_fails_the_job_not_the_service(
    start_service, origin: Origin, session
) -> None:
    # one libvips thread: the address space of more threads' stacks and arenas is not the point
    svc = start_service(
        IMGSERVER_WORKERS="1",
        IMGSERVER_WORKER_MEMORY_LIMIT="400000000",
        IMGSERVER_VIPS_CONCURRENCY="1",
    )
    data = deep_interlaced_png()
    for spec in ("passthrough.png", "autocontrast.png"):  # libvips and Pillow
        src = origin.add(unique() + ".png", data, content_type="image/png")
        answer = await ask(session, svc, spec, src)
        assert answer.status == 422, answer
        assert len(worker_pids(svc.proc.pid)) == 1  # replaced if it died
        await assert_healthy(session, svc, origin)


async def test_prefetch_past_its_deadline_fails_with_timeout(
    start_service, origin: Origin, session
) -> None:
    """POST: nobody waits for the job, so the task says why it stopped."""
    svc = start_service(IMGSERVER_WORKERS="1", IMGSERVER_JOB_DEADLINE="0.3")
    before = worker_pids(svc.proc.pid)
    src = origin.add(unique() + ".jpg", jpeg(texture(4000, 3000)))
    url = svc.url(f"/graph/{SLOW_GRAPH}?" + urlencode({"input": src, **SLOW_PARAMS}))
    async with session.post(url, allow_redirects=False) as r:
        status, body = r.status, await r.json()
    assert status == 202, body
    task = await wait_task(svc, body["task"]["id"], wait=15)
    assert task["status"] == "failed", task
    assert task["error"]["code"] == "timeout" and "processing stopped" in task["error"]["message"]
    assert task["result_url"] is None
    after = worker_pids(svc.proc.pid)
    assert len(after) == 1 and after != before  # the runaway process was replaced
    await assert_healthy(session, svc, origin)


async def test_worker_process_crash_mid_job(start_service, origin: Origin, session) -> None:
    """A worker process that dies mid-job (killed as the OOM killer would, or a decoder
    crash): that request gets a JSON error, the process is replaced, the next one works.

    The service has no way to make its own worker crash on purpose (tests/unit/test_pool.py does
    it with a test-only worker module), so the test kills the process from outside."""
    svc = start_service(IMGSERVER_WORKERS="1")
    (victim,) = worker_pids(svc.proc.pid)
    src = origin.add(unique() + ".jpg", jpeg(texture(4000, 3000)))  # seconds of blur
    url = svc.url(f"/graph/{SLOW_GRAPH}?" + urlencode({"input": src, **SLOW_PARAMS}))
    started = time.monotonic()
    request = asyncio.create_task(session.get(url, allow_redirects=False))
    idle = cpu_seconds(victim)
    while cpu_seconds(victim) - idle < 0.3:  # the job is running in the worker process
        assert time.monotonic() - started < 8 and not request.done(), "the job never started"
        await asyncio.sleep(0.05)
    os.kill(victim, signal.SIGKILL)
    async with await request as r:
        status, content_type, body = r.status, r.headers["Content-Type"], await r.json()
    assert time.monotonic() - started < CLIENT_TIMEOUT.total  # type: ignore[operator]
    assert content_type.startswith("application/json")
    assert (status, body["error"]["code"]) == (422, "undecodable_source"), body
    assert "crashed its worker" in body["error"]["message"]
    after = worker_pids(svc.proc.pid)
    assert len(after) == 1 and after != [victim]
    await assert_healthy(session, svc, origin)  # the next request works, in the new process
