"""One contract for every GraphStore: each test runs against MemoryStore and Neo4jStore.

The Neo4j variant needs a real server (``KGREC_TEST_NEO4J_URI``; ``make test`` starts one)
and empties its database before each test.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from kgrec.graph.memory import FILE_NAME, JOURNAL_NAME, LOCK_NAME, TABLES, MemoryStore
from kgrec.graph.records import Dislike, Fact, Follow, GraphRecords, Interaction, Item, ItemTag, Tag, Tagging, User
from kgrec.graph.schema import COUNT_KEYS, Label, Rel
from kgrec.graph.snapshot import build_snapshot
from kgrec.graph.store import GraphStore, neighbor_order
from kgrec.graph.store_errors import StoreError
from kgrec.graph.store_factory import open_store
from kgrec.loaders.synthetic import SyntheticGraph

# Ids that would break a query built from strings (none are: values travel as parameters). No
# "//" comments: user and item ids may not contain "/" (graph.values.id_problem).
CYPHERISH = ("') DETACH DELETE n; MATCH (m) RETURN ('", '"}) MATCH (n) DETACH DELETE n WITH 1 AS x RETURN {a: "',
             "x` DETACH DELETE n WITH 1 AS `y", "$id")
DBO = "http://dbpedia.org/ontology/"
DBR = "http://dbpedia.org/resource/"
UNICODE = ("Björk", "東京事変", "🎸🔥", "Sigur Rós")


def small() -> GraphRecords:
    """A hand-written graph touching every node and relationship kind."""
    return GraphRecords(
        users=[User("alice", {"name": "Alice", "age": 31, "vip": True}), User("bob", {"name": "Bob"}), User("carol")],
        items=[Item("radiohead", "Radiohead", {"year": 1985, "score": 0.75}), Item("blur", "Blur"), Item("muse")],
        tags=[Tag("britpop", "Britpop"), Tag("rock", "Rock", "genre")],
        interactions=[
            Interaction("alice", "radiohead", 12.0, 4.5, 1_600_000_000),
            Interaction("alice", "blur", 3.0),
            Interaction("bob", "blur", 7.5, None, 1_600_000_100),
            Interaction("carol", "muse", 1.0, 2.0),
        ],
        taggings=[
            Tagging("alice", "blur", "britpop", 1_600_000_200),
            Tagging("alice", "blur", "rock"),
            Tagging("bob", "radiohead", "rock", 1_600_000_300),
        ],
        item_tags=[ItemTag("blur", "britpop", 2.0), ItemTag("blur", "rock", 1.0), ItemTag("radiohead", "rock", 3.0)],
        follows=[Follow("alice", "bob"), Follow("bob", "alice", 0.5), Follow("carol", "alice")],
        facts=[
            Fact("radiohead", DBO + "hometown", DBR + "Abingdon", "Abingdon"),
            Fact("blur", DBO + "genre", DBR + "Britpop", "Britpop"),
            Fact("blur", DBO + "label", DBR + "Britpop"),
        ],
        dislikes=[Dislike("bob", "muse", 1_600_000_400), Dislike("carol", "blur")],
        hidden=["muse"],
    )


def fingerprint(store: GraphStore) -> str:
    return store.snapshot().fingerprint


# -- writes and counts ------------------------------------------------------------------
def test_empty_store_counts_every_key(store: GraphStore) -> None:
    assert store.counts() == dict.fromkeys(COUNT_KEYS, 0)
    assert store.export() == GraphRecords()


def test_load_counts_and_fingerprint_match_the_records(store: GraphStore, synthetic: SyntheticGraph) -> None:
    written = store.load(synthetic.records)
    expected = build_snapshot(synthetic.records)
    assert written["interactions"] == len(synthetic.records.interactions)
    assert store.counts() == expected.counts
    assert fingerprint(store) == expected.fingerprint


def test_loading_the_same_data_twice_changes_nothing(store: GraphStore, synthetic: SyntheticGraph) -> None:
    store.load(synthetic.records)
    counts, fp = store.counts(), fingerprint(store)
    store.load(synthetic.records)
    store.upsert_interactions(synthetic.records.interactions[:50])
    store.upsert_taggings(synthetic.records.taggings[:50])
    assert store.counts() == counts
    assert fingerprint(store) == fp


def test_every_upsert_kind_is_stored(store: GraphStore) -> None:
    store.load(small())
    assert store.counts() == {
        "users": 3, "items": 3, "tags": 2, "interactions": 4, "taggings": 3, "item_tags": 3, "follows": 3, "facts": 3,
        "dislikes": 2, "attributes": 0, "has_attribute": 0,
    }
    assert store.get_node(Label.USER, "alice") == {"id": "alice", "attrs": {"name": "Alice", "age": 31, "vip": True}}
    assert store.get_node(Label.USER, "carol") == {"id": "carol", "attrs": {}}
    assert store.get_node(Label.ITEM, "radiohead") == {
        "id": "radiohead", "title": "Radiohead", "attrs": {"year": 1985, "score": 0.75},
    }
    assert store.get_node(Label.ITEM, "muse") == {"id": "muse", "attrs": {}, "hidden": True}
    assert store.get_node(Label.TAG, "rock") == {"id": "rock", "name": "Rock", "kind": "genre"}
    assert store.get_node(Label.ENTITY, DBR + "Britpop") == {
        "iri": DBR + "Britpop", "label": "Britpop",
    }
    assert store.get_node(Label.USER, "nobody") is None
    assert store.get_node(Label.ITEM, "alice") is None
    assert fingerprint(store) == build_snapshot(small()).fingerprint


def test_relationship_properties_are_stored(store: GraphStore) -> None:
    store.load(small())
    by_item = {n.id: n.props for n in store.neighbors(Label.USER, "alice", [Rel.INTERACTED])}
    assert by_item == {
        "radiohead": {"weight": 12.0, "rating": 4.5, "ts": 1_600_000_000},
        "blur": {"weight": 3.0},
    }
    tagged = [n.props for n in store.neighbors(Label.USER, "alice", [Rel.TAGGED])]
    assert tagged == [{"tag": "britpop", "ts": 1_600_000_200}, {"tag": "rock"}]
    has_tag = {n.id: n.props for n in store.neighbors(Label.ITEM, "blur", [Rel.HAS_TAG])}
    assert has_tag == {"britpop": {"count": 2.0}, "rock": {"count": 1.0}}
    related = [(n.id, n.props["predicate"], n.name) for n in store.neighbors(Label.ITEM, "blur", [Rel.RELATED])]
    assert related == [
        (DBR + "Britpop", DBO + "genre", "Britpop"),
        (DBR + "Britpop", DBO + "label", "Britpop"),
    ]


def test_writes_naming_missing_nodes_create_them_with_only_their_key(store: GraphStore) -> None:
    store.upsert_interactions([Interaction("u-new", "i-new", 2.0)])
    store.upsert_taggings([Tagging("u-new", "i-new", "t-new")])
    store.upsert_facts([Fact("i-other", "http://p", "http://e")])
    assert store.get_node(Label.USER, "u-new") == {"id": "u-new", "attrs": {}}
    assert store.get_node(Label.ITEM, "i-new") == {"id": "i-new", "attrs": {}}
    assert store.get_node(Label.TAG, "t-new") == {"id": "t-new"}
    assert store.get_node(Label.ENTITY, "http://e") == {"iri": "http://e"}
    assert store.counts() == {
        "users": 1, "items": 2, "tags": 1, "interactions": 1, "taggings": 1, "item_tags": 0, "follows": 0, "facts": 1,
        "dislikes": 0, "attributes": 0, "has_attribute": 0,
    }
    # Filling the node in later keeps its relationships.
    store.upsert_items([Item("i-new", "Now titled")])
    assert store.has_relationship((Label.USER, "u-new"), Rel.INTERACTED, (Label.ITEM, "i-new"))
    assert store.snapshot().counts == store.counts()


def test_updates_replace_properties(store: GraphStore) -> None:
    store.load(small())
    store.upsert_users([User("alice", {"name": "Alicia"})])
    store.upsert_items([Item("radiohead", None, {"year": 1991}), Item("blur", "Blur (band)")])
    store.upsert_tags([Tag("britpop", "Brit-pop", "genre")])
    store.upsert_interactions([Interaction("alice", "radiohead", 20.0)])
    store.upsert_taggings([Tagging("alice", "blur", "rock", 1_700_000_000)])
    store.upsert_item_tags([ItemTag("blur", "britpop", 5.0)])
    store.upsert_follows([Follow("alice", "bob", 0.25)])
    store.upsert_facts([
        Fact("radiohead", DBO + "hometown", DBR + "Abingdon", "Abingdon-on-Thames"),
        Fact("blur", DBO + "genre", DBR + "Britpop"),  # no label: keep it
    ])
    assert store.get_node(Label.USER, "alice") == {"id": "alice", "attrs": {"name": "Alicia"}}
    assert store.get_node(Label.ITEM, "radiohead") == {"id": "radiohead", "attrs": {"year": 1991}}
    assert store.get_node(Label.ITEM, "blur")["title"] == "Blur (band)"
    assert store.get_node(Label.TAG, "britpop") == {"id": "britpop", "name": "Brit-pop", "kind": "genre"}
    assert store.get_node(Label.ENTITY, DBR + "Abingdon")["label"] == "Abingdon-on-Thames"
    assert store.get_node(Label.ENTITY, DBR + "Britpop")["label"] == "Britpop"
    props = {(n.rel, n.id, n.props.get("tag")): n.props for n in store.neighbors(Label.USER, "alice") if n.outgoing}
    assert props[(Rel.INTERACTED, "radiohead", None)] == {"weight": 20.0}
    assert props[(Rel.TAGGED, "blur", "rock")] == {"tag": "rock", "ts": 1_700_000_000}
    assert props[(Rel.FOLLOWS, "bob", None)] == {"weight": 0.25}
    assert {n.id: n.props for n in store.neighbors(Label.ITEM, "blur", [Rel.HAS_TAG])}["britpop"] == {"count": 5.0}
    assert store.counts() == build_snapshot(small()).counts  # updates add nothing

    expected = small()
    expected.users[0] = User("alice", {"name": "Alicia"})
    expected.items[0] = Item("radiohead", None, {"year": 1991})
    expected.items[1] = Item("blur", "Blur (band)")
    expected.tags[0] = Tag("britpop", "Brit-pop", "genre")
    expected.interactions[0] = Interaction("alice", "radiohead", 20.0)
    expected.taggings[1] = Tagging("alice", "blur", "rock", 1_700_000_000)
    expected.item_tags[0] = ItemTag("blur", "britpop", 5.0)
    expected.follows[0] = Follow("alice", "bob", 0.25)
    expected.facts[0] = Fact(
        "radiohead", DBO + "hometown", DBR + "Abingdon", "Abingdon-on-Thames"
    )
    assert fingerprint(store) == build_snapshot(expected).fingerprint


# -- deletes ----------------------------------------------------------------------------
def test_delete_users_cascades_their_relationships(store: GraphStore) -> None:
    store.load(small())
    assert store.delete_users(["alice", "nobody"]) == 1
    assert store.get_node(Label.USER, "alice") is None
    assert store.counts() == {
        "users": 2, "items": 3, "tags": 2, "interactions": 2, "taggings": 1, "item_tags": 3, "follows": 0, "facts": 3,
        "dislikes": 2, "attributes": 0, "has_attribute": 0,
    }
    assert not store.has_relationship((Label.USER, "bob"), Rel.FOLLOWS, (Label.USER, "alice"))
    assert [n.id for n in store.neighbors(Label.USER, "bob")] == ["muse", "blur", "radiohead"]
    assert store.delete_users(["alice"]) == 0


def test_delete_items_cascades_their_relationships(store: GraphStore) -> None:
    store.load(small())
    assert store.delete_items(["blur", "nothing"]) == 1
    assert store.get_node(Label.ITEM, "blur") is None
    assert store.counts() == {
        "users": 3, "items": 2, "tags": 2, "interactions": 2, "taggings": 1, "item_tags": 1, "follows": 3, "facts": 1,
        "dislikes": 1, "attributes": 0, "has_attribute": 0,
    }
    assert store.get_node(Label.TAG, "britpop") is not None  # tags outlive their items


def test_delete_interactions_removes_only_those_pairs(store: GraphStore) -> None:
    store.load(small())
    assert store.delete_interactions([("alice", "blur"), ("alice", "muse"), ("ghost", "blur")]) == 1
    assert not store.has_relationship((Label.USER, "alice"), Rel.INTERACTED, (Label.ITEM, "blur"))
    assert store.has_relationship((Label.USER, "alice"), Rel.TAGGED, (Label.ITEM, "blur"))
    assert store.get_node(Label.ITEM, "blur") is not None
    assert store.counts()["interactions"] == 3
    assert store.snapshot().counts == store.counts()


def test_clear_removes_everything(store: GraphStore) -> None:
    store.load(small())
    store.clear()
    assert store.counts() == dict.fromkeys(COUNT_KEYS, 0)
    assert store.get_node(Label.USER, "alice") is None


# -- reads ------------------------------------------------------------------------------
def test_neighbors_both_directions_sorted_with_names(store: GraphStore) -> None:
    store.load(small())
    got = store.neighbors(Label.USER, "alice")
    assert got == sorted(got, key=neighbor_order)
    assert [(n.rel, n.id, n.outgoing) for n in got] == [
        (Rel.FOLLOWS, "bob", True),
        (Rel.FOLLOWS, "bob", False),
        (Rel.FOLLOWS, "carol", False),
        (Rel.INTERACTED, "blur", True),
        (Rel.INTERACTED, "radiohead", True),
        (Rel.TAGGED, "blur", True),
        (Rel.TAGGED, "blur", True),
    ]
    names = {(n.label, n.id): n.name for n in got}
    assert names == {
        (Label.USER, "bob"): "Bob", (Label.USER, "carol"): None, (Label.ITEM, "blur"): "Blur",
        (Label.ITEM, "radiohead"): "Radiohead",
    }
    tags = store.neighbors(Label.ITEM, "blur", [Rel.HAS_TAG])
    assert [(n.id, n.name, n.label, n.outgoing) for n in tags] == [
        ("britpop", "Britpop", Label.TAG, True), ("rock", "Rock", Label.TAG, True),
    ]
    into_item = store.neighbors(Label.ITEM, "blur", [Rel.INTERACTED, Rel.TAGGED])
    assert [(n.rel, n.id, n.outgoing) for n in into_item] == [
        (Rel.INTERACTED, "alice", False), (Rel.INTERACTED, "bob", False),
        (Rel.TAGGED, "alice", False), (Rel.TAGGED, "alice", False),
    ]


def test_neighbors_limit_and_unknown_node(store: GraphStore) -> None:
    store.load(small())
    everything = store.neighbors(Label.USER, "alice")
    assert store.neighbors(Label.USER, "alice", limit=3) == everything[:3]
    assert store.neighbors(Label.USER, "nobody") == []
    assert store.neighbors(Label.TAG, "alice") == []


def test_has_relationship_is_directed_and_typed(store: GraphStore) -> None:
    store.load(small())
    assert store.has_relationship((Label.USER, "carol"), Rel.FOLLOWS, (Label.USER, "alice"))
    assert not store.has_relationship((Label.USER, "alice"), Rel.FOLLOWS, (Label.USER, "carol"))
    assert store.has_relationship((Label.ITEM, "blur"), Rel.HAS_TAG, (Label.TAG, "britpop"))
    assert not store.has_relationship((Label.ITEM, "blur"), Rel.HAS_TAG, (Label.TAG, "nothing"))
    assert not store.has_relationship((Label.USER, "alice"), Rel.TAGGED, (Label.ITEM, "radiohead"))
    assert store.has_relationship((Label.USER, "alice"), Rel.INTERACTED, (Label.ITEM, "radiohead"))
    assert store.has_relationship(
        (Label.ITEM, "blur"), Rel.RELATED, (Label.ENTITY, DBR + "Britpop")
    )


def test_export_reloads_into_an_equal_graph(store: GraphStore, synthetic: SyntheticGraph, tmp_path: Path) -> None:
    store.load(synthetic.records)
    store.upsert_facts([*small().facts[:1], Fact("i0001", "http://p", "http://e", "E")])
    exported = store.export()
    other = MemoryStore(tmp_path / "copy")
    other.load(exported)
    assert other.counts() == store.counts()
    assert fingerprint(other) == fingerprint(store) == build_snapshot(exported).fingerprint


def test_snapshot_shapes_follow_counts(store: GraphStore) -> None:
    store.load(small())
    snap = store.snapshot()
    assert snap.interactions.shape == (3, 3)
    assert snap.item_tags.shape == (3, 2)
    assert snap.user_tags.shape == (3, 2)
    assert snap.follows.shape == (3, 3)
    assert snap.counts == store.counts()
    alice, radiohead = snap.users.index["alice"], snap.items.index["radiohead"]
    assert snap.interactions[alice, radiohead] == 12.0
    assert snap.title(radiohead) == "Radiohead"


def test_snapshot_follows_every_write(store: GraphStore) -> None:
    store.load(small())
    first = store.snapshot()
    store.upsert_interactions([Interaction("bob", "muse", 2.0)])
    second = store.snapshot()
    assert second.fingerprint != first.fingerprint
    assert second.counts["interactions"] == first.counts["interactions"] + 1
    store.delete_interactions([("bob", "muse")])
    assert store.snapshot().fingerprint == first.fingerprint


# -- hostile and international data -----------------------------------------------------
def test_unicode_ids_and_titles_round_trip(store: GraphStore) -> None:
    records = GraphRecords(
        users=[User(u, {"名前": u, "city": "Zürich"}) for u in UNICODE],
        items=[Item(f"item-{x}", f"{x} — «live» 🎶") for x in UNICODE],
        tags=[Tag("ジャズ", "ジャズ"), Tag("ÿ", "Ÿ")],
        interactions=[Interaction(u, f"item-{x}", 1.5) for u in UNICODE for x in UNICODE],
        taggings=[Tagging("Björk", "item-東京事変", "ジャズ")],
        item_tags=[ItemTag("item-🎸🔥", "ÿ")],
        follows=[Follow("東京事変", "🎸🔥")],
        facts=[Fact("item-Björk", "http://example.org/ünïcode", "http://example.org/Ísland", "Ísland")],
    )
    store.load(records)
    assert store.get_node(Label.USER, "東京事変") == {"id": "東京事変", "attrs": {"名前": "東京事変", "city": "Zürich"}}
    assert store.get_node(Label.ITEM, "item-🎸🔥")["title"] == "🎸🔥 — «live» 🎶"
    assert [n.name for n in store.neighbors(Label.USER, "Björk", [Rel.TAGGED])] == ["東京事変 — «live» 🎶"]
    assert store.has_relationship((Label.USER, "東京事変"), Rel.FOLLOWS, (Label.USER, "🎸🔥"))
    assert fingerprint(store) == build_snapshot(records).fingerprint


def test_cypher_like_ids_are_stored_verbatim_and_harm_nothing(store: GraphStore) -> None:
    store.load(small())
    before = store.counts()
    store.upsert_users([User(x, {"note": x}) for x in CYPHERISH])
    store.upsert_items([Item(x, x) for x in CYPHERISH])
    store.upsert_tags([Tag(x, x) for x in CYPHERISH])
    store.upsert_interactions([Interaction(x, x, 1.0) for x in CYPHERISH])
    store.upsert_taggings([Tagging(x, x, x) for x in CYPHERISH])
    store.upsert_follows([Follow(x, "alice") for x in CYPHERISH])
    store.upsert_facts([Fact(x, x, x, x) for x in CYPHERISH])
    for x in CYPHERISH:
        assert store.get_node(Label.USER, x) == {"id": x, "attrs": {"note": x}}
        assert store.get_node(Label.ITEM, x) == {"id": x, "title": x, "attrs": {}}
        assert store.get_node(Label.ENTITY, x) == {"iri": x, "label": x}
        assert store.has_relationship((Label.USER, x), Rel.INTERACTED, (Label.ITEM, x))
        assert [n.id for n in store.neighbors(Label.USER, x, [Rel.TAGGED])] == [x]
    n = len(CYPHERISH)
    assert store.counts()["users"] == before["users"] + n
    assert store.delete_users(CYPHERISH) == n
    assert store.delete_items(CYPHERISH) == n
    assert store.delete_interactions([(x, x) for x in CYPHERISH]) == 0
    after = store.counts()
    assert after == {**before, "tags": before["tags"] + n}
    assert store.get_node(Label.USER, "alice") == {"id": "alice", "attrs": {"name": "Alice", "age": 31, "vip": True}}


def test_empty_ids_are_refused_and_the_batch_is_not_written(store: GraphStore) -> None:
    with pytest.raises(StoreError):
        store.upsert_users([User("fine"), User("")])
    with pytest.raises(StoreError):
        store.upsert_interactions([Interaction("u", "i"), Interaction("u", "")])
    assert store.counts() == dict.fromkeys(COUNT_KEYS, 0)


#: Batches whose first row is fine and whose last is not: every store refuses them whole.
BAD_WRITES = {
    "nan-weight": lambda s: s.upsert_interactions([Interaction("u", "i", 1.0), Interaction("u", "j", float("nan"))]),
    "inf-weight": lambda s: s.upsert_follows([Follow("u", "v"), Follow("v", "u", float("inf"))]),
    "nan-count": lambda s: s.upsert_item_tags([ItemTag("i", "t"), ItemTag("i", "u", float("nan"))]),
    "inf-rating": lambda s: s.upsert_interactions([Interaction("u", "i"), Interaction("u", "j", 1.0, float("-inf"))]),
    "text-ts": lambda s: s.upsert_interactions([Interaction("u", "i"), Interaction("u", "j", 1.0, None, "now")]),
    "float-ts": lambda s: s.upsert_taggings([Tagging("u", "i", "t"), Tagging("u", "i", "x", 1.5)]),
    "empty-user": lambda s: s.upsert_users([User("fine"), User("")]),
    "empty-tag": lambda s: s.upsert_taggings([Tagging("u", "i", "t"), Tagging("u", "i", "")]),
    "none-item": lambda s: s.upsert_items([Item("i"), Item(None)]),
    "empty-fact-entity": lambda s: s.upsert_facts([Fact("i", DBO + "genre", DBR + "Rock"), Fact("i", DBO + "x", "")]),
    "int-entity-label": lambda s: s.upsert_facts([Fact("i", DBO + "genre", DBR + "Rock"), Fact("i", "p", "e", 7)]),
    "list-attr": lambda s: s.upsert_users([User("a"), User("u", {"tags": ["a", "b"]})]),
    "dict-attr": lambda s: s.upsert_items([Item("a"), Item("i", "I", {"nested": {"x": 1}})]),
    "object-attr": lambda s: s.upsert_users([User("a"), User("u", {"when": object()})]),
    "nan-attr": lambda s: s.upsert_users([User("a"), User("u", {"score": float("nan")})]),
    "int-title": lambda s: s.upsert_items([Item("a"), Item("i", 42)]),
    "int-tag-name": lambda s: s.upsert_tags([Tag("a", "A"), Tag("t", 3)]),
}


@pytest.mark.parametrize("write", BAD_WRITES.values(), ids=BAD_WRITES.keys())
def test_bad_rows_are_refused_whole_by_every_store(store: GraphStore, write) -> None:
    """The same input gets the same outcome in each store: StoreError, and nothing of the batch."""
    with pytest.raises(StoreError, match="nothing of this batch was written"):
        write(store)
    assert store.counts() == dict.fromkeys(COUNT_KEYS, 0)
    store.upsert_interactions([Interaction("u", "i", 2.0)])
    assert store.counts() == {**dict.fromkeys(COUNT_KEYS, 0), "users": 1, "items": 1, "interactions": 1}


# -- both stores at once ----------------------------------------------------------------
@pytest.mark.neo4j
def test_both_stores_give_the_same_fingerprint_and_export(
    neo4j_uri: str, synthetic: SyntheticGraph, tmp_path: Path
) -> None:
    neo = open_store(neo4j_uri)
    neo.clear()
    memory = MemoryStore(tmp_path / "graph")
    try:
        for s in (neo, memory):
            s.load(synthetic.records)
            s.load(small())
        assert neo.counts() == memory.counts()
        assert neo.snapshot().fingerprint == memory.snapshot().fingerprint
        for label, key in ((Label.USER, "alice"), (Label.ITEM, "blur"), (Label.USER, "u0001")):
            assert neo.get_node(label, key) == memory.get_node(label, key)
            assert neo.neighbors(label, key, limit=7) == memory.neighbors(label, key, limit=7)
    finally:
        neo.clear()
        neo.close()
        memory.close()


# -- MemoryStore persistence and open_store ----------------------------------------------
def test_memory_store_survives_reopen(tmp_path: Path, synthetic: SyntheticGraph) -> None:
    with MemoryStore(tmp_path / "g") as s:
        s.load(synthetic.records)
        s.upsert_users([User("Björk", {"x": 1.25})])
        counts, fp = s.counts(), fingerprint(s)
    reopened = MemoryStore(tmp_path / "g")
    assert reopened.counts() == counts
    assert fingerprint(reopened) == fp
    assert reopened.get_node(Label.USER, "Björk") == {"id": "Björk", "attrs": {"x": 1.25}}
    assert {p.name for p in (tmp_path / "g").iterdir()} <= {FILE_NAME, JOURNAL_NAME, LOCK_NAME}  # no temp files


def test_memory_store_writes_only_on_flush(tmp_path: Path) -> None:
    s = MemoryStore(tmp_path / "g")
    s.load(small())
    s.upsert_users([User("late")])
    assert MemoryStore(tmp_path / "g").get_node(Label.USER, "late") is None
    s.close()
    assert MemoryStore(tmp_path / "g").get_node(Label.USER, "late") == {"id": "late", "attrs": {}}


def _doc(**tables: object) -> bytes:
    empty: dict[str, list[object]] = {table: [] for table in TABLES}
    return gzip.compress(json.dumps({"format": "kgrec-memory-store", "version": 1, **empty, **tables}).encode())


@pytest.mark.parametrize("write", BAD_WRITES.values(), ids=BAD_WRITES.keys())
def test_memory_store_refuses_values_its_file_cannot_hold(tmp_path: Path, write) -> None:
    """Anything written must survive a reopen: unstorable values are refused up front."""
    s = MemoryStore(tmp_path)
    with pytest.raises(StoreError):
        write(s)
    assert s.counts() == dict.fromkeys(COUNT_KEYS, 0)
    s.close()
    assert MemoryStore(tmp_path).counts() == dict.fromkeys(COUNT_KEYS, 0)


def test_memory_store_refuses_writes_after_close(tmp_path: Path) -> None:
    s = MemoryStore(tmp_path)
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.upsert_users([User("late")])


def test_memory_store_refuses_to_overwrite_a_newer_graph(tmp_path: Path) -> None:
    stale = MemoryStore(tmp_path)
    with MemoryStore(tmp_path) as other:
        other.upsert_users([User("written-elsewhere")])
    stale.upsert_users([User("stale-write")])
    with pytest.raises(StoreError, match="reopen"):
        stale.flush()
    fresh = MemoryStore(tmp_path)
    assert fresh.get_node(Label.USER, "written-elsewhere") is not None
    fresh.upsert_users([User("after-reopen")])
    fresh.close()
    assert MemoryStore(tmp_path).counts()["users"] == 2


@pytest.mark.parametrize(
    "content",
    [
        b"not gzip at all",
        gzip.compress(b'{"format": "something-else"}'),
        gzip.compress(b"[1, 2, 3]"),
        _doc()[:-8],  # truncated
        _doc(users=[["a", {}], ["b"]]),
        _doc(users=[["", {}]]),
        _doc(users=[["a", {"nested": {"x": 1}}]]),
        _doc(interacted=[["a", "b", "heavy", None, None]]),
        _doc(interacted=[["a", "b", float("inf"), None, None]]),
        _doc(follows="not a list"),
        _doc(version=99),
        gzip.compress(b"\xff\xfe\x00garbage"),
    ],
)
def test_memory_store_refuses_a_corrupt_or_foreign_file(tmp_path: Path, content: bytes) -> None:
    (tmp_path / FILE_NAME).write_bytes(content)
    with pytest.raises(StoreError):
        MemoryStore(tmp_path)
    assert (tmp_path / FILE_NAME).read_bytes() == content  # nothing lost


def test_memory_store_never_unpickles(tmp_path: Path) -> None:
    import pickle

    (tmp_path / FILE_NAME).write_bytes(gzip.compress(pickle.dumps({"format": "kgrec-memory-store"})))
    with pytest.raises(StoreError):
        MemoryStore(tmp_path)


def test_memory_store_file_is_plain_json(tmp_path: Path) -> None:
    with MemoryStore(tmp_path) as s:
        s.load(small())
    doc = json.loads(gzip.decompress((tmp_path / FILE_NAME).read_bytes()).decode("utf-8"))
    assert doc["format"] == "kgrec-memory-store"
    assert len(doc["interacted"]) == 4 and ["alice", "radiohead", 12.0, 4.5, 1_600_000_000] in doc["interacted"]


def test_open_store_parses_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_store("memory://relative/dir") as s:
        assert isinstance(s, MemoryStore)
        s.upsert_users([User("a")])
    assert (tmp_path / "relative" / "dir" / FILE_NAME).is_file()
    with open_store(f"memory://{tmp_path / 'abs'}") as s:
        assert s.counts()["users"] == 0
    monkeypatch.setenv("KGREC_STORE", "memory://relative/dir")
    with open_store() as s:
        assert s.counts()["users"] == 1
    for bad in ("memory://", "ftp://example.org/x", "relative/dir", "sqlite:///x.db"):
        with pytest.raises(StoreError):
            open_store(bad)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StoreError):
        open_store("memory://afile")


@pytest.mark.parametrize(("write", "rows", "needle"), [
    ("upsert_users", [User("ok"), User("\ud800")], "user id '\\ud800' contains a lone surrogate U+D800"),
    ("upsert_users", [User("a/b")], "contains '/'"),
    ("upsert_users", [User("..")], "resolves away"),
    ("upsert_users", [User("u", {"n": 2**63})], "'n' is outside the 64-bit integer range"),
    ("upsert_items", [Item("i", "tab\there")], "item title 'tab\\there' contains control character U+0009"),
    ("upsert_interactions", [Interaction("u", "i", 1.0, None, 10**30)], "interaction ts"),
    ("upsert_interactions", [Interaction("u", "i", 10**400)], "interaction weight"),
    ("upsert_follows", [Follow("u", "v", float("nan"))], "follow weight"),
    ("upsert_tags", [Tag("\x00", "x")], "tag id '\\x00' contains control character U+0000"),
])
def test_values_neither_store_can_hold_are_refused_whole(store: GraphStore, write, rows, needle) -> None:
    store.load(small())
    before = store.export()
    with pytest.raises(StoreError, match="nothing of this batch was written") as refused:
        getattr(store, write)(rows)
    assert needle in str(refused.value)
    store.flush()
    assert store.export() == before


def test_upserts_count_distinct_keys(store: GraphStore) -> None:
    assert store.upsert_interactions([Interaction("u", "i", 1.0)] * 3) == 1
    rows = [Interaction("u", "i", 2.0), Interaction("u", "j"), Interaction("u", "i", 4.0)]
    assert store.upsert_interactions(rows) == 2
    assert store.upsert_taggings([Tagging("u", "i", "t"), Tagging("u", "i", "t"), Tagging("u", "i", "s")]) == 2
    assert store.upsert_users([User("u"), User("u", {"a": 1})]) == 1
    assert store.counts()["interactions"] == 2
    assert {(r.item, r.weight) for r in store.export().interactions} == {("i", 4.0), ("j", 1.0)}


def test_impressions_are_stored_once_and_their_skips_are_derived(store: GraphStore) -> None:
    """Both stores: a retried batch writes each impression once, feedback marks it once, the
    user's shown and skipped items ship under the feedback token, and nothing leaks into the
    graph's records or counts (impressions are a log, not training data)."""
    from kgrec.graph.impressions import Impression, Outcome, as_impression_store

    store.load(small())
    records, counts = store.export(), store.counts()
    log = as_impression_store(store)
    rows = [Impression(f"r0000001:{p}", "r0000001", "alice", item, p, 100.0 + p, "explore", "itemcf", "itemcf",
                       1.0 if p < 3 else 0.25, 1.0 / p, p == 3, 0.1, 1.0, 2,
                       ("radiohead", "blur", "muse") if p == 1 else None, (0.0, -0.5, -1.0) if p == 1 else None)
            for p, item in ((1, "radiohead"), (2, "blur"), (3, "muse"))]
    before = store.feedback("alice")
    assert log.log_impressions(rows) == 3
    assert log.log_impressions(rows[1:]) == 2  # a retry: no new impression
    store.flush()
    assert log.impression_count() == 3
    got = log.get_impressions(["r0000001:1", "r0000001:3", "nope0000:1"])
    assert set(got) == {"r0000001:1", "r0000001:3"} and got["r0000001:1"] == rows[0] and got["r0000001:3"] == rows[2]
    after = store.feedback("alice", before.user_token, impressions_token=before.impressions_token)
    assert after.impressions_token != before.impressions_token
    assert after.user_token == before.user_token and after.interacted is None  # the history is not re-shipped
    assert after.shown == after.skipped == {"radiohead": 1, "blur": 1, "muse": 1}
    assert log.record_outcomes([Outcome("r0000001:2", "chosen", 200.0), Outcome("r0000001:2", "chosen", 300.0),
                                Outcome("nope0000:1", "chosen", 200.0)]) == 1
    assert log.record_outcomes([Outcome("r0000001:2", "chosen", 400.0)]) == 0  # the same feedback again
    assert log.record_outcomes([Outcome("r0000001:3", "disliked", 200.0)]) == 1
    store.flush()
    fb = store.feedback("alice", after.user_token, impressions_token=after.impressions_token)
    assert fb.skipped == {"radiohead": 1} and fb.shown == {"radiohead": 1, "blur": 1, "muse": 1}
    logged = log.logged_impressions()
    assert [i.id for i in logged] == ["r0000001:1", "r0000001:2", "r0000001:3"]
    assert logged[1].chosen_at == 200.0 and logged[2].disliked_at == 200.0 and logged[0].skipped
    assert [i.id for i in log.logged_impressions(since=102.0, until=103.5)] == ["r0000001:2", "r0000001:3"]
    assert store.has_relationship((Label.USER, "alice"), Rel.SAW, (Label.IMPRESSION, "r0000001:2"))
    assert store.has_relationship((Label.IMPRESSION, "r0000001:2"), Rel.SHOWS, (Label.ITEM, "blur"))
    assert store.export() == records and store.counts() == counts
    for bad in (Impression("r0000002:1", "r0000002", "alice", "muse", 1, 1.0, "learn", "m", "m", 1.5, 0.0),
                Impression("r0000002:2", "r0000002", "alice", "muse", 1, 1.0, "learn", "m", "m", 1.0, 0.0)):
        with pytest.raises(StoreError, match="nothing of this batch was written"):
            log.log_impressions([bad])  # a propensity over 1; an id that is not request:position
    assert log.impression_count() == 3
