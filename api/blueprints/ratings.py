"""JSON v1: predicted ratings, ``GET /v1/users/{id}/ratings?items=a,b,c``.

HTTP only: what is answered comes from ``recommenders.serving.ratings`` (the same function as
``kgrec predict``). An unknown user or item gets the baseline and says so; bad input is a 400
naming the parameter; a bundle without a rating model answers 404.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request
from werkzeug.wrappers import Response

from kgrec.api import params
from kgrec.api.blueprints.context import server
from kgrec.api.errors import ApiError, bad_request
from kgrec.graph import values
from kgrec.recommenders.serving import ratings

bp = Blueprint("ratings", __name__)
#: Most items one request may ask about.
MAX_ITEMS = 100
#: Co-rated items and trusted users listed per explanation.
LISTED = 3

OPENAPI: dict[str, Any] = {"get": {
    "summary": "Predicted ratings of items for a user, each with its parts (global mean, biases, taste, "
               "co-rated items, trusted users), which add up to it",
    "parameters": [  # api.openapi puts the user_id path parameter first
        {"name": "items", "in": "query", "required": True,
         "description": f"comma-separated item ids, 1..{MAX_ITEMS} (unknown ones get the baseline)",
         "schema": {"type": "string", "minLength": 1}},
        {"name": "model", "in": "query", "required": False,
         "description": "a rating model of the bundle (default: the lowest validation RMSE)",
         "schema": {"type": "string", "maxLength": 64}},
    ],
    "responses": {
        "200": {"description": "one predicted rating per item, in the order asked",
                "content": {"application/json": {"schema": {"type": "object", "required": ["user", "model", "ratings"],
                                                            "properties": {"user": {"type": "string"},
                                                                           "model": {"type": "string"},
                                                                           "ratings": {"type": "array"}}}}}},
        "400": {"description": "bad items or model (the error names the parameter)",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "404": {"description": "the bundle has no model that predicts ratings",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
    },
}}


def _items(raw: str | None) -> list[str]:
    if raw is None or not raw.strip():
        raise bad_request("items", "items is required: comma-separated item ids")
    items = list(dict.fromkeys(x.strip() for x in raw.split(",") if x.strip()))
    if not items:
        raise bad_request("items", "items names no item id")
    if len(items) > MAX_ITEMS:
        raise bad_request("items", f"items names {len(items)} ids; at most {MAX_ITEMS} per request")
    for item in items:
        problem = values.id_problem(item)
        if problem is not None:
            raise bad_request("items", f"item id {params.printable(item)!r} {problem}")
    return items


@bp.get("/users/<user_id>/ratings")
def user_ratings(user_id: str) -> Response:
    srv = server()
    items = _items(request.args.get("items"))
    model = request.args.get("model")
    try:
        name = ratings.rating_model(srv, model)
    except ratings.NoRatingModel as exc:
        if model is not None and srv.raters:
            raise bad_request("model", str(exc)) from None
        raise ApiError(404, "no_rating_model", str(exc), "model" if model is not None else None) from None
    answers = ratings.predict(srv, [(user_id, i) for i in items], name, LISTED)
    g.kgrec_model = name
    return jsonify({"user": user_id, "model": name, "known_user": user_id in srv.snapshot.users,
                    "ratings": [a.to_dict(srv.title(a.item)) for a in answers]})
