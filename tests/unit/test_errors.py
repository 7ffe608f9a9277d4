"""The error vocabulary: a class per code, registered by itself, and how errors travel."""

from __future__ import annotations

import json
from typing import Any

import pytest

from imgserver import errors
from imgserver.errors import Failure, ImgServerError

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
    ("source_not_found", 404, errors.SourceNotFound),
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


def test_every_error_class_registers_its_code() -> None:
    classes = {
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, ImgServerError) and c is not ImgServerError
    }
    assert classes == {cls for _, _, cls in CODES}
    assert dict(ImgServerError.codes()) == {code: cls for code, _, cls in CODES}


def test_a_code_can_be_taken_once() -> None:
    with pytest.raises(TypeError, match="'timeout' is taken by Timeout"):

        class AnotherTimeout(ImgServerError):
            status, code = 503, "timeout"

    assert ImgServerError.codes()["timeout"] is errors.Timeout


def test_a_failure_travels_without_the_library_detail() -> None:
    err = errors.UndecodableSource("cannot decode", detail="libheif: HEVC missing", width=3)
    failure = err.failure()
    assert failure == Failure("undecodable_source", "cannot decode", {"width": 3})
    again = failure.to_error()
    assert type(again) is errors.UndecodableSource and again.detail == ""
    assert again.to_dict() == {"code": "undecodable_source", "message": "cannot decode", "width": 3}


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


@pytest.mark.parametrize(
    ("status", "ttl", "expected"),
    [
        (404, 60, "public, max-age=60"),
        (415, 60, "public, max-age=60"),
        (422, 7, "public, max-age=7"),
        (404, 0, "no-store"),  # no failure memory: nothing to keep either
        (502, 60, "no-store"),
        (503, 60, "no-store"),
        (504, 60, "no-store"),
        (500, 60, "no-store"),
        (429, 60, "no-store"),
        (400, 60, None),
        (403, 60, None),
        (413, 60, None),
    ],
)
def test_cache_control_of_errors(status: int, ttl: int, expected: str | None) -> None:
    assert errors.cache_control(status, ttl) == expected


def test_remembered_codes_are_facts_about_a_source() -> None:
    codes = ImgServerError.codes()
    assert set(codes) >= errors.REMEMBERED
    for code in ("timeout", "unavailable", "internal", "overloaded", "source_not_allowed"):
        assert code not in errors.REMEMBERED
