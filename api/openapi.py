"""The OpenAPI 3.1 document of the JSON API, written as data.

It is what clients and the schemathesis suite test against, so every status a route can
return is listed with its body schema.
"""

from __future__ import annotations

from typing import Any

from kgrec.api.blueprints.cypher import OPENAPI as CYPHER_OPENAPI
from kgrec.graph.values import MAX_ATTR_KEY, MAX_ID, MAX_TEXT, MAX_URL, TS_MAX, TS_MIN

ERROR = {"$ref": "#/components/schemas/Error"}
#: What ``graph.values`` accepts as text: no control characters (and no lone surrogates,
#: which JSON Schema cannot say); ids of users and items also contain no "/" and are not "." or "..".
TEXT_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*$"
ID_PATTERN = r"^[^/\u0000-\u001f\u007f-\u009f]*[^/\s\u007f-\u009f][^/\u0000-\u001f\u007f-\u009f]*$"
ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID, "pattern": ID_PATTERN,
      "description": "a user or item id: text without control characters or '/', not '.' or '..'"}
TEXT = {"type": "string", "maxLength": MAX_TEXT, "pattern": TEXT_PATTERN}
#: Reads are open, or need a reader, analyst or writer key when the server sets KGREC_READ_KEY.
READ_SECURITY = [{}, {"reader": []}]


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
EXPLAIN = {"name": "explain", "in": "query", "required": False, "description": "attach reasons",
           "schema": {"type": "boolean", "default": False}}
EXCLUDE = {"name": "exclude", "in": "query", "required": False,
           "description": "comma-separated item ids never to return", "schema": {"type": "string"}}
TAGS = {"name": "tags", "in": "query", "required": False,
        "description": "comma-separated tag ids: only items carrying at least one of them (unknown ids match nothing)",
        "schema": {"type": "string"}}
