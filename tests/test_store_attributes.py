"""The store contract for user attributes, run against MemoryStore and a real Neo4j: Attribute
nodes and HAS_ATTRIBUTE links are stored, exported and snapshotted alike; a user's upsert replaces
its links and moves its feedback token, so another process (an API worker) re-reads them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kgrec.graph.memory import MemoryStore
from kgrec.graph.records import Attribute, GraphRecords, Interaction, Item, User, UserAttribute
from kgrec.graph.schema import Label, Rel
from kgrec.graph.snapshot import build_snapshot
from kgrec.graph.store import GraphStore
from kgrec.graph.store_errors import StoreError
from kgrec.graph.store_factory import open_store
from kgrec.graph.user_attributes import add_attribute_records, infer_rules, profile_records


def profiles() -> GraphRecords:
    """Twelve users with named and inferred attributes, as a loader gives them."""
    r = GraphRecords(
        users=[User(f"u{i:02}", {"age": 15 + 4 * i, "gender": "FM"[i % 2], "zip": f"{i % 3}5414",
                                 "income": 1000 * i, "team": ["red", "blue"][i % 2], "nick": f"n{i}"})
               for i in range(12)],
        items=[Item("i1", "One"), Item("i2")],
        interactions=[Interaction("u00", "i1", 1.0), Interaction("u01", "i2", 2.0)],
    )
    add_attribute_records(r)
    return r


def sort(r: GraphRecords) -> GraphRecords:
    for value in vars(r).values():
        if isinstance(value, list):
            value.sort(key=repr)
    return r


def links(store: GraphStore, user: str) -> set[str]:
    return {n.id for n in store.neighbors(Label.USER, user, [Rel.HAS_ATTRIBUTE])}


def test_attribute_nodes_and_links_are_stored_exported_and_snapshotted(store: GraphStore) -> None:
    records = profiles()
    store.load(records)
    counts = store.counts()
    assert counts["attributes"] == len(records.attributes) and counts["has_attribute"] == len(records.has_attribute)
    assert store.get_node(Label.ATTRIBUTE, "age:25-34") == {"id": "age:25-34", "kind": "age", "value": "25-34",
                                                            "name": "age 25-34"}
    assert links(store, "u03") == {"age:25-34", "gender:M", "region:0", "team:blue", "income:[2000,4000)"}
    named = {(n.id, n.name) for n in store.neighbors(Label.USER, "u03", [Rel.HAS_ATTRIBUTE])}
    assert ("gender:M", "gender M") in named
    assert store.has_relationship((Label.USER, "u03"), Rel.HAS_ATTRIBUTE, (Label.ATTRIBUTE, "gender:M"))
    assert not store.has_relationship((Label.USER, "u03"), Rel.HAS_ATTRIBUTE, (Label.ATTRIBUTE, "gender:F"))
    assert [a.id for a in store.attributes()] == sorted(a.id for a in records.attributes)
    assert sort(store.export()) == sort(profiles())
    snap = store.snapshot()
    assert snap.fingerprint == build_snapshot(records).fingerprint
    assert snap.counts == counts
    u, a = snap.users.index["u03"], snap.attributes.index["gender:M"]
    assert snap.user_attributes[u, a] == 1.0 and snap.attribute_kinds[a] == "gender"
    assert snap.attribute_names[a] == "gender M"


def test_a_user_upsert_replaces_its_links_and_moves_its_token(store: GraphStore) -> None:
    store.load(profiles())
    first = store.feedback("u03")
    assert first.attributes == links(store, "u03")
    assert store.feedback("u03", first.user_token).attributes is None  # nothing changed: nothing shipped
    store.upsert_users([User("u03", {"age": 60})])  # the old links go with the old attributes
    second = store.feedback("u03", first.user_token)
    assert second.user_token != first.user_token and second.attributes == frozenset()
    store.upsert_profiles([User("u03", {"age": 60, "gender": "X", "income": 7500.5, "team": "red", "nick": "z"})])
    third = store.feedback("u03", second.user_token)
    expected = {"age:55+", "gender:X", "income:[6000,8000)", "team:red"}
    assert third.user_token != second.user_token and third.attributes == expected == links(store, "u03")
    assert store.get_node(Label.ATTRIBUTE, "gender:X") == {"id": "gender:X", "kind": "gender", "value": "X",
                                                           "name": "gender X"}
    assert store.get_node(Label.USER, "u03")["attrs"]["nick"] == "z"  # plain, never a node
    assert store.get_node(Label.ATTRIBUTE, "nick:z") is None
    assert store.counts()["has_attribute"] == len(profiles().has_attribute) - 5 + 4


def test_new_links_move_the_token_and_missing_ends_are_created_with_their_key(store: GraphStore) -> None:
    before = store.feedback("ghost")
    assert before.known is False and before.attributes == frozenset()
    assert store.upsert_user_attributes([UserAttribute("ghost", "colour:teal"), UserAttribute("ghost", "bare")]) == 2
    after = store.feedback("ghost", before.user_token)
    assert after.known and after.attributes == {"colour:teal", "bare"}
    assert store.get_node(Label.ATTRIBUTE, "colour:teal") == {"id": "colour:teal"}
    assert store.attributes() == [Attribute("bare", "attribute", "bare", "attribute bare"),
                                  Attribute("colour:teal", "colour", "teal", "colour teal")]
    store.upsert_attributes([Attribute("colour:teal", None, None, "Teal")])  # a missing part keeps what is known
    assert store.get_node(Label.ATTRIBUTE, "colour:teal") == {"id": "colour:teal", "name": "Teal"}
    assert store.snapshot().counts["has_attribute"] == 2


@pytest.mark.parametrize("write", [
    lambda s: s.upsert_attributes([Attribute("ok:1", "ok", "1"), Attribute("bad\x00:1", "bad", "1")]),
    lambda s: s.upsert_attributes([Attribute("", "k", "v")]),
    lambda s: s.upsert_user_attributes([UserAttribute("a/b", "ok:1")]),
    lambda s: s.upsert_user_attributes([UserAttribute("u", "\ud800")]),
], ids=["control-char", "empty-id", "slash-in-user", "lone-surrogate"])
def test_bad_attribute_rows_are_refused_whole(store: GraphStore, write) -> None:
    with pytest.raises(StoreError, match="nothing of this batch was written"):
        write(store)
    assert not any(store.counts().values())


def test_whole_graph_writes_in_every_mode_give_what_the_upserts_give(store: GraphStore) -> None:
    records = profiles()
    store.write_graph(records, "create")
    changed = profiles()
    changed.users = [User("u03", {"age": 61, "team": "green"})]  # u03's new links only, by the load's rules
    changed.attributes, changed.has_attribute = profile_records(changed.users, infer_rules(records.users))
    store.write_graph(changed, "merge")
    assert links(store, "u03") == {"age:55+", "team:green"}
    expected = profiles()
    expected.users = [u if u.id != "u03" else changed.users[0] for u in expected.users]
    expected.attributes += [a for a in changed.attributes if a.id not in {x.id for x in expected.attributes}]
    expected.has_attribute = [x for x in expected.has_attribute if x.user != "u03"] + changed.has_attribute
    assert store.snapshot().fingerprint == build_snapshot(expected).fingerprint
    store.write_graph(changed, "merge")  # a rerun changes nothing
    assert store.snapshot().fingerprint == build_snapshot(expected).fingerprint


def test_deleting_a_user_removes_its_links_and_keeps_the_groups(store: GraphStore) -> None:
    store.load(profiles())
    before = store.counts()
    store.delete_users(["u03"])
    after = store.counts()
    assert after["attributes"] == before["attributes"]
    assert after["has_attribute"] == before["has_attribute"] - 5
    members = [n.id for n in store.neighbors(Label.ATTRIBUTE, "gender:M", limit=100)]
    assert members == ["u01", "u05", "u07", "u09", "u11"]


WATCH = """
import json, sys
from kgrec.graph.store_factory import open_store
store = open_store(sys.argv[1])
token = store.feedback("u05").user_token
print("ready", flush=True)
sys.stdin.readline()
fb = store.feedback("u05", token)
print(json.dumps(None if fb.attributes is None else sorted(fb.attributes)), flush=True)
"""


def test_another_process_sees_new_attributes_at_its_next_read(store: GraphStore, tmp_path: Path) -> None:
    """As an API worker does: its cached token for the user is stale once attributes change."""
    store.load(profiles())
    url = f"memory://{tmp_path / 'graph'}" if isinstance(store, MemoryStore) else store_url(store)
    watcher = subprocess.Popen([sys.executable, "-c", WATCH, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    try:
        assert watcher.stdout is not None and watcher.stdin is not None
        assert watcher.stdout.readline().strip() == "ready"
        with store.exclusive():  # what the API's writes run in (the embedded store flushes at the end)
            store.upsert_profiles([User("u05", {"age": 40, "occupation": "pilot"})])
        watcher.stdin.write("go\n")
        watcher.stdin.flush()
        assert json.loads(watcher.stdout.readline()) == ["age:35-44", "occupation:pilot"]
    finally:
        watcher.kill()
        watcher.wait()


def store_url(store: GraphStore) -> str:
    import os

    return os.environ["KGREC_TEST_NEO4J_URI"]


def test_memory_store_keeps_attributes_across_reopen_and_journal(tmp_path: Path) -> None:
    s = MemoryStore(tmp_path)
    s.load(profiles())
    s.close()
    s = MemoryStore(tmp_path)
    s.upsert_profiles([User("u01", {"gender": "F"})])  # journaled, not compacted
    s.close()
    again = MemoryStore(tmp_path)
    assert links(again, "u01") == {"gender:F"}
    assert again.counts()["attributes"] == len(profiles().attributes)


@pytest.mark.neo4j
def test_both_stores_answer_alike(neo4j_uri: str, tmp_path: Path) -> None:
    neo, memory = open_store(neo4j_uri), MemoryStore(tmp_path / "graph")
    try:
        neo.clear()
        for s in (neo, memory):
            s.load(profiles())
            s.upsert_profiles([User("new", {"age": 33, "income": 999999, "team": "red"})])
        assert neo.counts() == memory.counts()
        assert neo.snapshot().fingerprint == memory.snapshot().fingerprint
        assert sort(neo.export()) == sort(memory.export())
        assert neo.attributes() == memory.attributes()
        for label, key in ((Label.USER, "new"), (Label.ATTRIBUTE, "team:red"), (Label.ATTRIBUTE, "age:25-34")):
            assert neo.get_node(label, key) == memory.get_node(label, key)
            assert neo.neighbors(label, key, limit=50) == memory.neighbors(label, key, limit=50)
        assert neo.feedback("new").attributes == memory.feedback("new").attributes == {
            "age:25-34", "income:>=8000", "team:red"}
    finally:
        neo.clear()
        neo.close()
        memory.close()
