"""``POST /images``, ``GET /images``, ``GET /images/{id}``: thin; the work is in ``uploads.py``.

The image comes as the multipart field ``image`` or as the raw body (any other Content-Type,
which is ignored: the bytes are sniffed). Both are read in chunks under the byte cap.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ..errors import InvalidInput, SourceTooLarge
from ..uploads import MULTIPART_OVERHEAD, parse_page, read_capped
from .state import SETTINGS, UPLOADS, url_for

routes = web.RouteTableDef()
CHUNK = 64 * 1024
FIELD = "image"


@routes.post("/images")
async def create_image(request: web.Request) -> web.Response:
    uploads = request.app[UPLOADS]
    options = uploads.options(request.query)  # a bad query fails before the body is read
    data = await read_image(request, request.app[SETTINGS].max_source_bytes)
    image = await uploads.create(data, options)
    body = image.to_json(functools.partial(url_for, request))
    return web.json_response(body, status=201, headers={"Location": f"/images/{image.id}"})


@routes.get("/images")
async def list_images(request: web.Request) -> web.Response:
    limit, cursor = parse_page(request.query)
    images, next_cursor = await request.app[UPLOADS].page(limit, cursor)
    url = functools.partial(url_for, request)
    return web.json_response(
        {"images": [i.to_json(url) for i in images], "next_cursor": next_cursor}
    )


@routes.get("/images/{id}")
async def show_image(request: web.Request) -> web.Response:
    image = await request.app[UPLOADS].get(request.match_info["id"])
    return web.json_response(image.to_json(functools.partial(url_for, request)))


async def read_image(request: web.Request, cap: int) -> bytes:
    """The uploaded bytes: 413 on Content-Length or once over ``cap`` while reading."""
    svg = request.app[SETTINGS].enable_svg
    multipart = request.content_type.startswith("multipart/")
    declared = request.content_length
    if declared is not None and declared > cap + (MULTIPART_OVERHEAD if multipart else 0):
        raise SourceTooLarge(f"the upload is larger than {cap} bytes", limit=cap)
    if not multipart:
        return await read_capped(request.content.iter_chunked(CHUNK), cap, svg=svg)
    try:
        return await _image_field(request, cap, svg)
    except (ValueError, AssertionError) as exc:  # aiohttp's complaints about a malformed body
        raise InvalidInput(f"the multipart body is malformed: {exc}") from None
    except HttpProcessingError as exc:  # a part's headers that do not parse (found by fuzzing)
        raise InvalidInput(
            "the multipart body has a malformed part header", detail=str(exc)
        ) from None


async def _image_field(request: web.Request, cap: int, svg: bool) -> bytes:
    """The ``image`` part; other parts are read past (they count towards the cap too)."""
    reader = await request.multipart()
    image: bytes | None = None
    others = 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise InvalidInput("nested multipart bodies are not accepted")
        if part.name != FIELD:
            async for chunk in _chunks(part):
                others += len(chunk)
                if others > MULTIPART_OVERHEAD:
                    raise SourceTooLarge(f"the upload is larger than {cap} bytes", limit=cap)
            continue
        if image is not None:
            raise InvalidInput(f"send one '{FIELD}' per request")
        image = await read_capped(_chunks(part), cap, svg=svg)
    if image is None:
        raise InvalidInput(f"the multipart body has no '{FIELD}' field")
    return image


async def _chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK):
        yield chunk
