"""MemoryStore's journal: small flushes append, compaction rewrites, a torn tail is ignored.

A crash is simulated by cutting bytes off the journal (what an interrupted append leaves) or by
putting back the journal a compaction was about to remove.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from kgrec.graph.memory import FILE_NAME, JOURNAL_NAME, MemoryStore
from kgrec.graph.records import Fact, Interaction, Item, Tagging, User
from kgrec.graph.schema import Label, Rel
from kgrec.graph.store_errors import StoreError
from kgrec.loaders.synthetic import SyntheticGraph

DBR = "http://dbpedia.org/resource/"


def _loaded(directory: Path, synthetic: SyntheticGraph) -> MemoryStore:
    with MemoryStore(directory) as s:
        s.load(synthetic.records)
    return MemoryStore(directory)


def _small_writes(s: MemoryStore) -> None:
    """One flush per kind of journaled operation, as API writes arrive."""
    s.upsert_interactions([Interaction("u0001", "new-item", 3.0, 4.0, 1_700_000_000)])
    s.flush()
    s.upsert_users([User("u0001", {"name": "Ann", "vip": True})])
    s.upsert_items([Item("new-item", "New", {"year": 2024})])
    s.flush()
    s.upsert_taggings([Tagging("u0002", "new-item", "fresh")])
    s.upsert_facts([Fact("new-item", DBR + "genre", DBR + "Rock", "Rock")])
    s.flush()
    s.delete_interactions([("u0001", "new-item")])
    s.delete_users(["u0003"])
    s.delete_items(["i0004"])
    s.flush()


def test_a_small_flush_appends_and_leaves_the_document_alone(tmp_path: Path, synthetic: SyntheticGraph) -> None:
    s = _loaded(tmp_path, synthetic)
    document = (tmp_path / FILE_NAME).read_bytes()
    s.upsert_interactions([Interaction("u0001", "new-item", 2.5)])
    s.flush()
    assert (tmp_path / FILE_NAME).read_bytes() == document
    lines = (tmp_path / JOURNAL_NAME).read_bytes().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["ops"] == [["interacted", [["u0001", "new-item", 2.5, None, None]]]]
    reopened = MemoryStore(tmp_path)
    assert reopened.has_relationship((Label.USER, "u0001"), Rel.INTERACTED, (Label.ITEM, "new-item"))
    assert reopened.counts() == s.counts()


def test_replaying_the_journal_equals_the_compacted_graph(tmp_path: Path, synthetic: SyntheticGraph) -> None:
    s = _loaded(tmp_path, synthetic)
    _small_writes(s)
    live = (s.counts(), s.snapshot().fingerprint)
    assert len((tmp_path / JOURNAL_NAME).read_bytes().splitlines()) == 4
    replayed = MemoryStore(tmp_path)
    assert (replayed.counts(), replayed.snapshot().fingerprint) == live
    assert replayed.get_node(Label.USER, "u0001") == {"id": "u0001", "attrs": {"name": "Ann", "vip": True}}
    replayed.compact()
    assert not (tmp_path / JOURNAL_NAME).exists()
    compacted = MemoryStore(tmp_path)
    assert (compacted.counts(), compacted.snapshot().fingerprint) == live


def test_a_torn_last_line_is_ignored_and_cut_off_by_the_next_flush(
    tmp_path: Path, synthetic: SyntheticGraph, caplog: pytest.LogCaptureFixture
) -> None:
    s = _loaded(tmp_path, synthetic)
    s.upsert_users([User("first")])
    s.flush()
    s.upsert_users([User("second")])
    s.flush()
    journal = tmp_path / JOURNAL_NAME
    journal.write_bytes(journal.read_bytes()[:-7])  # the crash: the second append never finished
    with caplog.at_level(logging.WARNING, logger="kgrec.graph.memory_file"):
        reopened = MemoryStore(tmp_path)
    assert "unfinished last line" in caplog.text
    assert reopened.get_node(Label.USER, "first") is not None
    assert reopened.get_node(Label.USER, "second") is None
    reopened.upsert_users([User("third")])
    reopened.flush()
    assert len(journal.read_bytes().splitlines()) == 2
    again = MemoryStore(tmp_path)
    assert {k for k in ("first", "second", "third") if again.get_node(Label.USER, k)} == {"first", "third"}


@pytest.mark.parametrize(
    "damage",
    [
        lambda lines: [lines[0][:-3] + b"}}}", lines[1]],  # a whole line that is not JSON
        lambda lines: [b'{"base": null, "ops": [["interacted", [["u", "i", "heavy", null, null]]]]}', lines[1]],
        lambda lines: [b'{"base": null, "ops": [["drop_everything", []]]}', lines[1]],
        lambda lines: [b'{"base": null, "ops": [["delete_users", [""]]]}', lines[1]],
        lambda lines: [b"[1, 2]", lines[1]],
        lambda lines: [lines[0], b'{"base": "elsewhere", "ops": []}'],
    ],
    ids=["not-json", "bad-row", "unknown-op", "empty-key", "not-an-entry", "other-generation"],
)
def test_other_journal_damage_is_a_clear_error_and_nothing_is_lost(tmp_path: Path, damage) -> None:
    with MemoryStore(tmp_path) as s:
        s.upsert_users([User("a")])
    s = MemoryStore(tmp_path)
    for key in ("b", "c"):
        s.upsert_users([User(key)])
        s.flush()
    journal = tmp_path / JOURNAL_NAME
    lines = journal.read_bytes().splitlines()
    generation = json.loads(lines[0])["base"]
    content = b"\n".join(line.replace(b'"base": null', f'"base": "{generation}"'.encode())
                         for line in damage(lines)) + b"\n"
    journal.write_bytes(content)
    with pytest.raises(StoreError, match="corrupt line"):
        MemoryStore(tmp_path)
    assert journal.read_bytes() == content


def test_a_journal_left_by_an_interrupted_compaction_is_not_replayed(
    tmp_path: Path, synthetic: SyntheticGraph
) -> None:
    s = _loaded(tmp_path, synthetic)
    s.upsert_interactions([Interaction("u0001", "gone-later", 1.0)])
    s.flush()
    leftover = (tmp_path / JOURNAL_NAME).read_bytes()
    s.delete_items(["gone-later"])
    s.compact()
    expected = s.snapshot().fingerprint
    (tmp_path / JOURNAL_NAME).write_bytes(leftover)  # the crash: the new document, the old journal
    reopened = MemoryStore(tmp_path)
    assert reopened.get_node(Label.ITEM, "gone-later") is None
    assert reopened.snapshot().fingerprint == expected
    reopened.upsert_users([User("after")])
    reopened.flush()
    assert MemoryStore(tmp_path).get_node(Label.USER, "after") is not None


def test_bulk_writes_clear_and_a_long_journal_compact(tmp_path: Path, synthetic: SyntheticGraph) -> None:
    s = _loaded(tmp_path, synthetic)
    journal = tmp_path / JOURNAL_NAME
    s.upsert_interactions([Interaction(f"bulk{n}", "i", 1.0) for n in range(10_001)])
    s.flush()
    assert not journal.exists()
    small = MemoryStore(tmp_path, journal_limit=1)
    small.upsert_users([User("one")])
    small.flush()
    assert journal.exists()
    small.upsert_users([User("two")])
    small.flush()  # the journal is past its limit: this flush compacts
    assert not journal.exists()
    small.upsert_users([User("three")])
    small.flush()
    small.clear()
    small.flush()
    assert not journal.exists()
    assert MemoryStore(tmp_path).counts()["users"] == 0


def test_a_journal_append_by_another_store_is_not_overwritten(tmp_path: Path) -> None:
    with MemoryStore(tmp_path) as s:
        s.upsert_users([User("base")])
    stale, other = MemoryStore(tmp_path), MemoryStore(tmp_path)
    other.upsert_users([User("written-elsewhere")])
    other.flush()
    stale.upsert_users([User("stale-write")])
    with pytest.raises(StoreError, match="reopen"):
        stale.flush()
    fresh = MemoryStore(tmp_path)
    assert fresh.get_node(Label.USER, "written-elsewhere") is not None
    assert fresh.get_node(Label.USER, "stale-write") is None
