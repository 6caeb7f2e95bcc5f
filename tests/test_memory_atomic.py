"""MemoryStore writes are all or nothing, in memory as on disk: a write that fails half-way, or
a flush that fails, leaves no trace in what the store shows; stale compaction temp files are
removed at open."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from kgrec.graph.memory import MemoryStore
from kgrec.graph.memory_file import FILE_NAME
from kgrec.graph.records import Follow, Interaction, Item, User
from kgrec.graph.schema import Label
from kgrec.graph.store_errors import StoreError
from kgrec.loaders.synthetic import generate


@pytest.fixture()
def store(tmp_path: Path) -> MemoryStore:
    s = MemoryStore(tmp_path / "g")
    s.load(generate(users=20, items=30, seed=1).records)
    s.flush()
    return s


def state(s: MemoryStore) -> tuple:
    """Everything a reader can see: counts, and every node and relationship with its data."""
    g = s.graph
    nodes = sorted((k, repr(sorted(d.items()))) for k, d in g.nodes(data=True))
    edges = sorted((a, b, repr(k), repr(sorted(d.items()))) for a, b, k, d in g.edges(keys=True, data=True))
    return s.counts(), nodes, edges


def fail_after(s: MemoryStore, method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``method`` do its real work and then raise: a write that fails half-way."""
    real = getattr(s, method)

    def broken(*args, **kwargs):
        real(*args, **kwargs)
        raise MemoryError("injected after applying")

    monkeypatch.setattr(s, method, broken)


def test_a_write_failing_half_way_leaves_no_trace(store, monkeypatch):
    before = state(store)
    user = store.export().users[0].id
    fail_after(store, "_edges", monkeypatch)
    rows = [Interaction(user, "brand-new-item", 2.0), Interaction("brand-new-user", "brand-new-item", 1.0)]
    with pytest.raises(MemoryError):
        store.upsert_interactions(rows)
    assert state(store) == before
    monkeypatch.undo()
    store.upsert_users([User("after", {"x": 1})])  # the store still works, and the journal holds only this
    store.flush()
    reopened = MemoryStore(store.directory)
    assert reopened.get_node(Label.ITEM, "brand-new-item") is None
    assert reopened.get_node(Label.USER, "after") == {"id": "after", "attrs": {"x": 1}}


def test_updates_and_deletes_are_rolled_back_too(store, monkeypatch):
    records = store.export()
    user, item = records.users[0], records.items[0]
    before = state(store)
    fail_after(store, "_ensure", monkeypatch)
    with pytest.raises(MemoryError):
        store.upsert_items([Item(item.id, "a new title", {"new": True}), Item("other", "x")])
    assert state(store) == before
    monkeypatch.undo()
    fail_after(store, "_remove_node", monkeypatch)
    with pytest.raises(MemoryError):
        store.delete_users([user.id])
    assert state(store) == before
    assert store.get_node(Label.USER, user.id) == {"id": user.id, "attrs": user.attrs}


def test_a_failed_flush_shows_the_last_durable_state(tmp_path):
    a, b = MemoryStore(tmp_path / "g"), MemoryStore(tmp_path / "g")
    a.upsert_users([User("from-a")])
    a.flush()
    b.upsert_users([User("from-b")])
    with pytest.raises(StoreError, match="another process"):
        b.flush()
    assert b.get_node(Label.USER, "from-b") is None  # refused, so not shown either
    assert b.get_node(Label.USER, "from-a") == {"id": "from-a", "attrs": {}}
    b.upsert_follows([Follow("from-a", "x")])  # and it keeps working from there
    b.flush()
    assert MemoryStore(tmp_path / "g").counts()["follows"] == 1


def test_written_counts_distinct_relationships(store):
    rows = [Interaction("u", "i", 1.0)] * 3 + [Interaction("u", "j", 2.0), Interaction("u", "i", 5.0)]
    assert store.upsert_interactions(rows) == 2
    assert store.upsert_users([User("u"), User("u"), User("v")]) == 2
    assert store.graph.edges[(Label.USER, "u"), (Label.ITEM, "i"), "INTERACTED"]["props"]["weight"] == 5.0


def test_stale_compaction_temp_files_are_removed_at_open(store):
    stale = store.directory / ".graph-killed.tmp"
    stale.write_bytes(b"")
    other = store.directory / "notes.tmp"
    other.write_bytes(b"mine")
    MemoryStore(store.directory)
    assert not stale.exists()
    assert other.exists()
    with gzip.open(store.directory / FILE_NAME) as fh:
        assert fh.read(1)
