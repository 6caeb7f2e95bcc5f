"""Parsing and validating request input; every failure is a 400 that names the field.

The rules are ``graph.values``' (the same the loaders and both stores apply), so a body the API
accepts is one every store can hold and every URL can address.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

from kgrec.api.errors import ApiError, bad_request
from kgrec.graph import values
from kgrec.graph.records import Dislike, Interaction, Item, User

MAX_ID = values.MAX_ID
#: Longest JSON number text parsed as a number: int64 has 19 digits (plus a sign); a float with
#: more than 400 characters is not one anybody means.
MAX_NUMBER_DIGITS, MAX_NUMBER_TEXT = 20, 400
TS_RANGE = f"{values.TS_MIN}..{values.TS_MAX}"
_ID = values.id_problem
TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def parse_k(raw: str | None, default: int, max_k: int) -> int:
    if raw is None:
        return default
    try:
        k = int(raw)
    except ValueError:
        raise bad_request("k", f"k must be an integer in 1..{max_k}, got {raw!r}") from None
    if not 1 <= k <= max_k:
        raise bad_request("k", f"k must be in 1..{max_k}, got {k}")
    return k


def parse_bool(name: str, raw: str | None) -> bool:
    if raw is None:
        return False
    v = raw.strip().lower()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    raise bad_request(name, f"{name} must be true or false, got {raw!r}")


def parse_model(raw: str | None, known: set[str]) -> str | None:
    if raw is None:
        return None
    if raw not in known:
        raise bad_request("model", f"unknown model {raw!r}; this bundle has {', '.join(sorted(known))}")
    return raw


def parse_ids(raw: str | None) -> frozenset[str]:
    """Comma-separated ids; blanks are ignored."""
    if not raw:
        return frozenset()
    return frozenset(x for x in (p.strip() for p in raw.split(",")) if x)


#: Id filters: each is a comma-separated list (``tags=a,b``) and a repeatable parameter taken
#: whole (``tag=a&tag=b``), for ids that contain commas (MovieLens free-text tags do).
ID_FILTERS = {"exclude": "exclude_item", "tags": "tag", "not_tags": "not_tag"}


def geo_query(args: Any) -> dict[str, Any]:
    """``near``, ``radius_km`` and ``at`` for ``Query``, checked by the read path's own rules
    (``recommenders.serving.geo_query``, as ``kgrec recommend`` does): a bad one is a 400 naming it."""
    from kgrec.recommenders.serving.geo_query import GeoParameterError, check_near, parse_point, parse_radius

    near, radius, at = args.get("near"), args.get("radius_km"), args.get("at")
    try:
        point = parse_point(near, "near") if near is not None else None
        km = parse_radius(radius) if radius is not None else None
        check_near(point, km)
        return {"near": point, "radius_km": km, "at": parse_point(at, "at") if at is not None else None}
    except GeoParameterError as exc:
        raise bad_request(exc.parameter, str(exc)) from None


def query_text(args: Any) -> str | None:
    """``q``, the words the user is looking for now, checked by the read path's own rule
    (``recommenders.serving.text_query``, as ``kgrec recommend --q`` does): an empty, over-long or
    wordless one is a 400 naming ``q``."""
    from kgrec.recommenders.serving.text_query import QueryTextError, parse_q

    raw = args.get("q")
    if raw is None:
        return None
    try:
        return parse_q(raw)
    except QueryTextError as exc:
        raise bad_request(exc.parameter, str(exc)) from None


def id_filter(args: Any, name: str) -> frozenset[str]:
    """The ids of filter ``name`` (``exclude``, ``tags`` or ``not_tags``) from a request's query."""
    return parse_ids(args.get(name)) | frozenset(x for x in args.getlist(ID_FILTERS[name]) if x)


