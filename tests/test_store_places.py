"""The store contract for item locations, run against MemoryStore and a real Neo4j: locations are
stored, replaced, exported and snapshotted alike, and ``items_within`` gives the same ids and
distances (great-circle, R = 6371.0088 km) from both; on Neo4j the location is a WGS-84 point with
a point index, whose ``point.distance`` is compared with ours here."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

from kgrec.graph.geo import EARTH_RADIUS_KM, NEO4J_EARTH_RADIUS_KM
from kgrec.graph.memory import FILE_NAME, JOURNAL_NAME, MemoryStore
from kgrec.graph.records import GraphRecords, Interaction, Item
from kgrec.graph.schema import Label
from kgrec.graph.snapshot import build_snapshot
from kgrec.graph.store import GraphStore
from kgrec.graph.store_errors import StoreError
from kgrec.graph.store_factory import open_store

AUSTIN = (30.2672, -97.7431)
KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180  # along a meridian


def km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine written out independently of graph.geo."""
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(b[1] - a[1]) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def places() -> GraphRecords:
    lat, lon = AUSTIN
    return GraphRecords(
        items=[Item("centre", "Café", {"kind": "café"}, AUSTIN), Item("north", None, {}, (lat + 0.01, lon)),
               Item("twin-b", None, {}, (lat, lon + 0.02)), Item("twin-a", None, {}, (lat, lon + 0.02)),
               Item("dallas", "Dallas", {}, (32.7767, -96.797)), Item("antipode", None, {}, (-lat, lon + 180)),
               Item("nowhere", "No location")],
        interactions=[Interaction("u", "centre", 2.0), Interaction("u", "nowhere", 1.0)],
        hidden=["north"],
    )


def test_locations_are_stored_exported_and_snapshotted(store: GraphStore) -> None:
    store.load(places())
    assert store.get_node(Label.ITEM, "centre") == {"id": "centre", "title": "Café", "attrs": {"kind": "café"},
                                                    "location": AUSTIN}
    assert "location" not in store.get_node(Label.ITEM, "nowhere")
    exported = {i.id: i.location for i in store.export().items}
    assert exported == {i.id: i.location for i in places().items}
    snap = store.snapshot()
    assert snap.fingerprint == build_snapshot(places()).fingerprint
    assert snap.fingerprint != build_snapshot(GraphRecords(items=[Item(i.id, i.title, i.attrs) for i in places().items],
                                                           interactions=places().interactions,
                                                           hidden=["north"])).fingerprint
    at = snap.items.index
    assert (snap.item_lat[at["dallas"]], snap.item_lon[at["dallas"]]) == (32.7767, -96.797)
    assert np.isnan(snap.item_lat[at["nowhere"]]) and np.isnan(snap.item_lon[at["nowhere"]])


def test_an_item_upsert_replaces_or_removes_its_location(store: GraphStore) -> None:
    store.load(places())
    store.upsert_items([Item("centre", "Café"), Item("dallas", "Dallas", {}, (32.78, -96.8))])
    assert "location" not in store.get_node(Label.ITEM, "centre")
    assert store.get_node(Label.ITEM, "dallas")["location"] == (32.78, -96.8)
    assert [i for i, _ in store.items_within(*AUSTIN, 0.5)] == []


def test_items_within_gives_ids_and_great_circle_km_nearest_first(store: GraphStore) -> None:
    store.load(places())
    found = store.items_within(*AUSTIN, 2.5)
    assert [i for i, _ in found] == ["centre", "north", "twin-a", "twin-b"]  # hidden items too; ties by id
    expected = {i.id: km(AUSTIN, i.location) for i in places().items if i.location is not None}
    for item, d in found:
        assert d == pytest.approx(expected[item], abs=1e-9)
    assert found[1][1] == pytest.approx(0.01 * KM_PER_DEGREE, abs=1e-9)
    assert store.items_within(*AUSTIN, 0) == [("centre", 0.0)]
    assert [i for i, _ in store.items_within(*AUSTIN, 300)] == ["centre", "north", "twin-a", "twin-b", "dallas"]
    world = store.items_within(*AUSTIN, 20_100)
    assert world[-1][0] == "antipode" and world[-1][1] == pytest.approx(math.pi * EARTH_RADIUS_KM, rel=1e-12)
    assert store.items_within(0.0, 0.0, 100) == []


@pytest.mark.parametrize("query", [(91.0, 0.0, 1.0), (0.0, -180.5, 1.0), (math.nan, 0.0, 1.0), (0.0, 0.0, -1.0),
                                   (0.0, 0.0, math.inf)])
def test_bad_queries_are_refused(store: GraphStore, query: tuple[float, float, float]) -> None:
    with pytest.raises(StoreError):
        store.items_within(*query)


@pytest.mark.parametrize("location", [(90.5, 0.0), (0.0, 180.01), (math.nan, 1.0), (1.0, math.inf), (1.0,),
                                      ("30", "97")], ids=str)
def test_bad_locations_are_refused_whole(store: GraphStore, location: tuple) -> None:
    with pytest.raises(StoreError, match="item location"):
        store.upsert_items([Item("ok", None, {}, (1.0, 2.0)), Item("bad", None, {}, location)])
    with pytest.raises(StoreError, match="item location"):
        store.write_graph(GraphRecords(items=[Item("bad", None, {}, location)]), "create")
    assert not any(store.counts().values())


