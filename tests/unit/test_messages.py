"""The messages at every boundary and their encodings: jobs (msgpack), events (JSON), index
entries (JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import pytest
from multidict import MultiDict

from imgserver.catalogue import Catalogue
from imgserver.errors import Failure
from imgserver.messages import (
    DecodeError,
    Entry,
    Event,
    ImageChanged,
    Job,
    JobDone,
    JobFailed,
    Purged,
    TaskChanged,
    decode_entry,
    decode_event,
    decode_job,
    encode_entry,
    encode_event,
    encode_job,
)
from imgserver.records import ImageRecord, Task
from imgserver.request import parse_request

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"


# -- jobs and entries --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"width": 10, "quality": 80},
        {"amount": 0.5, "upscale": True, "mode": "crop", "bg": "#ffffff"},
        {"big": 2**40, "neg": -3, "unicode": "ünï"},
    ],
)
def test_job_round_trip(params: dict[str, Any]) -> None:
    job = Job("k" * 64, "resize", "d" * 64, "webp", "upload:abc", params, "task1", True, 12.5, 2)
    data = encode_job(job)
    assert isinstance(data, bytes)
    again = decode_job(data)
    assert again == job
    assert {k: type(v) for k, v in again.params.items()} == {k: type(v) for k, v in params.items()}


def test_job_from_bytes_ignores_unknown_and_defaults_missing() -> None:
    job = Job("k", "g", "d", "jpeg", "upload:a", {})
    fields = msgpack.unpackb(encode_job(job))
    fields["added_later"] = 1
    del fields["attempt"]
    again = decode_job(msgpack.packb(fields))
    assert again == job


def test_job_for_request() -> None:
    cat = Catalogue.load(GRAPHS)
    req = parse_request(
        "resize",
        MultiDict(
            [("input", "https://images.example.com/a.jpg"), ("width", "5"), ("_nocache", "1")]
        ),
        accept="image/webp",
        catalogue=cat,
        avif_enabled=False,
    )
    job = req.job("t9")
    assert (job.key, job.graph, job.digest) == (req.key, "resize", cat["resize"].digest)
    assert (job.format, job.input, job.task_id, job.nocache) == (
        "webp",
        "https://images.example.com/a.jpg",
        "t9",
        True,
    )
    assert job.params == dict(req.params)
    assert job.attempt == 0
    assert decode_job(encode_job(job)) == job


@pytest.mark.parametrize(
    "entry",
    [
        Entry("results/ab/cd.webp", "image/webp", 1234, 300, 200),
        Entry("results/x.png", "image/png", 1, 1, 1, "upload:abc", 1700000000.5),
    ],
)
def test_entry_round_trip(entry: Entry) -> None:
    assert decode_entry(encode_entry(entry)) == entry
    newer = json.dumps({**json.loads(encode_entry(entry)), "extra": 1})
    assert decode_entry(newer) == entry


@pytest.mark.parametrize(
    "junk",
    [b"", b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"key": 1}), msgpack.packb({"x": 1})],
)
def test_bytes_that_are_not_a_job_are_refused(junk: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_job(junk)


@pytest.mark.parametrize(
    "event",
    [
        JobDone("k", Entry("results/k", "image/png", 1, 2, 3)),
        JobFailed("k", Failure("timeout", "late", {"after": 25})),
        TaskChanged(Task("t", "g", "upload:x", {"w": 3}, "jpeg", "k", "d")),
        ImageChanged(ImageRecord("i", "t", "png", 10)),
        Purged(["a", "b"]),
    ],
    ids=lambda e: type(e).__name__,
)
def test_event_round_trip(event: Event) -> None:
    data = encode_event(event)
    assert json.loads(data)["type"] in ("job_done", "job_failed", "task", "image", "purge")
    assert decode_event(data) == event


@pytest.mark.parametrize(
    "junk", [b"{}", b'{"type": "job"}', b'{"type": "purge", "keys": "a"}', b"[]", b"nope"]
)
def test_bytes_that_are_not_an_event_are_refused(junk: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_event(junk)
