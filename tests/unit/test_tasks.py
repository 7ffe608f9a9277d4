"""Task statuses and records, jobs and entries on the wire, and the error vocabulary."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
from multidict import MultiDict

from imgserver import errors, tasks
from imgserver.catalogue import Catalogue
from imgserver.errors import ImgServerError
from imgserver.jobs import Entry, Job
from imgserver.request import parse_request
from imgserver.tasks import (
    COMPLETED,
    COMPLETED_WITH_ERRORS,
    FAILED,
    FINAL,
    PENDING,
    PROCESSING,
    STATUSES,
    Task,
    apply,
    new_id,
)

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def make_task(status: str = PENDING, **kw: Any) -> Task:
    return Task(
        id=kw.pop("id", "t1"),
        graph="resize",
        input="https://images.example.com/cat.jpg",
        params={"width": 10, "quality": 80},
        format="webp",
        key="k" * 64,
        digest="d" * 64,
        status=status,
        **kw,
    )


# -- transitions -------------------------------------------------------------------------------

ALLOWED = [
    (PENDING, PENDING),
    (PENDING, PROCESSING),
    (PENDING, COMPLETED),
    (PENDING, COMPLETED_WITH_ERRORS),
    (PENDING, FAILED),  # e.g. refused before it started
    (PROCESSING, PROCESSING),  # a redelivered job
    (PROCESSING, COMPLETED),
    (PROCESSING, COMPLETED_WITH_ERRORS),
    (PROCESSING, FAILED),
]
REFUSED = [(PROCESSING, PENDING)] + [(f, s) for f in sorted(FINAL) for s in STATUSES]


@pytest.mark.parametrize(("before", "after"), ALLOWED)
def test_transition_allowed(before: str, after: str) -> None:
    task = make_task(before, created_at=1000.0)
    assert apply(task, {"status": after}) is True
    assert task.status == after
    assert task.updated_at > 1000.0


@pytest.mark.parametrize(("before", "after"), REFUSED)
def test_transition_refused(before: str, after: str) -> None:
    task = make_task(before, created_at=1000.0)
    record = task.to_record()
    assert apply(task, {"status": after, "error": {"code": "internal"}, "timings": {"x": 1.0}}) is (
        False
    )
    assert task.to_record() == record  # nothing changed, not even updated_at or timings


@pytest.mark.parametrize("final", sorted(FINAL))
def test_final_status_ignores_changes_without_status(final: str) -> None:
    task = make_task(final)
    assert apply(task, {"warnings": ["late"]}) is False
    assert task.warnings == []


@pytest.mark.parametrize("before", STATUSES)
@pytest.mark.parametrize("status", ["done", "", "PENDING", "complete", None])
def test_unknown_status_raises(before: str, status: Any) -> None:
    task = make_task(before)
    with pytest.raises(ValueError, match="unknown task status"):
        apply(task, {"status": status})


def test_unknown_field_raises() -> None:
    task = make_task()
    with pytest.raises(ValueError, match="unknown task field"):
        apply(task, {"statuss": PROCESSING})
    assert task.status == PENDING


def test_changes_without_status_keep_it() -> None:
    task = make_task(PROCESSING)
    assert apply(task, {"timings": {"fetched": 5.0}}) is True
    assert task.status == PROCESSING
    assert task.timings["fetched"] == 5.0


def test_timings_merge_and_changes_are_not_modified() -> None:
    task = make_task(created_at=100.0)
    changes = {"status": PROCESSING, "timings": {"started": 101.0}}
    assert apply(task, changes) is True
    assert changes == {"status": PROCESSING, "timings": {"started": 101.0}}
    assert apply(task, {"timings": {"fetched": 102.0}}) is True
    done = {"status": COMPLETED, "result_path": "results/ab/cd.webp", "timings": {"stored": 103}}
    assert apply(task, done) is True
    assert task.timings == {"queued": 100.0, "started": 101.0, "fetched": 102.0, "stored": 103}
    assert task.result_path == "results/ab/cd.webp"
    assert task.final


def test_a_whole_life() -> None:
    task = make_task()
    steps = [
        ({"status": PROCESSING}, True),
        ({"status": PROCESSING}, True),
        ({"status": COMPLETED_WITH_ERRORS, "warnings": ["profile dropped"]}, True),
        ({"status": FAILED, "error": {"code": "timeout"}}, False),
        ({"status": PROCESSING}, False),
    ]
    for changes, applied in steps:
        assert apply(task, changes) is applied
    assert task.status == COMPLETED_WITH_ERRORS
    assert task.warnings == ["profile dropped"]
    assert task.error is None


# -- the task object ---------------------------------------------------------------------------


def test_new_task() -> None:
    before = time.time()
    task = Task("t", "g", "upload:x", {}, "jpeg", "k", "d")
    assert task.status == PENDING
    assert not task.final
    assert before <= task.created_at <= time.time()
    assert task.updated_at == task.created_at
    assert task.timings == {"queued": task.created_at}
    assert task.warnings == [] and task.error is None and task.image_id is None


def test_to_json_shape() -> None:
    task = make_task(COMPLETED, image_id="img1", created_at=1700000000.25)
    task.result_path = "results/aa/bb.webp"
    task.timings.update({"started": 1700000001.5, "stored": 1700000002.0})
    body = json.loads(json.dumps(task.to_json(lambda p: f"https://cdn.example.com/{p}")))
    assert {
        "id",
        "image_id",
        "graph",
        "input",
        "params",
        "format",
        "status",
        "result_url",
        "error",
        "warnings",
        "created_at",
        "updated_at",
        "timings",
    } <= set(body)
    assert body["id"] == "t1"
    assert body["image_id"] == "img1"
    assert body["graph"] == "resize"
    assert body["input"] == "https://images.example.com/cat.jpg"
    assert body["params"] == {"width": 10, "quality": 80}
    assert body["format"] == "webp"
    assert body["status"] == COMPLETED
    assert body["status_url"] == "/tasks/t1/status"
    assert body["result_url"] == "https://cdn.example.com/results/aa/bb.webp"
    assert body["error"] is None
    assert body["warnings"] == []
    assert body["created_at"] == "2023-11-14T22:13:20.250Z"
    assert ISO.match(body["updated_at"])
    assert body["timings"] == {
        "queued": "2023-11-14T22:13:20.250Z",
        "started": "2023-11-14T22:13:21.500Z",
        "stored": "2023-11-14T22:13:22.000Z",
    }
    assert set(body["timings"]) <= set(tasks.TIMING_STEPS)


def test_to_json_pending_and_failed() -> None:
    pending = make_task().to_json(lambda p: "never called")
    assert pending["result_url"] is None
    assert pending["status"] == PENDING
    failed = make_task()
    err = errors.SourceUnreachable("the origin said 404", upstream_status=404)
    apply(failed, {"status": FAILED, "error": err.to_dict()})
    body = failed.to_json(str)
    assert body["status"] == FAILED
    assert body["error"] == {
        "code": "source_unreachable",
        "message": "the origin said 404",
        "upstream_status": 404,
    }


def test_record_round_trip() -> None:
    task = make_task(PROCESSING, image_id="i", warnings=["w"], timings={"started": 2.0})
    task.error = {"code": "x"}
    record = json.loads(json.dumps(task.to_record()))
    again = Task.from_record(record)
    assert again == task
    assert Task.from_record({**record, "future_field": 1}) == task  # newer writers


def test_new_id() -> None:
    ids = [new_id() for _ in range(50)]
    assert len(set(ids)) == 50
    for i in ids:
        assert re.fullmatch(r"[0-9a-f]{24}", i)
    first = new_id()
    time.sleep(0.002)
    assert new_id()[:12] > first[:12]  # time-sortable prefix


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
    data = job.to_bytes()
    assert isinstance(data, bytes)
    again = Job.from_bytes(data)
    assert again == job
    assert {k: type(v) for k, v in again.params.items()} == {k: type(v) for k, v in params.items()}


def test_job_from_bytes_ignores_unknown_and_defaults_missing() -> None:
    job = Job("k", "g", "d", "jpeg", "upload:a", {})
    fields = msgpack.unpackb(job.to_bytes())
    fields["added_later"] = 1
    del fields["attempt"]
    again = Job.from_bytes(msgpack.packb(fields))
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
    job = Job.for_request(req, "t9")
    assert (job.key, job.graph, job.digest) == (req.key, "resize", cat["resize"].digest)
    assert (job.format, job.input, job.task_id, job.nocache) == (
        "webp",
        "https://images.example.com/a.jpg",
        "t9",
        True,
    )
    assert job.params == dict(req.params)
    assert job.attempt == 0
    assert Job.from_bytes(job.to_bytes()) == job


@pytest.mark.parametrize(
    "entry",
    [
        Entry("results/ab/cd.webp", "image/webp", 1234, 300, 200),
        Entry("results/x.png", "image/png", 1, 1, 1, "upload:abc", 1700000000.5),
    ],
)
def test_entry_round_trip(entry: Entry) -> None:
    assert Entry.from_dict(json.loads(json.dumps(entry.to_dict()))) == entry
    assert Entry.from_dict(msgpack.unpackb(msgpack.packb(entry.to_dict()))) == entry
    assert Entry.from_dict({**entry.to_dict(), "extra": 1}) == entry


# -- the error vocabulary ----------------------------------------------------------------------

CODES = [
    ("invalid_input", 400, errors.InvalidInput),
    ("invalid_param", 400, errors.InvalidParam),
    ("signature_required", 403, errors.SignatureRequired),
    ("bad_signature", 403, errors.BadSignature),
    ("source_not_allowed", 403, errors.SourceNotAllowed),
    ("quota_exceeded", 403, errors.QuotaExceeded),
    ("unknown_graph", 404, errors.UnknownGraph),
    ("not_found", 404, errors.NotFound),
    ("method_not_allowed", 405, errors.MethodNotAllowed),
    ("source_too_large", 413, errors.SourceTooLarge),
    ("unsupported_source", 415, errors.UnsupportedSource),
    ("unsupported_format", 415, errors.UnsupportedFormat),
    ("undecodable_source", 422, errors.UndecodableSource),
    ("too_many_pixels", 422, errors.TooManyPixels),
    ("overloaded", 429, errors.Overloaded),
    ("source_unreachable", 502, errors.SourceUnreachable),
    ("timeout", 503, errors.Timeout),
    ("unavailable", 503, errors.Unavailable),
    ("source_timeout", 504, errors.SourceTimeout),
    ("internal", 500, errors.Internal),
]


def test_every_error_class_is_in_the_table() -> None:
    classes = {
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, ImgServerError) and c is not ImgServerError
    }
    assert classes == {cls for _, _, cls in CODES}
    assert len({code for code, _, _ in CODES}) == len(CODES)


@pytest.mark.parametrize(("code", "status", "cls"), CODES)
def test_error_round_trip(code: str, status: int, cls: type[ImgServerError]) -> None:
    assert (cls.code, cls.status) == (code, status)
    err = cls("something went wrong", limit=10, params={"a": {"type": "int"}})
    assert err.to_dict() == {
        "code": code,
        "message": "something went wrong",
        "limit": 10,
        "params": {"a": {"type": "int"}},
    }
    again = ImgServerError.from_dict(json.loads(json.dumps(err.to_dict())))
    assert type(again) is cls
    assert again.status == status
    assert again.message == "something went wrong"
    assert again.details == {"limit": 10, "params": {"a": {"type": "int"}}}
    assert again.to_dict() == err.to_dict()
    assert str(again) == "something went wrong"


@pytest.mark.parametrize(("code", "status", "cls"), CODES)
def test_error_default_message(code: str, status: int, cls: type[ImgServerError]) -> None:
    err = cls()
    assert err.message == cls.default_message
    assert err.message
    again = ImgServerError.from_dict({"code": code})
    assert type(again) is cls
    assert again.message == cls.default_message


@pytest.mark.parametrize(
    "data",
    [
        {"code": "no_such_code", "message": "m"},
        {"code": "", "message": "m"},
        {"message": "m"},
        {},
        {"code": "Internal"},
    ],
)
def test_unknown_error_code_is_internal(data: dict[str, Any]) -> None:
    err = ImgServerError.from_dict(data)
    assert type(err) is errors.Internal
    assert err.status == 500
    assert err.code == "internal"
    assert err.message == data.get("message", "internal error")


def test_from_dict_does_not_modify_its_argument() -> None:
    data = {"code": "timeout", "message": "m", "after": 25}
    ImgServerError.from_dict(data)
    assert data == {"code": "timeout", "message": "m", "after": 25}


def test_headers_are_not_details() -> None:
    err = errors.Overloaded("busy", headers={"Retry-After": "1"}, queue="urgent")
    assert err.headers == {"Retry-After": "1"}
    assert err.to_dict() == {"code": "overloaded", "message": "busy", "queue": "urgent"}
