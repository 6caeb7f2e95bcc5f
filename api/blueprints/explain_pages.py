"""HTML pages that answer "why was this recommended?" for people, not programs."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template, request
from werkzeug.wrappers import Response

from kgrec.api import params
from kgrec.api.blueprints.context import live, server, settings, store
from kgrec.api.path_drawing import cypher_snippet, layout, served_map
from kgrec.graph.schema import Label
from kgrec.graph.store_errors import StoreUnavailable
from kgrec.recommenders.serving.query import Query

bp = Blueprint("explain_pages", __name__, template_folder="../templates", static_folder="../static",
               static_url_path="/static")


@bp.app_template_global()
def drawing(reason: Any) -> Any:
    return layout(reason)


@bp.app_template_global()
def snippet(reason: Any) -> Any:
    return cypher_snippet(reason)


@bp.app_template_global()
def places_drawing(user: str | None, served: Any) -> Any:
    return served_map(server().snapshot, server().bundle_history(user) if user else {}, served)


@bp.get("/")
def index() -> str:
    srv = server()
    users = srv.snapshot.users.ids[:8]
    items = srv.snapshot.items.ids[:8]
    return render_template("index.html", users=users, items=[(i, srv.title(i)) for i in items],
                           fingerprint=srv.snapshot.fingerprint)


@bp.get("/users/<user_id>")
def user_page(user_id: str) -> str:
    """The same list as ``GET /v1/users/{id}/recommendations?explain=true``, for people."""
    srv = server()
    k = params.parse_k(request.args.get("k"), settings().default_k, 50)
    model = params.parse_model(request.args.get("model"), set(srv.models))
    state = live().state(user_id).state
    served = srv.recommend(Query(user_id, k, model, explain=True), state)
    full = state.history if state.history is not None else srv.bundle_history(user_id)
    history = sorted(full.items(), key=lambda kv: (-kv[1], kv[0]))[:12]
    return render_template(
        "user.html", user=user_id, model=model or srv.default_model, models=sorted(srv.models),
        known=user_id in srv.snapshot.users or bool(full), recs=served,
        history=[(i, srv.title(i) or i) for i, _ in history],
    )


@bp.get("/items/<item_id>")
def item_page(item_id: str) -> str | Response:
    srv = server()
    if item_id not in srv.snapshot.items and not _in_store(item_id):
        abort(404)
    k = params.parse_k(request.args.get("k"), settings().default_k, 50)
    served = srv.similar(item_id, k, explain=True, hidden=live().hidden())
    return render_template("item.html", item=item_id, title=srv.title(item_id) or item_id,
                           audience=srv.audience(item_id), recs=served)


def _in_store(item_id: str) -> bool:
    try:
        return store().call(lambda st: st.get_node(Label.ITEM, item_id)) is not None
    except StoreUnavailable:
        return False
