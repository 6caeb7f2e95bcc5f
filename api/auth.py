"""Bearer keys for three roles: writers write, analysts run read-only Cypher, readers read.

Each role's setting may hold several comma-separated keys, so a key can rotate without
downtime: add the new one, move clients over, remove the old one. A presented key is compared
with every configured key of the roles allowed (``hmac.compare_digest`` each time, all of them,
so the time taken says nothing about which or how much matched). Reads are open unless
``KGREC_READ_KEY`` is set; ``/v1/health`` and the OpenAPI document always stay open.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Request, current_app, request

from kgrec.api.errors import ApiError
from kgrec.api.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
#: Endpoints every client may call without a key, whatever the settings.
OPEN_ENDPOINTS = {"admin.health", "admin.openapi", "_openapi_alias", "_root", "static", "explain_pages.static"}


def _presented(req: Request, role: str) -> bytes:
    scheme, _, token = req.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", f"send Authorization: Bearer <{role} key>", "Authorization")
    return token.strip().encode("utf-8", "surrogateescape")


def check_key(req: Request, keys: tuple[bytes, ...], role: str) -> None:
    """401 unless the request carries one of ``keys``; no keys configured refuses everyone."""
    token = _presented(req, role)
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token, key)
    if not matched:
        raise ApiError(401, "unauthorized", f"the key is not a {role} key of this server", "Authorization")


def _requiring(role: str, keys: Callable[[Settings], tuple[bytes, ...]], off: str) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            allowed = keys(current_app.extensions["kgrec.settings"])
            if not allowed:
                raise ApiError(401, "unauthorized", off, "Authorization")
            check_key(request, allowed, role)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


#: Writes: a writer key (``KGREC_API_KEY``); none configured means writes are off, never open.
require_api_key = _requiring("writer", lambda s: s.writer_keys,
                             "writes are disabled: the server has no KGREC_API_KEY set")
#: ``/v1/cypher``: an analyst key (``KGREC_ANALYST_KEY``); writer keys do not run Cypher.
require_analyst_key = _requiring("analyst", lambda s: s.analyst_keys,
                                 "Cypher over HTTP is disabled: the server has no KGREC_ANALYST_KEY set")


def guard_reads() -> None:
    """Before every request: with ``KGREC_READ_KEY`` set, reads need a reader, analyst or writer
    key. Writes and Cypher check their own role in their views."""
    settings: Settings = current_app.extensions["kgrec.settings"]
    if settings.read_key is None or request.method not in ("GET", "HEAD"):
        return
    if request.endpoint in OPEN_ENDPOINTS or request.endpoint is None:
        return
    check_key(request, settings.reader_keys, "reader")