class BigNumber:
    """A JSON number with more digits than any int64 or float64 holds, kept as its text so that
    the row check can refuse it naming its field (``int()`` of 400 digits is slow, and beyond
    Python's 4,300-digit limit it raises). It is no ``str`` or number, so no check mistakes it
    for one."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"<a {len(self.text)}-character number>"


def _parse_int(text: str) -> int | BigNumber:
    return int(text) if len(text) <= MAX_NUMBER_DIGITS else BigNumber(text)


def _parse_float(text: str) -> float | BigNumber:
    return float(text) if len(text) <= MAX_NUMBER_TEXT else BigNumber(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON; numbers must be finite")


def read_body(request: Request) -> bytes:
    """The raw body, at most ``max_content_length`` bytes, else 413. A declared Content-Length
    over the limit is refused by werkzeug before anything is read; a chunked body has none, so
    it is read up to one byte past the limit (werkzeug's own cap would silently cut it)."""
    limit = request.max_content_length
    if request.content_length is not None or limit is None or "wsgi.input_terminated" not in request.environ:
        return request.get_data(cache=True)
    stream, chunks, size = request.environ["wsgi.input"], [], 0
    while size <= limit:
        chunk = stream.read(min(65_536, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise RequestEntityTooLarge()
    return b"".join(chunks)


def json_body(request: Request) -> Any:
    """The parsed JSON body: at most ``MAX_CONTENT_LENGTH`` bytes (413), at most ``MAX_DEPTH``
    levels deep (checked before parsing, so no depth can exhaust the parser's stack), valid
    UTF-8, no NaN or Infinity; over-long numbers come back as ``BigNumber`` for the row checks."""
    return json_loads(read_body(request))


def json_loads(raw: bytes) -> Any:
    """``raw`` parsed under ``json_body``'s rules; 400 naming ``body`` otherwise, or naming the
    key or value that holds a lone surrogate (``\\ud800`` escaped alone: no store, driver or
    encoder can carry it, so it is refused here once, for keys and strings anywhere)."""
    if not raw.strip():
        raise bad_request("body", "request body is empty; send JSON")
    depth = values.json_depth(raw)
    if depth > values.MAX_DEPTH:
        raise bad_request("body", f"JSON nested {depth} levels deep; at most {values.MAX_DEPTH} are accepted")
    try:
        parsed = json.loads(raw, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise bad_request("body", f"the body is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise bad_request("body", f"malformed JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise bad_request("body", f"malformed JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(raw):  # UTF-8 text cannot hold surrogates: only an escape makes one
        _refuse_lone_surrogates(parsed)
    return parsed


#: A ``\uD800``-``\uDFFF`` escape (a pair of them makes one character beyond U+FFFF, which is fine).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _refuse_lone_surrogates(parsed: Any) -> None:
    """400 naming the first key or string (as ``[0].attrs.name``) that holds a lone surrogate."""
    todo: list[tuple[Any, str]] = [(parsed, "")]
    while todo:
        value, where = todo.pop()
        if isinstance(value, str):
            if _LONE_SURROGATE.search(value):
                raise bad_request(where or "body", f"{where or 'body'} {values.text_problem(value, len(value))}")
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                name = _where(f"{where}." if where else "", printable(key))
                if _LONE_SURROGATE.search(key):
                    raise bad_request(name, f"the key {name} {values.text_problem(key, len(key))}")
                todo.append((item, name))
        elif isinstance(value, list):
            todo.extend((item, f"{where}[{n}]") for n, item in reversed(list(enumerate(value))))


def as_rows(body: Any, max_batch: int) -> tuple[list[dict[str, Any]], bool]:
    """One object or a list of them; returns (rows, was_list)."""
    if isinstance(body, dict):
        return [body], False
    if isinstance(body, list):
        if not body:
            raise bad_request("body", "an empty list writes nothing; send at least one object")
        if len(body) > max_batch:
            raise bad_request("body", f"at most {max_batch} objects per request, got {len(body)}")
        for n, row in enumerate(body):
            if not isinstance(row, dict):
                raise bad_request(f"[{n}]", "each element must be a JSON object")
        return body, True
    raise bad_request("body", "expected a JSON object or a list of objects")


def _where(prefix: str, name: str) -> str:
    return f"{prefix}{name}" if prefix else name


def _check_keys(row: dict[str, Any], allowed: set[str], prefix: str) -> None:
    for key in row:
        if key not in allowed:
            raise bad_request(_where(prefix, printable(key)),
                              f"unknown field {key!r}; allowed: {', '.join(sorted(allowed))}")


def _refuse(prefix: str, name: str, value: Any, problem: str) -> ApiError:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return bad_request(_where(prefix, name), f"{name} {shown} {problem}")


def _string(row: dict[str, Any], name: str, prefix: str, problem_of: Callable[[str], str | None]) -> str:
    v = row.get(name)
    if not isinstance(v, str):
        raise bad_request(_where(prefix, name), f"{name} must be a {'non-empty ' if problem_of is _ID else ''}string")
    problem = problem_of(v)
    if problem is not None:
        raise _refuse(prefix, name, v, problem)
    return v


def _id(row: dict[str, Any], name: str, prefix: str) -> str:
    return _string(row, name, prefix, _ID)


def _number(row: dict[str, Any], name: str, prefix: str, positive: bool = False) -> float | None:
    v = row.get(name)
    if v is None:
        return None
    if isinstance(v, BigNumber):
        raise bad_request(_where(prefix, name), f"{name} has {len(v.text)} digits; it must be a finite 64-bit number")
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise bad_request(_where(prefix, name), f"{name} must be a finite number")
    problem = values.float_problem(float(v))  # stored as float64; ints of <= 20 digits always fit
    if problem is not None:
        raise _refuse(prefix, name, v, problem)
    if positive and v <= 0:
        raise bad_request(_where(prefix, name), f"{name} must be > 0")
    return float(v)


def _text(row: dict[str, Any], name: str, prefix: str) -> str | None:
    return None if row.get(name) is None else _string(row, name, prefix, values.text_problem)


def _attrs(row: dict[str, Any], prefix: str) -> dict[str, Any]:
    v = row.get("attrs", {})
    if not isinstance(v, dict):
        raise bad_request(_where(prefix, "attrs"), "attrs must be an object of strings, numbers or booleans")
    for key, val in v.items():
        if isinstance(val, BigNumber):
            raise bad_request(_where(prefix, f"attrs.{printable(key)}"), f"has {len(val.text)} digits; too large")
    bad = values.attrs_problem(v)
    if bad is not None:
        key, problem = bad
        raise bad_request(_where(prefix, f"attrs.{printable(key)}"), f"attrs.{printable(key)}: {problem}")
    return dict(v)


#: The kinds of feedback an interaction row may carry.
FEEDBACK_TYPES = ("positive", "dislike")


def feedback(row: dict[str, Any], prefix: str = "") -> Interaction | Dislike:
    """An interaction row: ``"type": "positive"`` (the default) or ``"dislike"``, which takes
    only ``user``, ``item`` and ``ts``."""
    kind = row.get("type", "positive")
    if kind not in FEEDBACK_TYPES:
        raise bad_request(_where(prefix, "type"), f"type must be one of {', '.join(FEEDBACK_TYPES)}, got {kind!r}")
    if kind == "dislike":
        _check_keys(row, {"user", "item", "ts", "type"}, prefix)
        return Dislike(user=_id(row, "user", prefix), item=_id(row, "item", prefix), ts=_ts(row, prefix))
    return interaction({k: v for k, v in row.items() if k != "type"}, prefix)


def hidden_flag(body: Any) -> bool:
    """The body of ``PATCH /items/{id}``: ``{"hidden": true|false}``."""
    if not isinstance(body, dict):
        raise bad_request("body", 'expected a JSON object like {"hidden": true}')
    _check_keys(body, {"hidden"}, "")
    if not isinstance(body.get("hidden"), bool):
        raise bad_request("hidden", "hidden must be true or false")
    return body["hidden"]


def _ts(row: dict[str, Any], prefix: str) -> int | None:
    v = row.get("ts")
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise bad_request(_where(prefix, "ts"), f"ts must be an integer of epoch seconds in {TS_RANGE}")
    problem = values.ts_problem(v)
    if problem is not None:
        raise _refuse(prefix, "ts", v, problem)
    return v


def interaction(row: dict[str, Any], prefix: str = "") -> Interaction:
    _check_keys(row, {"user", "item", "weight", "rating", "ts"}, prefix)
    user, item = _id(row, "user", prefix), _id(row, "item", prefix)
    weight = _number(row, "weight", prefix, positive=True)
    return Interaction(user=user, item=item, weight=1.0 if weight is None else weight,
                       rating=_number(row, "rating", prefix), ts=_ts(row, prefix))


def user(row: dict[str, Any], prefix: str = "") -> User:
    _check_keys(row, {"id", "attrs"}, prefix)
    return User(id=_id(row, "id", prefix), attrs=_attrs(row, prefix))


def item(row: dict[str, Any], prefix: str = "") -> Item:
    _check_keys(row, {"id", "title", "attrs"}, prefix)
    return Item(id=_id(row, "id", prefix), title=_text(row, "title", prefix), attrs=_attrs(row, prefix))


def printable(text: str, limit: int = 80) -> str:
    """``text`` safe to echo in an error (control characters and surrogates escaped), shortened."""
    if values.text_problem(text, limit) is None:
        return text
    return repr(text)[1:-1][:limit]


def check_request_text(request: Request) -> None:
    """Every query parameter and path segment holds storable text (``graph.values``), and a path
    id is one that could be stored (``values.id_problem``), else 400 naming it: a control
    character, a broken escape or an over-long id in a URL is refused before any view runs."""
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str):
            problem = values.id_problem(value) if name.endswith("_id") else values.text_problem(value, values.MAX_TEXT)
            if problem is not None:
                raise bad_request(name, f"{name} {problem}")
    for name, value in request.args.items(multi=True):
        for part, what in ((name, "parameter name"), (value, "value")):
            problem = values.text_problem(part, values.MAX_TEXT)
            if problem is not None:
                raise bad_request(printable(name), f"query {what} {problem}")


def prefix_for(n: int, was_list: bool) -> str:
    return f"[{n}]." if was_list else ""

