"""``POST /v1/cypher`` against a real Neo4j: reads answer, writes are refused by the read
transaction, runaway queries are terminated by the server's timeout."""

from __future__ import annotations

import pytest

from api.app import create_app
from api.settings import Settings
from graph.cypher import run
from loaders.synthetic import generate
from tests.api_fixtures import API_KEY, fill_store, fresh_server, train_bundle
from tests.neo4j_fixtures import loaded_neo4j

AUTH = {"Authorization": f"Bearer {API_KEY}"}
COUNT_USERS = "MATCH (u:User) RETURN count(u) AS n"


@pytest.fixture(scope="module")
def bundle(snapshot, tmp_path_factory):
    return train_bundle(snapshot, tmp_path_factory.mktemp("cypher-api") / "bundle")


@pytest.fixture(scope="module")
def graph():
    return generate(users=25, items=40, seed=5)


@pytest.fixture(scope="module")
def neo4j(neo4j_uri, graph):
    with loaded_neo4j(neo4j_uri, graph.records) as store:
        yield store


@pytest.fixture(scope="module")
def client(neo4j, neo4j_uri, bundle):
    settings = Settings(bundle=str(bundle), store=neo4j_uri, api_key=API_KEY)
    return create_app(settings, server=fresh_server(bundle)).test_client()


@pytest.mark.neo4j
def test_a_read_query_returns_rows(client, graph):
    resp = client.post("/v1/cypher", json={"query": COUNT_USERS}, headers=AUTH)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"rows": [{"n": len(graph.records.users)}], "count": 1, "truncated": False}
    resp = client.post("/v1/cypher", json={"query": "MATCH (i:Item) RETURN i.id AS id ORDER BY id", "max_rows": 5},
                       headers=AUTH)
    body = resp.get_json()
    assert [r["id"] for r in body["rows"]] == sorted(i.id for i in graph.records.items)[:5]
    assert body["truncated"] is True


@pytest.mark.neo4j
def test_a_cookbook_query_runs_by_name(client, neo4j, graph):
    user = max(graph.records.users, key=lambda u: sum(f.user == u.id for f in graph.records.follows)).id
    params = {"user": user, "k": 5}
    resp = client.post("/v1/cypher", json={"name": "friends_like", "params": params}, headers=AUTH)
    assert resp.status_code == 200
    assert resp.get_json()["rows"] == run(neo4j, "friends_like", params)
    assert resp.get_json()["count"] > 0
    bad = client.post("/v1/cypher", json={"name": "friends_like", "params": {"user": user}}, headers=AUTH)
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "params"
    unknown = client.post("/v1/cypher", json={"name": "drop_everything"}, headers=AUTH)
    assert unknown.status_code == 400 and unknown.get_json()["error"]["field"] == "name"


@pytest.mark.neo4j
@pytest.mark.parametrize("query", [
    "CREATE (:User {id: 'intruder'})",
    "MERGE (u:User {id: 'intruder'}) RETURN u.id AS id",
    "MATCH (n) DETACH DELETE n",
    "MATCH (u:User) SET u.attr_hacked = true RETURN count(u) AS n",
])
def test_writes_are_refused(client, neo4j, graph, query):
    before = neo4j.counts()
    resp = client.post("/v1/cypher", json={"query": query}, headers=AUTH)
    assert resp.status_code == 403, resp.get_json()
    assert resp.get_json()["error"]["code"] == "read_only"
    assert neo4j.counts() == before
    assert neo4j.run_read("MATCH (u:User) WHERE u.id = 'intruder' OR u.attr_hacked RETURN count(u) AS n")[0]["n"] == 0
    # the refusal did not break the connection: the next read answers
    assert client.post("/v1/cypher", json={"query": COUNT_USERS}, headers=AUTH).status_code == 200


@pytest.mark.neo4j
def test_a_runaway_query_is_terminated_by_its_timeout(client):
    slow = "UNWIND range(1, 2000000000) AS x WITH x WHERE x % 1000003 = -1 RETURN count(x) AS n"
    resp = client.post("/v1/cypher", json={"query": slow, "timeout": 0.5}, headers=AUTH)
    assert resp.status_code == 504, resp.get_json()
    assert resp.get_json()["error"]["code"] == "query_timeout"
    assert client.post("/v1/cypher", json={"query": COUNT_USERS}, headers=AUTH).status_code == 200


@pytest.mark.neo4j
@pytest.mark.parametrize(("body", "field"), [
    ({}, "query"),
    ({"query": "RETURN 1", "name": "graph_summary"}, "query"),
    ({"query": "   "}, "query"),
    ({"query": "RETURN 1", "params": [1]}, "params"),
    ({"query": "RETURN 1", "timeout": 0}, "timeout"),
    ({"query": "RETURN 1", "timeout": 600}, "timeout"),
    ({"query": "RETURN 1", "timeout": True}, "timeout"),
    ({"query": "RETURN 1", "max_rows": 0}, "max_rows"),
    ({"query": "RETRUN 1"}, "query"),
])
def test_bad_requests_name_the_field(client, body, field):
    resp = client.post("/v1/cypher", json=body, headers=AUTH)
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["error"]["field"] == field


@pytest.mark.neo4j
def test_without_the_api_key_nothing_runs(client):
    assert client.post("/v1/cypher", json={"query": COUNT_USERS}).status_code == 401


def test_a_memory_store_answers_409(snapshot, bundle, synthetic, tmp_path):
    url = fill_store(synthetic.records, tmp_path / "graph")
    app = create_app(Settings(bundle=str(bundle), store=url, api_key=API_KEY), server=fresh_server(bundle))
    resp = app.test_client().post("/v1/cypher", json={"query": COUNT_USERS}, headers=AUTH)
    assert resp.status_code == 409
    assert resp.get_json()["error"]["code"] == "cypher_unavailable"
    assert "/cypher" in app.test_client().get("/v1/openapi.json").get_json()["paths"]
