"""Image formats: what we read (sniffed from bytes), what we write, and Accept negotiation."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UnsupportedFormat, UnsupportedSource

AUTO = "auto"  # negotiated without WebP/AVIF: JPEG, PNG when the result has alpha, GIF if animated


@dataclass(frozen=True)
class OutputFormat:
    name: str
    mime: str
    alpha: bool
    animated: bool


OUTPUT_FORMATS: dict[str, OutputFormat] = {
    "jpeg": OutputFormat("jpeg", "image/jpeg", alpha=False, animated=False),
    "png": OutputFormat("png", "image/png", alpha=True, animated=False),
    "webp": OutputFormat("webp", "image/webp", alpha=True, animated=True),
    "avif": OutputFormat("avif", "image/avif", alpha=True, animated=False),
    "gif": OutputFormat("gif", "image/gif", alpha=True, animated=True),
    # JPEG XL: written (libjxl through imagecodecs), never read as a source
    "jxl": OutputFormat("jxl", "image/jxl", alpha=True, animated=False),
}
EXTENSIONS = {
    "jpg": "jpeg",
    "jpeg": "jpeg",
    "png": "png",
    "webp": "webp",
    "avif": "avif",
    "gif": "gif",
    "jxl": "jxl",
}

# Source formats we decode, by sniffed name, with their MIME type.
SOURCE_MIME = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "avif": "image/avif",
    "heif": "image/heif",
    "tiff": "image/tiff",
    # Only with IMGSERVER_ENABLE_SVG. SVG can carry scripts: its bytes are never stored or
    # served as image/svg+xml (only rasterised results leave the service).
    "svg": "application/octet-stream",
}
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
SVG_HEAD = 1000  # the root <svg> element must start within this many bytes (as for libvips)
# An XML prolog (declaration, comments, processing instructions, a DOCTYPE with its internal
# subset), then the root element <svg ...> (or <svg:svg ...>).
# Each part ends at its first terminator and the quantifiers are possessive, so a hostile
# prolog costs linear time (no backtracking).
_SVG = re.compile(
    rb"(?:\xef\xbb\xbf)?\s*+"
    rb"(?:(?:<\?(?:[^?]|\?(?!>))*+\?>|<!--(?:[^-]|-(?!->))*+-->"
    rb"|<!DOCTYPE\s[^\[>]*+(?:\[[^\]]*+\]\s*+)?>)\s*+)*+"
    rb"<(?:svg:)?svg[\s/>]"
)
_MARKUP = re.compile(rb"(?:\xef\xbb\xbf)?\s*<")


def sniff(data: bytes, *, svg: bool = False) -> str | None:
    """The source format from its leading bytes, or None if it is not one we decode.

    ``svg``: SVG is enabled (``IMGSERVER_ENABLE_SVG``), so an SVG document is "svg".
    """
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if len(data) >= 16 and data[4:8] == b"ftyp":
        box = int.from_bytes(data[:4], "big")
        brands = {data[8:12]} | {data[i : i + 4] for i in range(16, min(box, len(data), 64) - 3, 4)}
        if brands & _AVIF_BRANDS:
            return "avif"
        if brands & _HEIF_BRANDS:
            return "heif"
    if svg and _SVG.match(data[:SVG_HEAD]):
        return "svg"
    return None


def may_be_svg(head: bytes) -> bool:
    """Whether a document starting with ``head`` could still turn out to be SVG (markup)."""
    return _MARKUP.match(head) is not None


def require_source_format(data: bytes, *, svg: bool = False) -> str:
    """Sniff the source, raising 415 unsupported_source when it is not an image we decode."""
    fmt = sniff(data, svg=svg)
    if fmt is None:
        hint = "empty body" if not data else describe_non_image(data, svg=svg)
        raise UnsupportedSource(f"the source is not an image we decode ({hint})")
    return fmt


def describe_non_image(data: bytes, *, svg: bool = False) -> str:
    head = data[:256].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "it looks like HTML"
    if head.startswith(b"<?xml") or b"<svg" in head:
        if svg:
            return f"XML without an <svg> root element in its first {SVG_HEAD} bytes"
        return "SVG/XML is not enabled"
    if head.startswith(b"%pdf"):
        return "PDF is not supported"
    return f"unrecognised leading bytes {data[:8].hex()}"


def output_format(ext: str) -> str:
    """Normalise an extension (jpg, jpeg, png, ...) to an output format name, or raise 415."""
    try:
        return EXTENSIONS[ext.lower()]
    except KeyError:
        allowed = ", ".join(sorted(EXTENSIONS))
        raise UnsupportedFormat(
            f"cannot produce '{ext}'; use one of {allowed}", formats=sorted(EXTENSIONS)
        ) from None


def negotiate(accept: str, *, avif_enabled: bool, jxl_enabled: bool = False) -> str:
    """The output format for a request without an extension, from its Accept header: AVIF
    when enabled and accepted, else JPEG XL when enabled and ``image/jxl`` is named (never
    through ``image/*`` or ``*/*``: only clients that say they decode it get it), else WebP.
    Both are the operator's choice: the contract's default is WebP when accepted."""
    accepted = _accepted_types(accept)
    if avif_enabled and "image/avif" in accepted:
        return "avif"
    if jxl_enabled and "image/jxl" in accepted:
        return "jxl"
    if "image/webp" in accepted:
        return "webp"
    return AUTO


def _accepted_types(accept: str) -> set[str]:
    types: set[str] = set()
    for item in accept.split(","):
        parts = [p.strip() for p in item.split(";")]
        mime = parts[0].lower()
        q = 1.0
        for p in parts[1:]:
            if p.lower().startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        if mime and q > 0:
            types.add(mime)
    return types


_JXL_SIGNATURES = (b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")  # codestream, container


def sniff_result(data: bytes) -> str | None:
    """The format of a stored result: one of the sources we decode, or JPEG XL."""
    if data.startswith(_JXL_SIGNATURES):
        return "jxl"
    return sniff(data)


def mime_of(fmt: str) -> str:
    return OUTPUT_FORMATS[fmt].mime if fmt in OUTPUT_FORMATS else SOURCE_MIME[fmt]
