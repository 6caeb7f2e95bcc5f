"""Fault injection with real processes and a real Neo4j: ``kill -9`` in the middle of ``kgrec
load``, a Neo4j paused for a few seconds (slow, not down: a long garbage-collection pause) under
``kgrec load``, writes and Cypher, a frozen (SIGSTOP) Neo4j under writes, and Neo4j stopped and
restarted under a running ``kgrec serve`` (a query killed by the shutdown is a 503). The Neo4j
cases use a server of this module's own (``dedicated_neo4j``), so freezing and restarting it
never disturbs the shared test server."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from email.message import Message
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from kgrec.api.app import create_app
from kgrec.api.settings import Settings
from kgrec.graph.schema import Label
from kgrec.graph.store_errors import StoreUnavailable
from kgrec.graph.store_factory import open_store
from tests.api_fixtures import ANALYST_KEY, API_KEY, fresh_server, train_bundle
from tests.neo4j_fixtures import dedicated_neo4j
from tests.serve_fixtures import serving
from tests.test_faults_load import expected_fingerprint, fingerprint, kgrec_load, kill_when

pytestmark = pytest.mark.neo4j
#: Two batches of interactions (10,000 rows each): the kill lands between them or just after.
NEO4J_LOAD = (("users", 1000), ("items", 800), ("seed", 11))
WRITER = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
ANALYST = {"Authorization": f"Bearer {ANALYST_KEY}", "Content-Type": "application/json"}
#: Longer than the driver's old 2 s receive deadline and its retries, shorter than a request's 10 s.
PAUSE = 5.0


@pytest.fixture(scope="module")
def neo4j(neo4j_uri, tmp_path_factory):
    """Needs what the shared server needs (``neo4j_uri`` skips without it); then starts its own."""
    with dedicated_neo4j(tmp_path_factory.mktemp("faults-neo4j") / "instance") as instance:
        yield instance


def test_kill_9_during_a_neo4j_load_then_rerun(neo4j):
    with open_store(neo4j.uri) as store:
        store.clear()

        def half_way() -> bool:
            counts = store.counts()
            return counts["interactions"] > 0 and counts["follows"] == 0

        proc = kgrec_load(neo4j.uri, NEO4J_LOAD)
        kill_when(proc, half_way)
        partial = store.counts()
    assert partial["interactions"] > 0
    rerun = kgrec_load(neo4j.uri, NEO4J_LOAD)
    assert rerun.wait(timeout=600) == 0, rerun.stderr.read().decode()[-2000:]
    assert fingerprint(neo4j.uri) == expected_fingerprint(NEO4J_LOAD)


@pytest.fixture(scope="module")
def bundle(snapshot, tmp_path_factory) -> Path:
    return train_bundle(snapshot, tmp_path_factory.mktemp("faults-bundle") / "bundle")


def paused(pid: int, seconds: float) -> threading.Thread:
    """SIGSTOP ``pid`` now and SIGCONT it ``seconds`` later (like a long garbage-collection pause)."""
    os.kill(pid, signal.SIGSTOP)
    thread = threading.Thread(target=lambda: (time.sleep(seconds), os.kill(pid, signal.SIGCONT)))
    thread.start()
    return thread


def in_thread(call) -> tuple[threading.Thread, list]:
    answers: list = []
    thread = threading.Thread(target=lambda: answers.append(call()))
    thread.start()
    return thread, answers


def test_kgrec_load_waits_out_a_paused_neo4j_and_writes_nothing_twice(neo4j):
    """Paused for 5 s in the middle of a load: the driver once gave up after 2 s without an
    answer (and retried for 2 s); now a batch waits its transaction's time, the load completes
    and the graph is exactly the one loaded without a pause."""
    with open_store(neo4j.uri) as store:
        store.clear()
        proc = kgrec_load(neo4j.uri, NEO4J_LOAD)
        while proc.poll() is None and store.counts()["interactions"] == 0:
            time.sleep(0.05)
        assert proc.poll() is None, "the load ended before it could be paused"
        paused(neo4j.pid(), PAUSE).join()
    assert proc.wait(timeout=600) == 0, proc.stderr.read().decode()[-2000:]
    assert fingerprint(neo4j.uri) == expected_fingerprint(NEO4J_LOAD)


def test_a_paused_neo4j_is_slow_not_down(neo4j, bundle, synthetic):
    """A write and a Cypher query in flight across a 5 s pause answer 201 and 200 (they once
    answered 503 after 2 s and the worker dropped its driver); nothing is marked stale."""
    with open_store(neo4j.uri) as store:
        store.clear()
        store.load(synthetic.records)
    app = create_app(Settings(bundle=str(bundle), store=neo4j.uri, api_key=API_KEY, analyst_key=ANALYST_KEY),
                     server=fresh_server(bundle))
    client = app.test_client()
    assert client.post("/v1/users", json={"id": "before-pause"}, headers=WRITER).status_code == 201
    handle = app.extensions["kgrec.store"]
    kept = handle._store
    for call in (lambda: client.post("/v1/users", json={"id": "during-pause"}, headers=WRITER),
                 lambda: client.post("/v1/cypher", json={"query": "MATCH (u:User {id: 'during-pause'}) "
                                                         "RETURN u.id AS id"}, headers=ANALYST)):
        resume = paused(neo4j.pid(), PAUSE)
        thread, answers = in_thread(call)
        resume.join()
        thread.join(timeout=60)
        assert not thread.is_alive()
        resp = answers[0]
        assert resp.status_code in (200, 201), resp.get_json()
        assert "X-Kgrec-Store" not in resp.headers
    assert resp.get_json()["rows"] == [{"id": "during-pause"}]
    assert handle._store is kept, "the worker dropped its driver over a slow answer"


def test_a_frozen_neo4j_times_out_the_write_in_flight_then_is_unavailable_and_recovers(neo4j, bundle, synthetic):
    """SIGSTOP for good: the write in flight ends at its request's timeout (504, the connection
    pool kept: the store may only be slow); the next write finds no server that completes a
    handshake (503, nothing written, it once hung for minutes); after SIGCONT writes succeed
    without restarting anything."""
    with open_store(neo4j.uri) as store:
        store.clear()
        store.load(synthetic.records)
    app = create_app(Settings(bundle=str(bundle), store=neo4j.uri, api_key=API_KEY), server=fresh_server(bundle))
    client = app.test_client()
    assert client.post("/v1/users", json={"id": "before-freeze"}, headers=WRITER).status_code == 201
    handle = app.extensions["kgrec.store"]
    kept = handle._store
    os.kill(neo4j.pid(), signal.SIGSTOP)
    try:
        answers = []
        for name in ("while-frozen", "still-frozen"):
            thread, got = in_thread(lambda n=name: client.post("/v1/users", json={"id": n}, headers=WRITER))
            thread.join(timeout=60)  # generous: the request's store timeout is 10 s; a hang lasted minutes
            assert not thread.is_alive(), "a write to a frozen Neo4j did not come back"
            answers.append(got[0])
            if name == "while-frozen":
                assert handle._store is kept
    finally:
        os.kill(neo4j.pid(), signal.SIGCONT)
    assert [(r.status_code, r.get_json()["error"]["code"]) for r in answers] == [
        (504, "store_timeout"), (503, "store_unavailable")]
    assert all(r.headers["X-Kgrec-Store"] for r in answers)
    deadline = time.monotonic() + 30
    while (status := client.post("/v1/users", json={"id": "after-thaw"}, headers=WRITER).status_code) != 201:
        assert status in (503, 504) and time.monotonic() < deadline
        time.sleep(0.5)
    with open_store(neo4j.uri) as store:
        assert store.get_node(Label.USER, "before-freeze") and store.get_node(Label.USER, "after-thaw")
        assert store.get_node(Label.USER, "while-frozen") is None and store.get_node(Label.USER, "still-frozen") is None


def http(port: int, method: str, path: str, body: dict | None = None, headers: dict | None = None,
         ) -> tuple[int, dict, Message]:
    """(status, the JSON body or {"html": text}, the headers: looked up whatever the case)."""
    data = None if body is None else json.dumps(body).encode()
    req = Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers or WRITER)
    try:
        with urlopen(req, timeout=60) as resp:
            raw, status, head = resp.read(), resp.status, resp.headers
    except HTTPError as err:
        raw, status, head = err.read(), err.code, err.headers
    is_json = (head.get("Content-Type") or "").startswith("application/json")
    return status, json.loads(raw) if is_json else {"html": raw.decode()}, head


def test_neo4j_stopped_while_serving_reads_go_on_writes_503_and_recovery_needs_no_restart(
        neo4j, bundle, synthetic, tmp_path):
    """Against the API as it is today (reads from the bundle and the per-worker overlay): a Cypher
    query running when Neo4j shuts down answers 503 (it once said 400 invalid_parameter); with
    Neo4j stopped, reads answer 200 and say so in X-Kgrec-Store (recommendations, similar items,
    the pages), health says degraded, writes answer 503 and write nothing; once Neo4j is back on
    its port, writes succeed again without restarting kgrec serve."""
    with open_store(neo4j.uri) as store:
        store.clear()
        store.load(synthetic.records)
    port_before = neo4j.port
    user, item = synthetic.records.users[0].id, synthetic.records.items[0].id
    env = {"KGREC_API_KEY": API_KEY, "KGREC_ANALYST_KEY": ANALYST_KEY}
    with serving(bundle, neo4j.uri, tmp_path, env=env) as (port, _):
        assert http(port, "POST", "/v1/users", {"id": "before-stop"})[0] == 201
        long_query = {"query": "UNWIND range(1, 3000000000) AS x WITH x WHERE x < 0 RETURN count(x) AS n",
                      "timeout": 60}
        running, answers = in_thread(lambda: http(port, "POST", "/v1/cypher", long_query, ANALYST))
        time.sleep(1)  # ordering only: the query is running when the shutdown starts
        neo4j.stop()
        try:
            running.join(timeout=120)
            status, body, _ = answers[0]
            assert status == 503 and body["error"]["code"] == "store_unavailable", body
            with pytest.raises(StoreUnavailable):  # what the 503s rest on: a stopped server is StoreUnavailable
                open_store(neo4j.uri)
            for _ in range(4):  # both workers
                status, body, head = http(port, "GET", f"/v1/users/{user}/recommendations?k=5")
                assert status == 200 and len(body["recommendations"]) == 5 and head["X-Kgrec-Store"]
                for path in (f"/v1/items/{item}/similar?k=3", f"/ui/users/{user}", f"/ui/items/{item}"):
                    status, body, head = http(port, "GET", path)
                    assert status == 200 and head["X-Kgrec-Store"].startswith("unreachable"), (path, head)
                status, body, head = http(port, "POST", "/v1/users", {"id": "while-stopped"})
                assert status == 503 and body["error"]["code"] == "store_unavailable" and head["X-Kgrec-Store"]
            deadline = time.monotonic() + 30
            while http(port, "GET", "/v1/health")[1]["status"] != "degraded":
                assert time.monotonic() < deadline
                time.sleep(0.5)
        finally:
            neo4j.start(port=port_before)
        deadline = time.monotonic() + 60
        while (status := http(port, "POST", "/v1/users", {"id": "after-restart"})[0]) != 201:
            assert status == 503 and time.monotonic() < deadline
            time.sleep(1)
        deadline = time.monotonic() + 30
        while http(port, "GET", "/v1/health")[1]["status"] != "ok":
            assert time.monotonic() < deadline
            time.sleep(0.5)
        for _ in range(4):  # every worker has the store back: no response says otherwise
            assert "X-Kgrec-Store" not in http(port, "GET", f"/v1/items/{item}/similar?k=3")[2]
    with open_store(neo4j.uri) as store:
        assert store.get_node(Label.USER, "before-stop") and store.get_node(Label.USER, "after-restart")
        assert store.get_node(Label.USER, "while-stopped") is None
