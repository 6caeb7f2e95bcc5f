"""gunicorn workers whose own error answers are JSON in the API's error shape.

gunicorn answers some requests before the app sees them — a request line longer than
``limit_request_line`` (414), too many or too large headers (431), a malformed request or
chunk (400) — with a small HTML page. These workers let gunicorn decide status and logging as
usual, catch the page it was about to send, and send ``{"error": {"code", "message"}}`` with
the same status instead, so a client never has to parse HTML from a JSON API.
"""

from __future__ import annotations

import json
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker as _ThreadWorker
from gunicorn.workers.sync import SyncWorker as _SyncWorker

from kgrec.api.errors import HTTP_CODES, error_body


class _Captured:
    """Stands in for the client socket while gunicorn writes its HTML error, keeping the bytes."""

    def __init__(self) -> None:
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0

    def setblocking(self, _flag: bool) -> None:
        """Nothing to switch: nothing is sent."""

    def sendall(self, data: bytes) -> None:
        self.data += data


def json_error(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP/1.1 response carrying the API's JSON error, closing the connection."""
    body = json.dumps(error_body(HTTP_CODES.get(status, "http_error"), message)).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


class JsonErrors:
    """Mixed into a gunicorn worker class: its ``handle_error`` answers in JSON."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        captured = _Captured()
        super().handle_error(req, captured, addr, exc)  # type: ignore[misc]
        status_line = captured.data.split(b"\r\n", 1)[0].decode("latin-1")
        _, status, reason = [*status_line.split(" ", 2), "500", "Internal Server Error"][:3]
        code = int(status) if status.isdigit() else 500
        message = "internal error; see the server log" if code >= 500 and code != 501 else str(exc)
        try:
            util.write_nonblock(client, json_error(code, reason, message))
        except Exception:  # the client may be gone already, as gunicorn itself allows for
            self.log.debug("Failed to send error message.")  # type: ignore[attr-defined]


class SyncWorker(JsonErrors, _SyncWorker):
    """gunicorn's ``sync`` worker with JSON error answers."""


class ThreadWorker(JsonErrors, _ThreadWorker):
    """gunicorn's ``gthread`` worker with JSON error answers."""
