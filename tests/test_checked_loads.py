"""Loads check every row exactly once and the stores trust what was checked (``graph.bulk``:
``CheckedRecords``, ``Vetted``): counted on real loads, and the guarantees around it — a
``CheckedRecords`` comes only from the checker, a bad row still refuses the whole graph, and
a create-mode write that fails half-way leaves the memory store as empty as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kgrec.graph import bulk, column_checks, memory_rows, rows
from kgrec.graph.bulk import CheckedRecords, check_records
from kgrec.graph.memory import MemoryStore
from kgrec.graph.records import Interaction, Item, Tag, Tagging
from kgrec.graph.schema import COUNT_KEYS
from kgrec.graph.store_errors import StoreError
from kgrec.loaders import csv_dir
from tests.test_store_contract import small


@pytest.fixture()
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Rows each check path saw: the column checks, and the per-row rules outside bad rows' wording."""
    seen = {"column": 0, "row": 0}
    bad_rows, value_problem = column_checks.bad_rows, rows.value_problem

    def counting_bad_rows(table: str, columns: Any) -> Any:
        seen["column"] += len(columns[0]) if columns else 0
        return bad_rows(table, columns)

    def counting_value_problem(table: str, row: Any) -> Any:
        seen["row"] += 1
        return value_problem(table, row)

    monkeypatch.setattr(column_checks, "bad_rows", counting_bad_rows)
    monkeypatch.setattr(rows, "value_problem", counting_value_problem)
    return seen


def _csv_folder(d: Path) -> Path:
    d.mkdir()
    (d / "interactions.csv").write_text("user,item,weight,ts\nu1,i1,1,5\nu2,i1,2,\nu/3,i2,1,\nu4,i9,1,\n",
                                        encoding="utf-8")
    (d / "items.csv").write_text("item,title,lat,lon\ni1,One,1.5,2.5\ni2,Two,,\ni3,Bad\x07,,\n", encoding="utf-8")
    (d / "taggings.csv").write_text("user,item,tag\nu1,i1,rock\nu2,i2,jazz\nu1,i1,rock\n", encoding="utf-8")
    (d / "users.csv").write_text("user,age,zip\nu1,25,02134\nu2,41,94110\n", encoding="utf-8")
    return d


def test_a_load_checks_each_row_once_and_the_store_trusts_them(tmp_path: Path, counted: dict[str, int]) -> None:
    loaded = csv_dir.load(_csv_folder(tmp_path / "data"))
    assert [(r.file, r.line, r.reason) for r in loaded.report.rejects] == [
        ("interactions.csv", 4, "value"), ("items.csv", 4, "value"), ("taggings.csv", 4, "duplicate")]
    parsed = counted["column"]
    assert parsed == 4 + 3 + 3 + 2 == loaded.report.vetted.rows  # every parsed row, once
    checked = loaded.checked()
    records = loaded.records
    kept = sum(loaded.report.rows.values())  # what the files gave, once their rejects are out
    assert kept == 3 + 2 + 2 + 2
    written = sum(len(getattr(records, k)) for k in COUNT_KEYS)
    # what the loader added itself (attribute nodes and links, undeclared tags and items) is checked
    # now; what the files gave is not checked again
    assert checked.rows_checked == written - kept + len(records.hidden)
    assert counted["column"] == parsed + checked.rows_checked
    store = MemoryStore(tmp_path / "g")
    store.write_graph(checked, "create")
    assert counted["column"] == parsed + checked.rows_checked  # the store checked nothing again
    assert counted["row"] == 2  # only the wording of the two rows rejected for their values
    assert store.counts()["interactions"] == 3 and store.counts()["attributes"] > 0


def test_records_not_vetted_are_all_checked(tmp_path: Path, counted: dict[str, int]) -> None:
    records = small()
    checked = check_records(records)
    assert checked.rows_checked == sum(len(t) for t in checked.tables.values()) + len(records.hidden)
    assert counted["row"] == 0
    before = counted["column"]
    MemoryStore(tmp_path / "g").write_graph(records, "merge")  # unchecked records: checked once, here
    assert counted["column"] - before == checked.rows_checked


def test_checked_records_come_only_from_the_checker() -> None:
    with pytest.raises(TypeError, match=r"only from graph\.bulk\.check_records"):
        CheckedRecords({}, [], {}, small(), 0, 0.0)


def test_a_bad_row_names_its_table_and_row_and_writes_nothing(tmp_path: Path) -> None:
    records = small()
    records.taggings.append(Tagging("alice", "blur", "bad\x00tag"))
    with pytest.raises(StoreError, match=r"bad tagged row 4: tagging tag 'bad\\x00tag' contains control character"):
        check_records(records)
    store = MemoryStore(tmp_path / "g")
    with pytest.raises(StoreError, match="bad tagged row 4"):
        store.write_graph(records, "create")
    assert set(store.counts().values()) == {0}


def test_vetted_records_of_another_kind_are_checked_again() -> None:
    """A record vetted as one kind and listed under another is not trusted there."""
    vetted = bulk.Vetted()
    good = Item("i1", "One")
    assert vetted.vet([good, Item("i/2")]) == {1: "item id 'i/2' contains '/', which cannot be addressed in a URL "
                                                   "path (/v1/users/{id}); choose ids without it"}
    records = small()
    records.items.append(good)
    assert vetted.holds(records.items, Item).tolist() == [False] * 3 + [True]
    assert vetted.holds([good], Tag).tolist() == [False]
    checked = check_records(records, vetted)
    assert checked.rows_checked == sum(len(t) for t in checked.tables.values()) - 1 + len(records.hidden)


def test_a_create_write_that_fails_half_way_leaves_the_store_empty(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    records = small()
    records.interactions += [Interaction(f"u{n}", "blur", 1.0) for n in range(50)]
    put = memory_rows.TABLES["tagged"]

    def half(store: Any, rows_: list[Any]) -> None:
        put(store, rows_[:1])
        raise OSError("disk gone")

    store = MemoryStore(tmp_path / "g")
    monkeypatch.setitem(memory_rows.TABLES, "tagged", half)
    with pytest.raises(OSError, match="disk gone"):
        store.write_graph(records, "create", batch=7)
    assert set(store.counts().values()) == {0} and store.graph.number_of_nodes() == 0
    monkeypatch.setitem(memory_rows.TABLES, "tagged", put)
    store.write_graph(records, "create")  # the rerun writes everything, once
    reference = MemoryStore(tmp_path / "ref")
    reference.write_graph(records, "merge", batch=7)
    assert store.counts() == reference.counts()
    assert store.snapshot().fingerprint == reference.snapshot().fingerprint
    store.close()
    assert MemoryStore(tmp_path / "g").snapshot().fingerprint == reference.snapshot().fingerprint
