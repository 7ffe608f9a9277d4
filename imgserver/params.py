"""A graph's parameters: typed, ranged, with defaults, as ``GET /graphs/{name}`` shows them, and
how a query-string value is typed against one (400 ``invalid_param`` when it does not fit)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from .errors import InvalidParam
from .graphschema import COLOR_PATTERN, CURVE_NUMBER, MAX_CURVE, MAX_CURVE_POINTS, MAX_STRING
from .records import ParamValue
from .runtime.registry import PARAM_TYPES as PARAM_TYPES

_COLOR = re.compile(COLOR_PATTERN)
_CURVE_NUMBER = re.compile(rf"^{CURVE_NUMBER}$")
_INT = re.compile(r"^[+-]?\d{1,12}$")
_DIGITS = re.compile(r"^[+-]?\d+$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Param:
    """A typed graph parameter, as clients see it in ``GET /graphs/{name}``."""

    name: str
    type: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    values: tuple[str, ...] | None = None  # an enum's; an int's words besides numbers (auto)
    description: str = ""

    def parse(self, raw: str) -> ParamValue:
        """Type a query-string value, raising 400 invalid_param when it does not fit."""
        value = self._convert(raw.strip())
        if isinstance(value, int | float) and not isinstance(value, bool):
            if self.minimum is not None and value < self.minimum:
                raise self._invalid(f"must be at least {number_text(self.minimum)}", raw)
            if self.maximum is not None and value > self.maximum:
                raise self._invalid(f"must be at most {number_text(self.maximum)}", raw)
        return value

    def _convert(self, raw: str) -> ParamValue:
        t = self.type
        if t == "int":
            if self.values and raw in self.values:  # a word an int parameter takes too: auto
                return raw
            if not _INT.match(raw) and _DIGITS.match(raw):  # a whole number, past any bound
                if raw.startswith("-") and self.minimum is not None:
                    raise self._invalid(f"must be at least {number_text(self.minimum)}", raw)
                if not raw.startswith("-") and self.maximum is not None:
                    raise self._invalid(f"must be at most {number_text(self.maximum)}", raw)
                raise self._invalid("must be a whole number of at most 12 digits", raw)
            if not _INT.match(raw):
                words = "".join(f" or {word}" for word in self.values or ())
                raise self._invalid(f"must be a whole number{words}", raw)
            return int(raw)
        if t == "number":
            try:
                value = float(raw)
            except ValueError:
                raise self._invalid("must be a number", raw) from None
            if not math.isfinite(value):
                raise self._invalid("must be a finite number", raw)
            return value + 0.0  # -0.0 -> 0.0: one value, one cache key
        if t == "bool":
            low = raw.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise self._invalid("must be true or false", raw)
        if t == "color":
            m = _COLOR.match(raw)
            if not m:
                raise self._invalid("must be a colour like #rrggbb or #rrggbbaa", raw)
            return normalise_color(m.group(1))
        if t == "curve":
            try:
                return curve_text(parse_curve(raw))
            except ValueError as exc:
                raise self._invalid(str(exc), raw[:64] + ("..." if len(raw) > 64 else "")) from None
        if t == "enum":
            if raw not in (self.values or ()):
                raise self._invalid(f"must be one of {', '.join(self.values or ())}", raw)
            return raw
        if len(raw) > MAX_STRING:
            raise self._invalid(f"must be at most {MAX_STRING} characters", raw[:32] + "...")
        return raw

    def _invalid(self, why: str, raw: str) -> InvalidParam:
        return InvalidParam(f"parameter '{self.name}' {why}", param=self.name, value=raw)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "default": self.default,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "values": list(self.values) if self.values is not None else None,
            "description": self.description,
        }


def normalise_color(hexdigits: str) -> str:
    h = hexdigits.lower()
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    if len(h) == 8 and h.endswith("ff"):
        h = h[:6]
    return "#" + h


def number_text(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


CurvePoint = tuple[float, float]  # in, out: 0..255


def parse_curve(text: str) -> tuple[CurvePoint, ...]:
    """A tone curve's control points, ``in:out`` separated by commas (values 0..255, whole or
    decimal; 2 to MAX_CURVE_POINTS of them, no two at one ``in``), sorted by ``in``; ValueError
    says what is wrong, to follow "parameter 'x' "."""
    text = text.strip()
    example = "e.g. 0:0,128:150,255:255"
    if not text:
        raise ValueError(f"must be control points in:out separated by commas, {example}")
    if len(text) > MAX_CURVE:
        raise ValueError(f"must be at most {MAX_CURVE} characters")
    parts = [part.strip() for part in text.split(",")]
    if len(parts) < 2:
        raise ValueError(f"needs at least 2 points in:out separated by commas, {example}")
    if len(parts) > MAX_CURVE_POINTS:
        raise ValueError(f"has {len(parts)} points: at most {MAX_CURVE_POINTS}")
    points: list[CurvePoint] = []
    for part in parts:
        values = [v.strip() for v in part.split(":")]
        if not part:
            raise ValueError(f"has an empty point (two commas in a row?), {example}")
        if len(values) != 2 or not all(_CURVE_NUMBER.match(v) for v in values):
            raise ValueError(f"has a point {part!r} that is not in:out, two numbers 0-255")
        x, y = float(values[0]), float(values[1])
        if x > 255 or y > 255:
            raise ValueError(f"has a point {part!r} outside 0-255")
        points.append((x, y))
    points.sort()
    for (a, _), (b, _) in pairwise(points):
        if a == b:
            raise ValueError(f"has two points at in={number_text(a)}: each point needs its own in")
    return tuple(points)


def curve_text(points: tuple[CurvePoint, ...]) -> str:
    """Control points in their canonical spelling: sorted, numbers as ``number_text`` writes
    them, no spaces (equal curves, one cache key)."""
    return ",".join(f"{number_text(x)}:{number_text(y)}" for x, y in points)
