"""Attempts to get past ``/v1/cypher``'s text check, against a real Neo4j: each is refused by the
text check (403, or 400 for text Cypher does not read), nothing runs or changes, and the plan
check (the second barrier) refuses on its own every one the server would plan. Planning runs
under the query's timeout: a query that takes the planner tens of seconds answers 504."""

from __future__ import annotations

import threading

import pytest

from kgrec.api.app import create_app
from kgrec.api.cypher_guard import Forbidden, check_plan, check_text
from kgrec.api.settings import Settings
from kgrec.graph.store_errors import StoreError
from kgrec.loaders.synthetic import generate
from tests.api_fixtures import ANALYST_KEY, fresh_server, train_bundle
from tests.neo4j_fixtures import loaded_neo4j

pytestmark = pytest.mark.neo4j
AUTH = {"Authorization": f"Bearer {ANALYST_KEY}"}
URL = "'http://127.0.0.1:1/x'"

#: The issue's four, and more of the same kinds: line ends Neo4j ends a comment at, escapes in
#: names, keywords right after an alias, namespaced functions off keyword position, numbers run
#: into words, quoted names.
BYPASSES = [
    f"WITH 1 AS x //c\rLOAD CSV FROM {URL} AS r RETURN r",
    f"WITH 1 AS x \\u004cOAD CSV FROM {URL} AS r RETURN r",
    f"WITH 1 AS AS LOAD CSV FROM {URL} AS r RETURN r",
    "RETURN {a: apoc.version()} AS v",
    f"MATCH (n) WITH n LIMIT 1 //\rload csv FROM {URL} AS r RETURN r",
    f"WITH 1 AS x //c\u2028LOAD CSV FROM {URL} AS r RETURN r",
    f"WITH 1 AS x \\u004C\\u004F\\u0041\\u0044 CSV FROM {URL} AS r RETURN r",
    f"WITH 1 AS x L\\u004fAD CSV FROM {URL} AS r RETURN r",
    "\\u0053HOW TRANSACTIONS",
    "WITH 1 AS x CALL \\u0064bms.listConfig() YIELD name RETURN name",
    f"WITH 1 AS AS, 2 AS AS2 LOAD CSV FROM {URL} AS r RETURN r",
    f"UNWIND [1] AS AS LOAD CSV FROM {URL} AS r RETURN r",
    f"WITH 1 AS `x` LOAD CSV FROM {URL} AS r RETURN r",
    f"RETURN 1 AS as UNION LOAD CSV FROM {URL} AS r RETURN r",
    f"WITH 1 AS x, 1LOAD CSV FROM {URL} AS r RETURN r",
    "RETURN {a: graph.names()} AS v",
    "RETURN [graph.names()] AS v",
    "RETURN size(graph.names()) AS v",
    "RETURN {a: {b: `graph`.`names`()}} AS v",
    "RETURN `graph.names`() AS v",
    "RETURN {a: graph . names /* x */ ()} AS v",
    "MATCH (n) RETURN n {.id, x: graph.names()} AS v",
    "RETURN CASE WHEN true THEN graph.names() END AS v",
    "RETURN [x IN [1] | graph.names()] AS v",
    "RETURN 1 AS x ORDER BY graph.names() LIMIT 1",
    "MATCH (n:User) WHERE n.id IN graph.names() RETURN n",
    "RETURN 1 \\ LOAD",
]


@pytest.fixture(scope="module")
def neo4j(neo4j_uri):
    with loaded_neo4j(neo4j_uri, generate(users=20, items=30, seed=4).records) as store:
        yield store


@pytest.fixture(scope="module")
def client(neo4j, neo4j_uri, snapshot, tmp_path_factory):
    bundle = train_bundle(snapshot, tmp_path_factory.mktemp("cypher-bypass") / "bundle")
    settings = Settings(bundle=str(bundle), store=neo4j_uri, analyst_key=ANALYST_KEY)
    return create_app(settings, server=fresh_server(bundle)).test_client()


@pytest.mark.parametrize("query", BYPASSES)
def test_a_bypass_attempt_is_refused_and_runs_nothing(client, neo4j, query):
    before = neo4j.counts()
    resp = client.post("/v1/cypher", json={"query": query}, headers=AUTH)
    assert resp.status_code in (400, 403), resp.get_json()
    assert resp.get_json()["error"]["field"] == "query"
    assert resp.get_json()["error"]["code"] == ("forbidden_clause" if resp.status_code == 403 else "invalid_parameter")
    assert neo4j.counts() == before


@pytest.mark.parametrize("query", [q for q in BYPASSES if "LOAD" in q.upper() or "SHOW" in q.upper()
                                   or "dbms" in q or "\\u00" in q])
def test_the_plan_check_alone_refuses_what_the_server_would_plan(neo4j, query):
    """The second barrier, without the first: what Neo4j plans at all is refused from its plan."""
    try:
        plan = neo4j.plan(query)
    except StoreError:
        return  # Neo4j itself does not read it as Cypher: it could not run either
    with pytest.raises(Forbidden):
        check_plan(plan)


def test_reads_that_look_like_bypasses_still_run(client):
    """What the stricter tokeniser must keep: aliases named like keywords, escapes in strings,
    allowed namespaced functions in map values, comments ended by \\r, numbers with exponents."""
    for query in ("WITH 1 AS as RETURN as AS x",
                  "RETURN 'LOAD CSV \\u004cOAD' AS s // trailing comment\r",
                  "RETURN {d: date.truncate('day', date('2024-05-06')), n: 1.5e3} AS m",
                  "MATCH (u:User) WITH u.id AS `set` RETURN `set` ORDER BY `set` LIMIT 1"):
        check_text(query)
        resp = client.post("/v1/cypher", json={"query": query}, headers=AUTH)
        assert resp.status_code == 200, (query, resp.get_json())


def test_planning_runs_under_the_querys_timeout(client):
    """A 50,000-character WHERE ... OR ... takes Neo4j's planner tens of seconds (EXPLAIN had no
    timeout: the issue measured 41.6 s under a 10 s timeout). Under a 1 s timeout it answers 504
    (the wall time against the timeout is measured in benchmarks/cypher_timeout.py; 20 s here only
    tells a bounded wait from an unbounded one)."""
    query = "MATCH (n:User) WHERE " + " OR ".join(f"n.id = 'a{i}'" for i in range(2850)) + " RETURN n.id AS id"
    assert len(query) >= 50_000
    answers: list = []
    thread = threading.Thread(target=lambda: answers.append(
        client.post("/v1/cypher", json={"query": query, "timeout": 1}, headers=AUTH)))
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "planning ignored the query's timeout"
    resp = answers[0]
    assert resp.status_code == 504, resp.get_json()
    assert resp.get_json()["error"] == {"code": "query_timeout", "field": "timeout",
                                        "message": "the query ran longer than 1 s and was terminated"}
