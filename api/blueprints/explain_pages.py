"""HTML pages that answer "why was this recommended?" for people, not programs."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from werkzeug.wrappers import Response

from api import params
from api.blueprints.context import engine, settings
from api.path_drawing import cypher_snippet, layout

bp = Blueprint("explain_pages", __name__, template_folder="../templates", static_folder="../static",
               static_url_path="/static")


@bp.app_template_global()
def drawing(reason):  # type: ignore[no-untyped-def]
    return layout(reason)


@bp.app_template_global()
def snippet(reason):  # type: ignore[no-untyped-def]
    return cypher_snippet(reason)


@bp.get("/")
def index() -> str:
    eng = engine()
    users = eng.snapshot.users.ids[:8]
    items = eng.snapshot.items.ids[:8]
    return render_template("index.html", users=users, items=[(i, eng.title(i)) for i in items],
                           fingerprint=eng.fingerprint)


@bp.get("/users/<user_id>")
def user_page(user_id: str) -> str:
    eng = engine()
    k = params.parse_k(request.args.get("k"), settings().default_k, 50)
    model = params.parse_model(request.args.get("model"), set(eng.models))
    served = eng.recommend(user_id, k, model, explain=True)
    history = sorted(eng.history(user_id).items(), key=lambda kv: (-kv[1], kv[0]))[:12]
    return render_template(
        "user.html", user=user_id, model=model or eng.default_model, models=sorted(eng.models),
        known=eng.knows_user(user_id), recs=served,
        history=[(i, eng.title(i) or i) for i, _ in history],
    )


@bp.get("/items/<item_id>")
def item_page(item_id: str) -> str | Response:
    eng = engine()
    if not eng.knows_item(item_id):
        abort(404)
    k = params.parse_k(request.args.get("k"), settings().default_k, 50)
    served = eng.similar(item_id, k, explain=True)
    return render_template("item.html", item=item_id, title=eng.title(item_id) or item_id,
                           audience=eng.audience(item_id), recs=served)
