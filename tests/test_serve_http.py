"""``kgrec serve``'s HTTP edge, with real gunicorn processes and raw sockets: slow clients hold no
thread (200 half-sent requests, and normal requests still answer), the head and body deadlines,
the per-worker connection cap, gunicorn's own refusals and malformed chunked bodies as JSON 4xx
on a closed connection, and metric series that stay bounded whatever methods, paths and models
clients send (``api.gunicorn_asgi``, ``api.request_metrics``)."""

from __future__ import annotations

import json
import random
import socket
import string
import threading
import time
from urllib.request import urlopen

import pytest

from tests.api_fixtures import ANALYST_KEY, API_KEY, fill_store, train_bundle
from tests.bad_input_corpus import RAW_CASES
from tests.serve_fixtures import http_bytes, raw_request, read_answer, serving

HEAD_TIMEOUT, BODY_TIMEOUT = 8, 3
SLOW = 200
PARTIAL_HEAD = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n"
WRITER = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(snapshot, synthetic, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-http")
    bundle = train_bundle(snapshot, root / "bundle")
    store = fill_store(synthetic.records, root / "store")
    env = {"KGREC_API_KEY": API_KEY, "KGREC_ANALYST_KEY": ANALYST_KEY, "KGREC_HEAD_TIMEOUT": str(HEAD_TIMEOUT),
           "KGREC_BODY_TIMEOUT": str(BODY_TIMEOUT)}
    with serving(bundle, store, root, env=env, workers=2, threads=2) as (port, _):
        yield port, root / "store"


def get(port: int, path: str) -> int:
    with urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as resp:
        resp.read()
        return resp.status


def still_waiting(sock: socket.socket) -> bool:
    """Open, and nothing answered on it yet."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)  # bytes (an answer) or b"" (closed)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def test_slow_clients_hold_no_thread_and_are_answered_408(server, snapshot):
    """200 connections that send half a request head (2 workers x 2 threads: gunicorn's threaded
    worker froze at 4), and one that trickles a header byte a second: every normal request still
    answers; then each slow client gets the JSON 408 at the head deadline and is closed."""
    port, _ = server
    slow = []
    for _ in range(SLOW):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(PARTIAL_HEAD)
        slow.append(sock)
    trickler = socket.create_connection(("127.0.0.1", port), timeout=10)
    trickler.sendall(PARTIAL_HEAD + b"X-Slow: ")
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(1.0):
            try:
                trickler.sendall(b"a")
            except OSError:
                return

    threading.Thread(target=trickle, daemon=True).start()
    users = snapshot.users.ids
    statuses = [get(port, "/v1/health" if n % 2 else f"/v1/users/{users[n % len(users)]}/recommendations?k=5")
                for n in range(40)]
    waiting = sum(still_waiting(s) for s in slow)
    assert statuses == [200] * 40
    assert waiting >= SLOW * 3 // 4, f"only {waiting} slow clients were still connected: the load was not there"

    answers = [read_answer(s) for s in slow[:20]] + [read_answer(trickler)]
    stop.set()
    for answer in answers:
        assert answer.status == 408 and answer.closed, answer
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["error"]["code"] == "request_timeout"
    for sock in [*slow, trickler]:
        sock.close()
    assert get(port, "/v1/health") == 200


def test_a_body_that_does_not_arrive_is_a_json_408(server):
    port, store_dir = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(http_bytes("POST", "/v1/users", headers={**WRITER, "Content-Length": "100"})
                     + b'{"id": "never-finished"')
        answer = read_answer(sock)
    assert answer.status == 408 and answer.closed and answer.json()["error"]["code"] == "request_timeout"
    from kgrec.graph.memory import MemoryStore
    from kgrec.graph.schema import Label

    assert MemoryStore(store_dir).get_node(Label.USER, "never-finished") is None


@pytest.mark.parametrize("case", RAW_CASES, ids=[c.name for c in RAW_CASES])
def test_what_gunicorn_refuses_is_a_json_4xx_on_a_closed_connection(server, case):
    """Malformed chunked bodies (a ``zz`` chunk size, a 100 KB chunk extension), bad request
    lines, oversized heads: the API's JSON error, the connection closed, nothing written, and
    the workers serve on (they once answered 500 with a traceback and kept the connection)."""
    port, store_dir = server
    from tests.fuzz_oracle import digest

    before = digest(store_dir)
    answer = raw_request(port, case.payload.replace(b"{WRITER_KEY}", API_KEY.encode()))
    assert answer.status == case.status, answer
    assert answer.closed, "the server left the connection open"
    assert answer.headers["content-type"] == "application/json", answer.headers
    assert answer.json()["error"]["message"] and "Traceback" not in answer.body.decode("utf-8", "replace")
    assert digest(store_dir) == before
    assert get(port, "/v1/health") == 200


def test_a_well_formed_chunked_body_is_read_whole(server):
    port, store_dir = server
    body = json.dumps([{"id": "chunked-a"}, {"id": "chunked-b"}]).encode()
    head = http_bytes("POST", "/v1/users", headers={**WRITER, "Transfer-Encoding": "chunked"})
    chunks = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:7], body[7:]))
    answer = raw_request(port, head + chunks + b"0\r\n\r\n")
    assert answer.status == 201, answer
    assert answer.json()["ids"] == ["chunked-a", "chunked-b"]
    from kgrec.graph.memory import MemoryStore
    from kgrec.graph.schema import Label

    assert MemoryStore(store_dir).get_node(Label.USER, "chunked-b") == {"id": "chunked-b", "attrs": {}}


def test_a_lone_surrogate_in_a_cypher_parameter_name_is_a_400(server):
    port, _ = server
    for body in (b'{"query": "RETURN $x AS x", "params": {"\\udfff": 1}}',
                 b'{"query": "RETURN $x AS x", "params": {"x": {"a": [{"\\ud800": 1}]}}}'):
        answer = raw_request(port, http_bytes("POST", "/v1/cypher", body, {
            "Authorization": f"Bearer {ANALYST_KEY}", "Content-Type": "application/json"}))
        assert answer.status == 400, answer
        assert "surrogate" in answer.json()["error"]["message"]


def series(port: int) -> set[str]:
    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_metric_series_stay_bounded_whatever_clients_send(server, snapshot):
    """Random methods, paths, user ids and models: no label takes a value a client chose, and
    only the few label combinations these requests newly reached appear (the documented bound
    in ``api/request_metrics.py``)."""
    port, _ = server
    rng = random.Random(20)
    word = lambda n: "".join(rng.choice(string.ascii_uppercase) for _ in range(n))  # noqa: E731
    get(port, "/metrics")
    before = series(port)
    sent: list[str] = []
    for _ in range(60):
        method, path, model = word(12), word(10).lower(), word(8).lower()
        sent += [method, path, model]
        for payload in (f"{method} /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
                        http_bytes("GET", f"/{path}/{word(6)}"),
                        http_bytes("GET", f"/v1/users/{path}/recommendations?k=3&model={model}"),
                        http_bytes("GET", f"/v1/users/{snapshot.users.ids[0]}/recommendations?model={model}")):
            assert raw_request(port, payload).status in (200, 400, 404, 405)
    after = series(port)
    text = "\n".join(after)
    assert not [s for s in sent if s in text], "a label took a value a client sent"
    assert len(after - before) <= 10, sorted(after - before)


def test_a_worker_stops_accepting_at_its_connection_cap(snapshot, synthetic, tmp_path):
    """One worker capped at 4 connections, all held by half-sent heads: a fifth client waits in
    the listen queue (no thread, no memory of the worker's) and is served once one of them goes."""
    bundle = train_bundle(snapshot, tmp_path / "bundle")
    store = fill_store(synthetic.records, tmp_path / "store")
    with serving(bundle, store, tmp_path, "--max-connections", "4", env={"KGREC_HEAD_TIMEOUT": "120"},
                 workers=1, threads=2) as (port, _):
        held = []
        for _ in range(4):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(PARTIAL_HEAD)
            held.append(sock)
        time.sleep(1)  # ordering, not a latency bound: the worker takes the four before the fifth knocks
        answered: list[int] = []
        fifth = threading.Thread(target=lambda: answered.append(raw_request(port, http_bytes("GET", "/v1/health"))
                                                                .status))
        fifth.start()
        fifth.join(timeout=3)
        assert fifth.is_alive() and not answered, "a fifth connection was served past the cap of 4"
        held[0].close()
        fifth.join(timeout=60)
        assert answered == [200]
        for sock in held[1:]:
            sock.close()
