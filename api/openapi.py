"""The OpenAPI 3.1 document of the JSON API, written as data.

It is what clients and the schemathesis suite test against, so every status a route can
return is listed with its body schema.
"""

from __future__ import annotations

from typing import Any

from api.blueprints.cypher import OPENAPI as CYPHER_OPENAPI

ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(ERROR, description)


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "minLength": 1}}


K = {"name": "k", "in": "query", "required": False, "description": "how many items (1..1000)",
     "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10}}
MODEL = {"name": "model", "in": "query", "required": False,
         "description": "a model of the bundle (see /v1/models); the default when absent",
         "schema": {"type": "string"}}
EXPLAIN = {"name": "explain", "in": "query", "required": False, "description": "attach reasons",
           "schema": {"type": "boolean", "default": False}}
EXCLUDE = {"name": "exclude", "in": "query", "required": False,
           "description": "comma-separated item ids never to return", "schema": {"type": "string"}}
TAGS = {"name": "tags", "in": "query", "required": False,
        "description": "comma-separated tag ids: only items carrying at least one of them (unknown ids match nothing)",
        "schema": {"type": "string"}}
NOT_TAGS = {"name": "not_tags", "in": "query", "required": False,
            "description": "comma-separated tag ids: only items carrying none of them", "schema": {"type": "string"}}

WRITE_ERRORS = {
    "400": _err("malformed JSON or an invalid field (named in error.field)"),
    "401": _err("missing or wrong bearer token"),
    "413": _err("body larger than KGREC_MAX_BODY"),
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
            "user": {"type": "string", "minLength": 1, "maxLength": 512, "pattern": r"\S"},
            "item": {"type": "string", "minLength": 1, "maxLength": 512, "pattern": r"\S"},
            "type": {"const": "positive", "default": "positive"},
            "weight": {"type": "number", "exclusiveMinimum": 0, "default": 1.0},
            "rating": {"type": ["number", "null"]},
            "ts": {"type": ["integer", "null"], "minimum": 0},
        },
    },
    "DislikeIn": {
        "type": "object", "required": ["user", "item", "type"], "additionalProperties": False,
        "description": "negative feedback: (:User)-[:DISLIKED {ts}]->(:Item); the item is never recommended "
                       "to this user again, and models that fold in history count it against similar items",
        "properties": {
            "user": {"type": "string", "minLength": 1, "maxLength": 512, "pattern": r"\S"},
            "item": {"type": "string", "minLength": 1, "maxLength": 512, "pattern": r"\S"},
            "type": {"const": "dislike"},
            "ts": {"type": ["integer", "null"], "minimum": 0},
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
        "additionalProperties": {"type": ["string", "number", "boolean"]},
    },
    "UserIn": {
        "type": "object", "required": ["id"], "additionalProperties": False,
        "properties": {"id": {"type": "string", "minLength": 1, "maxLength": 512, "pattern": r"\S"},
                       "attrs": {"$ref": "#/components/schemas/Attrs"}},
    },
    "ItemIn": {
        "type": "object", "required": ["id"], "additionalProperties": False,
        "properties": {"id": {"type": "string", "minLength": 1, "maxLength": 512, "pattern": r"\S"},
                       "title": {"type": ["string", "null"]},
                       "attrs": {"$ref": "#/components/schemas/Attrs"}},
    },
    "Written": {
        "type": "object", "required": ["written"],
        "properties": {"written": {"type": "integer", "minimum": 0},
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
        "summary": summary, "security": [{"bearer": []}], "requestBody": _one_or_many(body),
        "responses": responses,
    }}


def build_spec() -> dict[str, Any]:
    """The whole document; paths are relative to the server URL ``/v1``."""
    user = _path_param("user_id", "user id")
    item = _path_param("item_id", "item id")
    return {
        "openapi": "3.1.0",
        "info": {"title": "kgrec", "version": "1.0.0",
                 "description": "Knowledge-graph recommendations with reasons you can replay in Cypher."},
        "servers": [{"url": "/v1"}],
        "paths": {
            "/users/{user_id}/recommendations": {"get": {
                "summary": "Top-k items for a user; unknown users get fallback items marked by source. Items the "
                           "user interacted with or disliked, hidden items and excluded ones never appear.",
                "parameters": [user, K, MODEL, EXCLUDE, TAGS, NOT_TAGS, EXPLAIN],
                "responses": {"200": _json({"$ref": "#/components/schemas/Recommendations"}, "recommendations"),
                              "400": _err("bad k, model or explain"), "404": _err("no such route")},
            }},
            "/items/{item_id}/similar": {"get": {
                "summary": "Items similar to an item (hidden items never appear)",
                "parameters": [item, K, MODEL, TAGS, NOT_TAGS, EXPLAIN],
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
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "the server's KGREC_API_KEY"}},
        },
    }
