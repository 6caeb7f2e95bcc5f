"""JSON v1: recommendations, similar items, explanations, feedback and entity writes."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from werkzeug.wrappers import Response

from api import params
from api.auth import require_api_key
from api.blueprints.context import engine, settings, store
from api.engine import reason_json
from api.errors import ApiError, not_found
from graph.records import Interaction
from graph.schema import Label
from graph.store import GraphStore, StoreUnavailable

bp = Blueprint("recommend", __name__)


def _query_common() -> tuple[int, str | None]:
    cfg, eng = settings(), engine()
    k = params.parse_k(request.args.get("k"), cfg.default_k, cfg.max_k)
    model = params.parse_model(request.args.get("model"), set(eng.models))
    return k, model


@bp.get("/users/<user_id>/recommendations")
def recommendations(user_id: str) -> Response:
    k, model = _query_common()
    explain = params.parse_bool("explain", request.args.get("explain"))
    exclude = params.parse_exclude(request.args.get("exclude"))
    eng = engine()
    served = eng.recommend(user_id, k, model, exclude, explain)
    return jsonify({
        "user": user_id,
        "model": model or eng.default_model,
        "known_user": eng.knows_user(user_id),
        "recommendations": [s.to_dict() for s in served],
    })


@bp.get("/items/<item_id>/similar")
def similar(item_id: str) -> Response:
    k, model = _query_common()
    explain = params.parse_bool("explain", request.args.get("explain"))
    eng = engine()
    if not eng.knows_item(item_id):
        raise not_found("item", item_id, "item")
    served = eng.similar(item_id, k, model, explain)
    return jsonify({"item": item_id, "title": eng.title(item_id), "model": model or eng.default_model,
                    "similar": [s.to_dict() for s in served]})


@bp.get("/users/<user_id>/recommendations/<item_id>/explanation")
def explanation(user_id: str, item_id: str) -> Response:
    eng = engine()
    model = params.parse_model(request.args.get("model"), set(eng.models))
    if not eng.knows_item(item_id):
        raise not_found("item", item_id, "item")
    used, reasons = eng.explain(user_id, item_id, model)
    return jsonify({
        "user": user_id, "item": item_id, "title": eng.title(item_id), "model": used,
        "score": sum(r.contribution for r in reasons),
        "reasons": [reason_json(r) for r in reasons],
    })


@bp.get("/users/<user_id>")
def get_user(user_id: str) -> Response:
    eng = engine()
    s = eng.snapshot
    u = s.users.get(user_id)
    extra = eng.overlay.user(user_id)
    node = None if (u is not None or extra is not None) else _store_node(Label.USER, user_id)
    history = eng.history(user_id)
    if u is None and extra is None and node is None and not history:
        raise not_found("user", user_id, "user")
    attrs = dict(s.user_attrs[u]) if u is not None else {}
    attrs.update((extra or node or {}).get("attrs", {}))
    top = sorted(history.items(), key=lambda kv: (-kv[1], kv[0]))[:50]
    return jsonify({
        "id": user_id, "in_bundle": u is not None, "attrs": attrs,
        "interactions": len(history),
        "history": [{"item": i, "title": eng.title(i), "weight": w} for i, w in top],
    })


@bp.get("/items/<item_id>")
def get_item(item_id: str) -> Response:
    eng = engine()
    s = eng.snapshot
    i = s.items.get(item_id)
    extra = eng.overlay.item(item_id)
    node = None if (i is not None or extra is not None) else _store_node(Label.ITEM, item_id)
    if i is None and extra is None and node is None:
        raise not_found("item", item_id, "item")
    if i is None:
        src = extra or node or {}
        return jsonify({"id": item_id, "title": src.get("title"), "in_bundle": False,
                        "attrs": src.get("attrs", {}), "audience": 0, "tags": []})
    it = s.item_tags
    tag_idx = it.indices[it.indptr[i]:it.indptr[i + 1]]
    counts = it.data[it.indptr[i]:it.indptr[i + 1]]
    tags = sorted(zip(tag_idx.tolist(), counts.tolist(), strict=True), key=lambda tc: (-tc[1], tc[0]))[:20]
    return jsonify({
        "id": item_id, "title": s.item_titles[i], "in_bundle": True, "attrs": dict(s.item_attrs[i]),
        "audience": eng.audience(item_id),
        "tags": [{"id": s.tags.ids[t], "name": s.tag_names[t], "count": c} for t, c in tags],
    })


def _store_node(label: Label, key: str) -> dict[str, Any] | None:
    """A node created after the bundle (maybe by another worker); None when the store is down."""
    try:
        return store().call(lambda st: st.get_node(label, key))
    except StoreUnavailable:
        return None


# -- writes -----------------------------------------------------------------------------
def _unavailable(exc: StoreUnavailable) -> ApiError:
    return ApiError(503, "store_unavailable", f"the graph store is unavailable; nothing was written ({exc})")


def _write(fn: Any) -> int:
    try:
        return int(store().call(fn, write=True))
    except StoreUnavailable as exc:
        raise _unavailable(exc) from exc


@bp.post("/interactions")
@require_api_key
def post_interactions() -> tuple[Response, int]:
    rows, was_list = params.as_rows(params.json_body(request), settings().max_batch)
    parsed = [params.interaction(r, params.prefix_for(n, was_list)) for n, r in enumerate(rows)]
    _check_items_exist(parsed, was_list)
    written = _write(lambda st: st.upsert_interactions(parsed))
    engine().overlay.add_interactions(parsed)
    return jsonify({"written": written, "users": sorted({r.user for r in parsed})}), 201


def _check_items_exist(rows: list[Interaction], was_list: bool) -> None:
    """Feedback on an item nobody knows is a client bug: 404 naming the row, nothing written."""
    eng = engine()
    unknown = [(n, r) for n, r in enumerate(rows) if not eng.knows_item(r.item)]
    if not unknown:
        return

    def missing(st: GraphStore) -> list[tuple[int, Interaction]]:
        return [(n, r) for n, r in unknown if st.get_node(Label.ITEM, r.item) is None]

    try:
        still = store().call(missing)
    except StoreUnavailable as exc:
        raise _unavailable(exc) from exc
    if still:
        n, r = still[0]
        raise not_found("item", r.item, f"{params.prefix_for(n, was_list)}item")


@bp.post("/users")
@require_api_key
def post_users() -> tuple[Response, int]:
    rows, was_list = params.as_rows(params.json_body(request), settings().max_batch)
    parsed = [params.user(r, params.prefix_for(n, was_list)) for n, r in enumerate(rows)]
    written = _write(lambda st: st.upsert_users(parsed))
    engine().overlay.add_users(parsed)
    return jsonify({"written": written, "ids": [u.id for u in parsed]}), 201


@bp.post("/items")
@require_api_key
def post_items() -> tuple[Response, int]:
    rows, was_list = params.as_rows(params.json_body(request), settings().max_batch)
    parsed = [params.item(r, params.prefix_for(n, was_list)) for n, r in enumerate(rows)]
    written = _write(lambda st: st.upsert_items(parsed))
    engine().overlay.add_items(parsed)
    return jsonify({"written": written, "ids": [i.id for i in parsed]}), 201
