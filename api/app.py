"""``create_app(settings)``: the Flask application factory.

The bundle is loaded (a ``recommenders.serving.Server``), the store handle and the per-user
live state created once, here, and kept in ``app.extensions``; views only read them. A bad
setting or an unloadable bundle fails now, at startup, not on the first request.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack

from flask import Flask, current_app, g, redirect, request, url_for
from werkzeug.wrappers import Response

from kgrec.api import params, response_headers
from kgrec.api.auth import guard_reads
from kgrec.api.errors import ApiError, register_error_handlers
from kgrec.api.json_provider import OrjsonProvider
from kgrec.api.request_metrics import install as install_metrics
from kgrec.api.settings import Settings, SettingsError
from kgrec.api.store_handle import StoreHandle
from kgrec.graph import values
from kgrec.graph.neo4j_connection import deadline
from kgrec.recommenders.serving.impression_log import ImpressionLogger
from kgrec.recommenders.serving.live_state import LiveState
from kgrec.recommenders.serving.server import Server

log = logging.getLogger("kgrec.api")
#: Longest path plus query string served (under gunicorn, longer request lines are refused by
#: gunicorn itself, with the same JSON 414 through ``api.gunicorn_worker``).
MAX_URL = values.MAX_URL


class _Flask(Flask):
    json_provider_class = OrjsonProvider


def create_app(settings: Settings | None = None, server: Server | None = None) -> Flask:
    """Build the app; ``server`` (an already loaded bundle) is for tests and embedding."""
    settings = (settings or Settings.from_env()).validated()
    if server is None:
        if settings.bundle is None:
            raise SettingsError("KGREC_BUNDLE is not set: point it at a directory written by `kgrec train`")
        from kgrec.recommenders.serving.server_loading import BundleLoadError, load_server

        try:
            server = load_server(settings.bundle, settings.default_model, settings.max_reasons)
        except BundleLoadError as exc:
            setting = "KGREC_DEFAULT_MODEL" if exc.model is not None else "KGREC_BUNDLE"
            raise SettingsError(f"{setting}: {exc}") from exc
    else:
        if settings.default_model is not None:
            if settings.default_model not in server.models:
                raise SettingsError(f"KGREC_DEFAULT_MODEL: {settings.default_model!r} is not in the bundle")
            server.default_model = settings.default_model
        server.max_reasons = settings.max_reasons
    handle = StoreHandle(settings.store)

    app = _Flask(__name__)
    app.url_map.merge_slashes = False  # "/v1/users//recommendations" names no user: a JSON 404, not a redirect
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body)
    app.extensions["kgrec.settings"] = settings
    app.extensions["kgrec.server"] = server
    app.extensions["kgrec.store"] = handle
    app.extensions["kgrec.live"] = LiveState(server, handle.call)

    from kgrec.api.blueprints.admin import bp as admin_bp
    from kgrec.api.blueprints.cypher import bp as cypher_bp
    from kgrec.api.blueprints.explain_pages import bp as pages_bp
    from kgrec.api.blueprints.ratings import bp as ratings_bp
    from kgrec.api.blueprints.recommend import bp as recommend_bp

    app.register_blueprint(admin_bp, url_prefix="/v1")
    app.register_blueprint(recommend_bp, url_prefix="/v1")
    app.register_blueprint(ratings_bp, url_prefix="/v1")
    app.register_blueprint(cypher_bp, url_prefix="/v1")
    app.register_blueprint(pages_bp, url_prefix="/ui")
    register_error_handlers(app)
    app.before_request(_store_deadline)
    app.teardown_request(_end_store_deadline)
    metrics = install_metrics(app)
    response_headers.install(app, handle)

    def store_failed(operation: str) -> None:
        metrics.store_error(operation)
        response_headers.mark_stale()

    handle.on_error = store_failed
    app.before_request(_check_request)

    @app.get("/")
    def _root() -> Response:
        return redirect(url_for("explain_pages.index"))

    @app.get("/openapi.json")
    def _openapi_alias() -> Response:
        return redirect(url_for("admin.openapi"))

    server.default_policy = settings.default_policy
    app.extensions["kgrec.impressions"] = (
        ImpressionLogger(lambda fn: handle.call(fn, write=True), capacity=settings.impression_buffer,
                         on_count=metrics.impression) if settings.impressions else None)
    metrics.prepare(app, server.models)
    log.info("kgrec API ready: bundle %s (%s), store %s", settings.bundle, server.snapshot.fingerprint,
             settings.store)
    return app


def _store_deadline() -> None:
    """The request's store calls share ``KGREC_STORE_TIMEOUT`` seconds (``/v1/cypher`` sets the
    query's own): a slower store is a timeout (504, or a read served from the bundle), not an
    outage."""
    stack = ExitStack()
    stack.enter_context(deadline(current_app.extensions["kgrec.settings"].store_timeout))
    g.kgrec_store_deadline = stack


def _end_store_deadline(_exc: BaseException | None) -> None:
    stack = g.pop("kgrec_store_deadline", None)
    if stack is not None:
        stack.close()


def _check_request() -> None:
    """Before any view: the URL's length, its text (``params.check_request_text``) and, when
    ``KGREC_READ_KEY`` is set, the reader's key."""
    raw = request.environ.get("RAW_URI") or request.full_path
    if len(raw) > MAX_URL:
        raise ApiError(414, "uri_too_long", f"the URL is {len(raw)} characters long; at most {MAX_URL} are served",
                       "url")
    params.check_request_text(request)
    guard_reads()
