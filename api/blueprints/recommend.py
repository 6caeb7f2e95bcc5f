"""JSON v1: recommendations, similar items, explanations, feedback and entity writes.

HTTP only: parameters, errors and auth. What is served comes from ``recommenders.serving``
(the same ``Server`` that ``kgrec recommend`` uses), with the user's state beyond the bundle
read from the store on each request (``recommenders.live``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import Blueprint, g, jsonify, request
from werkzeug.wrappers import Response

from kgrec.api import params
from kgrec.api.auth import require_api_key
from kgrec.api.blueprints.context import impression_logger, live, server, settings, store
from kgrec.api.errors import ApiError, bad_request, not_found
from kgrec.api.impression_feedback import outcomes_for, take_impression_ids
from kgrec.api.response_headers import mark_stale
from kgrec.graph.impressions import as_impression_store
from kgrec.graph.records import Dislike, Interaction
from kgrec.graph.schema import Label
from kgrec.graph.store import GraphStore
from kgrec.graph.store_errors import StoreTimeout, StoreUnavailable
from kgrec.recommenders.serving.impression_log import impressions, new_request_id, seed_of
from kgrec.recommenders.serving.live_state import Live
from kgrec.recommenders.serving.policies import POLICIES
from kgrec.recommenders.serving.query import Query, UserState
from kgrec.recommenders.serving.reason_json import Served, reason_json
from kgrec.recommenders.serving.server import Server

bp = Blueprint("recommend", __name__)


def _query_common() -> tuple[int, str | None]:
    cfg, srv = settings(), server()
    k = params.parse_k(request.args.get("k"), cfg.default_k, cfg.max_k)
    model = params.parse_model(request.args.get("model"), set(srv.models))
    return k, model


def _live(user: str) -> Live:
    """The user's state beyond the bundle; a read served without the store says so in a header
    (``api.response_headers``)."""
    state = live().state(user)
    if state.stale:
        mark_stale()
    return state


@bp.get("/users/<user_id>/recommendations")
def recommendations(user_id: str) -> Response:
    k, model = _query_common()
    q = Query(user_id, k, model, exclude=params.id_filter(request.args, "exclude"),
              tags=params.id_filter(request.args, "tags"), not_tags=params.id_filter(request.args, "not_tags"),
              explain=params.parse_bool("explain", request.args.get("explain")), **params.geo_query(request.args),
              q=params.query_text(request.args))
    srv, state = server(), _live(user_id).state
    served, policy = logged_recommendations(srv, q, state, _policy(request.args.get("policy")))
    g.kgrec_model = model or srv.default_model
    g.kgrec_sources = [s.source for s in served]
    return jsonify({
        "user": user_id,
        "model": model or srv.default_model,
        "known_user": user_id in srv.snapshot.users or state.known or bool(state.history),
        "policy": policy,
        "recommendations": [s.to_dict() for s in served],
    })


def _policy(raw: str | None) -> str | None:
    if raw is None:
        return None
    if raw not in POLICIES:
        raise bad_request("policy", f"policy must be one of {', '.join(POLICIES)}, got {params.printable(raw)!r}")
    return raw


def logged_recommendations(srv: Server, q: Query, state: UserState, policy: str | None) -> tuple[list[Served], str]:
    """Serve ``q`` under ``policy`` and, unless ``KGREC_IMPRESSIONS=off``, hand its impressions to
    the worker's logger (never waiting for the store); items carry their impression ids only when
    the logger took them."""
    request_id = new_request_id()
    decision = srv.decide(replace(q, policy=policy, seed=seed_of(request_id)), state)
    served = decision.served
    logger = impression_logger()
    if logger is not None and served:
        rows = impressions(decision, request_id, q.user, q.model or srv.default_model)
        if logger.submit(rows):
            served = [replace(s, impression_id=r.id) for s, r in zip(served, rows, strict=True)]
            live().note_shown(q.user, [s.item for s in served])
    return served, decision.spec.name


@bp.get("/items/<item_id>/similar")
def similar(item_id: str) -> Response:
    k, model = _query_common()
    explain = params.parse_bool("explain", request.args.get("explain"))
    srv = server()
    _require_item(item_id)
    served = srv.similar(item_id, k, model, explain, params.id_filter(request.args, "tags"),
                         params.id_filter(request.args, "not_tags"), live().hidden())
    g.kgrec_model = model or srv.default_model
    g.kgrec_sources = [s.source for s in served]
    return jsonify({"item": item_id, "title": srv.title(item_id), "model": model or srv.default_model,
                    "similar": [s.to_dict() for s in served]})


@bp.get("/users/<user_id>/recommendations/<item_id>/explanation")
def explanation(user_id: str, item_id: str) -> Response:
    srv = server()
    model = params.parse_model(request.args.get("model"), set(srv.models))
    _require_item(item_id)
    used, reasons = srv.explain(user_id, item_id, model, _live(user_id).state)
    g.kgrec_model = used
    return jsonify({
        "user": user_id, "item": item_id, "title": srv.title(item_id), "model": used,
        "score": sum(r.contribution for r in reasons),
        "reasons": [reason_json(r) for r in reasons],
    })


@bp.get("/users/<user_id>")
def get_user(user_id: str) -> Response:
    srv = server()
    s = srv.snapshot
    u = s.users.get(user_id)
    state = _live(user_id).state
    node = _store_node(Label.USER, user_id)
    history = state.history if state.history is not None else srv.bundle_history(user_id)
    if u is None and node is None and not state.known and not history:
        raise not_found("user", user_id, "user")
    attrs = dict(s.user_attrs[u]) if u is not None else {}
    attrs.update((node or {}).get("attrs", {}))
    disliked = state.disliked if state.disliked is not None else srv.bundle_dislikes(user_id)
    top = sorted(history.items(), key=lambda kv: (-kv[1], kv[0]))[:50]
    return jsonify({
        "id": user_id, "in_bundle": u is not None, "attrs": attrs,
        "interactions": len(history),
        "history": [{"item": i, "title": srv.title(i), "weight": w} for i, w in top],
        "dislikes": sorted(disliked)[:50],
    })


@bp.get("/items/<item_id>")
def get_item(item_id: str) -> Response:
    srv = server()
    s = srv.snapshot
    i = s.items.get(item_id)
    node = _store_node(Label.ITEM, item_id)
    if i is None and node is None:
        raise not_found("item", item_id, "item")
    hidden = bool(node.get("hidden")) if node is not None else item_id in (live().hidden() or s.hidden)
    if i is None:
        src = node or {}
        return jsonify({"id": item_id, "title": src.get("title"), "in_bundle": False, "hidden": hidden,
                        "attrs": src.get("attrs", {}), "audience": 0, "tags": []})
    it = s.item_tags
    tag_idx = it.indices[it.indptr[i]:it.indptr[i + 1]]
    counts = it.data[it.indptr[i]:it.indptr[i + 1]]
    tags = sorted(zip(tag_idx.tolist(), counts.tolist(), strict=True), key=lambda tc: (-tc[1], tc[0]))[:20]
    attrs = dict(s.item_attrs[i])
    attrs.update((node or {}).get("attrs", {}))
    return jsonify({
        "id": item_id, "title": (node or {}).get("title", s.item_titles[i]), "in_bundle": True, "hidden": hidden,
        "attrs": attrs, "audience": srv.audience(item_id),
        "tags": [{"id": s.tags.ids[t], "name": s.tag_names[t], "count": c} for t, c in tags],
    })


def _store_node(label: Label, key: str) -> dict[str, Any] | None:
    """The node as the store holds it now (maybe written by another worker); None when absent
    or when the store is down."""
    try:
        return store().call(lambda st: st.get_node(label, key))
    except StoreUnavailable:  # (a timeout too) served without it, and marked so
        mark_stale()
        return None


def _require_item(item_id: str) -> None:
    if item_id not in server().snapshot.items and _store_node(Label.ITEM, item_id) is None:
        raise not_found("item", item_id, "item")


# -- writes -----------------------------------------------------------------------------
def _unavailable(exc: StoreUnavailable) -> ApiError:
    if isinstance(exc, StoreTimeout):
        return ApiError(504, "store_timeout", f"the graph store did not answer within {exc.allowed:g} s; the write "
                        "may be partly applied: writes are idempotent, so send it again")
    return ApiError(503, "store_unavailable", f"the graph store is unavailable; nothing was written ({exc})")


def _write(fn: Any) -> Any:
    try:
        return store().call(fn, write=True)
    except StoreUnavailable as exc:
        raise _unavailable(exc) from exc


@bp.post("/interactions")
@require_api_key
def post_interactions() -> tuple[Response, int]:
    """Positive feedback and dislikes (``"type": "dislike"``), checked whole, written in one go."""
    rows, was_list = params.as_rows(params.json_body(request), settings().max_batch)
    impression_ids = take_impression_ids(rows, was_list)
    parsed = [params.feedback(r, params.prefix_for(n, was_list)) for n, r in enumerate(rows)]
    positive = [r for r in parsed if isinstance(r, Interaction)]
    dislikes = [r for r in parsed if isinstance(r, Dislike)]

    _check_items_exist(parsed, was_list)
    outcomes = outcomes_for(parsed, impression_ids, was_list)
    marked = 0

    def write(st: GraphStore) -> int:
        nonlocal marked
        written = (st.upsert_interactions(positive) if positive else 0) + (
            st.upsert_dislikes(dislikes) if dislikes else 0)
        marked = as_impression_store(st).record_outcomes(outcomes) if outcomes else 0
        return written

    written = _write(write)
    body: dict[str, Any] = {"written": written, "users": sorted({r.user for r in parsed})}
    if outcomes:  # the same feedback on an impression twice counts once
        body["impression_outcomes"] = {"recorded": marked, "already_recorded": len(outcomes) - marked}
    return jsonify(body), 201


def _check_items_exist(rows: list[Interaction | Dislike], was_list: bool) -> None:
    """Feedback on an item nobody knows is a client bug: 404 naming the row, nothing written."""
    snap = server().snapshot
    unknown = [(n, r) for n, r in enumerate(rows) if r.item not in snap.items]
    if not unknown:
        return

    def missing(st: GraphStore) -> list[tuple[int, Interaction | Dislike]]:
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
    # attrs as the loaders treat them: Attribute nodes and links too (graph.user_attributes)
    written = _write(lambda st: st.upsert_profiles(parsed))
    return jsonify({"written": written, "ids": [u.id for u in parsed]}), 201


@bp.post("/items")
@require_api_key
def post_items() -> tuple[Response, int]:
    rows, was_list = params.as_rows(params.json_body(request), settings().max_batch)
    parsed = [params.item(r, params.prefix_for(n, was_list)) for n, r in enumerate(rows)]
    written = _write(lambda st: st.upsert_items(parsed))
    return jsonify({"written": written, "ids": [i.id for i in parsed]}), 201


@bp.patch("/items/<item_id>")
@require_api_key
def patch_item(item_id: str) -> Response:
    """``{"hidden": true}`` keeps an item out of every list (recommended or similar) from the
    next request on, on every worker; ``false`` brings it back."""
    hidden = params.hidden_flag(params.json_body(request))
    found = _write(lambda st: st.set_hidden([item_id], hidden))
    if not found:
        raise not_found("item", item_id, "item")
    return jsonify({"id": item_id, "hidden": hidden})