def test_whole_graph_writes_in_every_mode_keep_locations(store: GraphStore) -> None:
    store.write_graph(places(), "create")
    assert store.snapshot().fingerprint == build_snapshot(places()).fingerprint
    moved = GraphRecords(items=[Item("north", None, {}, (0.5, 0.5)), Item("centre", "Café", {"kind": "café"})])
    store.write_graph(moved, "merge")
    assert store.get_node(Label.ITEM, "north")["location"] == (0.5, 0.5)
    assert "location" not in store.get_node(Label.ITEM, "centre")
    expected = places()
    expected.items = [*moved.items, *(i for i in expected.items if i.id not in ("north", "centre"))]
    assert store.snapshot().fingerprint == build_snapshot(expected).fingerprint


def test_memory_store_reads_item_rows_written_before_locations(tmp_path: Path) -> None:
    s = MemoryStore(tmp_path)
    s.load(places())
    s.close()
    with gzip.open(tmp_path / FILE_NAME, "rb") as fh:
        doc = json.loads(fh.read())
    doc["items"] = [row[:3] for row in doc["items"]]  # the older three-field item rows
    with gzip.open(tmp_path / FILE_NAME, "wb") as fh:
        fh.write(json.dumps(doc).encode())
    (tmp_path / JOURNAL_NAME).write_text(json.dumps(
        {"base": doc["generation"], "ops": [["items", [["old-journal", "T", {}]]]]}) + "\n", encoding="utf-8")
    old = MemoryStore(tmp_path)
    assert old.get_node(Label.ITEM, "old-journal") == {"id": "old-journal", "title": "T", "attrs": {}}
    assert old.items_within(*AUSTIN, 100) == []
    old.upsert_items([Item("north", None, {}, (1.0, 1.0))])
    old.close()
    assert MemoryStore(tmp_path).items_within(1.0, 1.0, 0.1) == [("north", 0.0)]


def random_places(n: int = 400, seed: int = 5) -> GraphRecords:
    rng = np.random.default_rng(seed)
    lat = np.concatenate([rng.uniform(-89.9, 89.9, n // 2), AUSTIN[0] + rng.normal(0, 0.2, n // 2)])
    lon = np.concatenate([rng.uniform(-180, 180, n // 2), AUSTIN[1] + rng.normal(0, 0.2, n // 2)])
    pairs = enumerate(zip(lat.tolist(), lon.tolist(), strict=True))
    return GraphRecords(items=[Item(f"p{k:03}", None, {}, (a, b)) for k, (a, b) in pairs])


@pytest.mark.neo4j
def test_neo4j_points_answer_like_the_embedded_store(neo4j_uri: str, tmp_path: Path) -> None:
    neo, memory = open_store(neo4j_uri), MemoryStore(tmp_path / "graph")
    try:
        neo.clear()
        for s in (neo, memory):
            s.load(random_places())
        assert neo.snapshot().fingerprint == memory.snapshot().fingerprint
        rng = np.random.default_rng(11)
        centres = [AUSTIN, (89.99, 10.0), (-45.0, 179.9), (0.0, -179.99)] + [
            (float(rng.uniform(-80, 80)), float(rng.uniform(-180, 180))) for _ in range(6)]
        for centre in centres:
            for radius in (0.5, 5.0, 40.0, 800.0, 5000.0):
                a, b = neo.items_within(*centre, radius), memory.items_within(*centre, radius)
                assert [i for i, _ in a] == [i for i, _ in b], (centre, radius)
                assert all(abs(x - y) < 1e-6 for (_, x), (_, y) in zip(a, b, strict=True))
        indexes = neo.run_read("SHOW INDEXES YIELD name, type, labelsOrTypes, properties "
                               "WHERE name = 'kgrec_item_location' RETURN type, labelsOrTypes, properties")
        assert indexes == [{"type": "POINT", "labelsOrTypes": ["Item"], "properties": ["location"]}]
        # Neo4j's own point.distance: haversine on a sphere of 6378.14 km, so ours times 6378.14/6371.0088.
        pairs = neo.run_read(
            "MATCH (a:Item), (b:Item) WHERE a.id < b.id AND a.id STARTS WITH 'p00' AND b.id STARTS WITH 'p2' "
            "RETURN a.id AS a, b.id AS b, point.distance(a.location, b.location) AS metres")
        where = {i.id: i.location for i in random_places().items}
        assert len(pairs) == 10 * 100
        for row in pairs:
            ours = km(where[row["a"]], where[row["b"]])
            assert abs(row["metres"] / 1000 * EARTH_RADIUS_KM / NEO4J_EARTH_RADIUS_KM - ours) < 1e-6
        box = neo.run_read(
            "MATCH (i:Item) WHERE point.withinBBox(i.location, point({latitude: 30.0, longitude: -98.0}), "
            "point({latitude: 30.5, longitude: -97.5})) RETURN i.id AS id ORDER BY id")
        inside = sorted(k for k, (y, x) in where.items() if 30 <= y <= 30.5 and -98 <= x <= -97.5)
        assert [r["id"] for r in box] == inside and inside
    finally:
        neo.clear()
        neo.close()
        memory.close()