NOT_TAGS = {"name": "not_tags", "in": "query", "required": False,
            "description": "comma-separated tag ids: only items carrying none of them", "schema": {"type": "string"}}


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
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error"], "additionalProperties": False,
        "properties": {"error": {
            "type": "object", "required": ["code", "message"], "additionalProperties": False,
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}},
        }},
    },
    "PathNode": {
        "type": "object", "required": ["label", "id", "name"],
        "properties": {"label": {"type": "string", "enum": ["User", "Item", "Tag", "Entity"]},
                       "id": {"type": "string"}, "name": {"type": ["string", "null"]}},
    },
    "PathRel": {
        "type": "object", "required": ["type", "forward"],
        "properties": {"type": {"type": "string"}, "forward": {"type": "boolean"}},
    },
    "Reason": {
        "type": "object", "required": ["nodes", "rels", "contribution", "text", "cypher", "params", "kind"],
        "properties": {
            "nodes": {"type": "array", "items": {"$ref": "#/components/schemas/PathNode"}, "minItems": 1},
            "rels": {"type": "array", "items": {"$ref": "#/components/schemas/PathRel"}},
            "contribution": {"type": "number"},
            "text": {"type": "string"},
            "cypher": {"type": "string"},
            "params": {"type": "object"},
            "kind": {"type": "string", "enum": ["cause", "evidence"]},
        },
    },
    "Recommendation": {
        "type": "object", "required": ["item", "title", "score", "rank", "source"],
        "properties": {
            "item": {"type": "string"}, "title": {"type": ["string", "null"]}, "score": {"type": "number"},
            "rank": {"type": "integer", "minimum": 1}, "source": {"type": "string"},
            "reasons": {"type": "array", "items": {"$ref": "#/components/schemas/Reason"},
                        "description": "the strongest reasons (KGREC_MAX_REASONS of them)"},
            "reasons_omitted": {"type": "integer", "minimum": 0, "description": "weaker reasons left out"},
            "omitted_contribution": {"type": "number",
                                     "description": "their summed contribution: shown + omitted = score"},
        },
    },
    "Recommendations": {
        "type": "object", "required": ["user", "model", "recommendations"],
        "properties": {
            "user": {"type": "string"}, "model": {"type": "string"}, "known_user": {"type": "boolean"},
            "recommendations": {"type": "array", "items": {"$ref": "#/components/schemas/Recommendation"}},
        },
    },
    "Similar": {
        "type": "object", "required": ["item", "similar"],
        "properties": {
            "item": {"type": "string"}, "title": {"type": ["string", "null"]}, "model": {"type": "string"},
            "similar": {"type": "array", "items": {"$ref": "#/components/schemas/Recommendation"}},
        },
    },
    "Explanation": {
        "type": "object", "required": ["user", "item", "model", "reasons"],
        "properties": {
            "user": {"type": "string"}, "item": {"type": "string"}, "title": {"type": ["string", "null"]},
            "model": {"type": "string"}, "score": {"type": "number"},
            "reasons": {"type": "array", "items": {"$ref": "#/components/schemas/Reason"}},
        },
    },
    "InteractionIn": {"oneOf": [{"$ref": "#/components/schemas/PositiveIn"},
                                {"$ref": "#/components/schemas/DislikeIn"}]},
    "PositiveIn": {
        "type": "object", "required": ["user", "item"], "additionalProperties": False,
        "description": "positive feedback: (:User)-[:INTERACTED {weight, rating, ts}]->(:Item)",
        "properties": {
            "user": ID,
            "item": ID,
            "type": {"const": "positive", "default": "positive"},
            "weight": {"type": "number", "exclusiveMinimum": 0, "maximum": 1.7e308, "default": 1.0},
            "rating": {"type": ["number", "null"], "minimum": -1.7e308, "maximum": 1.7e308},
            "ts": {"type": ["integer", "null"], "minimum": TS_MIN, "maximum": TS_MAX,
                   "description": "epoch seconds, years 1 to 9999"},
        },
    },
    "DislikeIn": {
        "type": "object", "required": ["user", "item", "type"], "additionalProperties": False,
        "description": "negative feedback: (:User)-[:DISLIKED {ts}]->(:Item); the item is never recommended "
                       "to this user again, and models that fold in history count it against similar items",
        "properties": {
            "user": ID,
            "item": ID,
            "type": {"const": "dislike"},
            "ts": {"type": ["integer", "null"], "minimum": TS_MIN, "maximum": TS_MAX,
                   "description": "epoch seconds, years 1 to 9999"},
        },
    },
    "HiddenIn": {
        "type": "object", "required": ["hidden"], "additionalProperties": False,
        "properties": {"hidden": {"type": "boolean"}},
    },
    "Hidden": {
        "type": "object", "required": ["id", "hidden"],
        "properties": {"id": {"type": "string"}, "hidden": {"type": "boolean"}},
    },
    "Attrs": {
        "type": "object",
        "propertyNames": {"minLength": 1, "maxLength": MAX_ATTR_KEY, "pattern": TEXT_PATTERN},
        "additionalProperties": {"anyOf": [TEXT, {"type": "boolean"},
                                           {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
                                           {"type": "number", "minimum": -1.7e308, "maximum": 1.7e308}]},
    },
    "UserIn": {
        "type": "object", "required": ["id"], "additionalProperties": False,
        "properties": {"id": ID, "attrs": {"$ref": "#/components/schemas/Attrs"}},
    },
    "ItemIn": {
        "type": "object", "required": ["id"], "additionalProperties": False,
        "properties": {"id": ID, "title": {"anyOf": [TEXT, {"type": "null"}]},
                       "attrs": {"$ref": "#/components/schemas/Attrs"}},
    },
    "Written": {
        "type": "object", "required": ["written"],
        "properties": {"written": {"type": "integer", "minimum": 0,
                                   "description": "distinct nodes or relationships written: rows with the same key "
                                                  "(an id; a (user, item) pair) count once, the last row winning"},
                       "users": {"type": "array", "items": {"type": "string"}},
                       "ids": {"type": "array", "items": {"type": "string"}}},
    },
    "User": {
        "type": "object", "required": ["id", "in_bundle", "attrs", "interactions", "history"],
        "properties": {
            "id": {"type": "string"}, "in_bundle": {"type": "boolean"}, "attrs": {"type": "object"},
            "interactions": {"type": "integer", "minimum": 0},
            "history": {"type": "array", "items": {
                "type": "object", "required": ["item", "weight"],
                "properties": {"item": {"type": "string"}, "title": {"type": ["string", "null"]},
                               "weight": {"type": "number"}}}},
            "dislikes": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Item": {
        "type": "object", "required": ["id", "title", "in_bundle", "attrs", "audience", "tags"],
        "properties": {
            "id": {"type": "string"}, "title": {"type": ["string", "null"]}, "in_bundle": {"type": "boolean"},
            "hidden": {"type": "boolean"},
            "attrs": {"type": "object"}, "audience": {"type": "integer", "minimum": 0},
            "tags": {"type": "array", "items": {
                "type": "object", "required": ["id", "name"],
                "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "count": {"type": "number"}}}},
        },
    },
    "Models": {
        "type": "object", "required": ["default", "fingerprint", "models"],
        "properties": {
            "default": {"type": "string"}, "fingerprint": {"type": "string"},
            "chain": {"type": "array", "items": {"type": "string"},
                      "description": "the fallback order after the requested model"},
            "models": {"type": "array", "items": {
                "type": "object", "required": ["name"],
                "properties": {"name": {"type": "string"}, "additive": {"type": "boolean"},
                               "default": {"type": "boolean"}, "fallback": {"type": "boolean"},
                               "folds_in_feedback": {"type": "boolean"}, "similar_items": {"type": "boolean"}}}},
        },
    },
    "Health": {
        "type": "object", "required": ["status", "store", "bundle"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded"]},
            "store": {"type": "object", "required": ["url", "reachable"],
                      "properties": {"url": {"type": "string"}, "reachable": {"type": "boolean"}}},
            "bundle": {"type": "object", "required": ["loaded", "fingerprint"],
                       "properties": {"loaded": {"type": "boolean"}, "fingerprint": {"type": "string"},
                                      "models": {"type": "array", "items": {"type": "string"}}}},
        },
    },
}


def _one_or_many(name: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{name}"}
    return {"required": True, "content": {"application/json": {"schema": {
        "oneOf": [ref, {"type": "array", "items": ref, "minItems": 1, "maxItems": 10000}]}}}}


def _write_op(summary: str, body: str, unknown_item: bool = False) -> dict[str, Any]:
    responses = {"201": _json({"$ref": "#/components/schemas/Written"}, "written"), **WRITE_ERRORS}
    if unknown_item:
        responses["404"] = _err("an interaction names an unknown item; nothing was written")
    return {"post": {
        "summary": summary, "security": [{"writer": []}], "requestBody": _one_or_many(body),
        "responses": responses,
    }}


def build_spec() -> dict[str, Any]:
    """The whole document; paths are relative to the server URL ``/v1``."""
    user = _path_param("user_id", "user id")
    item = _path_param("item_id", "item id")
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "kgrec", "version": "1.0.0",
                 "description": "Knowledge-graph recommendations with reasons you can replay in Cypher."},
        "servers": [{"url": "/v1"}],
        "paths": {
            "/users/{user_id}/recommendations": {"get": {
                "summary": "Top-k items for a user; unknown users get fallback items marked by source. Items the "
                           "user interacted with or disliked, hidden items and excluded ones never appear.",
                "parameters": [user, K, MODEL, EXCLUDE, EXCLUDE_ITEM, TAGS, TAG, NOT_TAGS, NOT_TAG, EXPLAIN],
                "responses": {"200": _json({"$ref": "#/components/schemas/Recommendations"}, "recommendations"),
                              "400": _err("bad k, model or explain"), "404": _err("no such route")},
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
