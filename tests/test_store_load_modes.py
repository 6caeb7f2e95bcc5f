"""Whole-graph writes in each mode (``GraphStore.write_graph``, ``kgrec load --mode``), run
against MemoryStore and a real Neo4j server: create into an empty store, merge into a full or
partly loaded one, and auto, all ending with the graph (counts, fingerprint, properties) that
the per-call upserts give for the same records, duplicates and partial records included."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from kgrec.graph import records as rec
from kgrec.graph.memory import MemoryStore
from kgrec.graph.records import GraphRecords
from kgrec.graph.schema import COUNT_KEYS, Label
from kgrec.graph.store import GraphStore
from kgrec.graph.store_errors import StoreError
from kgrec.loaders.synthetic import SyntheticGraph
from tests.test_store_contract import DBO, DBR, small


def test_every_record_kind_has_its_tables_and_statements() -> None:
    """The whole-graph paths are driven by graph.bulk's tables: a record kind added without its
    table entries or its Cypher fails here, by name."""
    from kgrec.graph import bulk, neo4j_bulk_cypher, neo4j_cypher
    from kgrec.graph.rows import FIELDS
    from kgrec.graph.schema import ENDPOINTS, PROPERTIES

    assert set(bulk.RECORD_TABLES) == set(COUNT_KEYS)
    hints = typing.get_type_hints(GraphRecords)
    for kind, tables in bulk.RECORD_TABLES.items():
        record = typing.get_args(hints[kind])[0]
        for table, names in tables:
            assert set(names) <= {f.name for f in dataclasses.fields(record)}, (kind, table)
            assert len(names) == len(FIELDS[table]), (kind, table)
            assert (table in bulk.NODE_BY_TABLE) != (table in bulk.REL_BY_TABLE), table
    for node in bulk.NODE_TABLES:
        assert len(node.fields) + 1 == len(FIELDS[node.table]), node.table
        for statements in (neo4j_bulk_cypher.CREATE_NODES, neo4j_bulk_cypher.UPSERT_NODE_ROWS,
                           neo4j_cypher.MERGE_NODES):
            assert node.label in statements, node.label
    labels = {node.label for node in bulk.NODE_TABLES}
    for rel in bulk.REL_TABLES:
        assert (rel.kind in COUNT_KEYS and rel.rel in neo4j_bulk_cypher.CREATE_RELS
                and rel.rel in neo4j_bulk_cypher.MERGE_RELS)
        ends = dict((pos, label) for label, pos in rel.nodes)
        assert (ends[rel.start], ends[rel.end]) == ENDPOINTS[rel.rel], rel.rel
        assert {label for label, _ in rel.nodes} <= labels
        assert {name for name, _ in rel.props} <= set(PROPERTIES[rel.rel]), rel.rel
        positions = [pos for _, pos in rel.props] + [pos for _, pos in rel.nodes] + list(rel.identity)
        assert max(positions) < len(FIELDS[rel.table]), rel.rel


def tricky() -> GraphRecords:
    """Records whose order matters: repeated keys with changed, partial or absent values, nodes
    named only by relationships, a self-loop, and mixed attribute and weight types."""
    g = small()
    g.users += [rec.User("alice", {"city": "Oslo", "age": 32.5}), rec.User("dave", {"vip": False})]
    g.items += [rec.Item("muse", None, {"year": 2001}), rec.Item("radiohead", None, {"year": 1985})]  # titles removed
    g.tags += [rec.Tag("rock", None, None), rec.Tag("britpop", "Britpop!", None)]  # name/kind kept when absent
    g.interactions += [
        rec.Interaction("alice", "radiohead", 2, None, None),  # replaces weight, drops rating and ts
        rec.Interaction("erin", "only-named", 1.5, 5.0, 1_700_000_000),  # both ends only named here
        rec.Interaction("bob", "blur", 7.5, None, 1_600_000_100),  # an exact repeat
    ]
    g.taggings += [rec.Tagging("alice", "blur", "britpop", 1_600_000_999), rec.Tagging("erin", "blur", "new-tag")]
    g.item_tags += [rec.ItemTag("blur", "britpop", 4), rec.ItemTag("only-named", "rock", 1.0)]
    g.follows += [rec.Follow("alice", "bob", 0.25), rec.Follow("erin", "erin", 1.0)]
    g.facts += [
        rec.Fact("radiohead", DBO + "hometown", DBR + "Abingdon"),  # keeps the label given before
        rec.Fact("muse", DBO + "hometown", DBR + "Teignmouth"),
    ]
    g.dislikes += [rec.Dislike("dave", "blur", 1_600_000_500), rec.Dislike("dave", "blur", None),  # ts dropped
                   rec.Dislike("alice", "muse", 1_700_000_001), rec.Dislike("frank", "disliked-only")]
    g.hidden += ["muse", "no-such-item", "muse"]  # a flag on a missing item is skipped
    g.items += [rec.Item("placed", None, {}, (51.5, -0.125)), rec.Item("placed", "Moved", {}, (-33.5, 151)),
                rec.Item("unplaced", None, {}, (10.0, 10.0)),
                rec.Item("unplaced", "Gone")]  # location replaced, removed
    g.attributes += [rec.Attribute("age:25-34", "age", "25-34", "age 25-34"), rec.Attribute("team:red", "team", "red"),
                     rec.Attribute("age:25-34", None, None, "aged 25-34")]  # kind and value kept when absent
    g.has_attribute += [rec.UserAttribute("alice", "age:25-34"), rec.UserAttribute("alice", "team:red"),
                        rec.UserAttribute("alice", "age:25-34"), rec.UserAttribute("erin", "only-linked"),
                        rec.UserAttribute("linked-only", "team:red")]  # ends only named here
    return g


def upserted(records: GraphRecords, tmp_path: Path) -> MemoryStore:
    """The reference: the per-call upserts, one kind after another, into a MemoryStore."""
    ref = MemoryStore(tmp_path / "reference")
    for kind in COUNT_KEYS:
        for record in getattr(records, kind):
            ref.upsert(kind, [record])
    ref.set_hidden(records.hidden, True)
    return ref


def assert_same_graph(store: GraphStore, ref: GraphStore) -> None:
    assert store.counts() == ref.counts()
    assert store.snapshot().fingerprint == ref.snapshot().fingerprint
    for label, key in [(Label.USER, "alice"), (Label.USER, "dave"), (Label.USER, "erin"), (Label.ITEM, "radiohead"),
                       (Label.ITEM, "only-named"), (Label.TAG, "rock"), (Label.TAG, "britpop"), (Label.TAG, "new-tag"),
                       (Label.ENTITY, DBR + "Abingdon"), (Label.ENTITY, DBR + "Teignmouth"), (Label.ITEM, "placed"),
                       (Label.ITEM, "unplaced"), (Label.ATTRIBUTE, "age:25-34"), (Label.ATTRIBUTE, "only-linked")]:
        got, want = store.get_node(label, key), ref.get_node(label, key)
        assert got == want, (label, key)
        assert {k: type(v) for k, v in (got or {}).get("attrs", {}).items()} == {
            k: type(v) for k, v in (want or {}).get("attrs", {}).items()}
    assert store.neighbors(Label.USER, "alice") == ref.neighbors(Label.USER, "alice")
    assert store.neighbors(Label.ITEM, "blur") == ref.neighbors(Label.ITEM, "blur")
    for user in ("alice", "dave", "frank"):
        assert store.feedback(user).disliked == ref.feedback(user).disliked, user
    assert store.feedback("alice").hidden == ref.feedback("alice").hidden == {"muse"}
    assert store.get_node(Label.ITEM, "muse")["hidden"] is True
    for user in ("alice", "erin", "linked-only"):
        assert store.feedback(user).attributes == ref.feedback(user).attributes, user
    assert store.attributes() == ref.attributes()
    assert store.items_within(0, 0, 20_100) == ref.items_within(0, 0, 20_100)


@pytest.mark.parametrize("mode", ["create", "merge", "auto"])
def test_every_mode_into_an_empty_store_gives_the_upserts_graph(store: GraphStore, tmp_path: Path, mode: str) -> None:
    records = tricky()
    written = store.write_graph(records, mode)
    assert written == {k: len(getattr(records, k)) for k in COUNT_KEYS}
    assert_same_graph(store, upserted(records, tmp_path))


def test_merge_into_a_full_or_partly_loaded_store_gives_the_upserts_graph(
    store: GraphStore, tmp_path: Path, synthetic: SyntheticGraph
) -> None:
    records = synthetic.records
    half = GraphRecords(**{k: getattr(records, k)[: len(getattr(records, k)) // 2] for k in COUNT_KEYS})
    store.write_graph(half, "create")
    assert store.load_mode("auto") == "merge"
    store.write_graph(records, "auto")
    reference = upserted(records, tmp_path)
    assert store.snapshot().fingerprint == reference.snapshot().fingerprint
    store.write_graph(records, "merge")  # loaded twice
    store.write_graph(tricky(), "merge")
    for record_kind in COUNT_KEYS:
        for record in getattr(tricky(), record_kind):
            reference.upsert(record_kind, [record])
    reference.set_hidden(tricky().hidden, True)
    assert_same_graph(store, reference)


def test_create_refuses_a_store_holding_data_and_writes_nothing(store: GraphStore) -> None:
    store.upsert_users([rec.User("someone")])
    before = store.counts()
    with pytest.raises(StoreError, match="--mode merge"):
        store.write_graph(small(), "create")
    assert store.counts() == before
    with pytest.raises(StoreError, match="unknown load mode"):
        store.write_graph(small(), "fast")


def test_a_bad_row_refuses_the_whole_graph_in_every_mode(store: GraphStore) -> None:
    records = small()
    records.interactions.append(rec.Interaction("alice", "blur", float("nan")))
    for mode in ("create", "merge"):
        with pytest.raises(StoreError, match="interaction weight"):
            store.write_graph(records, mode)
        assert set(store.counts().values()) == {0}


@pytest.mark.neo4j
def test_neo4j_batches_and_concurrent_transactions_cover_everything(neo4j_uri: str, tmp_path: Path,
                                                                      synthetic: SyntheticGraph) -> None:
    """Tiny transactions, several at a time, in both modes; written-back properties survive merge."""
    from kgrec.graph.neo4j_store import Neo4jStore

    records = synthetic.records
    want = upserted(records, tmp_path).snapshot().fingerprint
    with Neo4jStore.from_url(neo4j_uri) as store:
        store.clear()
        store.batch_size, store.workers = 29, 3
        store.write_graph(records, "create")
        assert store.snapshot().fingerprint == want
        store.run_write("MATCH (i:Item {id: $id}) SET i.emb_test = [1.0, 2.0]", {"id": records.items[0].id})
        store.write_graph(records, "merge")
        assert store.snapshot().fingerprint == want
        assert store.run_read("MATCH (i:Item {id: $id}) RETURN i.emb_test AS v", {"id": records.items[0].id}) == [
            {"v": [1.0, 2.0]}]
        store.clear()


@pytest.mark.neo4j
def test_neo4j_batch_whose_end_node_vanished_is_rolled_back(neo4j_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relationships find their ends by element id; if another client deletes an end node
    between the node and relationship phases, the batch is refused whole, never half-written."""
    from kgrec.graph import neo4j_bulk
    from kgrec.graph.neo4j_store import Neo4jStore

    with Neo4jStore.from_url(neo4j_uri) as store:
        store.clear()
        original = neo4j_bulk._rel_batches

        def delete_then_batches(spec, rows, ids, size):  # type: ignore[no-untyped-def]
            if spec.kind == "interactions":
                store.run_write("MATCH (u:User {id: 'carol'}) DETACH DELETE u", {})
            return original(spec, rows, ids, size)

        monkeypatch.setattr(neo4j_bulk, "_rel_batches", delete_then_batches)
        with pytest.raises(StoreError, match="INTERACTED: 3 of 4 relationships"):
            store.write_graph(small(), "create")
        assert store.counts()["interactions"] == 0
        store.clear()


@pytest.fixture(params=["memory", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        yield f"memory://{tmp_path / 'graph'}"
        return
    from kgrec.graph.neo4j_store import Neo4jStore

    url = request.getfixturevalue("neo4j_uri")
    with Neo4jStore.from_url(url) as s:
        s.clear()
        yield url
        s.clear()


def test_kgrec_load_picks_create_then_merge_and_refuses_create_on_data(store_url: str) -> None:
    from kgrec.cli import main

    args = ["load", "synthetic", "--users", "30", "--items", "40", "--store", store_url, "--no-progress"]
    runner = CliRunner()
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "in create mode" in first.output
    again = runner.invoke(main, args)
    assert again.exit_code == 0 and "in merge mode" in again.output
    refused = runner.invoke(main, [*args, "--mode", "create"])
    assert refused.exit_code == 1
    assert "create mode writes only into an empty store" in refused.output
    replaced = runner.invoke(main, [*args, "--mode", "create", "--replace"])
    assert replaced.exit_code == 0 and "in create mode" in replaced.output
