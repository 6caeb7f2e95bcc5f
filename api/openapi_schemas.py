"""The body schemas of the OpenAPI document (``components.schemas``), written as data: what
``graph.values`` accepts, said in JSON Schema so clients and the schemathesis suite can rely on it."""

from __future__ import annotations

from typing import Any

from kgrec.graph.values import MAX_ATTR_KEY, MAX_ID, MAX_TEXT, TS_MAX, TS_MIN

ERROR = {"$ref": "#/components/schemas/Error"}
#: What ``graph.values`` accepts as text: no control characters (and no lone surrogates,
#: which JSON Schema cannot say); ids of users and items also contain no "/" and are not "." or "..".
TEXT_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*$"
ID_PATTERN = r"^[^/\u0000-\u001f\u007f-\u009f]*[^/\s\u007f-\u009f][^/\u0000-\u001f\u007f-\u009f]*$"
ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID, "pattern": ID_PATTERN,
      "description": "a user or item id: text without control characters or '/', not '.' or '..'"}
TEXT = {"type": "string", "maxLength": MAX_TEXT, "pattern": TEXT_PATTERN}

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
            "propensity": {"type": "number", "exclusiveMinimum": 0, "maximum": 1,
                           "description": "the probability with which the serving policy put the item at this "
                                          "rank, given the items above it (1 when the policy is deterministic)"},
            "explored": {"type": "boolean", "description": "shown to learn, not as the policy's best guess"},
            "exploration": {"type": "string", "description": "what an explored item probes"},
            "impression_id": {"type": "string", "description": "the logged impression feedback may name"},
        },
    },
    "Recommendations": {
        "type": "object", "required": ["user", "model", "recommendations"],
        "properties": {
            "user": {"type": "string"}, "model": {"type": "string"}, "known_user": {"type": "boolean"},
            "policy": {"type": "string", "enum": ["greedy", "learn", "explore"]},
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
            "impression_id": {"type": "string", "maxLength": 80,
                              "description": "the impression this feedback answers (from a served list); "
                                             "it must have shown this item to this user"},
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
            "impression_id": {"type": "string", "maxLength": 80,
                              "description": "the impression this feedback answers (from a served list); "
                                             "it must have shown this item to this user"},
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
                       "impression_outcomes": {
                           "type": "object", "description": "feedback naming impressions: newly recorded, and "
                                                            "recorded before (the same feedback counts once)",
                           "properties": {"recorded": {"type": "integer", "minimum": 0},
                                          "already_recorded": {"type": "integer", "minimum": 0}}},
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
                                      "models": {"type": "array", "items": {"type": "string"}},
                                      "digest": {"type": ["string", "null"],
                                                 "description": "sha256 of the sealed manifest: changes "
                                                                "with any byte of the bundle"},
                                      "signed": {"type": "boolean"},
                                      "signature_checked": {"type": "boolean"}}},
        },
    },
}
