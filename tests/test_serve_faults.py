"""``kgrec serve`` under gunicorn, over real HTTP, at its edges and under faults: what gunicorn
refuses itself is JSON too (414, oversized chunked bodies 413), bad input does not poison a
worker, and a worker killed with SIGKILL is replaced while the others keep answering."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.api_fixtures import API_KEY, fill_store, train_bundle
from tests.serve_fixtures import serving

MAX_BODY = 4096


@pytest.fixture(scope="module")
def server(snapshot, synthetic, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-faults")
    bundle = train_bundle(snapshot, root / "bundle")
    store = fill_store(synthetic.records, root / "store")
    with serving(bundle, store, root, env={"KGREC_API_KEY": API_KEY, "KGREC_MAX_BODY": str(MAX_BODY)}) as served:
        yield served


def request(port: int, method: str, path: str, body=None, headers: dict[str, str] | None = None,
            ) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        assert resp.getheader("Content-Type", "").startswith("application/json"), resp.getheader("Content-Type")
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


WRITER = {"Authorization": f"Bearer {API_KEY}"}


def test_an_over_long_url_is_a_json_414_from_gunicorn_itself(server):
    port, _ = server
    status, body = request(port, "GET", "/v1/users/u0001/recommendations?exclude=" + "x" * 9000)
    assert status == 414 and body["error"]["code"] == "uri_too_long"


def test_an_oversized_chunked_body_is_a_json_413(server):
    port, _ = server
    rows = json.dumps([{"id": f"chunked-{n:05d}"} for n in range(400)]).encode()
    assert len(rows) > MAX_BODY
    status, body = chunked_post(port, "/v1/users", [rows[i:i + 1000] for i in range(0, len(rows), 1000)])
    assert status == 413 and body["error"]["field"] == "body"
    small = json.dumps({"id": "chunked-ok"}).encode()
    status, body = chunked_post(port, "/v1/users", [small[:5], small[5:]])
    assert status == 201 and body["ids"] == ["chunked-ok"]


def chunked_post(port: int, path: str, pieces: list[bytes]) -> tuple[int, dict]:
    """A chunked POST as a client that reads the answer even when the server answers (and
    closes) before the body ends, which is what it does with a body over KGREC_MAX_BODY."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
            f"Transfer-Encoding: chunked\r\nAuthorization: {WRITER['Authorization']}\r\n\r\n")
    try:
        try:
            sock.sendall(head.encode())
            for piece in pieces:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        assert resp.getheader("Content-Type", "").startswith("application/json"), resp.getheader("Content-Type")
        return resp.status, json.loads(resp.read())
    finally:
        sock.close()


def test_bad_input_does_not_poison_any_worker(server):
    port, _ = server
    for _ in range(4):  # enough to reach both workers
        status, body = request(port, "POST", "/v1/interactions", body=b'{"user": "\\ud800", "item": "i0001"}',
                               headers=WRITER)
        assert status == 400 and body["error"]["field"] == "user"
        status, _ = request(port, "POST", "/v1/interactions", body=b'{"user": "u0001", "ts": 1' + b"0" * 30
                            + b', "item": "i0001"}', headers=WRITER)
        assert status == 400
    for n in range(6):
        status, body = request(port, "POST", "/v1/users", body=json.dumps({"id": f"after-{n}"}).encode(),
                               headers=WRITER)
        assert status == 201, body
    # A worker answers "degraded" only until its first store check completes (it never waits
    # behind a write for it); poisoned, it would stay so.
    deadline, in_a_row = time.monotonic() + 10, 0
    while in_a_row < 4 and time.monotonic() < deadline:
        in_a_row = in_a_row + 1 if request(port, "GET", "/v1/health")[1]["status"] == "ok" else 0
        time.sleep(0.05)
    assert in_a_row == 4


def workers(master: int) -> set[int]:
    out = subprocess.run(["ps", "--ppid", str(master), "-o", "pid="], capture_output=True, text=True).stdout
    return {int(x) for x in out.split()}


def test_a_killed_worker_is_replaced_and_the_service_keeps_answering(server):
    port, proc = server
    before = workers(proc.pid)
    assert len(before) == 2
    failures = 0
    victim = min(before)
    for n in range(120):
        if n == 30:
            os.kill(victim, signal.SIGKILL)
        try:
            status, _ = request(port, "GET", f"/v1/users/u{n % 50 + 1:04d}/recommendations?k=3")
            failures += status != 200
        except (ConnectionError, http.client.HTTPException):
            failures += 1
    deadline = time.monotonic() + 30
    while (victim in workers(proc.pid) or len(workers(proc.pid)) < 2) and time.monotonic() < deadline:
        time.sleep(0.2)
    after = workers(proc.pid)
    assert victim not in after and len(after) == 2
    assert failures <= 2, failures
    for n in range(20):
        assert request(port, "GET", f"/v1/items/i{n + 1:04d}/similar?k=2")[0] == 200


def test_the_store_files_hold_exactly_what_was_acknowledged(server):
    """After all of the above, reading the store from disk shows the acknowledged users."""
    from kgrec.graph.memory import MemoryStore
    from kgrec.graph.schema import Label

    _, proc = server
    store_dir = Path(proc.args[proc.args.index("--store") + 1].removeprefix("memory://"))
    store = MemoryStore(store_dir)
    for n in range(6):
        assert store.get_node(Label.USER, f"after-{n}") is not None
    assert store.get_node(Label.USER, "chunked-00000") is None
    assert store.get_node(Label.USER, "chunked-ok") is not None
