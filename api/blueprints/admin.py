"""Health, the model list and the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, jsonify
from werkzeug.wrappers import Response

from api.blueprints.context import engine, store
from api.openapi import build_spec

bp = Blueprint("admin", __name__)


@bp.get("/health")
def health() -> Response:
    """200 whenever the bundle is loaded (reads work); ``degraded`` when the store is down."""
    eng, handle = engine(), store()
    reachable = handle.reachable()
    stats = eng.overlay.stats()
    return jsonify({
        "status": "ok" if reachable else "degraded",
        "store": {"url": handle.url, "reachable": reachable},
        "bundle": {"loaded": True, "fingerprint": eng.fingerprint, "models": sorted(eng.models)},
        "overlay": {"users": stats.users, "interactions": stats.interactions},
    })


@bp.get("/models")
def models() -> Response:
    eng = engine()
    return jsonify({"default": eng.default_model, "fingerprint": eng.fingerprint, "models": eng.model_info()})


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(build_spec())
