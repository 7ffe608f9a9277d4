"""Hooks for the schemathesis run of ``test_openapi.py`` (loaded by the CLI through
``SCHEMATHESIS_HOOKS``).

- Sources that exist: an ``input`` (and a ``watermark``) drawn by schemathesis is, as often as
  not, replaced by one of the test origin's images or an upload (``FUZZ_SOURCES``, set by the
  test), so generated requests reach fetching, decoding and processing, not only validation.
- Uploads that are images: the body of ``POST /images`` is, as often as not, a real image.
- ``filter_failure``: the only failures dropped are a schema-valid request refused with a 400
  for a reason the document cannot state (``BEYOND_THE_SCHEMA``); each is named there, with why.
- ``json_error_shape``: every error answer (but HEAD's, which has no body) is the API's JSON
  error, ``{"error": {"code": str, "message": str, ...}}``, whatever its status.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from typing import Any

import schemathesis
from hypothesis import strategies as st

SOURCE_KEYS = ("input", "watermark")
# 400 invalid_param answers to requests the document calls valid, that it cannot rule out:
BEYOND_THE_SCHEMA = (
    # a tone curve's points must each have their own `in`: JSON Schema's pattern cannot compare
    # the numbers of a string (and 0, 0.0 and 00 are one `in`)
    "has two points at in=",
    # crop's x/y must fall inside the source image, whose size the URL does not know
    "is outside the",
)


def _sources() -> list[str]:
    return [s for s in os.environ.get("FUZZ_SOURCES", "").split(" ") if s]


@schemathesis.hook
def flatmap_query(context: Any, query: Any) -> Any:
    if not isinstance(query, dict) or not any(k in query for k in SOURCE_KEYS):
        return st.just(query)
    variants = [query]
    for source in _sources():
        variants.append({**query, **{k: source for k in SOURCE_KEYS if k in query}})
    return st.sampled_from(variants)


@schemathesis.hook
def flatmap_body(context: Any, body: Any) -> Any:
    image = os.environ.get("FUZZ_IMAGE")
    operation = context.operation
    if not image or operation is None or operation.path != "/images":
        return st.just(body)
    data = base64.b64decode(image)
    if isinstance(body, dict):  # multipart: only where the image field is (invalid stays so)
        return st.sampled_from([body, {**body, "image": data}] if "image" in body else [body])
    return st.sampled_from([body, data])


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """False (drop it) only for a BEYOND_THE_SCHEMA refusal of a schema-valid request."""
    if failure.code != "ST202" or response.status_code != 400:
        return True
    try:
        message = json.loads(_body(case, response))["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return True
    return not any(reason in message for reason in BEYOND_THE_SCHEMA)


def _body(case: Any, response: Any) -> bytes:
    """The answer's body; for HEAD (which has none), GET's, which is the same answer."""
    if case.method.upper() != "HEAD":
        return bytes(response.content)
    request = urllib.request.Request(response.request.url, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return bytes(answer.read())
    except urllib.error.HTTPError as error:
        return bytes(error.read())


@schemathesis.check
def json_error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every error is {"error": {"code", "message", ...}} with a JSON content type."""
    if response.status_code < 400 or case.method.upper() == "HEAD":
        return None
    headers = {k.lower(): v for k, v in response.headers.items()}
    content_type = headers.get("content-type", [""])
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    assert content_type.startswith("application/json"), f"error as {content_type!r}"
    body = json.loads(response.content)
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict), f"no error object: {body!r}"[:300]
    assert isinstance(error.get("code"), str) and isinstance(error.get("message"), str), body
    return None
