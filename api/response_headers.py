"""Headers every response gets: whether it was served without the store, and what a browser
may do with it.

``X-Kgrec-Store`` is on every response served while the store does not answer: one whose
request had a store call fail or time out (reads then come from the bundle and the last known
state), and any other while this process's last store call failed (``StoreHandle.answering``).
``X-Content-Type-Options: nosniff`` is on every response; HTML (the explanation pages and their
error pages) also gets ``CSP``, which allows exactly what ``api/templates`` and ``api/static``
use: the stylesheet and the script of this origin, the inline SVG drawings (markup, no script
or style attributes), the ``data:`` favicon and the lookup form, which submits to this origin.
"""

from __future__ import annotations

from flask import Flask, g, has_request_context
from werkzeug.wrappers import Response

from kgrec.api.store_handle import StoreHandle

STALE = "unreachable; served from the bundle and the last known state"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")


def mark_stale() -> None:
    """The current request had a store call fail: its response says so (no-op outside one)."""
    if has_request_context():
        g.kgrec_stale = True


def install(app: Flask, handle: StoreHandle) -> None:
    @app.after_request
    def _headers(resp: Response) -> Response:
        if g.get("kgrec_stale") or handle.answering is False:
            resp.headers["X-Kgrec-Store"] = STALE
        resp.headers["X-Content-Type-Options"] = "nosniff"
        if resp.mimetype == "text/html":
            resp.headers["Content-Security-Policy"] = CSP
        return resp
