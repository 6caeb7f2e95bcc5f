"""The cookbook's location queries on a real Neo4j loaded with a planted-cities graph, each checked
against the rows computed in plain Python from the same records (distances on Neo4j's sphere)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import pytest

from kgrec.graph.cypher import run
from kgrec.graph.geo import NEO4J_EARTH_RADIUS_KM
from kgrec.graph.recommendation_writeback import recommendation_rows, write_recommendations
from kgrec.graph.snapshot import build_snapshot
from kgrec.graph.store_factory import open_store
from kgrec.recommenders.registry import create
from tests.geo_graphs import CITIES, planted_cities

pytestmark = pytest.mark.neo4j


def neo4j_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """``point.distance`` / 1000: haversine on Neo4j's sphere."""
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(b[1] - a[1]) / 2) ** 2
    return 2 * NEO4J_EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, h)))


@pytest.fixture(scope="module")
def world(neo4j_uri: str) -> Iterator[tuple[object, object, dict]]:
    records = planted_cities()
    snap = build_snapshot(records)
    store = open_store(neo4j_uri)
    try:
        store.clear()
        store.load(records)
        model = create("geo").fit(snap)
        rows = list(recommendation_rows(model, snap.users.ids, 10))
        write_recommendations(store, "geo", rows, users=snap.users.ids, at=1_700_000_000)
        yield store, records, {"rows": rows}
    finally:
        store.clear()
        store.close()


def _places(records) -> dict[str, tuple[float, float]]:
    return {i.id: i.location for i in records.items if i.location is not None}


def test_friends_near_me(world) -> None:
    store, records, _ = world
    where = _places(records)
    visits: dict[str, dict[str, float]] = defaultdict(dict)
    for x in records.interactions:
        visits[x.user][x.item] = x.weight
    friends: dict[str, set[str]] = defaultdict(set)
    for f in records.follows:
        friends[f.user].add(f.friend)
        friends[f.friend].add(f.user)
    user = max(sorted(friends), key=lambda u: len(friends[u]))
    radius = 0.5
    expected = []
    candidates: dict[str, list[str]] = defaultdict(list)
    for f in sorted(friends[user]):
        for item in visits[f]:
            if item in where and item not in visits[user]:
                candidates[item].append(f)
    for item, who in candidates.items():
        d = [neo4j_km(where[item], where[j]) for j in visits[user] if j in where]
        if d and min(d) <= radius:
            expected.append((item, len(who), sorted(who), min(d)))
    expected.sort(key=lambda e: (-e[1], e[3], e[0]))
    rows = run(store, "friends_near_me", {"user": user, "radius_km": radius, "k": 50})
    assert expected and [(r["item"], r["friends"], r["who"]) for r in rows] == [e[:3] for e in expected[:50]]
    assert [r["km"] for r in rows] == pytest.approx([e[3] for e in expected[:50]], rel=1e-9, abs=1e-9)


def test_activity_centres(world) -> None:
    store, records, _ = world
    where = _places(records)
    user = records.users[0].id
    mine = [(x.item, x.weight) for x in records.interactions if x.user == user and x.item in where]
    cell = 1.0
    cells: dict[tuple[int, int], list[tuple[float, float, float]]] = defaultdict(list)
    for item, w in mine:
        lat, lon = where[item]
        key = (math.floor(lat * 111.19508 / cell), math.floor(lon * 111.19508 * math.cos(math.radians(lat)) / cell))
        cells[key].append((w, lat, lon))
    total = sum(w for _, w in mine)
    expected = sorted(((sum(w for w, _, _ in v), len(v), sum(w * a for w, a, _ in v) / sum(w for w, _, _ in v))
                       for v in cells.values()), key=lambda e: (-e[0], -e[1], e[2]))
    rows = run(store, "activity_centres", {"user": user, "cell_km": cell, "k": 10})
    assert [(r["weight"], r["places"]) for r in rows] == [(e[0], e[1]) for e in expected]
    assert [r["lat"] for r in rows] == pytest.approx([e[2] for e in expected])
    assert sum(r["share"] for r in rows) == pytest.approx(sum(e[0] for e in expected) / total)
    assert len(rows) >= 2  # a home neighbourhood and the other one 4 km away


def test_recommendations_within(world) -> None:
    store, records, written = world
    where = _places(records)
    by_user: dict[str, list[tuple[str, float, int]]] = defaultdict(list)
    for user, item, score, rank in written["rows"]:
        by_user[user].append((item, score, rank))
    user = sorted(by_user)[3]
    centre, radius = CITIES[next(c for c in CITIES if by_user[user][0][0].startswith(c))], 2.0
    expected = [(rank, item, neo4j_km(where[item], centre)) for item, _, rank in by_user[user]
                if neo4j_km(where[item], centre) <= radius]
    rows = run(store, "recommendations_within", {"user": user, "model": "geo", "lat": centre[0], "lon": centre[1],
                                                 "radius_km": radius, "k": 10})
    assert expected and [(r["rank"], r["item"]) for r in rows] == [e[:2] for e in expected]
    assert [r["km"] for r in rows] == pytest.approx([e[2] for e in expected])
    assert np.all(np.diff([r["rank"] for r in rows]) > 0)
