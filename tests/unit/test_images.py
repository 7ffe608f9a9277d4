"""The upload logic in-process, on the real embedded backends: query parsing, the capped body
reader, and how an image record follows its task (including catching up after a crash)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from multidict import MultiDict

from imgserver.backends.base import Backends
from imgserver.backends.factory import open_backends
from imgserver.errors import (
    Failure,
    ImgServerError,
    InvalidParam,
    SourceTooLarge,
    UnknownGraph,
    UnsupportedFormat,
    UnsupportedSource,
)
from imgserver.messages import Entry, ImageChanged
from imgserver.records import COMPLETED, FAILED, PROCESSING, ImageRecord, Task, new_id
from imgserver.settings import Settings
from imgserver.uploads import (
    DEFAULT_LIMIT,
    Uploads,
    default_format,
    follow_task,
    parse_options,
    parse_page,
    read_capped,
)

from ..images import catalogue


@pytest.fixture
async def backends(tmp_path: Path) -> AsyncIterator[Backends]:
    async with open_backends(Settings(data_dir=tmp_path)) as b:
        yield b


async def records(
    b: Backends, graph: str = "compress", params: dict | None = None, width: int | None = 640
) -> tuple[ImageRecord, Task]:
    image = ImageRecord(new_id(), new_id(), "jpeg", 1000, width, 400 if width else None)
    task = Task(
        image.task_id,
        graph,
        f"upload:{image.id}",
        params or {},
        "jpeg",
        "k" * 64,
        "d" * 16,
        image_id=image.id,
    )
    await b.images.create(image)
    await b.tasks.create(task)
    return image, task


# -- following the task -----------------------------------------------------------------------


async def test_image_follows_its_task(backends: Backends) -> None:
    image, task = await records(backends)
    async with backends.events.subscribe() as events:
        processing = await backends.tasks.update(task.id, {"status": PROCESSING})
        assert processing is not None
        after = await follow_task(backends, processing)
        assert after is not None and after.status == PROCESSING
        assert (await anext(events)) == ImageChanged(after)

        done = await backends.tasks.update(
            task.id, {"status": COMPLETED, "result_path": "results/r"}
        )
        assert done is not None
        entry = Entry("results/r", "image/jpeg", 600, 640, 400)
        after = await follow_task(backends, done, entry)
        assert after is not None
        assert (after.status, after.compressed_path, after.compressed_size) == (
            COMPLETED,
            "results/r",
            600,
        )
        changed = await anext(events)
        assert isinstance(changed, ImageChanged) and changed.image.compressed_size == 600
    assert (await backends.images.get(image.id)) == after


async def test_failed_task_fails_the_image(backends: Backends) -> None:
    _, task = await records(backends)
    error = Failure("undecodable_source", "truncated")
    failed = await backends.tasks.update(task.id, {"status": FAILED, "error": error})
    assert failed is not None
    after = await follow_task(backends, failed)
    assert after is not None and (after.status, after.error) == (FAILED, error)
    assert after.compressed_path is None


@pytest.mark.parametrize(
    "graph,params,filled",
    [
        ("compress", {}, True),
        ("compress", {"width": 100}, False),
        ("resize", {}, False),
    ],
)
async def test_unknown_size_is_taken_from_an_unresized_result(
    backends: Backends, graph: str, params: dict, filled: bool
) -> None:
    _, task = await records(backends, graph, params, width=None)
    done = await backends.tasks.update(task.id, {"status": COMPLETED, "result_path": "results/r"})
    assert done is not None
    after = await follow_task(backends, done, Entry("results/r", "image/jpeg", 9, 90, 60))
    assert after is not None
    assert (after.width, after.height) == ((90, 60) if filled else (None, None))


async def test_other_tasks_on_the_upload_leave_the_image_alone(backends: Backends) -> None:
    image, _ = await records(backends)
    other = Task(
        new_id(),
        "desaturate",
        f"upload:{image.id}",
        {},
        "png",
        "o" * 64,
        "d" * 16,
        status=COMPLETED,
        result_path="results/o",
        image_id=image.id,
    )
    await backends.tasks.create(other)
    after = await follow_task(backends, other, Entry("results/o", "image/png", 5, 1, 1))
    assert after is not None and after == image


async def test_reading_an_image_catches_up_with_a_finished_task(backends: Backends) -> None:
    """The worker died between updating the task and the image: a read repairs the image,
    finding the result's size in the index."""
    image, task = await records(backends)
    await backends.index.set(task.key, Entry("results/r", "image/jpeg", 321, 640, 400))
    await backends.tasks.update(task.id, {"status": COMPLETED, "result_path": "results/r"})
    uploads = Uploads(backends, None, catalogue(), Settings())  # type: ignore[arg-type]
    got = await uploads.get(image.id)
    assert (got.status, got.compressed_path, got.compressed_size) == (COMPLETED, "results/r", 321)
    page, cursor = await uploads.page(10, None)
    assert page == [got] and cursor is None
    assert await backends.images.get(image.id) == got  # and it was written back


