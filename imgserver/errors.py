"""The error vocabulary of the API (docs/api.md): one exception class per code, each carrying
its status. A subclass that sets ``code`` registers itself: the table of codes is never kept by
hand.

This is the only module that decides HTTP statuses for errors (``web/middleware.py`` writes
them). An error's ``message`` is public: it is what a client reads, so it never carries a
library's own text (a decoder's complaint, a server's error page); that goes in ``detail``,
which is logged and never sent. Errors travel between processes and are kept in task records
as :class:`Failure` values, and are rebuilt here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import msgspec


class Failure(msgspec.Struct, frozen=True, omit_defaults=True):
    """An error as it travels between processes and is kept in records."""

    code: str
    message: str
    details: dict[str, Any] = {}

    def to_api(self) -> dict[str, Any]:
        """The ``error`` object of the API: ``{"code", "message", ...details}``."""
        return {"code": self.code, "message": self.message, **self.details}

    def to_error(self) -> ImgServerError:
        """The exception again; an unknown code becomes ``internal``."""
        cls = ImgServerError.codes().get(self.code, Internal)
        return cls(self.message, **self.details)


class ImgServerError(Exception):
    """Base class: an error with an API code, an HTTP status and JSON details."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    default_message: ClassVar[str] = "internal error"
    _registry: ClassVar[dict[str, type[ImgServerError]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            known = ImgServerError._registry.get(cls.code)
            if known is not None:
                raise TypeError(f"error code {cls.code!r} is taken by {known.__name__}")
            ImgServerError._registry[cls.code] = cls

    @staticmethod
    def codes() -> Mapping[str, type[ImgServerError]]:
        """Every error code and its class."""
        return MappingProxyType(ImgServerError._registry)

    def __init__(
        self,
        message: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        detail: str = "",
        **details: Any,
    ) -> None:
        self.message = message or self.default_message
        self.details = details
        self.headers = headers or {}
        self.detail = detail  # for the log only: a library's or server's own words
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` object of the JSON body."""
        return {"code": self.code, "message": self.message, **self.details}

    def failure(self) -> Failure:
        """This error as it travels between processes (``detail`` stays behind)."""
        return Failure(self.code, self.message, dict(self.details))

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> ImgServerError:
        """Rebuild an error from its API object; unknown codes become ``internal``."""
        details = dict(data)
        code = str(details.pop("code", "internal"))
        message = details.pop("message", None)
        return Failure(code, str(message or ""), details).to_error()


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


class SourceNotFound(ImgServerError):
    """The source answered 404 or 410."""

    status, code, default_message = 404, "source_not_found", "the source does not exist"


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

    code = "internal"


# Errors a cache (a CDN, a browser) may keep for the failure memory's time: the same request
# gets the same answer until then. 5xx (and 429) are transient: never kept.
CACHEABLE_STATUSES = frozenset({404, 415, 422})

# Failures of a source that are remembered (``IMGSERVER_FAILURE_TTL``), so that asking again
# answers at once instead of fetching again; the others (ours: timeout, unavailable, internal;
# the request's: auth, invalid) are not facts about the source.
REMEMBERED = frozenset(
    {
        "source_not_found",
        "source_unreachable",
        "source_timeout",
        "source_too_large",
        "unsupported_source",
        "undecodable_source",
        "too_many_pixels",
    }
)


def transient(status: int) -> bool:
    """An answer that may differ a moment later (5xx, 429): no cache may keep it."""
    return status >= 500 or status == 429


def cache_control(status: int, failure_ttl: int) -> str | None:
    """The ``Cache-Control`` of an error of a ``/graph/`` URL: ``no-store`` on 5xx and 429;
    ``public, max-age`` for the failure memory's time on 404/415/422 (``no-store`` when there
    is no memory); None (no header) for the rest."""
    if transient(status):
        return "no-store"
    if status in CACHEABLE_STATUSES:
        return f"public, max-age={failure_ttl}" if failure_ttl > 0 else "no-store"
    return None
