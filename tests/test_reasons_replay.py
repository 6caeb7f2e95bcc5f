"""Reasons replay in the stores: every hop exists in MemoryStore, and every reason's Cypher
returns its path on a real Neo4j loaded with the same graph."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kgrec.graph.snapshot import GraphSnapshot, build_snapshot
from kgrec.graph.store_factory import open_store
from kgrec.loaders.synthetic import generate
from kgrec.recommenders.base import Reason
from kgrec.recommenders.reason_paths import CYPHER
from kgrec.recommenders.registry import create
from kgrec.recommenders.serving.server import Server

#: The recommenders whose reasons are replayed, with small settings where fitting is slow
#: (social with its two-hop and popularity shares on, so every path shape is replayed).
REPLAYED = {
    "popularity": {"mode": "tag"},
    "itemcf": {},
    "usercf": {},
    "content": {},
    "association": {},
    "als": {"iterations": 5},
    "bpr": {"iterations": 20},
    "graph_walk": {},
    "social": {"two_hop": 0.5, "shrinkage": 2.0},
    "ease": {},
    "multvae": {"hidden_dim": 32, "latent_dim": 8, "epochs": 5, "device": "cpu", "threads": 1},
}


def reasons_of(snapshot: GraphSnapshot, users: int = 4, per_user: int = 2) -> Iterator[tuple[str, Reason]]:
    for name, cfg in REPLAYED.items():
        model = create(name, seed=1, **cfg).fit(snapshot)
        for user in snapshot.users.ids[:users]:
            for rec in model.recommend(user, k=per_user):
                for reason in model.explain(user, rec.item_id)[:6]:
                    yield name, reason
    yield from similar_reasons(snapshot)


def similar_reasons(snapshot: GraphSnapshot, items: int = 6) -> Iterator[tuple[str, Reason]]:
    """What the read path shows for similar items (shared tags and shared listeners), with and
    without a model of its own similarity."""
    for models in ({"popularity": create("popularity").fit(snapshot)},
                   {"itemcf": create("itemcf").fit(snapshot), "popularity": create("popularity").fit(snapshot)}):
        server = Server(snapshot, models, list(models), max_reasons=6)
        for item in snapshot.items.ids[:items]:
            for served in server.similar(item, 3, explain=True):
                for reason in served.reasons or ():
                    yield f"similar:{served.source}", reason


def test_every_hop_is_a_memory_store_relationship(tmp_path) -> None:
    g = generate(users=40, items=60, seed=4)
    with open_store(f"memory://{tmp_path / 'g'}") as store:
        store.load(g.records)
        snapshot = store.snapshot()
        checked = 0
        shapes = set()
        for name, reason in reasons_of(snapshot):
            shapes.add(reason.cypher)
            for k, rel in enumerate(reason.rels):
                a, b = reason.nodes[k], reason.nodes[k + 1]
                src, dst = (a, b) if rel.forward else (b, a)
                assert store.has_relationship((src.label, src.id), rel.type, (dst.label, dst.id)), (
                    f"{name}: no {src.id}-[:{rel.type.value}]->{dst.id} ({reason.text})"
                )
                checked += 1
    assert checked > 0
    assert shapes == set(CYPHER.values()), "a path shape no recommender's reasons replayed"


@pytest.mark.neo4j
def test_every_reason_cypher_returns_its_path(neo4j_uri: str) -> None:
    g = generate(users=40, items=60, seed=4)
    snapshot = build_snapshot(g.records)
    store = open_store(neo4j_uri)
    try:
        store.clear()
        store.load(g.records)
        replayed = set()
        for name, reason in reasons_of(snapshot):
            rows = store.run_read(reason.cypher, reason.params)
            assert rows, f"{name}: the Cypher of “{reason.text}” found nothing"
            replayed.add(reason.cypher)
        assert replayed == set(CYPHER.values()), "a path shape was never replayed on Neo4j"
    finally:
        store.clear()
        store.close()
