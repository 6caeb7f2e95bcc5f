"""``POST /v1/cypher``: read-only Cypher for analysts' tools and notebooks.

The text runs in a READ transaction, so the server itself refuses any write whatever the
query says, and with a transaction timeout the server enforces, so a runaway query is
terminated rather than left running. It sits behind the API key because a read can still
see the whole graph. Cookbook queries run by name, with their parameters checked first.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from werkzeug.wrappers import Response

from api.auth import require_api_key
from api.blueprints.context import store
from api.errors import ApiError, bad_request
from graph.cypher import Cookbook, CookbookError
from graph.store import StoreError, StoreUnavailable

bp = Blueprint("cypher", __name__)

DEFAULT_TIMEOUT, MAX_TIMEOUT = 10.0, 60.0
DEFAULT_ROWS, MAX_ROWS = 1000, 10_000
#: Neo4j status codes this endpoint turns into their own answers.
ACCESS_MODE = "Neo.ClientError.Statement.AccessMode"
TIMED_OUT = (
    "Neo.ClientError.Transaction.TransactionTimedOut",
    "Neo.ClientError.Transaction.TransactionTimedOutClientConfiguration",
)

OPENAPI: dict[str, Any] = {"post": {
    "summary": "Run read-only Cypher (text or a cookbook query by name) in a read transaction with a timeout",
    "security": [{"bearer": []}],
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
                           "count": {"type": "integer"}, "truncated": {"type": "boolean"}}}}}},
        **{status: {"description": text, "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/Error"}}}} for status, text in (
            ("400", "invalid body, unknown cookbook query, bad parameters, or a query Neo4j rejects"),
            ("401", "missing or wrong bearer token"),
            ("403", "the query tried to write"),
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


def _statement(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    query, name, params = body.get("query"), body.get("name"), body.get("params", {})
    if (query is None) == (name is None):
        raise bad_request("query", "give exactly one of 'query' (Cypher text) or 'name' (a cookbook query)")
    if not isinstance(params, dict):
        raise bad_request("params", "params must be a JSON object")
    if name is not None:
        if not isinstance(name, str):
            raise bad_request("name", "name must be a string")
        cookbook = current_app.extensions.setdefault("kgrec.cookbook", Cookbook())
        try:
            entry = cookbook.get(name)
        except CookbookError as exc:
            raise bad_request("name", str(exc)) from None
        try:
            return entry.text, entry.bind(params)
        except CookbookError as exc:
            raise bad_request("params", str(exc)) from None
    if not isinstance(query, str) or not query.strip():
        raise bad_request("query", "query must be non-empty Cypher text")
    return query, params


@bp.post("/cypher")
@require_api_key
def cypher() -> Response:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise bad_request("body", "expected a JSON object with 'query' or 'name'")
    text, params = _statement(body)
    timeout, max_rows = _timeout(body), _max_rows(body)

    def run(s: Any) -> list[dict[str, Any]] | StoreError | None:
        run_read = getattr(s, "run_read", None)
        if run_read is None:
            return None
        try:
            return run_read(text, params, timeout=timeout)
        except StoreUnavailable:
            raise
        except StoreError as exc:  # the query's fault, not the store's: keep the connection
            return exc

    outcome = store().call(run)
    if outcome is None:
        raise ApiError(409, "cypher_unavailable", "Cypher needs a Neo4j store (KGREC_STORE=neo4j://HOST:PORT)")
    if isinstance(outcome, StoreError):
        code = getattr(outcome.__cause__, "code", None) or ""
        if code == ACCESS_MODE:
            raise ApiError(403, "read_only", "this endpoint runs read transactions only; the query tried to write",
                           "query")
        if code in TIMED_OUT:
            raise ApiError(504, "query_timeout", f"the query ran longer than {timeout:g} s and was terminated",
                           "timeout")
        raise bad_request("query", str(outcome))
    rows = json.loads(json.dumps(outcome[:max_rows], default=str))
    return jsonify({"rows": rows, "count": len(rows), "truncated": len(outcome) > max_rows})
