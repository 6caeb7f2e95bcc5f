"""The OpenAPI 3.1 document of the JSON API, written as data.

It is what clients and the schemathesis suite test against, so every status a route can
return is listed with its body schema.
"""

from __future__ import annotations

from typing import Any

from kgrec.api.blueprints.cypher import OPENAPI as CYPHER_OPENAPI
from kgrec.api.blueprints.ratings import OPENAPI as RATINGS_OPENAPI
from kgrec.api.openapi_schemas import ERROR, ID, SCHEMAS
from kgrec.graph.values import MAX_URL

#: Reads are open, or need a reader, analyst or writer key when the server sets KGREC_READ_KEY.
READ_SECURITY: list[dict[str, list[str]]] = [{}, {"reader": []}]


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(ERROR, description)


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": ID}


K = {"name": "k", "in": "query", "required": False, "description": "how many items (1..1000)",
     "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10}}
MODEL = {"name": "model", "in": "query", "required": False,
         "description": "a model of the bundle (see /v1/models); the default when absent",
         "schema": {"type": "string", "maxLength": 64}}
POLICY = {"name": "policy", "in": "query", "required": False,
          "description": "learn (default: hides what the user was shown and skipped), explore (learn, exploring "
                         "slots 4-10 with logged propensities) or greedy (the top k every time)",
          "schema": {"type": "string", "enum": ["greedy", "learn", "explore"]}}
EXPLAIN = {"name": "explain", "in": "query", "required": False, "description": "attach reasons",
           "schema": {"type": "boolean", "default": False}}
EXCLUDE = {"name": "exclude", "in": "query", "required": False,
           "description": "comma-separated item ids never to return", "schema": {"type": "string"}}
TAGS = {"name": "tags", "in": "query", "required": False,
        "description": "comma-separated tag ids: only items carrying at least one of them (unknown ids match nothing)",
        "schema": {"type": "string"}}
NOT_TAGS = {"name": "not_tags", "in": "query", "required": False,
            "description": "comma-separated tag ids: only items carrying none of them", "schema": {"type": "string"}}

NEAR = {"name": "near", "in": "query", "required": False,
        "description": "LAT,LON (WGS-84 degrees): only items within radius_km of this point (needs radius_km)",
        "schema": {"type": "string"}}
RADIUS_KM = {"name": "radius_km", "in": "query", "required": False, "description": "the radius for near, in km",
             "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 20040}}
Q = {"name": "q", "in": "query", "required": False,
     "description": "what the user is looking for now, in words (at most 200 characters and 20 words): only items "
                    "whose title, tags or attributes hold one of them, re-ranked towards the best matches and blended "
                    "with the user's taste; reasons name the matching words",
     "schema": {"type": "string", "minLength": 1, "maxLength": 200}}
AT = {"name": "at", "in": "query", "required": False,
      "description": "LAT,LON: the user is here now; the location model measures distance from it",
      "schema": {"type": "string"}}


def _whole(name: str, of: str) -> dict[str, Any]:
    """The repeatable form of a comma-separated id filter, each value taken whole (ids with commas)."""
    return {"name": name, "in": "query", "required": False, "style": "form", "explode": True,
            "description": f"one id for {of}, taken whole; repeatable",
            "schema": {"type": "array", "items": {"type": "string"}}}


TAG, NOT_TAG, EXCLUDE_ITEM = _whole("tag", "tags"), _whole("not_tag", "not_tags"), _whole("exclude_item", "exclude")

WRITE_ERRORS = {
    "400": _err("malformed JSON, nesting deeper than 32, or an invalid field (named in error.field): text with "
                "control characters or lone surrogates, an id with '/', a number outside 64 bits, a bad ts"),
    "401": _err("missing or wrong writer key (KGREC_API_KEY)"),
    "413": _err("body larger than KGREC_MAX_BODY (also when sent chunked)"),
    "503": _err("the graph store is down; nothing was written"),
    "504": _err("the graph store did not answer within KGREC_STORE_TIMEOUT; writes are idempotent: send it again"),
}

def _one_or_many(name: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{name}"}
    return {"required": True, "content": {"application/json": {"schema": {
        "oneOf": [ref, {"type": "array", "items": ref, "minItems": 1, "maxItems": 10000}]}}}}


def _write_op(summary: str, body: str, unknown_item: bool = False) -> dict[str, Any]:
    responses = {"201": _json({"$ref": "#/components/schemas/Written"}, "written"), **WRITE_ERRORS}
    if unknown_item:
        responses["404"] = _err("an interaction names an unknown item or impression; nothing was written")
        responses["422"] = _err("an impression_id names another user's impression, or another item's; "
                                "nothing was written")
    return {"post": {
        "summary": summary, "security": [{"writer": []}], "requestBody": _one_or_many(body),
        "responses": responses,
    }}


def build_spec() -> dict[str, Any]:
    """The whole document; paths are relative to the server URL ``/v1``."""
    user = _path_param("user_id", "user id")
    item = _path_param("item_id", "item id")
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "kgrec", "version": "1.0.0",
                 "description": "Knowledge-graph recommendations with reasons you can replay in Cypher."},
        "servers": [{"url": "/v1"}],
        "paths": {
            "/users/{user_id}/recommendations": {"get": {
                "summary": "Top-k items for a user; unknown users get fallback items marked by source. Items the "
                           "user interacted with or disliked, hidden items and excluded ones never appear.",
                "parameters": [user, K, MODEL, EXCLUDE, EXCLUDE_ITEM, TAGS, TAG, NOT_TAGS, NOT_TAG, EXPLAIN, NEAR,
                               RADIUS_KM, AT, Q, POLICY],
                "responses": {"200": _json({"$ref": "#/components/schemas/Recommendations"}, "recommendations"),
                              "400": _err("bad k, model, explain, near, radius_km, at, q (empty, over-long or "
                                          "without a word) or policy"),
                              "404": _err("no such route")},
            }},
            "/items/{item_id}/similar": {"get": {
                "summary": "Items similar to an item (hidden items never appear)",
                "parameters": [item, K, MODEL, TAGS, TAG, NOT_TAGS, NOT_TAG, EXPLAIN],
                "responses": {"200": _json({"$ref": "#/components/schemas/Similar"}, "similar items"),
                              "400": _err("bad k or model"), "404": _err("unknown item")},
            }},
            "/users/{user_id}/recommendations/{item_id}/explanation": {"get": {
                "summary": "Why an item is (or would be) recommended to a user",
                "parameters": [user, item, MODEL],
                "responses": {"200": _json({"$ref": "#/components/schemas/Explanation"}, "reasons"),
                              "400": _err("unknown model"), "404": _err("unknown item")},
            }},
            "/users/{user_id}/ratings": {"get": {**RATINGS_OPENAPI["get"],
                                                 "parameters": [user, *RATINGS_OPENAPI["get"]["parameters"]]}},
            "/users/{user_id}": {"get": {
                "summary": "A user and their history",
                "parameters": [user],
                "responses": {"200": _json({"$ref": "#/components/schemas/User"}, "the user"),
                              "404": _err("unknown user")},
            }},
            "/items/{item_id}": {
                "get": {
                    "summary": "An item, its audience and tags",
                    "parameters": [item],
                    "responses": {"200": _json({"$ref": "#/components/schemas/Item"}, "the item"),
                                  "404": _err("unknown item")},
                },
                "patch": {
                    "summary": "Hide an item from every list (recommended or similar) from the next request on, "
                               "on every worker, or bring it back",
                    "parameters": [item], "security": [{"bearer": []}],
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/HiddenIn"}}}},
                    "responses": {"200": _json({"$ref": "#/components/schemas/Hidden"}, "the item's flag now"),
                                  "404": _err("unknown item; nothing was written"), **WRITE_ERRORS},
                },
            },
            "/interactions": _write_op("Record feedback (positive, or type dislike); every worker serves it "
                                       "from the next request on",
                                       "InteractionIn", unknown_item=True),
            "/users": _write_op("Create or update users", "UserIn"),
            "/items": _write_op("Create or update items", "ItemIn"),
            "/cypher": CYPHER_OPENAPI,
            "/models": {"get": {
                "summary": "The models of the loaded bundle",
                "responses": {"200": _json({"$ref": "#/components/schemas/Models"}, "models")},
            }},
            "/health": {"get": {
                "summary": "Store reachable, bundle loaded, fingerprint",
                "responses": {"200": _json({"$ref": "#/components/schemas/Health"}, "health")},
            }},
            "/openapi.json": {"get": {
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
            }},
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "writer": {"type": "http", "scheme": "bearer",
                           "description": "a writer key (KGREC_API_KEY, comma-separated to rotate): writes"},
                "analyst": {"type": "http", "scheme": "bearer",
                            "description": "an analyst key (KGREC_ANALYST_KEY): read-only Cypher, no writes"},
                "reader": {"type": "http", "scheme": "bearer",
                           "description": "when the server sets KGREC_READ_KEY, reads need a reader, analyst or "
                                          "writer key; otherwise reads are open"},
            },
        },
    }
    _reads_need_reader_key(spec["paths"])
    return spec


#: Reads that stay open whatever the settings (load balancers' probes, this document).
OPEN_PATHS = ("/health", "/openapi.json")


def _reads_need_reader_key(paths: dict[str, Any]) -> None:
    """Every read but ``OPEN_PATHS``: open, or a reader's key with KGREC_READ_KEY; and 400 for
    path or query text that is not storable text (``graph.values``)."""
    for path, ops in paths.items():
        read = ops.get("get")
        if read is None or path in OPEN_PATHS:
            continue
        read["security"] = READ_SECURITY
        read["responses"].setdefault("400", _err("a parameter holds control characters or is malformed"))
        read["responses"]["401"] = _err("KGREC_READ_KEY is set and the request has no reader, analyst or writer key")
    for ops in paths.values():
        for op in ops.values():
            op["responses"]["414"] = _err(f"the URL is longer than {MAX_URL} characters")
