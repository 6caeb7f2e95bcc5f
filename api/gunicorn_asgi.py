"""What ``kgrec serve`` runs: gunicorn's asyncio worker in front of the (unchanged) Flask app.

Every connection waits on the worker's event loop, and a thread of the pool is taken only once a
request is complete: gunicorn's own parser reads the head on the loop, ``FullBody`` reads the
body on the loop, then a2wsgi's ``WSGIMiddleware`` runs Flask in one of ``--threads`` threads.
So clients that send slowly (or not at all) hold a few bytes of the loop, never a thread: 200
half-sent requests cost the other clients nothing (measured in ``benchmarks/slow_clients.py``).

What this module adds to gunicorn 27's ``asgi`` worker and a2wsgi (no HTTP parsing of its own):

* ``JsonASGIProtocol``: gunicorn's own refusals (400 malformed request line, header or chunk;
  414; 431; 501) in the API's JSON error shape, always closing the connection; a deadline for
  the request head (``head_timeout``: a client that has not finished its head by then gets a
  408 and is closed; a trickle of bytes does not extend it); ``StrictLines``, a fix of the
  parser's line bound (gunicorn 27's Python parser bounds a line only while it waits for the
  CRLF, so a 100 KB chunk extension arriving in one read passed).
* ``JsonASGIWorker``: a per-worker connection cap (``worker_connections``): at it the worker
  stops accepting until a tenth of them have closed (the stock worker only counts them); the
  connections asyncio accepts in one go may pass it by a few.
* ``FullBody``: the whole body, read on the loop, bounded in size (413) and time (408), handed to
  the app with a ``Content-Length`` (a2wsgi sets no ``wsgi.input_terminated``, so werkzeug would
  read a chunked body as empty).

It overrides private methods of gunicorn's protocol (``_send_error_response``,
``_setup_callback_parser``, ``_on_headers_complete``, ``_find_line``) and asyncio's
``Server._start_serving``: pyproject pins gunicorn to 27.0.*, and ``tests/test_serve_http.py``
checks each behaviour against a real ``kgrec serve``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from a2wsgi import WSGIMiddleware
from gunicorn.asgi import protocol as _gp
from gunicorn.workers import gasgi as _gasgi

from kgrec.api.errors import HTTP_CODES, error_body

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]

#: Seconds a client has to send a request's whole head, and then its whole body.
HEAD_TIMEOUT, BODY_TIMEOUT = 10.0, 30.0
#: Where the refusal points, as the app's own 413/414 answers do.
FIELDS = {413: "body", 414: "url"}


def error_json(status: int, message: str) -> bytes:
    """The API's JSON error for ``status``; a 5xx never carries details (they go to the log)."""
    if status >= 500 and status != 501:
        message = "internal error; see the server log"
    return json.dumps(error_body(HTTP_CODES.get(status, "http_error"), message[:300], FIELDS.get(status))).encode()


class StrictLines(_gp.PythonProtocol):
    """gunicorn 27's Python parser with every line bounded whatever the read size."""

    __slots__ = ()

    def _find_line(self, limit: int, error: Exception) -> int:
        idx: int = super()._find_line(limit, error)
        if limit and idx > limit:
            raise error
        return idx


class JsonASGIProtocol(_gp.ASGIProtocol):
    """gunicorn's HTTP/1.1 protocol with JSON refusals and a request-head deadline."""

    head_timeout = HEAD_TIMEOUT
    _head_timer: asyncio.TimerHandle | None = None

    def _setup_callback_parser(self) -> None:
        super()._setup_callback_parser()
        if type(self._callback_parser) is _gp.PythonProtocol:
            self._callback_parser.__class__ = StrictLines

    def _send_error_response(self, status: int, message: str, extra_headers: Any = ()) -> None:
        body = error_json(status, message)
        reason = _gp._REASON_PHRASES.get(status) or "Error"
        extra = "".join(f"{name}: {value}\r\n" for name, value in extra_headers)
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n")
        self._safe_write(head.encode("latin-1") + body)

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_head_timer()
        worker = self.worker
        if worker.nr_conns >= worker.worker_connections:
            worker.pause_accepting()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)
        self.worker.maybe_resume_accepting()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self._current_request is None:
            self._arm_head_timer()  # the first bytes of a kept-alive connection's next request
        super().data_received(data)

    def _on_headers_complete(self) -> Any:
        self._cancel_head_timer()
        return super()._on_headers_complete()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.worker.loop.call_later(self.head_timeout, self._head_expired)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._current_request is not None or self._closed:  # a request is being served: not ours to cut
            return
        self._send_error_response(408, f"the request head did not arrive within {self.head_timeout:g} s")
        self._close_transport()


class JsonASGIWorker(_gasgi.ASGIWorker):
    """gunicorn's ``asgi`` worker serving ``JsonASGIProtocol``, with a connection cap."""

    def init_process(self) -> None:
        _gasgi.ASGIProtocol = JsonASGIProtocol  # the stock _serve() builds its protocols by this name
        self._paused = False
        super().init_process()

    def pause_accepting(self) -> None:
        """Stop taking connections off the listen queue (they wait there, costing the worker nothing)."""
        if not self._paused:
            self._paused = True
            for server in self.servers:
                server._serving = False  # so that _start_serving() below adds the accept reader again
                for sock in server.sockets:
                    self.loop.remove_reader(sock.fileno())

    def maybe_resume_accepting(self) -> None:
        if self._paused and self.nr_conns < self.worker_connections * 0.9 and self.alive:
            self._paused = False
            for server in self.servers:
                server._start_serving()  # asyncio.base_events.Server: listen() and the accept reader again


class FullBody:
    """ASGI middleware: the whole body, read on the event loop, before the app is called."""

    def __init__(self, app: Any, max_body: int, timeout: float = BODY_TIMEOUT) -> None:
        #: The ASGI app behind (an ``ASGIApp``; a2wsgi's own annotations are narrower).
        self.app, self.max_body, self.timeout = app, max_body, timeout

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = scope.get("headers") or []
        chunked = any(k == b"transfer-encoding" for k, _ in headers)
        declared = next((v for k, v in headers if k == b"content-length"), None)
        too_big = f"request body is larger than {self.max_body} bytes"
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return await _reply(send, 413, too_big)
        body = bytearray()
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return  # gone (or the protocol already answered a malformed chunk)
                    body += message.get("body", b"")
                    if len(body) > self.max_body:
                        return await _reply(send, 413, too_big)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            return await _reply(send, 408, f"the request body did not arrive within {self.timeout:g} s")
        if chunked:  # the app sees a sized body
            headers = [(k, v) for k, v in headers if k not in (b"transfer-encoding", b"content-length")]
            headers.append((b"content-length", str(len(body)).encode()))
            scope = {**scope, "headers": headers}
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # http.disconnect, when it comes

        await self.app(scope, replay, send)


async def _reply(send: Send, status: int, message: str) -> None:
    body = error_json(status, message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def wsgi_to_asgi(app: Any, threads: int, max_body: int, body_timeout: float = BODY_TIMEOUT) -> FullBody:
    """Flask (WSGI) as an ASGI app: a2wsgi's pool of ``threads`` threads behind ``FullBody``."""
    return FullBody(WSGIMiddleware(app, workers=threads, send_queue_size=threads * 4), max_body, body_timeout)
