"""A corpus of bad requests, each with the status and error field the API must answer with.

Written for a server with ``KGREC_MAX_BODY=65536`` (the over-size cases are bigger than that).

Shared by ``tests/test_api_bad_input.py`` (every case, through Flask's test client) and
``benchmarks/fuzz.py`` (which reports the corpus next to the property-based fuzz). A case is a
request that must change nothing: a 4xx JSON error naming the field, the store untouched,
and the next good write accepted.

``RAW_CASES`` are byte streams no HTTP client library sends (malformed chunked framing, a bad
request line, oversized heads): ``tests/test_serve_http.py`` and ``benchmarks/fuzz.py`` send
them to a real ``kgrec serve``, which must answer its JSON 4xx and close the connection.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

#: Which key a case sends: the writer's, the analyst's, none, or a literal Authorization header.
WRITER, ANALYST, NONE = "writer", "analyst", "none"


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    body: bytes | None = None
    status: int = 400
    field: str | None = None
    auth: str = WRITER
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


BAD_STRINGS: dict[str, object] = {
    "lone-high-surrogate": "\ud800", "lone-low-surrogate": "x\udc00", "nul": "a\x00b", "unit-separator": "a\x1fb",
    "del": "a\x7f", "c1-nel": "\x85", "empty": "", "blank": "   ", "slash": "a/b", "dotdot": "..", "dot": ".",
    "too-long": "x" * 300, "number": 123, "null": None, "bool": True, "list": ["a"], "object": {"a": 1},
}
BAD_WEIGHTS: dict[str, bytes] = {
    "negative": b"-1", "zero": b"0", "text": b'"heavy"', "bool": b"true", "inf": b"1e400", "400-digits": b"9" * 400,
    "5000-digits": b"9" * 5000, "nan": b"NaN", "infinity": b"Infinity", "minus-infinity": b"-Infinity",
    "list": b"[1]", "object": b'{"x": 1}', "long-float": b"1." + b"5" * 500,
}
BAD_TS: dict[str, bytes] = {
    "1e30-int": b"1" + b"0" * 30, "10**19": b"1" + b"0" * 19, "float": b"1.5", "text": b'"123"',
    "before-year-1": b"-100000000000000", "int64+1": str(2**63).encode(), "bool": b"true",
    "after-9999": b"253402300800", "milliseconds": b"1700000000000000", "nan": b"NaN",
}
BAD_ATTRS: dict[str, object] = {
    "nested": {"a": {"b": 1}}, "list-value": {"a": [1]}, "null-value": {"a": None}, "empty-key": {"": 1},
    "control-key": {"a\x01": 1}, "long-key": {"k" * 65: 1}, "surrogate-value": {"a": "\udfff"},
    "int64+1": {"a": 2**63}, "not-object": "x", "list": [],
}


def _interaction(user: object = "u-bad", item: object = "i0001", **extra: object) -> dict[str, object]:
    return {"user": user, "item": item, **extra}


def _raw_row(name: str, number: bytes) -> bytes:
    return b'{"user": "u-bad", "item": "i0001", "' + name.encode() + b'": ' + number + b"}"


def _number_field(name: str, raw: bytes) -> str:
    """NaN and Infinity are not JSON at all: the body is refused, not the field."""
    return "body" if raw.lstrip(b"-") in (b"NaN", b"Infinity") else name


def cases() -> list[Case]:
    out: list[Case] = []
    for label, value in BAD_STRINGS.items():
        out.append(Case(f"interaction-user-{label}", "POST", "/v1/interactions", _json(_interaction(user=value)),
                        field="user"))
        out.append(Case(f"interaction-item-{label}-in-list", "POST", "/v1/interactions",
                        _json([_interaction(user="u-ok"), _interaction(item=value)]), field="[1].item"))
        out.append(Case(f"user-id-{label}", "POST", "/v1/users", _json({"id": value}), field="id"))
        out.append(Case(f"item-id-{label}", "POST", "/v1/items", _json({"id": value}), field="id"))
    for label, raw in BAD_WEIGHTS.items():
        out.append(Case(f"weight-{label}", "POST", "/v1/interactions", _raw_row("weight", raw),
                        field=_number_field("weight", raw)))
    for label in ("inf", "400-digits", "nan", "text", "list"):
        raw = BAD_WEIGHTS[label]
        out.append(Case(f"rating-{label}", "POST", "/v1/interactions", _raw_row("rating", raw),
                        field=_number_field("rating", raw)))
    for label, raw in BAD_TS.items():
        out.append(Case(f"ts-{label}", "POST", "/v1/interactions", _raw_row("ts", raw), field=_number_field("ts", raw)))
    for label, attrs in BAD_ATTRS.items():
        key = next(iter(attrs), "") if isinstance(attrs, dict) else None
        where = "attrs" if key is None else f"attrs.{key if key.isprintable() else repr(key)[1:-1]}"
        out.append(Case(f"user-attrs-{label}", "POST", "/v1/users", _json({"id": "u-bad", "attrs": attrs}),
                        field=where))
    for label, title in (("number", 5), ("surrogate", "\ud83d"), ("control", "bell\x07"), ("object", {"x": 1}),
                         ("too-long", "t" * 70_000)):
        status = 413 if label == "too-long" else 400
        out.append(Case(f"item-title-{label}", "POST", "/v1/items", _json({"id": "i-bad", "title": title}),
                        status=status, field="body" if status == 413 else "title"))
    out += _bodies() + _urls() + _auth() + _cypher()
    return out


def _bodies() -> list[Case]:
    deep = b'{"id": "x", "attrs": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}"
    bodies = {
        "not-json": (b"{not json", "body"), "empty": (b"", "body"), "blank": (b"   \n", "body"),
        "empty-list": (b"[]", "body"), "string": (b'"text"', "body"), "number": (b"123", "body"),
        "null": (b"null", "body"), "deep-object-5000": (deep, "body"), "deep-list-3000": (b"[" * 3000, "body"),
        "depth-33": (b'{"id": "x", "attrs": ' + b"[" * 32 + b"]" * 32 + b"}", "body"),
        "invalid-utf8": (b'{"id": "\xff\xfe"}', "body"), "truncated": (b'{"id": "a"', "body"),
        "trailing-garbage": (b'{"id": "a"} x', "body"), "top-level-nan": (b"NaN", "body"),
        "rows-not-objects": (b"[1, 2]", "[0]"), "unknown-field": (b'{"id": "a", "colour": "red"}', "colour"),
        "surrogate-key": (b'{"id": "a", "\\ud800": 1}', "\\ud800"),
        "surrogate-attrs-key": (b'{"id": "a", "attrs": {"\\udfff": 1}}', "attrs.\\udfff"),
        "surrogate-in-list": (b'[{"id": "a"}, {"id": "b", "attrs": {"k": "x\\udc00"}}]', "[1].attrs.k"),
        "unknown-field-control": (b'{"id": "a", "c\\u0001": 1}', "c\\x01"),
        "over-max-body": (b'{"id": "' + b"a" * 70_000 + b'"}', "body"),
    }
    out = []
    for label, (body, where) in bodies.items():
        status = 413 if label == "over-max-body" else 400
        out.append(Case(f"body-{label}", "POST", "/v1/users", body, status=status, field=where))
    out.append(Case("interaction-missing-item", "POST", "/v1/interactions", b'{"user": "a"}', field="item"))
    out.append(Case("interaction-unknown-item", "POST", "/v1/interactions", _json(_interaction(item="ghost")),
                    status=404, field="item"))
    return out


def _urls() -> list[Case]:
    rec = "/v1/users/u0001/recommendations"
    queries = {
        "k-zero": ("k=0", "k"), "k-negative": ("k=-1", "k"), "k-text": ("k=abc", "k"), "k-huge": ("k=1001", "k"),
        "k-float": ("k=1e3", "k"), "k-digits": ("k=" + "9" * 400, "k"), "model-unknown": ("model=nope", "model"),
        "model-control": ("model=%01", "model"), "explain-maybe": ("explain=maybe", "explain"),
        "exclude-nul": ("exclude=a%00b", "exclude"), "param-name-control": ("%07=1", "\\x07"),
        "bad-percent-utf8": ("model=%ED%A0%80", "model"),
    }
    out = [Case(f"query-{label}", "GET", f"{rec}?{q}", field=where, auth=NONE) for label, (q, where) in queries.items()]
    out += [
        Case("path-user-nul", "GET", "/v1/users/a%00b", field="user_id", auth=NONE),
        Case("path-item-control", "GET", "/v1/items/a%1Bb/similar", field="item_id", auth=NONE),
        Case("path-user-slash", "GET", "/v1/users/a%2Fb", status=404, auth=NONE),
        Case("url-too-long", "GET", f"{rec}?exclude=" + "x" * 9000, status=414, field="url", auth=NONE),
        Case("unknown-route", "GET", "/v1/nothing-here", status=404, auth=NONE),
        Case("unknown-item-similar", "GET", "/v1/items/ghost/similar", status=404, field="item", auth=NONE),
        Case("put-users", "PUT", "/v1/users", _json({"id": "a"}), status=405),
        Case("delete-users", "DELETE", "/v1/users", status=405),
    ]
    return out


def _auth() -> list[Case]:
    body = _json({"id": "by-someone"})
    return [
        Case("auth-missing", "POST", "/v1/users", body, status=401, field="Authorization", auth=NONE),
        Case("auth-basic", "POST", "/v1/users", body, status=401, field="Authorization", auth=NONE,
             headers={"Authorization": "Basic dXNlcjpwYXNz"}),
        Case("auth-wrong-key", "POST", "/v1/users", body, status=401, field="Authorization", auth=NONE,
             headers={"Authorization": "Bearer not-the-key-at-all"}),
        Case("auth-empty-bearer", "POST", "/v1/users", body, status=401, field="Authorization", auth=NONE,
             headers={"Authorization": "Bearer "}),
        Case("auth-latin1-key", "POST", "/v1/users", body, status=401, field="Authorization", auth=NONE,
             headers={"Authorization": "Bearer cl\u00e9-\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"}),
        Case("auth-analyst-writes", "POST", "/v1/users", body, status=401, field="Authorization", auth=ANALYST),
        Case("auth-writer-cypher", "POST", "/v1/cypher", _json({"query": "RETURN 1"}), status=401,
             field="Authorization", auth=WRITER),
    ]


def _cypher() -> list[Case]:
    bodies: dict[str, tuple[object, int, str]] = {
        "nothing": ({}, 400, "query"), "both": ({"query": "RETURN 1", "name": "graph_summary"}, 400, "query"),
        "params-list": ({"query": "RETURN 1", "params": [1]}, 400, "params"),
        "params-huge-int": ({"query": "RETURN $x", "params": {"x": 2**64}}, 400, "params.x"),
        "params-surrogate": ({"query": "RETURN $x", "params": {"x": "\ud800"}}, 400, "params.x"),
        "params-surrogate-name": ({"query": "RETURN 1", "params": {"\udfff": 1}}, 400, "params.\\udfff"),
        "params-surrogate-nested-key": ({"query": "RETURN $x", "params": {"x": {"a": [{"\ud800": 1}]}}}, 400,
                                        "params.x.a[0].\\ud800"),
        "params-control-name": ({"query": "RETURN 1", "params": {"a\x01": 1}}, 400, "params.a\\x01"),
        "load-csv-after-cr-comment": ({"query": "WITH 1 AS x //c\rLOAD CSV FROM 'http://127.0.0.1:1/x' AS r RETURN r"},
                                      403, "query"),
        "load-csv-unicode-escape": ({"query": "WITH 1 AS x \\u004cOAD CSV FROM 'http://127.0.0.1:1/x' AS r RETURN r"},
                                    403, "query"),
        "load-csv-after-as-as": ({"query": "WITH 1 AS AS LOAD CSV FROM 'http://127.0.0.1:1/x' AS r RETURN r"}, 403,
                                 "query"),
        "function-in-map-value": ({"query": "RETURN {a: apoc.version()} AS v"}, 403, "query"),
        "backslash-outside-string": ({"query": "RETURN 1 \\ 2"}, 400, "query"),
        "timeout-zero": ({"query": "RETURN 1", "timeout": 0}, 400, "timeout"),
        "timeout-bool": ({"query": "RETURN 1", "timeout": True}, 400, "timeout"),
        "max-rows-zero": ({"query": "RETURN 1", "max_rows": 0}, 400, "max_rows"),
        "query-nul": ({"query": "RETURN 1\x00"}, 400, "query"),
        "query-unterminated": ({"query": "RETURN 'x"}, 400, "query"),
        "load-csv": ({"query": "LOAD CSV FROM 'http://127.0.0.1:1/x' AS r RETURN r"}, 403, "query"),
        "show-transactions": ({"query": "SHOW TRANSACTIONS"}, 403, "query"),
        "terminate": ({"query": 'TERMINATE TRANSACTIONS "neo4j-transaction-1"'}, 403, "query"),
        "show-users": ({"query": "SHOW USERS"}, 403, "query"),
        "dbms-procedure": ({"query": "CALL dbms.listConfig() YIELD name RETURN name"}, 403, "query"),
        "write": ({"query": "MATCH (n) DETACH DELETE n"}, 403, "query"),
        "unknown-cookbook": ({"name": "drop_everything"}, 400, "name"),
    }
    return [Case(f"cypher-{label}", "POST", "/v1/cypher", _json(body), status=status, field=where, auth=ANALYST)
            for label, (body, status, where) in bodies.items()]


@dataclass(frozen=True)
class RawCase:
    """Bytes sent as they are on a new connection (``{WRITER_KEY}`` is replaced by the writer's
    key), and the status of the JSON error the server must answer before closing it."""

    name: str
    payload: bytes
    status: int = 400


def _post_users(extra_headers: bytes, body: bytes) -> bytes:
    return (b"POST /v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WRITER_KEY}\r\n"
            b"Content-Type: application/json\r\n" + extra_headers + b"\r\n" + body)


CHUNKED = b"Transfer-Encoding: chunked\r\n"
RAW_CASES = [
    RawCase("chunk-size-zz", _post_users(CHUNKED, b'zz\r\n{"id": "raw-zz"}\r\n0\r\n\r\n')),
    RawCase("chunk-extension-100kb", _post_users(CHUNKED, b"2;" + b"a" * 100_000 + b'\r\n{}\r\n0\r\n\r\n')),
    # a 2^160-byte chunk is well-formed framing: the body that never arrives ends at the body deadline
    RawCase("chunk-size-2**160", _post_users(CHUNKED, b"f" * 40 + b'\r\n{"id": "raw-big"}\r\n0\r\n\r\n'), 408),
    RawCase("chunk-missing-terminator", _post_users(CHUNKED, b'11\r\n{"id": "raw-term"}XX0\r\n\r\n')),
    RawCase("chunk-negative-size", _post_users(CHUNKED, b'-5\r\n{"id": "raw-neg"}\r\n0\r\n\r\n')),
    RawCase("content-length-and-chunked", _post_users(CHUNKED + b"Content-Length: 3\r\n", b"0\r\n\r\n")),
    RawCase("two-content-lengths", _post_users(b"Content-Length: 2\r\nContent-Length: 5\r\n", b"{}")),
    RawCase("content-length-not-a-number", _post_users(b"Content-Length: 1e3\r\n", b"{}")),
    RawCase("request-line-garbage", b"GARBAGE\r\n\r\n"),
    RawCase("request-line-bad-version", b"GET /v1/health HTTP/9.9x\r\nHost: x\r\n\r\n"),
    RawCase("header-without-colon", b"GET /v1/health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"),
    RawCase("bare-lf-line-ending", b"GET /v1/health HTTP/1.1\nHost: x\n\n"),
    RawCase("request-line-too-long", b"GET /v1/users/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    RawCase("header-too-large", b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
    RawCase("too-many-headers", b"GET /v1/health HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: 1\r\n" % n for n in range(120)) + b"\r\n", 431),
    RawCase("transfer-coding-not-chunked", _post_users(b"Transfer-Encoding: gzip\r\n", b"{}")),
    RawCase("transfer-coding-gzip-chunked", _post_users(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n")),
]
