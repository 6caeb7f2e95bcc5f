"""A user created through ``POST /v1/users`` with attributes gets profile-based recommendations on
the very next request, whichever gunicorn worker answers it (real processes, ``kgrec serve`` with two
workers, on both stores); attribute values the bundle never saw get popularity, never an error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kgrec.graph.schema import Label, Rel
from kgrec.graph.store_factory import open_store
from kgrec.recommenders.bundle.model_bundle import fit_models, save_bundle
from tests.profile_graphs import planted_profiles
from tests.test_serve_workers import AUTH, Served, call


@pytest.fixture(params=["memory", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Served, str]]:
    url = f"memory://{tmp_path / 'g'}" if request.param == "memory" else request.getfixturevalue("neo4j_uri")
    with open_store(url) as store:
        store.clear()
        store.load(planted_profiles())
        snap = store.snapshot()
    bundle = save_bundle(tmp_path / "bundle", snap, fit_models(snap, ["itemcf", "profile", "popularity"], seed=1))
    served = Served(bundle, url, tmp_path)
    served.start()
    try:
        yield served, url
    finally:
        served.stop()
        if request.param == "neo4j":
            with open_store(url) as store:
                store.clear()


def _recommend(server: Served, user: str) -> dict:
    status, body, _ = call(f"{server.base}/v1/users/{user}/recommendations?k=5&explain=true&policy=greedy")
    assert status == 200, body
    return body


def _replay(url: str, reasons: list[dict]) -> None:
    """Every reason of a newcomer is a path the store holds: each hop on the embedded store, the
    reason's own Cypher on Neo4j."""
    with open_store(url) as store:
        for r in reasons:
            if url.startswith("memory://"):
                for k, rel in enumerate(r["rels"]):
                    a, b = r["nodes"][k], r["nodes"][k + 1]
                    src, dst = (a, b) if rel["forward"] else (b, a)
                    assert store.has_relationship((Label(src["label"]), src["id"]), Rel(rel["type"]),
                                                  (Label(dst["label"]), dst["id"])), r["text"]
            else:
                assert store.run_read(r["cypher"], r["params"]), r["text"]


def test_a_new_user_with_attributes_is_served_from_them_at_once_by_every_worker(server: tuple[Served, str]) -> None:
    served, url = server
    lists = []
    for n in range(6):
        attrs = {"occupation": "engineer", "gender": "M", "age": 30 + n}
        status, body, _ = call(f"{served.base}/v1/users", "POST", {"id": f"new-{n}", "attrs": attrs}, AUTH)
        assert status == 201, body
        for _ in range(4):  # the very next request, then more: each may reach either worker
            got = _recommend(served, f"new-{n}")
            assert [r["source"] for r in got["recommendations"]] == ["profile"] * 5, got
            paths = [r for rec in got["recommendations"] for r in rec["reasons"]
                     if [x["label"] for x in r["nodes"]] == ["User", "Attribute", "User", "Item"]]
            assert paths and all(p["nodes"][0]["id"] == f"new-{n}" for p in paths)
            assert {p["nodes"][1]["id"] for p in paths} & {"occupation:engineer", "gender:M"}
            lists.append([r["item"] for r in got["recommendations"]])
        if n == 0:
            _replay(url, [r for rec in got["recommendations"] for r in rec["reasons"]])
    assert all(x == lists[0] for x in lists[:4])  # one user, one list, whichever worker (greedy: no hiding)
    status, body, _ = call(f"{served.base}/v1/users", "POST",
                           {"id": "stranger", "attrs": {"occupation": "astronaut", "planet": "mars"}}, AUTH)
    assert status == 201, body
    got = _recommend(served, "stranger")
    assert [r["source"] for r in got["recommendations"]] == ["popularity"] * 5
    served.stop()
    workers = {p.name.rsplit("_", 1)[1] for p in served.metrics.glob("counter_*.db")}
    assert len(workers) == 2, f"both workers should have answered: {workers}"
