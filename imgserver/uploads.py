"""Uploads: an image sent to ``POST /images`` becomes an original in storage, an image record
and a task on the background queue (graph ``compress`` unless the query names another); the
record then follows its task to the end (``follow_task``, called by the worker).

Checks run cheapest first: the query (graph, parameters, format) before the body is read, the
byte cap while it is read, the type sniffed from its first bytes, then the pixel count from the
header (which must be one we can read, with a codec we decode: else 415). Nothing here decodes
an image.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from multidict import MultiDict, MultiMapping

from .catalogue import GRAPH_NAME, Catalogue, Graph
from .errors import ImgServerError, InvalidParam, NotFound, SourceTooLarge, UnknownGraph
from .formats import (
    AUTO,
    OUTPUT_FORMATS,
    may_be_svg,
    mime_of,
    output_format,
    require_source_format,
)
from .messages import Entry, ImageChanged
from .probe import check_pixels, require_header
from .records import FAILED, RECORD_ID, SUCCEEDED, ImageRecord, Params, Task, new_id
from .request import UPLOAD_PREFIX, ImageRequest, parse_params
from .settings import Settings

if TYPE_CHECKING:
    from .backends.base import Backends
    from .coordinator import Coordinator

log = logging.getLogger(__name__)

DEFAULT_GRAPH = "compress"
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers allowed on top of the image
SNIFF_BYTES = 64  # enough to recognise every format we decode
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_UPLOAD_KEYS = frozenset({"graph", "format"})  # query keys that are not graph parameters
_PAGE_KEYS = frozenset({"limit", "cursor"})
_LIMIT = re.compile(r"[0-9]{1,4}")


@dataclass(frozen=True)
class UploadOptions:
    """What the query of ``POST /images`` asks for."""

    graph: Graph
    params: Params
    format: str | None  # chosen with ?format=; None: decided from the source (default_format)


def parse_options(query: MultiMapping[str], catalogue: Catalogue) -> UploadOptions:
    """``?graph=NAME&format=EXT&{param}={value}...``, validated like a ``/graph`` request."""
    name = _single(query, "graph") or DEFAULT_GRAPH
    if not GRAPH_NAME.match(name):
        raise UnknownGraph(f"no graph named '{name}'", graphs=list(catalogue))
    graph = catalogue.get_graph(name)
    ext = _single(query, "format")
    fmt = None if ext is None else AUTO if ext.lower() == AUTO else output_format(ext)
    if "input" in query:
        raise _invalid(graph, "'input' cannot be given: the uploaded image is the input", "input")
    params, nocache = parse_params(
        graph, MultiDict((k, v) for k, v in query.items() if k not in _UPLOAD_KEYS)
    )
    if nocache:
        raise _invalid(graph, "'_nocache' means nothing to an upload: it is new", "_nocache")
    return UploadOptions(graph, params, fmt)


def default_format(source_format: str) -> str:
    """The source's own format when we can write it, else JPEG (PNG when it has alpha)."""
    return source_format if source_format in OUTPUT_FORMATS else AUTO


def parse_page(query: MultiMapping[str]) -> tuple[int, str | None]:
    """``GET /images``: ``?limit=`` (1..100, default 20), ``?cursor=`` (from the last page)."""
    for key in query:
        if key not in _PAGE_KEYS:
            raise InvalidParam(f"unknown parameter '{key}'; use limit and cursor", param=key)
    raw = _single(query, "limit")
    limit = DEFAULT_LIMIT if raw is None else int(raw) if _LIMIT.fullmatch(raw) else 0
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidParam(
            f"'limit' must be a whole number from 1 to {MAX_LIMIT}",
            param="limit",
            minimum=1,
            maximum=MAX_LIMIT,
        )
    cursor = _single(query, "cursor")
    if cursor is not None and not RECORD_ID.match(cursor):
        raise InvalidParam("'cursor' is not one this service gave out", param="cursor")
    return limit, cursor


async def read_capped(chunks: AsyncIterable[bytes], cap: int, *, svg: bool = False) -> bytes:
    """The whole body, refused with 413 as soon as it passes ``cap`` bytes and with 415 as soon
    as its first bytes show it is not an image we decode. With ``svg`` (SVG enabled), markup
    is read on: its root element may come after a long prolog, so ``create`` sniffs it."""
    body = bytearray()
    sniffed = False
    async for chunk in chunks:
        body += chunk
        if len(body) > cap:
            raise SourceTooLarge(f"the image is larger than {cap} bytes", limit=cap)
        if not sniffed and len(body) >= SNIFF_BYTES:
            head = bytes(body[:SNIFF_BYTES])
            if not (svg and may_be_svg(head)):
                require_source_format(head)
            sniffed = True
    return bytes(body)


