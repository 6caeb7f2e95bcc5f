"""Row validation, the reject report and the CSV-folder loader, on small handwritten files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from kgrec.loaders import csv_dir
from kgrec.loaders.checked_tables import LoadReport, Table, ident, weight


def _write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def test_table_decodes_per_line_and_rejects_only_the_bad_line(tmp_path: Path) -> None:
    f = _write(tmp_path / "x.tsv", b"a\tb\r\n1\tok\r\n2\t\xff\xfe\n3\tfine\n\n")
    report = LoadReport("t")
    rows = list(Table(f, report).parse(lambda r: (ident(r[0], "id"), r[1])))
    assert rows == [("1", "ok"), ("3", "fine")]
    assert [(r.file, r.line, r.reason) for r in report.rejects] == [("x.tsv", 3, "decode")]
    assert report.rows == {"x.tsv": 2}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("u1,i1", "columns"),
        ("u1,i1,2,3", "columns"),
        ("u1,i1,abc", "weight"),
        ("u1,i1,-1", "weight"),
        ("u1,i1,0", "weight"),
        ("u1,i1,nan", "weight"),
        ("u1,i1,inf", "weight"),
        (",i1,1", "empty_id"),
        ("u1,  ,1", "empty_id"),
    ],
)
def test_each_kind_of_bad_row_is_rejected_with_its_reason(tmp_path: Path, line: str, reason: str) -> None:
    f = _write(tmp_path / "interactions.csv", f"user,item,weight\nu0,i0,1\n{line}\nu2,i2,3.5\n")
    report = LoadReport("t")
    rows = list(Table(f, report, sep=",").parse(lambda r: (ident(r[0], "user"), ident(r[1], "item"), weight(r[2]))))
    assert rows == [("u0", "i0", 1.0), ("u2", "i2", 3.5)]
    assert [(r.line, r.reason) for r in report.rejects] == [(3, reason)]
    assert report.summary() == {reason: 1}


def test_duplicates_keep_the_first_and_reject_the_rest(tmp_path: Path) -> None:
    f = _write(tmp_path / "d.csv", "user,item,weight\nu,i,1\nu,j,1\nu,i,5\nu,i,7\n")
    report = LoadReport("t")
    rows = list(Table(f, report, sep=",").parse(lambda r: (r[0], r[1], float(r[2])), key=lambda r: r[:2]))
    assert rows == [("u", "i", 1.0), ("u", "j", 1.0)]
    assert [(r.line, r.reason) for r in report.rejects] == [(4, "duplicate"), (5, "duplicate")]
    assert "line 2" in report.rejects[0].detail


def test_reject_report_file_lists_file_line_reason(tmp_path: Path) -> None:
    report = LoadReport("t")
    report.reject("a.csv", 3, "weight", "weight 'x' is not a number")
    report.reject("b.csv", 9, "duplicate", "k")
    out = report.write_rejects(tmp_path / "sub" / "rejects.csv")
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["file", "line", "reason", "detail"]
    assert rows[1][:3] == ["a.csv", "3", "weight"]
    assert rows[2][:3] == ["b.csv", "9", "duplicate"]
    assert report.summary() == {"weight": 1, "duplicate": 1}
    with pytest.raises(ValueError):
        report.reject("a.csv", 1, "no-such-reason", "")


def make_csv_dir(d: Path, bad: bool = False) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    extra = "u3,i1,nan,,\nu4,,2,,\n" if bad else ""
    _write(d / "interactions.csv", "user,item,weight,rating,ts\r\nu1,i1,3,4.5,1700000000\r\n"
           f"u1,i2,1,,\r\nu2,i1,2.5,3,\r\n{extra}u2,\"i,3\",1,,\r\n")
    _write(d / "items.csv", "item,title,year\ni1,Blue Train,1957\ni2,,\n\"i,3\",\"Kind of Blue, Remastered\",1959\n")
    _write(d / "tags.csv", "tag,name\njazz,Jazz\n")
    _write(d / "item_tags.csv", "item,tag,count\ni1,jazz,4\ni2,bebop,\n" + ("i2,jazz,-3\n" if bad else ""))
    _write(d / "taggings.csv", "user,item,tag\nu1,i1,jazz\n" + ("u1,i1,jazz\n" if bad else ""))
    _write(d / "social.csv", "user,friend\nu1,u2\nu2,u1\nu2,u5\n" + ("u2,u2\n" if bad else ""))
    return d


def test_csv_folder_with_optional_columns_missing_or_empty(tmp_path: Path) -> None:
    loaded = csv_dir.load(make_csv_dir(tmp_path / "data"))
    r = loaded.records
    assert loaded.report.rejects == []
    inter = {(x.user, x.item): x for x in r.interactions}
    assert inter["u1", "i1"].rating == 4.5 and inter["u1", "i1"].ts == 1_700_000_000
    assert inter["u1", "i2"].rating is None and inter["u1", "i2"].ts is None
    items = {i.id: i for i in r.items}
    assert items["i,3"].title == "Kind of Blue, Remastered" and items["i,3"].attrs == {"year": "1959"}
    assert items["i2"].title is None
    tags = {t.id: t for t in r.tags}
    assert tags["jazz"].name == "Jazz" and tags["bebop"].name == "bebop"  # referenced, undeclared
    assert {(x.item, x.tag, x.count) for x in r.item_tags} == {("i1", "jazz", 4.0), ("i2", "bebop", 1.0)}
    assert {(f.user, f.friend) for f in r.follows} == {("u1", "u2"), ("u2", "u1"), ("u2", "u5")}
    assert {u.id for u in r.users} == {"u1", "u2", "u5"}


def test_csv_symmetric_adds_only_missing_reverse_edges(tmp_path: Path) -> None:
    r = csv_dir.load(make_csv_dir(tmp_path / "data"), symmetric=True).records
    pairs = [(f.user, f.friend) for f in r.follows]
    assert sorted(pairs) == [("u1", "u2"), ("u2", "u1"), ("u2", "u5"), ("u5", "u2")]


def test_csv_bad_rows_are_reported_and_good_rows_kept(tmp_path: Path) -> None:
    loaded = csv_dir.load(make_csv_dir(tmp_path / "data", bad=True))
    got = sorted((r.file, r.line, r.reason) for r in loaded.report.rejects)
    assert got == [
        ("interactions.csv", 5, "weight"),
        ("interactions.csv", 6, "empty_id"),
        ("item_tags.csv", 4, "weight"),
        ("social.csv", 5, "self_loop"),
        ("taggings.csv", 3, "duplicate"),
    ]
    assert len(loaded.records.interactions) == 4
    assert len(loaded.records.taggings) == 1


def test_csv_header_without_a_required_column_is_an_error(tmp_path: Path) -> None:
    d = tmp_path / "data"
    d.mkdir()
    _write(d / "interactions.csv", "user,item\nu1,i1\n")
    with pytest.raises(csv_dir.CsvFormatError, match="weight"):
        csv_dir.load(d)
    with pytest.raises(FileNotFoundError, match=r"interactions\.csv"):
        csv_dir.load(tmp_path)
    _write(d / "interactions.csv", b"")
    with pytest.raises(csv_dir.CsvFormatError, match="empty file"):
        csv_dir.load(d)


def test_csv_header_may_start_with_a_byte_order_mark(tmp_path: Path) -> None:
    d = tmp_path / "data"
    d.mkdir()
    _write(d / "interactions.csv", "\ufeffuser,item,weight\r\nu1,i1,2\r\n")
    assert [(r.user, r.item, r.weight) for r in csv_dir.load(d).records.interactions] == [("u1", "i1", 2.0)]


def test_values_no_store_can_hold_are_rejected_per_row_by_the_stores_own_rules(tmp_path: Path) -> None:
    """The loaders apply graph.values like the API and the stores: a '/' in a user id, a control
    character in a title, a timestamp past year 9999 each reject their row (reason ``value``), the
    rest loads, and the store takes every row kept."""
    from kgrec.graph.memory import MemoryStore

    d = tmp_path / "data"
    d.mkdir()
    _write(d / "interactions.csv", "user,item,weight,rating,ts\nu1,i1,1,,\nu/2,i1,1,,\nu3,i1,1,,99999999999999\n"
           "u4,..,1,,\nu5,i2,1,,-5\n")
    _write(d / "items.csv", "item,title\ni1,Blue\ni2,Bell\x07 Song\n")
    _write(d / "tags.csv", "tag,name\njazz/bebop,Jazz or bebop\n")
    loaded = csv_dir.load(d)
    rejected = [(r.file, r.line, r.reason) for r in loaded.report.rejects]
    assert rejected == [("interactions.csv", 3, "value"), ("interactions.csv", 4, "value"),
                        ("interactions.csv", 5, "value"), ("items.csv", 3, "value")]
    assert "contains '/'" in loaded.report.rejects[0].detail
    assert "control character U+0007" in loaded.report.rejects[3].detail
    assert {(x.user, x.item, x.ts) for x in loaded.records.interactions} == {("u1", "i1", None), ("u5", "i2", -5)}
    assert [t.id for t in loaded.records.tags] == ["jazz/bebop"]  # a tag id is never a URL path segment
    store = MemoryStore(tmp_path / "g")
    store.load(loaded.records)
    assert store.counts()["interactions"] == 2
