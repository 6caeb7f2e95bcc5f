"""``POST /v1/cypher``: read-only Cypher for analysts' tools and notebooks.

Confined: query text must pass ``api.cypher_guard`` (read clauses and allow-listed procedures
only, checked on the tokens and again on the server's own plan), or it is refused with 403
``forbidden_clause``; it then runs in a READ transaction, so the server itself refuses any
write. Bounded: the server enforces a transaction timeout (504), and rows are streamed, not
fetched whole: at most ``max_rows`` rows and ``MAX_RESPONSE_BYTES`` of JSON are read, then the
transaction is rolled back, which stops the query at the server. Planning (``EXPLAIN``) and the
run share the one timeout, so a query answers within it (plus half a second) whatever it
costs to plan. It needs an analyst key
(``KGREC_ANALYST_KEY``), because a read can still see the whole graph. Cookbook queries run by
name, with their parameters checked first; they are kgrec's own text and skip the guard.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from werkzeug.wrappers import Response

from kgrec.api import params
from kgrec.api.auth import require_analyst_key
from kgrec.api.blueprints.context import store
from kgrec.api.cypher_guard import Forbidden, check_plan, check_text
from kgrec.api.errors import ApiError, bad_request
from kgrec.api.params import printable
from kgrec.graph.cypher import Cookbook, CookbookError
from kgrec.graph.neo4j_connection import deadline
from kgrec.graph.store import RunsCypher
from kgrec.graph.store_errors import StoreError, StoreTimeout, StoreUnavailable
from kgrec.graph.values import scalar_problem, text_problem

bp = Blueprint("cypher", __name__)

DEFAULT_TIMEOUT, MAX_TIMEOUT = 10.0, 60.0
DEFAULT_ROWS, MAX_ROWS = 1000, 10_000
#: Most JSON a response carries; rows past it are left out and the answer says so.
MAX_RESPONSE_BYTES = 8 << 20
#: Rows pulled from the server at a time. Stopping early still reads the rest of the current
#: batch off the wire, so with large rows a batch must stay small; with small rows, 64 costs no
#: more than one batch of 10,000 (measured: 10,000 one-integer rows in 1.56 vs 1.84 s).
FETCH = 64
#: Longest query text, and the control characters it may hold (as spaces, for the text check).
MAX_QUERY = 65_536
LAYOUT = str.maketrans("\t\n\r", "   ")
#: The Neo4j status code of a write attempted in a read transaction.
ACCESS_MODE = "Neo.ClientError.Statement.AccessMode"

OPENAPI: dict[str, Any] = {"post": {
    "summary": "Run read-only Cypher (text or a cookbook query by name) in a read transaction with a timeout",
    "security": [{"analyst": []}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "description": "Cypher text; values as $parameters"},
            "name": {"type": "string", "description": "a cookbook query (kgrec cypher --list)"},
            "params": {"type": "object"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT, "default": DEFAULT_TIMEOUT},
            "max_rows": {"type": "integer", "minimum": 1, "maximum": MAX_ROWS, "default": DEFAULT_ROWS},
        },
    }}}},
    "responses": {
        "200": {"description": "the rows", "content": {"application/json": {"schema": {
            "type": "object", "required": ["rows", "count", "truncated"],
            "properties": {"rows": {"type": "array", "items": {"type": "object"}},
                           "count": {"type": "integer"}, "truncated": {"type": "boolean"},
                           "truncated_by": {"type": "string", "enum": ["max_rows", "max_bytes"],
                                            "description": "which cap cut the rows (present when truncated); "
                                                           f"responses carry at most {MAX_RESPONSE_BYTES} bytes "
                                                           "of rows"}}}}}},
        **{status: {"description": text, "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/Error"}}}} for status, text in (
            ("400", "invalid body, unknown cookbook query, bad parameters, or a query Neo4j rejects"),
            ("401", "missing or wrong analyst key"),
            ("403", "forbidden_clause: not a read clause or an allowed procedure; read_only: the query wrote"),
            ("413", "body larger than KGREC_MAX_BODY"),
            ("409", "the server's store is not Neo4j, so there is nothing to run Cypher on"),
            ("503", "the store is unavailable"),
            ("504", "the query ran past its timeout and was terminated"),
        )},
    },
}}


def _timeout(body: dict[str, Any]) -> float:
    value = body.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_TIMEOUT:
        raise bad_request("timeout", f"timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}]")
    return float(value)


def _max_rows(body: dict[str, Any]) -> int:
    value = body.get("max_rows", DEFAULT_ROWS)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ROWS:
        raise bad_request("max_rows", f"max_rows must be a whole number in [1, {MAX_ROWS}]")
    return value


def _statement(body: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    """(text, parameters, trusted): a cookbook query is trusted text shipped with kgrec."""
    query, name, params = body.get("query"), body.get("name"), body.get("params", {})
    if (query is None) == (name is None):
        raise bad_request("query", "give exactly one of 'query' (Cypher text) or 'name' (a cookbook query)")
    if not isinstance(params, dict):
        raise bad_request("params", "params must be a JSON object")
    _check_values(params, "params")
    if name is not None:
        if not isinstance(name, str):
            raise bad_request("name", "name must be a string")
        cookbook = current_app.extensions.setdefault("kgrec.cookbook", Cookbook())
        try:
            entry = cookbook.get(name)
        except CookbookError as exc:
            raise bad_request("name", str(exc)) from None
        try:
            return entry.text, entry.bind(params), True
        except CookbookError as exc:
            raise bad_request("params", str(exc)) from None
    if not isinstance(query, str) or not query.strip():
        raise bad_request("query", "query must be non-empty Cypher text")
    problem = text_problem(query.translate(LAYOUT), MAX_QUERY)  # tabs and line breaks are layout
    if problem is not None:
        raise bad_request("query", f"query {problem}")
    return query, params, False


def _check_values(value: Any, where: str) -> None:
    """Parameters hold what Bolt can carry: text, finite 64-bit numbers, booleans, null, and
    lists and maps of them, their names and keys storable text too (the body's depth is already
    bounded, and lone surrogates refused when it was parsed)."""
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{where}.{printable(key)}"
            problem = text_problem(key)
            if problem is not None:
                raise bad_request(name, f"the parameter name {name} {problem}")
            _check_values(item, name)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            _check_values(item, f"{where}[{n}]")
    else:
        problem = None if value is None else scalar_problem(value)
        if problem is not None:
            raise bad_request(where, f"{where} {problem}")


@bp.post("/cypher")
@require_analyst_key
def cypher() -> Response:
    body = params.json_body(request)
    if not isinstance(body, dict):
        raise bad_request("body", "expected a JSON object with 'query' or 'name'")
    text, values, trusted = _statement(body)
    timeout, max_rows = _timeout(body), _max_rows(body)
    if not trusted:
        _check_text(text)

    def run(s: Any) -> tuple[list[Any], str | None] | StoreError | Forbidden | None:
        if not isinstance(s, RunsCypher):
            return None
        try:
            with deadline(timeout):  # planning and running share the query's timeout
                if not trusted:
                    check_plan(s.plan(text, values))
                return _first_rows(s, text, values, timeout, max_rows)
        except StoreUnavailable:
            raise  # down (503, and the handle reconnects next time), or out of time (504)
        except (StoreError, Forbidden) as exc:  # the query's fault, not the store's: keep the connection
            return exc

    try:
        outcome = store().call(run)
    except StoreTimeout:
        raise ApiError(504, "query_timeout", f"the query ran longer than {timeout:g} s and was terminated",
                       "timeout") from None
    if outcome is None:
        raise ApiError(409, "cypher_unavailable", "Cypher needs a Neo4j store (KGREC_STORE=neo4j://HOST:PORT)")
    if isinstance(outcome, Forbidden):
        raise ApiError(403, "forbidden_clause", str(outcome), "query")
    if isinstance(outcome, StoreError):
        raise _refusal(outcome)
    rows, cut = outcome
    body_out: dict[str, Any] = {"rows": rows, "count": len(rows), "truncated": cut is not None}
    if cut is not None:
        body_out["truncated_by"] = cut
    return jsonify(body_out)


def _check_text(text: str) -> None:
    try:
        check_text(text)
    except Forbidden as exc:
        raise ApiError(403, "forbidden_clause", str(exc), "query") from None
    except ValueError as exc:
        raise bad_request("query", str(exc)) from None


def _first_rows(s: Any, text: str, values: dict[str, Any], timeout: float,
                max_rows: int) -> tuple[list[Any], str | None]:
    """At most ``max_rows`` rows and ``MAX_RESPONSE_BYTES`` of JSON, pulled ``FETCH`` at a time as
    they stream; the row after the last is pulled only to know whether there were more. Then
    the transaction is rolled back, which stops the query at the server."""
    rows: list[Any] = []
    size = 0
    with s.read_stream(text, values, timeout=timeout, fetch_size=min(max_rows + 1, FETCH)) as stream:
        for row in stream:
            if len(rows) == max_rows:
                return rows, "max_rows"
            encoded = json.dumps(row, default=str, ensure_ascii=False)
            size += len(encoded) + 1
            if size > MAX_RESPONSE_BYTES:
                return rows, "max_bytes"
            rows.append(json.loads(encoded))
    return rows, None


def _refusal(exc: StoreError) -> ApiError:
    code = getattr(exc.__cause__, "code", None) or ""
    if code == ACCESS_MODE:
        return ApiError(403, "read_only", "this endpoint runs read transactions only; the query tried to write",
                        "query")
    return bad_request("query", str(exc))
