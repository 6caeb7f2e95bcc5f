"""Health, the model list and the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, jsonify
from werkzeug.wrappers import Response

from kgrec.api.blueprints.context import server, store
from kgrec.api.openapi import build_spec
from kgrec.recommenders.base import FoldsInHistory, SimilarItems

bp = Blueprint("admin", __name__)


@bp.get("/health")
def health() -> Response:
    """200 whenever the bundle is loaded (reads work); ``degraded`` when the store is down."""
    srv, handle = server(), store()
    reachable = handle.reachable()
    return jsonify({
        "status": "ok" if reachable else "degraded",
        "store": {"url": handle.url, "reachable": reachable},
        "bundle": {"loaded": True, "fingerprint": srv.snapshot.fingerprint, "models": sorted(srv.models),
                   # changes with any byte of the bundle (recommenders.bundle.integrity)
                   "digest": srv.seal.digest if srv.seal else None,
                   "signed": bool(srv.seal and srv.seal.signed),
                   "signature_checked": bool(srv.seal and srv.seal.authenticated)},
    })


@bp.get("/models")
def models() -> Response:
    srv = server()
    info = [
        {"name": name, "additive": bool(type(m).additive), "default": name == srv.default_model,
         "fallback": name in srv.chain, "folds_in_feedback": isinstance(m, FoldsInHistory),
         "similar_items": isinstance(m, SimilarItems)}
        for name, m in sorted(srv.models.items())
    ]
    return jsonify({"default": srv.default_model, "fingerprint": srv.snapshot.fingerprint, "chain": srv.chain,
                    "models": info})


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(build_spec())
