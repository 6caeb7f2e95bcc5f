"""One error shape for every failure: ``{"error": {"code", "message", "field"?}}``.

Handlers turn every exception into that shape, so a client never sees HTML or a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import HTTPException

from kgrec.graph.store_errors import StoreTimeout, StoreUnavailable

log = logging.getLogger("kgrec.api")

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    431: "request_header_fields_too_large",
    429: "too_many_requests",
    500: "internal_error",
    501: "not_implemented",
    503: "store_unavailable",
    504: "store_timeout",
}


class ApiError(Exception):
    """An error a client caused or should know about; ``field`` names the offending input."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def bad_request(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message, field)


def not_found(kind: str, key: str, field: str | None = None) -> ApiError:
    return ApiError(404, f"unknown_{kind}", f"no {kind} with id {key!r}", field)


def _encodable(text: str) -> str:
    """``text`` as UTF-8 can carry it: a lone surrogate a client sent is shown escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": _encodable(message)}
    if field is not None:
        err["field"] = _encodable(field)
    return {"error": err}


def error_response(status: int, code: str, message: str, field: str | None = None) -> Response:
    if request.blueprint == "explain_pages":
        resp = Response(render_template("error.html", status=status, message=message), mimetype="text/html")
    else:
        resp = jsonify(error_body(code, message, field))
    resp.status_code = status
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="kgrec"'
    return resp


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.field)

    @app.errorhandler(StoreUnavailable)
    def _store_unavailable(exc: StoreUnavailable) -> Response:
        """The store is down (or frozen past its timeouts): 503 wherever it surfaces."""
        log.warning("store unavailable: %s", exc)
        return error_response(503, "store_unavailable", f"the graph store is unavailable; nothing was written ({exc})")

    @app.errorhandler(StoreTimeout)
    def _store_timeout(exc: StoreTimeout) -> Response:
        """The store did not answer within the request's time: 504, and the connection is kept."""
        log.warning("store timeout: %s", exc)
        return error_response(504, "store_timeout", f"the graph store did not answer within {exc.allowed:g} s")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = HTTP_CODES.get(status, "http_error")
        message = exc.description or exc.name
        if status == 413:
            message = f"request body is larger than {app.config.get('MAX_CONTENT_LENGTH')} bytes"
        resp = error_response(status, code, message, {413: "body", 414: "url"}.get(status))
        if status == 405 and exc.get_response().headers.get("Allow"):
            resp.headers["Allow"] = exc.get_response().headers["Allow"]
        return resp

    @app.errorhandler(ParseException)
    def _malformed_body(exc: ParseException) -> Response:
        """A malformed chunked body (a bad chunk size or extension) under gunicorn's gthread
        worker, which reads bodies inside the app: 400, and the connection is closed (its
        framing is lost). The asgi worker refuses these itself, before the app runs."""
        resp = error_response(400, "bad_request", f"malformed request body: {exc}", "body")
        resp.headers["Connection"] = "close"
        return resp

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error; see the server log")
