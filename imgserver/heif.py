"""The header of a HEIF/AVIF file (ISO base media boxes), read in pure Python without decoding:
which codec codes its primary image and how large that image is.

HEIF is a container: iPhone photos hold HEVC, AVIF files AV1, and others JPEG, VVC or
uncompressed items. The codec decides the decoder (HEVC: pillow-heif's bundled libde265; AV1:
libvips' libheif) or that we cannot decode it at all (415, before anything is stored); the
size of the primary image (its ``ispe`` property: before rotation, which does not change the
pixel count) is checked against the pixel limit before any decoder runs.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

HEVC = "hvc1"  # also "hev1" (parameter sets in the stream) in older files
AV1 = "av01"
CODECS = {"hvc1": HEVC, "hev1": HEVC, "av01": AV1}  # item types of coded images we decode
DERIVED = {b"grid", b"iovl", b"iden"}  # images made from other items ("dimg" references)
MAX_BOXES = 10_000  # boxes looked at in one file: a hostile file cannot make us loop long


@dataclass(frozen=True)
class Primary:
    """The primary image: its coding (an item type, e.g. "hvc1", "grid" resolved to its
    tiles' type) and its size as its properties declare it (``ispe``, cut to its clean
    aperture ``clap`` when it has one; None: not declared), before rotation."""

    item_type: str
    width: int | None
    height: int | None
    coded_pixels: int | None  # what is decoded before the crop: the pixel limit's count

    @property
    def codec(self) -> str | None:
        """HEVC or AV1; None: a coding we do not decode."""
        return CODECS.get(self.item_type)


def primary(data: bytes | memoryview) -> Primary | None:
    """The primary image's coding and size, or None when the boxes do not say (not HEIF, or
    cut short, or malformed)."""
    try:
        return _primary(memoryview(data))
    except (struct.error, ValueError, IndexError, KeyError):
        return None


def _boxes(
    data: memoryview, start: int, end: int, budget: list[int]
) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of each box in data[start:end]."""
    i = start
    while i + 8 <= end:
        budget[0] -= 1
        if budget[0] < 0:
            raise ValueError("too many boxes")
        size, kind = struct.unpack_from(">I4s", data, i)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, i + 8)
            header = 16
        elif size == 0:
            size = end - i
        if size < header or i + size > end:
            raise ValueError("a box runs past its parent")
        yield bytes(kind), i + header, i + size
        i += size


def _primary(data: memoryview) -> Primary | None:
    budget = [MAX_BOXES]
    meta = next((b for b in _boxes(data, 0, len(data), budget) if b[0] == b"meta"), None)
    if meta is None:
        return None
    _, start, end = meta
    children = {kind: (s, e) for kind, s, e in _boxes(data, start + 4, end, budget)}
    pitm_s, _ = children[b"pitm"]
    version = data[pitm_s]
    (item,) = struct.unpack_from(">H" if version == 0 else ">I", data, pitm_s + 4)
    types = _item_types(data, *children[b"iinf"], budget)
    item_type = types[item]
    if item_type in DERIVED and b"iref" in children:
        tiles = _references(data, *children[b"iref"], budget).get(item, [])
        if tiles:
            item_type = types[tiles[0]]
    width = height = coded = None
    if b"iprp" in children:
        size = _ispe(data, *children[b"iprp"], item, budget)
        if size is not None:
            width, height, coded = size
    return Primary(item_type.decode("latin-1"), width, height, coded)


def _item_types(data: memoryview, start: int, end: int, budget: list[int]) -> dict[int, bytes]:
    version = data[start]
    first = start + 4 + (2 if version == 0 else 4)
    types: dict[int, bytes] = {}
    for kind, s, _ in _boxes(data, first, end, budget):
        if kind != b"infe" or data[s] < 2:  # versions 0 and 1 carry no item type
            continue
        if data[s] == 2:
            (item,) = struct.unpack_from(">H", data, s + 4)
            at = s + 8
        else:
            (item,) = struct.unpack_from(">I", data, s + 4)
            at = s + 10
        types[item] = bytes(data[at : at + 4])
    return types


def _references(data: memoryview, start: int, end: int, budget: list[int]) -> dict[int, list[int]]:
    """The "dimg" references: derived image -> the items it is made from."""
    wide = data[start] != 0
    fmt = ">I" if wide else ">H"
    step = 4 if wide else 2
    refs: dict[int, list[int]] = {}
    for kind, s, _ in _boxes(data, start + 4, end, budget):
        if kind != b"dimg":
            continue
        (source,) = struct.unpack_from(fmt, data, s)
        (count,) = struct.unpack_from(">H", data, s + step)
        at = s + step + 2
        refs[source] = [struct.unpack_from(fmt, data, at + k * step)[0] for k in range(count)]
    return refs


def _ispe(
    data: memoryview, start: int, end: int, item: int, budget: list[int]
) -> tuple[int, int, int] | None:
    """The size of ``item`` (its ``ispe`` property, cut to its ``clap``) and the pixel
    count of its ``ispe``."""
    children = {kind: (s, e) for kind, s, e in _boxes(data, start, end, budget)}
    properties = [(kind, s) for kind, s, _ in _boxes(data, *children[b"ipco"], budget)]
    s, _ = children[b"ipma"]
    version, flags = data[s], int.from_bytes(data[s + 1 : s + 4], "big")
    (count,) = struct.unpack_from(">I", data, s + 4)
    at = s + 8
    for _ in range(min(count, MAX_BOXES)):
        if version < 1:
            (entry,) = struct.unpack_from(">H", data, at)
            at += 2
        else:
            (entry,) = struct.unpack_from(">I", data, at)
            at += 4
        n = data[at]
        at += 1
        indices = []
        for _ in range(n):
            if flags & 1:
                (value,) = struct.unpack_from(">H", data, at)
                indices.append(value & 0x7FFF)
                at += 2
            else:
                indices.append(data[at] & 0x7F)
                at += 1
        if entry != item:
            continue
        found = {
            properties[i - 1][0]: properties[i - 1][1] for i in indices if 0 < i <= len(properties)
        }
        if b"ispe" not in found:
            return None
        w, h = struct.unpack_from(">II", data, found[b"ispe"] + 4)
        coded = w * h
        if b"clap" in found:  # a clean aperture: the image shown is this crop of the coded one
            wn, wd, hn, hd = struct.unpack_from(">IIII", data, found[b"clap"])
            if wd and hd and 0 < wn // wd <= w and 0 < hn // hd <= h:
                w, h = wn // wd, hn // hd
        return int(w), int(h), int(coded)
    return None
