"""Reasons replay in the stores: every hop exists in MemoryStore, and every reason's Cypher
returns its path on a real Neo4j loaded with the same graph."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kgrec.graph.snapshot import GraphSnapshot, build_snapshot
from kgrec.graph.store_factory import open_store
from kgrec.loaders.synthetic import generate
from kgrec.recommenders.base import Derived, Reason
from kgrec.recommenders.models.geo_space import haversine_km
from kgrec.recommenders.reason_paths import CYPHER
from kgrec.recommenders.registry import create
from kgrec.recommenders.serving.query import Query
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


#: Models whose reasons walk NEAR hops, replayed on a graph whose places have coordinates (geo with
#: its friends' part on, so both directions of FOLLOWS appear in its paths).
LOCATED = {
    "geo": {"bandwidth": 0.5, "popularity_weight": 0.5, "wide_weight": 0.05, "friend_weight": 0.3},
    "graph_walk": {"near_weight": 0.3},
}


def located_reasons(snapshot: GraphSnapshot) -> Iterator[tuple[str, Reason]]:
    yield from reasons_of(snapshot, models=LOCATED, users=30, similar=False)


def profiled_reasons(snapshot: GraphSnapshot) -> Iterator[tuple[str, Reason]]:
    """The profile model's paths (through people who share an attribute) and what a search's words
    add (``q=``: the item's matching tag, or the item for a word of its title)."""
    yield from reasons_of(snapshot, models={"profile": {}}, users=6, per_user=2, similar=False)
    models = {"profile": create("profile", seed=1).fit(snapshot), "popularity": create("popularity").fit(snapshot)}
    server = Server(snapshot, models, list(models), max_reasons=6)
    for user in snapshot.users.ids[:4]:
        for query in ("action comedy", "dark city"):
            for served in server.recommend(Query(user, 3, q=query, explain=True)):
                for reason in served.reasons or ():
                    yield f"q:{served.source}", reason


def reasons_of(snapshot: GraphSnapshot, users: int = 4, per_user: int = 2, models: dict | None = None,
               similar: bool = True) -> Iterator[tuple[str, Reason]]:
    for name, cfg in (REPLAYED if models is None else models).items():
        model = create(name, seed=1, **cfg).fit(snapshot)
        for user in snapshot.users.ids[:users]:
            for rec in model.recommend(user, k=per_user):
                for reason in model.explain(user, rec.item_id)[:6]:
                    yield name, reason
    if similar:
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
    from tests.geo_graphs import planted_cities
    from tests.profile_graphs import planted_profiles

    checked = 0
    shapes = set()
    for records, reasons in ((generate(users=40, items=60, seed=4).records, reasons_of),
                             (planted_cities(), located_reasons), (planted_profiles(), profiled_reasons)):
        with open_store(f"memory://{tmp_path / str(checked)}") as store:
            store.load(records)
            snapshot = store.snapshot()
            for name, reason in reasons(snapshot):
                shapes.add(reason.cypher)
                for k, rel in enumerate(reason.rels):
                    a, b = reason.nodes[k], reason.nodes[k + 1]
                    src, dst = (a, b) if rel.forward else (b, a)
                    if rel.type is Derived.NEAR:  # computed from the two places' locations
                        assert all((store.get_node(n.label, n.id) or {}).get("location") for n in (a, b)), name
                    else:
                        assert store.has_relationship((src.label, src.id), rel.type, (dst.label, dst.id)), (
                            f"{name}: no {src.id}-[:{rel.type.value}]->{dst.id} ({reason.text})"
                        )
                    checked += 1
    assert checked > 0
    assert shapes == set(CYPHER.values()), "a path shape no recommender's reasons replayed"


@pytest.mark.neo4j
def test_every_reason_cypher_returns_its_path(neo4j_uri: str) -> None:
    from tests.geo_graphs import planted_cities
    from tests.profile_graphs import planted_profiles

    store = open_store(neo4j_uri)
    replayed = set()
    try:
        for records, reasons in ((generate(users=40, items=60, seed=4).records, reasons_of),
                                 (planted_cities(), located_reasons), (planted_profiles(), profiled_reasons)):
            store.clear()
            store.load(records)
            snapshot = build_snapshot(records)
            for name, reason in reasons(snapshot):
                rows = store.run_read(reason.cypher, reason.params)
                assert rows, f"{name}: the Cypher of “{reason.text}” found nothing"
                if reason.rels and reason.rels[-1].type is Derived.NEAR:  # the distance it is about
                    j, i = (snapshot.items.index[n.id] for n in reason.nodes[-2:])
                    km = float(haversine_km(snapshot.item_lat[j], snapshot.item_lon[j], snapshot.item_lat[i],
                                            snapshot.item_lon[i]))
                    assert rows[0]["km"] == pytest.approx(km, rel=2e-3, abs=1e-3), reason.text
                replayed.add(reason.cypher)
        assert replayed == set(CYPHER.values()), "a path shape was never replayed on Neo4j"
    finally:
        store.clear()
        store.close()

