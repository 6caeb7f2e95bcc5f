"""Bearer-token check for writes; reads stay open."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, request

from api.errors import ApiError

F = TypeVar("F", bound=Callable[..., Any])


def require_api_key(view: F) -> F:
    """Refuse with 401 unless ``Authorization: Bearer <KGREC_API_KEY>``; no key configured
    means writes are off, never open."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        expected = current_app.extensions["kgrec.settings"].api_key
        if expected is None:
            raise ApiError(401, "unauthorized", "writes are disabled: the server has no KGREC_API_KEY set",
                           "Authorization")
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthorized", "send Authorization: Bearer <KGREC_API_KEY>", "Authorization")
        if not hmac.compare_digest(token.strip().encode(), expected.encode()):
            raise ApiError(401, "unauthorized", "wrong API key", "Authorization")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
