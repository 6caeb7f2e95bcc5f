"""Parsing and validating request input; every failure is a 400 that names the field."""

from __future__ import annotations

import json
import math
from typing import Any

from flask import Request

from api.errors import bad_request
from graph.records import Dislike, Interaction, Item, User

MAX_ID = 512
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
    """Comma-separated ids (``exclude``, ``tags``, ``not_tags``); blanks are ignored."""
    if not raw:
        return frozenset()
    return frozenset(x for x in (p.strip() for p in raw.split(",")) if x)


def parse_exclude(raw: str | None) -> frozenset[str]:
    return parse_ids(raw)


def json_body(request: Request) -> Any:
    """The parsed JSON body; reading it enforces ``MAX_CONTENT_LENGTH`` (413)."""
    raw = request.get_data(cache=True)
    if not raw:
        raise bad_request("body", "request body is empty; send JSON")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request("body", f"malformed JSON: {exc}") from None


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
            raise bad_request(_where(prefix, str(key)), f"unknown field {key!r}; allowed: {', '.join(sorted(allowed))}")


def _id(row: dict[str, Any], name: str, prefix: str) -> str:
    v = row.get(name)
    if not isinstance(v, str) or not v.strip():
        raise bad_request(_where(prefix, name), f"{name} must be a non-empty string")
    if len(v) > MAX_ID:
        raise bad_request(_where(prefix, name), f"{name} is longer than {MAX_ID} characters")
    return v


def _number(row: dict[str, Any], name: str, prefix: str, positive: bool = False) -> float | None:
    v = row.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise bad_request(_where(prefix, name), f"{name} must be a finite number")
    if positive and v <= 0:
        raise bad_request(_where(prefix, name), f"{name} must be > 0")
    return float(v)


def _attrs(row: dict[str, Any], prefix: str) -> dict[str, Any]:
    v = row.get("attrs", {})
    if not isinstance(v, dict):
        raise bad_request(_where(prefix, "attrs"), "attrs must be an object of strings, numbers or booleans")
    for key, val in v.items():
        ok = isinstance(val, str | bool | int) or (isinstance(val, float) and math.isfinite(val))
        if not ok or not key or len(key) > 64:
            raise bad_request(_where(prefix, f"attrs.{key}"), "attribute values must be strings, numbers or booleans")
    return dict(v)


#: The kinds of feedback an interaction row may carry.
FEEDBACK_TYPES = ("positive", "dislike")


def _ts(row: dict[str, Any], prefix: str) -> int | None:
    ts = row.get("ts")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int) or ts < 0):
        raise bad_request(_where(prefix, "ts"), "ts must be a non-negative integer (epoch seconds)")
    return ts


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


def interaction(row: dict[str, Any], prefix: str = "") -> Interaction:
    _check_keys(row, {"user", "item", "weight", "rating", "ts"}, prefix)
    ts = _ts(row, prefix)
    weight = _number(row, "weight", prefix, positive=True)
    return Interaction(
        user=_id(row, "user", prefix), item=_id(row, "item", prefix),
        weight=1.0 if weight is None else weight, rating=_number(row, "rating", prefix), ts=ts,
    )


def user(row: dict[str, Any], prefix: str = "") -> User:
    _check_keys(row, {"id", "attrs"}, prefix)
    return User(id=_id(row, "id", prefix), attrs=_attrs(row, prefix))


def item(row: dict[str, Any], prefix: str = "") -> Item:
    _check_keys(row, {"id", "title", "attrs"}, prefix)
    title = row.get("title")
    if title is not None and not isinstance(title, str):
        raise bad_request(_where(prefix, "title"), "title must be a string")
    return Item(id=_id(row, "id", prefix), title=title, attrs=_attrs(row, prefix))


def prefix_for(n: int, was_list: bool) -> str:
    return f"[{n}]." if was_list else ""

