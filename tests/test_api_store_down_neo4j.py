"""The API against a Neo4j store that is not there (a closed loopback port): it starts,
serves reads from the bundle, reports ``degraded`` health and answers writes with 503."""

from __future__ import annotations

import socket

import pytest

from kgrec.api.app import create_app
from kgrec.api.settings import Settings
from tests.api_fixtures import ANALYST_KEY, API_KEY, fresh_server, train_bundle


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def client(snapshot, tmp_path_factory):
    bundle = train_bundle(snapshot, tmp_path_factory.mktemp("neo4j-down") / "bundle")
    settings = Settings(bundle=str(bundle), store=f"bolt://127.0.0.1:{closed_port()}", api_key=API_KEY,
                        analyst_key=ANALYST_KEY)
    return create_app(settings, server=fresh_server(bundle)).test_client()


def test_reads_served_writes_refused_when_neo4j_is_down(client, snapshot):
    user = snapshot.users.ids[0]
    recs = client.get(f"/v1/users/{user}/recommendations?k=5&explain=true")
    assert recs.status_code == 200 and len(recs.get_json()["recommendations"]) == 5
    assert client.get(f"/v1/items/{snapshot.items.ids[0]}/similar?k=3").status_code == 200
    health = client.get("/v1/health").get_json()
    assert health["status"] == "degraded" and health["store"]["reachable"] is False
    auth = {"Authorization": f"Bearer {API_KEY}"}
    resp = client.post("/v1/interactions", json={"user": user, "item": snapshot.items.ids[1]}, headers=auth)
    assert resp.status_code == 503
    assert resp.get_json()["error"]["code"] == "store_unavailable"
    assert "Traceback" not in resp.get_data(as_text=True)
    # nothing reached the overlay either: the user's history is the bundle's
    assert client.get(f"/v1/users/{user}").get_json()["interactions"] == len(
        snapshot.user_items(snapshot.users.index[user]))


def test_cypher_answers_503_when_neo4j_is_down(client):
    resp = client.post("/v1/cypher", json={"query": "RETURN 1 AS one"},
                       headers={"Authorization": f"Bearer {ANALYST_KEY}"})
    assert resp.status_code == 503, resp.get_json()
    assert resp.get_json()["error"]["code"] == "store_unavailable"


def test_every_response_served_without_the_store_says_so(client, snapshot):
    """X-Kgrec-Store on every answer while the store is down: similar items and the pages (they
    once omitted it) as well as recommendations, and what never reads the store (models, metrics)."""
    user, item = snapshot.users.ids[0], snapshot.items.ids[0]
    for path in (f"/v1/users/{user}/recommendations?k=3", f"/v1/items/{item}/similar?k=3", f"/ui/users/{user}",
                 f"/ui/items/{item}", "/ui/", f"/v1/users/{user}", "/v1/models", "/metrics", "/v1/health"):
        resp = client.get(path)
        assert resp.status_code == 200, path
        assert resp.headers["X-Kgrec-Store"].startswith("unreachable"), path
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    page = client.get(f"/ui/users/{user}")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