# -- the query and the body -------------------------------------------------------------------


def test_options_default_to_compress() -> None:
    options = parse_options(MultiDict(), catalogue())
    assert (options.graph.name, options.format) == ("compress", None)
    assert options.params["quality"] == "auto"
    assert options.params["quality-target"] == 80


@pytest.mark.parametrize(
    "query,error",
    [
        ({"graph": "nope"}, UnknownGraph),
        ({"graph": "Bad Name"}, UnknownGraph),
        ({"format": "tiff"}, UnsupportedFormat),
        ({"quality": "0"}, InvalidParam),
        ({"input": "upload:x"}, InvalidParam),
        ({"_nocache": "1"}, InvalidParam),
        ({"_other": "1"}, InvalidParam),
    ],
)
def test_bad_options(query: dict[str, str], error: type[ImgServerError]) -> None:
    with pytest.raises(error):
        parse_options(MultiDict(query), catalogue())


def test_options_choose_graph_params_and_format() -> None:
    options = parse_options(MultiDict(graph="resize", width="80", format="JPG"), catalogue())
    assert (options.graph.name, options.params["width"], options.format) == ("resize", 80, "jpeg")
    assert parse_options(MultiDict(format="auto"), catalogue()).format == "auto"


@pytest.mark.parametrize(
    "source,out",
    [
        ("jpeg", "jpeg"),
        ("png", "png"),
        ("gif", "gif"),
        ("webp", "webp"),
        ("avif", "avif"),
        ("tiff", "auto"),
        ("heif", "auto"),
    ],
)
def test_default_format(source: str, out: str) -> None:
    assert default_format(source) == out


def test_page_parameters() -> None:
    assert parse_page(MultiDict()) == (DEFAULT_LIMIT, None)
    assert parse_page(MultiDict(limit="100", cursor="0" * 24)) == (100, "0" * 24)
    bad_queries = (
        {"limit": "0"},
        {"limit": "101"},
        {"limit": " 5"},
        {"limit": "5.0"},
        {"limit": "²"},
        {"cursor": "x"},
        {"cursor": "A" * 24},
        {"offset": "1"},
    )
    for bad in bad_queries:
        with pytest.raises(InvalidParam):
            parse_page(MultiDict(bad))


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_read_capped() -> None:
    jpeg = b"\xff\xd8\xff" + b"\0" * 97
    assert await read_capped(chunks(jpeg[:10], jpeg[10:]), 100) == jpeg
    with pytest.raises(SourceTooLarge):
        await read_capped(chunks(jpeg, b"\0"), 100)
    assert await read_capped(chunks(), 100) == b""  # (refused later, as an empty body)

    async def html_then_endless() -> AsyncIterator[bytes]:
        yield b"<!doctype html>" + b" " * 100
        raise AssertionError("read on after the first bytes showed it is not an image")

    with pytest.raises(UnsupportedSource, match="HTML"):
        await read_capped(html_then_endless(), 10_000)
