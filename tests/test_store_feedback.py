"""What servers read from the store on every request (``GraphStore.feedback``), on both stores,
and how several processes share one embedded store (``refresh``, ``exclusive``)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from kgrec.graph.memory import MemoryStore
from kgrec.graph.records import Dislike, GraphRecords, Interaction, Item, User
from kgrec.graph.schema import Label
from kgrec.graph.store import GraphStore


def base() -> GraphRecords:
    return GraphRecords(
        users=[User("ann"), User("bob")],
        items=[Item(x, x.title()) for x in ("x", "y", "z", "w")],
        interactions=[Interaction("ann", "x", 2.0), Interaction("ann", "y", 1.0), Interaction("bob", "z", 1.0)],
        dislikes=[Dislike("ann", "w", 1_700_000_000)],
        hidden=["z"],
    )


def test_feedback_ships_only_what_changed(store: GraphStore) -> None:
    store.load(base())
    first = store.feedback("ann")
    assert first.known and first.interacted == {"x": 2.0, "y": 1.0}
    assert first.disliked == {"w"} and first.hidden == {"z"}
    same = store.feedback("ann", first.user_token, first.hidden_token)
    assert (same.interacted, same.disliked, same.hidden) == (None, None, None)
    assert same.user_token == first.user_token and same.hidden_token == first.hidden_token

    store.upsert_interactions([Interaction("ann", "z", 3.0)])
    store.flush()
    after = store.feedback("ann", first.user_token, first.hidden_token)
    assert after.interacted == {"x": 2.0, "y": 1.0, "z": 3.0} and after.user_token != first.user_token
    store.upsert_dislikes([Dislike("ann", "y")])
    store.flush()
    disliked = store.feedback("ann", after.user_token, after.hidden_token)
    assert disliked.disliked == {"w", "y"} and disliked.hidden is None

    assert store.set_hidden(["x", "nothing-here"], True) == 1
    store.flush()
    hidden = store.feedback("ann", disliked.user_token, disliked.hidden_token)
    assert hidden.hidden == {"x", "z"} and hidden.hidden_token != disliked.hidden_token
    assert store.get_node(Label.ITEM, "x")["hidden"] is True
    assert store.set_hidden(["z"], False) == 1
    store.flush()
    assert store.feedback("ann", None, hidden.hidden_token).hidden == {"x"}
    assert "hidden" not in store.get_node(Label.ITEM, "z")


def test_deletes_change_the_tokens(store: GraphStore) -> None:
    store.load(base())
    first = store.feedback("ann")
    store.delete_dislikes([("ann", "w")])
    store.flush()
    after = store.feedback("ann", first.user_token, first.hidden_token)
    assert after.disliked == frozenset() and after.interacted == {"x": 2.0, "y": 1.0}
    store.delete_items(["y", "z"])  # removes ann's INTERACTED to y and the hidden item z
    store.flush()
    gone = store.feedback("ann", after.user_token, after.hidden_token)
    assert gone.interacted == {"x": 2.0} and gone.hidden == frozenset()


def test_unknown_user(store: GraphStore) -> None:
    store.load(base())
    fb = store.feedback("nobody")
    assert not fb.known and fb.interacted == {} and fb.disliked == frozenset()


def test_dislikes_reach_the_snapshot_and_counts(store: GraphStore) -> None:
    store.load(base())
    snap = store.snapshot()
    assert store.counts()["dislikes"] == snap.counts["dislikes"] == 1
    assert snap.hidden == {"z"}
    assert snap.dislikes[snap.users.index["ann"], snap.items.index["w"]] == 1


# -- several processes on one embedded store --------------------------------------------------
def test_a_second_instance_sees_writes_at_refresh(tmp_path: Path) -> None:
    a, b = MemoryStore(tmp_path / "g"), MemoryStore(tmp_path / "g")
    with a.exclusive():
        a.load(base())
    b.refresh()
    seen = b.feedback("ann")
    assert seen.interacted == {"x": 2.0, "y": 1.0}
    with a.exclusive():
        a.upsert_interactions([Interaction("ann", "w", 4.0)])
    later = b.feedback("ann", seen.user_token, seen.hidden_token)  # refreshes itself
    assert later.interacted == {"x": 2.0, "y": 1.0, "w": 4.0}
    with b.exclusive():  # b writes after a without reopening: nothing refused, nothing lost
        b.set_hidden(["x"], True)
    with a.exclusive():
        a.compact()
    b.refresh()
    assert b.counts() == a.counts() and b.feedback("ann").hidden == {"x", "z"}
    assert MemoryStore(tmp_path / "g").snapshot().fingerprint == a.snapshot().fingerprint == b.snapshot().fingerprint


def test_a_failed_write_leaves_no_trace_in_memory(tmp_path: Path) -> None:
    s = MemoryStore(tmp_path / "g")
    with s.exclusive():
        s.load(base())
    before = s.snapshot().fingerprint
    with pytest.raises(RuntimeError), s.exclusive():
        s.upsert_interactions([Interaction("ann", "z", 5.0)])
        raise RuntimeError("the request failed after writing")
    assert s.snapshot().fingerprint == before
    assert MemoryStore(tmp_path / "g").snapshot().fingerprint == before


def _writer(directory: str, user: str, n: int) -> None:
    s = MemoryStore(directory)
    for k in range(n):
        with s.exclusive():
            s.upsert_interactions([Interaction(user, f"item-{k}", 1.0 + k)])


def test_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    directory = str(tmp_path / "g")
    with MemoryStore(directory).exclusive() as _:
        pass
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(directory, f"w{p}", 40)) for p in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    s = MemoryStore(directory)
    assert s.counts()["interactions"] == 120
    assert s.feedback("w1").interacted == {f"item-{k}": 1.0 + k for k in range(40)}
