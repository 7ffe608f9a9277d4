"""The error vocabulary of API.md: one exception class per code, each carrying its status.

This is the only module that decides HTTP statuses for errors (``web/middleware.py`` writes
them). Errors travel between processes
(worker -> frontend) as ``{"code", "message", ...details}`` dicts and are rebuilt here.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ImgServerError(Exception):
    """Base class: an error with an API code, an HTTP status and JSON details."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    default_message: ClassVar[str] = "internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **details: Any,
    ) -> None:
        self.message = message or self.default_message
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` object of the JSON body (also the form sent between processes)."""
        return {"code": self.code, "message": self.message, **self.details}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> ImgServerError:
        """Rebuild an error sent by another process; unknown codes become ``internal``."""
        data = dict(data)
        code = data.pop("code", "internal")
        message = data.pop("message", None)
        cls = _BY_CODE.get(code, Internal)
        return cls(message, **data)


class InvalidInput(ImgServerError):
    """The ``input`` is missing, relative or not a usable URL."""

    status, code, default_message = 400, "invalid_input", "invalid input"


class InvalidParam(ImgServerError):
    """A parameter is unknown, mistyped or out of range."""

    status, code, default_message = 400, "invalid_param", "invalid parameter"


class SignatureRequired(ImgServerError):
    """The request must be signed with an API key."""

    status, code, default_message = 403, "signature_required", "a signed URL is required"


class BadSignature(ImgServerError):
    """The signature does not match the request."""

    status, code, default_message = 403, "bad_signature", "the signature does not match"


class SourceNotAllowed(ImgServerError):
    """The source host is not allowed or resolves to a non-public address."""

    status, code, default_message = 403, "source_not_allowed", "this source is not allowed"


class QuotaExceeded(ImgServerError):
    """The API key has spent its processing quota."""

    status, code, default_message = 403, "quota_exceeded", "processing quota exceeded"


class UnknownGraph(ImgServerError):
    """No graph has that name."""

    status, code, default_message = 404, "unknown_graph", "unknown graph"


class NotFound(ImgServerError):
    """No such resource."""

    status, code, default_message = 404, "not_found", "not found"


class MethodNotAllowed(ImgServerError):
    """The resource exists but not for this method."""

    status, code, default_message = 405, "method_not_allowed", "method not allowed"


class SourceTooLarge(ImgServerError):
    """The source has more bytes than allowed."""

    status, code, default_message = 413, "source_too_large", "the source is too large"


class UnsupportedSource(ImgServerError):
    """The source bytes are not an image type we decode."""

    status, code, default_message = 415, "unsupported_source", "the source is not a supported image"


class UnsupportedFormat(ImgServerError):
    """The requested output format is not one we produce."""

    status, code, default_message = 415, "unsupported_format", "unsupported output format"


class UndecodableSource(ImgServerError):
    """The source is corrupt or truncated."""

    status, code, default_message = 422, "undecodable_source", "the source image cannot be decoded"


class TooManyPixels(ImgServerError):
    """The source or output has more pixels (or frames) than allowed."""

    status, code, default_message = 422, "too_many_pixels", "the image has too many pixels"


class Overloaded(ImgServerError):
    """The queue is full."""

    status, code, default_message = 429, "overloaded", "the service is overloaded"


class SourceUnreachable(ImgServerError):
    """The source could not be fetched (DNS, connect, TLS, non-2xx)."""

    status, code, default_message = 502, "source_unreachable", "the source could not be fetched"


class Timeout(ImgServerError):
    """The result was not ready within the deadline."""

    status, code, default_message = 503, "timeout", "the result is not ready yet"


class Unavailable(ImgServerError):
    """A backend is down."""

    status, code, default_message = 503, "unavailable", "a backend is unavailable"


class SourceTimeout(ImgServerError):
    """The source was too slow."""

    status, code, default_message = 504, "source_timeout", "the source took too long to answer"


class Internal(ImgServerError):
    """A bug: never caused by user input."""


_BY_CODE: dict[str, type[ImgServerError]] = {
    cls.code: cls
    for cls in (
        InvalidInput,
        InvalidParam,
        SignatureRequired,
        BadSignature,
        SourceNotAllowed,
        QuotaExceeded,
        UnknownGraph,
        NotFound,
        MethodNotAllowed,
        SourceTooLarge,
        UnsupportedSource,
        UnsupportedFormat,
        UndecodableSource,
        TooManyPixels,
        Overloaded,
        SourceUnreachable,
        Timeout,
        Unavailable,
        SourceTimeout,
        Internal,
    )
}
