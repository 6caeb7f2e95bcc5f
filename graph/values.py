"""The values kgrec stores, defined once: what both stores can hold and a URL can address.

HTTP bodies and query parameters (``api.params``), the file loaders (``loaders.validation``)
and every store write (``graph.rows.check_rows``) ask these functions, so one input gets one
answer everywhere. Each ``*_problem`` function returns None for a good value, or a short
phrase saying what is wrong ("contains control character U+0000 at position 3"), which the
caller prefixes with the field's name.

- Text: valid Unicode that UTF-8 can encode (no lone surrogates) and no control characters
  (C0, DEL, C1), so it survives JSON, the memory store's file, Bolt and HTML alike.
- Ids of users and items also appear in URL paths (``/v1/users/{id}``, ``/ui/items/{id}``):
  they may not contain ``/`` (routers split on it even when percent-encoded) nor be ``.``
  or ``..`` (clients resolve those as path segments). Tag ids and entity IRIs are never
  path segments, so they follow the text rule only.
- Locations are WGS-84 ``(lat, lon)`` degrees, both finite and in range (``location_problem``).
- Integers fit a signed 64-bit integer (Neo4j's INTEGER); floats are finite float64;
  timestamps are epoch seconds from year 1 to the end of year 9999 (Python's datetime range;
  datasets do carry dates before 1970).
"""

from __future__ import annotations

import math
import re

#: Longest user or item id, in characters: 256 characters are at most 1 KiB of UTF-8, so two
#: percent-encoded ids (``/v1/users/{id}/recommendations/{item}/explanation``) fit a URL of
#: ``MAX_URL`` characters. Tag ids, IRIs and predicates (never in a path) may be ``MAX_KEY`` long.
MAX_ID = 256
MAX_KEY = 2048
MAX_TEXT = 65_536
#: Longest URL (path and query) the API serves; gunicorn's request-line limit is set to match.
MAX_URL = 8190
#: Longest attribute name.
MAX_ATTR_KEY = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Epoch seconds from 0001-01-01 to 9999-12-31T23:59:59Z (what datetime and numpy both handle).
TS_MIN, TS_MAX = -62_135_596_800, 253_402_300_799
#: Deepest JSON nesting a request body may have (rows are two levels deep).
MAX_DEPTH = 32

_BAD_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def text_problem(value: str, limit: int = MAX_TEXT) -> str | None:
    """None for storable text, else what is wrong with it."""
    if len(value) > limit:
        return f"is longer than {limit} characters"
    bad = _BAD_CHAR.search(value)
    if bad is None:
        return None
    ch = bad.group()
    kind = "a lone surrogate" if "\ud800" <= ch <= "\udfff" else "control character"
    return f"contains {kind} U+{ord(ch):04X} at position {bad.start()}"


def key_problem(value: str) -> str | None:
    """A tag id, entity IRI or predicate: non-blank text of at most ``MAX_KEY`` characters."""
    if not value.strip():
        return "is empty"
    return text_problem(value, MAX_KEY)


def id_problem(value: str) -> str | None:
    """A user or item id: non-blank text of at most ``MAX_ID`` characters that can be one
    segment of a URL path."""
    if not value.strip():
        return "is empty"
    problem = text_problem(value, MAX_ID)
    if problem is not None:
        return problem
    if "/" in value:
        return "contains '/', which cannot be addressed in a URL path (/v1/users/{id}); choose ids without it"
    if value in (".", ".."):
        return f"is {value!r}, which a URL path resolves away; choose another id"
    return None


def int_problem(value: int) -> str | None:
    if not INT64_MIN <= value <= INT64_MAX:
        return "is outside the 64-bit integer range"
    return None


def float_problem(value: float) -> str | None:
    if not math.isfinite(value):
        return "is not a finite number"
    return None


def number_problem(value: object) -> str | None:
    """A finite float64 or an int64 (never a bool)."""
    if type(value) is float:
        return float_problem(value)
    if type(value) is int:
        return int_problem(value)
    return "is not a number"


def ts_problem(value: object) -> str | None:
    """Epoch seconds, an integer in ``TS_MIN..TS_MAX``."""
    if type(value) is not int:
        return "is not an integer (epoch seconds)"
    if not TS_MIN <= value <= TS_MAX:
        hint = " (milliseconds? ts is in seconds)" if TS_MAX < value < TS_MAX * 1000 else ""
        return f"is outside {TS_MIN}..{TS_MAX} (epoch seconds, years 1 to 9999){hint}"
    return None


def location_problem(value: object) -> str | None:
    """An item's location: a ``(lat, lon)`` pair of finite WGS-84 degrees, latitude in -90..90 and
    longitude in -180..180 (both or neither: a lone coordinate is no location)."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        return "must be a (lat, lon) pair: give both lat and lon, or neither"
    for name, v, limit in (("lat", value[0], 90.0), ("lon", value[1], 180.0)):
        if type(v) not in (int, float) or (type(v) is float and not math.isfinite(v)):  # ints: any size
            return f"{name} {v!r} is not a finite number of degrees"
        if not -limit <= v <= limit:
            return f"{name} {v!r} is outside -{limit:g}..{limit:g} degrees"
    return None


def scalar_problem(value: object) -> str | None:
    """An attribute value: text, bool, int64 or finite float."""
    if type(value) is str:
        return text_problem(value)
    if type(value) is bool:
        return None
    if type(value) in (int, float):
        return number_problem(value)
    return "must be a string, number or boolean"


def attrs_problem(attrs: dict[object, object]) -> tuple[str, str] | None:
    """(attribute name, what is wrong) for the first bad attribute, or None."""
    for key, value in attrs.items():
        if type(key) is not str or not key:
            return str(key), "attribute names must be non-empty strings"
        problem = text_problem(key, MAX_ATTR_KEY)
        if problem is not None:
            return key, f"attribute name {problem}"
        problem = scalar_problem(value)
        if problem is not None:
            return key, problem
    return None


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (strings skipped), counted
    without parsing, so that a hostile body never reaches the recursive parser."""
    brackets = _STRING.sub(b"", _ESCAPE.sub(b"", raw)).translate(None, _NOT_BRACKET)
    depth = deepest = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
