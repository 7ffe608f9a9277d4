"""Task and image records: the forward-only status rule, the API objects, the stored form."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from imgserver import errors
from imgserver.errors import Failure
from imgserver.records import (
    COMPLETED,
    COMPLETED_WITH_ERRORS,
    FAILED,
    FINAL,
    PENDING,
    PROCESSING,
    STATUSES,
    TIMING_STEPS,
    ImageRecord,
    Task,
    advance,
    decode_image,
    decode_task,
    encode,
    new_id,
)

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
    assert advance(task, {"status": after}) is True
    assert task.status == after
    assert task.updated_at > 1000.0


@pytest.mark.parametrize(("before", "after"), REFUSED)
def test_transition_refused(before: str, after: str) -> None:
    task = make_task(before, created_at=1000.0)
    record = encode(task)
    error = {"code": "internal", "message": "m"}
    assert advance(task, {"status": after, "error": error, "timings": {"x": 1.0}}) is False
    assert encode(task) == record  # nothing changed, not even updated_at or timings


@pytest.mark.parametrize("final", sorted(FINAL))
def test_final_status_ignores_changes_without_status(final: str) -> None:
    task = make_task(final)
    assert advance(task, {"warnings": ["late"]}) is False
    assert task.warnings == []


@pytest.mark.parametrize("before", STATUSES)
@pytest.mark.parametrize("status", ["done", "", "PENDING", "complete", None])
def test_unknown_status_raises(before: str, status: Any) -> None:
    task = make_task(before)
    with pytest.raises(ValueError, match="unknown task status"):
        advance(task, {"status": status})


def test_unknown_field_raises() -> None:
    task = make_task()
    with pytest.raises(ValueError, match="unknown or read-only task field"):
        advance(task, {"statuss": PROCESSING})
    assert task.status == PENDING


def test_changes_without_status_keep_it() -> None:
    task = make_task(PROCESSING)
    assert advance(task, {"timings": {"fetched": 5.0}}) is True
    assert task.status == PROCESSING
    assert task.timings["fetched"] == 5.0


def test_timings_merge_and_changes_are_not_modified() -> None:
    task = make_task(created_at=100.0)
    changes = {"status": PROCESSING, "timings": {"started": 101.0}}
    assert advance(task, changes) is True
    assert changes == {"status": PROCESSING, "timings": {"started": 101.0}}
    assert advance(task, {"timings": {"fetched": 102.0}}) is True
    done = {"status": COMPLETED, "result_path": "results/ab/cd.webp", "timings": {"stored": 103}}
    assert advance(task, done) is True
    assert task.timings == {"queued": 100.0, "started": 101.0, "fetched": 102.0, "stored": 103}
    assert task.result_path == "results/ab/cd.webp"
    assert task.final


def test_a_whole_life() -> None:
    task = make_task()
    steps = [
        ({"status": PROCESSING}, True),
        ({"status": PROCESSING}, True),
        ({"status": COMPLETED_WITH_ERRORS, "warnings": ["profile dropped"]}, True),
        ({"status": FAILED, "error": {"code": "timeout", "message": "late"}}, False),
        ({"status": PROCESSING}, False),
    ]
    for changes, applied in steps:
        assert advance(task, changes) is applied
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
    assert set(body["timings"]) <= set(TIMING_STEPS)


def test_to_json_pending_and_failed() -> None:
    pending = make_task().to_json(lambda p: "never called")
    assert pending["result_url"] is None
    assert pending["status"] == PENDING
    failed = make_task()
    err = errors.SourceUnreachable("the origin said 404", upstream_status=404)
    advance(failed, {"status": FAILED, "error": err.failure()})
    body = failed.to_json(str)
    assert body["status"] == FAILED
    assert body["error"] == {
        "code": "source_unreachable",
        "message": "the origin said 404",
        "upstream_status": 404,
    }


def test_record_round_trip() -> None:
    task = make_task(PROCESSING, image_id="i", warnings=["w"], timings={"started": 2.0})
    task.error = Failure("x", "m", {"limit": 3})
    record = encode(task)
    again = decode_task(record)
    assert again == task
    newer = json.dumps({**json.loads(record), "future_field": 1})
    assert decode_task(newer) == task  # newer writers


def test_changes_are_checked_against_the_field_types() -> None:
    task = make_task(PROCESSING)
    for wrong in (
        {"error": {"code": "x"}},  # a Failure needs its message
        {"warnings": "not a list"},
        {"timings": {"started": "soon"}},
        {"params": {"w": [1]}},
    ):
        with pytest.raises(ValueError, match="wrong type"):
            advance(task, wrong)
    assert advance(task, {"status": FAILED, "error": {"code": "x", "message": "m"}})
    assert task.error == Failure("x", "m")


def test_image_records_follow_the_same_rule() -> None:
    image = ImageRecord("i1", "t1", "jpeg", 10, created_at=5.0)
    assert advance(image, {"status": PROCESSING}) and image.updated_at > 5.0
    with pytest.raises(ValueError, match="read-only image field"):
        advance(image, {"created_at": 1.0})
    assert advance(image, {"status": COMPLETED, "compressed_path": "results/x"})
    assert not advance(image, {"status": FAILED})
    assert decode_image(encode(image)) == image


def test_new_id() -> None:
    ids = [new_id() for _ in range(50)]
    assert len(set(ids)) == 50
    for i in ids:
        assert re.fullmatch(r"[0-9a-f]{24}", i)
    first = new_id()
    time.sleep(0.002)
    assert new_id()[:12] > first[:12]  # time-sortable prefix
