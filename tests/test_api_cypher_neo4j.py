"""``POST /v1/cypher`` against a real Neo4j: reads answer, writes are refused by the read
transaction, runaway queries are terminated by the server's timeout."""

from __future__ import annotations

import pytest

from kgrec.api.app import create_app
from kgrec.api.settings import Settings
from kgrec.graph.cypher import run
from kgrec.loaders.synthetic import generate
from tests.api_fixtures import ANALYST_KEY, API_KEY, fill_store, fresh_server, train_bundle
from tests.neo4j_fixtures import loaded_neo4j

AUTH = {"Authorization": f"Bearer {ANALYST_KEY}"}
WRITER = {"Authorization": f"Bearer {API_KEY}"}
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
    settings = Settings(bundle=str(bundle), store=neo4j_uri, api_key=API_KEY, analyst_key=ANALYST_KEY)
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
    assert resp.get_json()["error"]["code"] == "forbidden_clause"
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
    ({"query": "MATCH (n RETRUN n"}, "query"),
    ({"query": "RETURN 'unterminated"}, "query"),
    ({"query": "RETURN \u0000 AS x"}, "query"),
    ({"query": "RETURN $x AS x", "params": {"x": 2**64}}, "params.x"),
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
    app = create_app(Settings(bundle=str(bundle), store=url, analyst_key=ANALYST_KEY), server=fresh_server(bundle))
    resp = app.test_client().post("/v1/cypher", json={"query": COUNT_USERS}, headers=AUTH)
    assert resp.status_code == 409
    assert resp.get_json()["error"]["code"] == "cypher_unavailable"
    assert "/cypher" in app.test_client().get("/v1/openapi.json").get_json()["paths"]


FORBIDDEN = [
    "LOAD CSV FROM 'http://127.0.0.1:1/x' AS r RETURN r",
    "MATCH (n) WITH n LIMIT 1 /* a comment */ load\tcsv FROM 'file:///etc/passwd' AS r RETURN r",
    "SHOW TRANSACTIONS",
    'TERMINATE TRANSACTIONS "neo4j-transaction-1"',
    "SHOW USERS",
    "// a comment first\nshow databases",
    "USE system SHOW USERS",
    "CALL dbms.listConfig() YIELD name RETURN name",
    "MATCH (n) CALL `dbms`.`listConfig`() YIELD name RETURN name",
    "CALL dbms.components() YIELD name RETURN name",
    "RETURN 1 AS x UNION SHOW DATABASES",
    "UNWIND [1] AS x CALL { WITH x CREATE (:User {id: 'intruder'}) } IN TRANSACTIONS RETURN x",
    "MATCH (n) RETURN apoc.text.join(['a'], ',') AS s",
]


@pytest.mark.neo4j
@pytest.mark.parametrize("query", FORBIDDEN)
def test_loading_admin_and_unlisted_procedures_are_forbidden(client, neo4j, query):
    before = neo4j.counts()
    resp = client.post("/v1/cypher", json={"query": query}, headers=AUTH)
    assert resp.status_code == 403, resp.get_json()
    assert resp.get_json()["error"] == {**resp.get_json()["error"], "code": "forbidden_clause", "field": "query"}
    assert neo4j.counts() == before


@pytest.mark.neo4j
def test_the_servers_own_plan_is_checked_too(neo4j):
    """The second line of defence, on a real plan: what the tokens let through is checked again."""
    from kgrec.api.cypher_guard import Forbidden, check_plan

    check_plan(neo4j.plan("CALL db.labels() YIELD label RETURN label"))
    for query in ("CALL dbms.components() YIELD name RETURN name", "SHOW TRANSACTIONS",
                  "LOAD CSV FROM 'http://127.0.0.1:1/x' AS r RETURN r"):
        with pytest.raises(Forbidden):
            check_plan(neo4j.plan(query))


@pytest.mark.neo4j
def test_allowed_reads_with_clause_words_in_safe_places(client):
    query = ("MATCH (u:User) WITH u.id AS `set`, {load: 1, show: 2} AS m "
             "RETURN `set`, m.load AS load, 'SHOW USERS' AS text, date.truncate('day', date()) IS NOT NULL AS d "
             "ORDER BY `set` LIMIT 2")
    resp = client.post("/v1/cypher", json={"query": query}, headers=AUTH)
    assert resp.status_code == 200, resp.get_json()
    assert [r["load"] for r in resp.get_json()["rows"]] == [1, 1]


@pytest.mark.neo4j
def test_rows_are_streamed_and_the_query_stopped_at_max_rows(client):
    """Two billion rows under a 3 s server timeout: fetching them all would time out (504); the
    endpoint reads 11 and rolls back."""
    body = {"query": "UNWIND range(1, 2000000000) AS x RETURN x", "max_rows": 10, "timeout": 3}
    resp = client.post("/v1/cypher", json=body, headers=AUTH)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"rows": [{"x": x} for x in range(1, 11)], "count": 10, "truncated": True,
                               "truncated_by": "max_rows"}


@pytest.mark.neo4j
def test_the_response_size_is_capped(client):
    from kgrec.api.blueprints.cypher import MAX_RESPONSE_BYTES

    body = {"query": "UNWIND range(1, 100) AS x RETURN x, range(1, 200000) AS r", "max_rows": 100}
    resp = client.post("/v1/cypher", json=body, headers=AUTH)
    out = resp.get_json()
    assert resp.status_code == 200 and out["truncated"] is True and out["truncated_by"] == "max_bytes"
    assert 0 < out["count"] < 100 and [r["x"] for r in out["rows"]] == list(range(1, out["count"] + 1))
    assert len(resp.get_data()) <= MAX_RESPONSE_BYTES + 1024


@pytest.mark.neo4j
def test_roles_writer_keys_do_not_run_cypher_and_analyst_keys_do_not_write(client):
    resp = client.post("/v1/cypher", json={"query": COUNT_USERS}, headers=WRITER)
    assert resp.status_code == 401 and "analyst" in resp.get_json()["error"]["message"]
    resp = client.post("/v1/users", json={"id": "by-analyst"}, headers=AUTH)
    assert resp.status_code == 401 and "writer" in resp.get_json()["error"]["message"]
