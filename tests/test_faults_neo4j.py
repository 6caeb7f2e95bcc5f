"""Fault injection with real processes and a real Neo4j: ``kill -9`` in the middle of ``kgrec
load``, a frozen (SIGSTOP) Neo4j under writes, and Neo4j stopped and restarted under a running
``kgrec serve``. The Neo4j cases use a server of this module's own (``dedicated_neo4j``), so
freezing and restarting it never disturbs the shared test server."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from kgrec.api.app import create_app
from kgrec.api.settings import Settings
from kgrec.graph.schema import Label
from kgrec.graph.store_errors import StoreUnavailable
from kgrec.graph.store_factory import open_store
from tests.api_fixtures import API_KEY, fresh_server, train_bundle
from tests.neo4j_fixtures import dedicated_neo4j
from tests.serve_fixtures import serving
from tests.test_faults_load import expected_fingerprint, fingerprint, kgrec_load, kill_when

pytestmark = pytest.mark.neo4j
#: Two batches of interactions (10,000 rows each): the kill lands between them or just after.
NEO4J_LOAD = (("users", 1000), ("items", 800), ("seed", 11))
WRITER = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}


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


def test_a_frozen_neo4j_answers_writes_with_503_promptly_and_recovers(neo4j, bundle, synthetic):
    """SIGSTOP: the server accepts connections but never answers. A write must come back as a
    503 within the driver's retry budget (it once hung for minutes), write nothing, and the
    next write after SIGCONT succeeds without restarting anything."""
    with open_store(neo4j.uri) as store:
        store.clear()
        store.load(synthetic.records)
    app = create_app(Settings(bundle=str(bundle), store=neo4j.uri, api_key=API_KEY), server=fresh_server(bundle))
    client = app.test_client()
    assert client.post("/v1/users", json={"id": "before-freeze"}, headers=WRITER).status_code == 201
    answers: list[int] = []
    writer = threading.Thread(target=lambda: answers.append(
        client.post("/v1/users", json={"id": "while-frozen"}, headers=WRITER).status_code))
    os.kill(neo4j.pid(), signal.SIGSTOP)
    try:
        writer.start()
        writer.join(timeout=30)  # generous: the budget is ~5 s; a hang would last minutes
        assert not writer.is_alive(), "a write to a frozen Neo4j did not come back within 30 s"
    finally:
        os.kill(neo4j.pid(), signal.SIGCONT)
        writer.join()
    assert answers == [503]
    deadline = time.monotonic() + 30
    while (status := client.post("/v1/users", json={"id": "after-thaw"}, headers=WRITER).status_code) != 201:
        assert status == 503 and time.monotonic() < deadline
        time.sleep(0.5)
    with open_store(neo4j.uri) as store:
        assert store.get_node(Label.USER, "before-freeze") and store.get_node(Label.USER, "after-thaw")
        assert store.get_node(Label.USER, "while-frozen") is None


def http(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=WRITER)
    try:
        with urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except HTTPError as err:
        return err.code, json.loads(err.read())


def test_neo4j_stopped_while_serving_reads_go_on_writes_503_and_recovery_needs_no_restart(
        neo4j, bundle, synthetic, tmp_path):
    """Against the API as it is today (reads from the bundle and the per-worker overlay): with
    Neo4j stopped, reads answer 200, health says degraded, writes answer 503 and write nothing;
    once Neo4j is back on its port, writes succeed again without restarting kgrec serve."""
    with open_store(neo4j.uri) as store:
        store.clear()
        store.load(synthetic.records)
    port_before = neo4j.port
    user, item = synthetic.records.users[0].id, synthetic.records.items[0].id
    with serving(bundle, neo4j.uri, tmp_path, env={"KGREC_API_KEY": API_KEY}) as (port, _):
        assert http(port, "POST", "/v1/users", {"id": "before-stop"})[0] == 201
        neo4j.stop()
        try:
            with pytest.raises(StoreUnavailable):  # what the 503s rest on: a stopped server is StoreUnavailable
                open_store(neo4j.uri)
            for _ in range(4):  # both workers
                status, body = http(port, "GET", f"/v1/users/{user}/recommendations?k=5")
                assert status == 200 and len(body["recommendations"]) == 5
                assert http(port, "GET", f"/v1/items/{item}/similar?k=3")[0] == 200
                status, body = http(port, "POST", "/v1/users", {"id": "while-stopped"})
                assert status == 503 and body["error"]["code"] == "store_unavailable"
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
    with open_store(neo4j.uri) as store:
        assert store.get_node(Label.USER, "before-stop") and store.get_node(Label.USER, "after-restart")
        assert store.get_node(Label.USER, "while-stopped") is None