class Uploads:
    """The upload and image operations behind the handlers."""

    def __init__(
        self, backends: Backends, coordinator: Coordinator, catalogue: Catalogue, settings: Settings
    ) -> None:
        self.b = backends
        self.coordinator = coordinator
        self.catalogue = catalogue
        self.settings = settings

    def options(self, query: MultiMapping[str]) -> UploadOptions:
        return parse_options(query, self.catalogue)

    async def create(self, data: bytes, options: UploadOptions) -> ImageRecord:
        """Check the bytes, store the original, create the image and queue its task."""
        source_format = require_source_format(data, svg=self.settings.enable_svg)
        width, height = require_header(data, source_format) or (None, None)
        check_pixels(data, source_format, self.settings.max_source_pixels)
        image = ImageRecord(new_id(), new_id(), source_format, len(data), width, height)
        req = ImageRequest(
            options.graph,
            options.format or default_format(source_format),
            False,
            UPLOAD_PREFIX + image.id,
            options.params,
        )
        await self.b.storage.put(image.original_path, data, mime_of(source_format))
        try:
            # The record exists, and is announced, before the job is queued: the worker always
            # finds it, and live viewers hear of it before any of its changes.
            await self.b.images.create(image)
            await self._announce(image)
            await self.coordinator.prefetch(req, image_id=image.id, task_id=image.task_id)
        except BaseException as exc:
            await self._forget(image, exc)
            raise
        return image

    async def _announce(self, image: ImageRecord) -> None:
        try:
            await self.b.events.publish(ImageChanged(image))
        except ImgServerError as exc:  # only live viewers miss it
            log.warning("announcing image %s: %s", image.id, exc.message)

    async def _forget(self, image: ImageRecord, exc: BaseException) -> None:
        """Best effort, after a failed upload: no record or original left without a task, and
        live viewers who saw the image appear see it fail (the upload's answer is the error)."""
        for undo in (self.b.images.delete(image.id), self.b.storage.delete(image.original_path)):
            try:
                await undo
            except Exception as undo_exc:
                log.warning("after a failed upload of %s: %s", image.id, undo_exc)
        if isinstance(exc, ImgServerError):
            image.status, image.error = FAILED, exc.failure()
            await self._announce(image)

    async def get(self, image_id: str) -> ImageRecord:
        image = await self.b.images.get(image_id)
        if image is None:
            raise NotFound(f"no image {image_id}")
        return await self._current(image)

    async def page(self, limit: int, cursor: str | None) -> tuple[list[ImageRecord], str | None]:
        """A page of images, newest first, and the cursor of the next page (None: the last)."""
        images = await self.b.images.list_page(limit + 1, cursor)
        more = len(images) > limit
        images = [await self._current(i) for i in images[:limit]]
        return images, (images[-1].id if more else None)

    async def _current(self, image: ImageRecord) -> ImageRecord:
        """The image, caught up with its task if the worker could not update it (it died
        between the two writes): final images never need it, so this is rare and cheap."""
        if image.final:
            return image
        task = await self.b.tasks.get(image.task_id)
        if task is None or task.status == image.status:
            return image
        return await follow_task(self.b, task) or image


async def follow_task(
    backends: Backends, task: Task, entry: Entry | None = None
) -> ImageRecord | None:
    """Bring the image of an upload's task up to date with the task, and announce the change.

    ``entry`` is the task's result when the caller has it. Tasks of other graphs run on an
    upload (``input=upload:{id}``) do not change the image: only its own task does.
    """
    if task.image_id is None:
        return None
    image = await backends.images.get(task.image_id)
    if image is None or image.task_id != task.id or image.final:
        return image
    changes = await _changes(backends, image, task, entry)
    if not changes:
        return image
    after = await backends.images.update(image.id, changes)
    if after is not None and after.updated_at != image.updated_at:
        await backends.events.publish(ImageChanged(after))
    return after


async def _changes(
    backends: Backends, image: ImageRecord, task: Task, entry: Entry | None
) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if task.status != image.status:
        changes["status"] = task.status
    if task.status == FAILED:
        changes["error"] = task.error
    if task.status in SUCCEEDED and task.result_path:
        entry = entry or await _result(backends, task)
        changes["compressed_path"] = task.result_path
        changes["compressed_size"] = entry.size if entry else None
        changes["warnings"] = list(task.warnings)
        if image.width is None and entry and entry.width and _same_size(task):
            changes["width"], changes["height"] = entry.width, entry.height
    return changes


async def _result(backends: Backends, task: Task) -> Entry | None:
    """The stored result of a finished task, from the index or else from storage."""
    try:
        entry = await backends.index.get(task.key)
        if entry is not None:
            return entry
        assert task.result_path is not None
        head = await backends.storage.head(task.result_path)
    except ImgServerError as exc:
        log.warning("the result of task %s: %s", task.id, exc.message)
        return None
    return Entry(task.result_path, head.content_type, head.size, 0, 0) if head else None


def _same_size(task: Task) -> bool:
    """The result has the source's (upright) size: the default graph, not resized."""
    return (
        task.graph == DEFAULT_GRAPH
        and task.params.get("width") is None
        and task.params.get("height") is None
    )


def _single(query: MultiMapping[str], key: str) -> str | None:
    values = query.getall(key, [])
    if len(values) > 1:
        raise InvalidParam(f"'{key}' is given more than once", param=key)
    return values[0] if values else None


def _invalid(graph: Graph, message: str, key: str) -> InvalidParam:
    params = {n: p.to_json() for n, p in graph.params.items()}
    return InvalidParam(message, param=key, params=params)
