"""``kgrec load gowalla``: the check-in layout of ``../shared/datasets/gowalla-u1000`` on a tiny
handwritten copy (quirks and bad rows included), the same graph through ``kgrec load csv``, and
(``datasets``) the real files into both stores."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from kgrec.cli import main
from kgrec.graph.memory import MemoryStore
from kgrec.graph.schema import Label
from kgrec.graph.snapshot import build_snapshot
from kgrec.graph.store_factory import open_store
from kgrec.loaders import csv_dir, gowalla

H = 28_800  # the copy's timestamps are 8 hours early


def make_checkins(d: Path) -> Path:
    """Float timestamps, an exact repeat, no final newline, friendships beyond the loaded users,
    a place without coordinates, categories, and one bad row per file."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "Tiny_checkins.txt").write_text(
        "0\t10\t1000.0\n0\t10\t3000.0\n0\t10\t3000.0\n0\t11\t2000.0\n1\t10\t500.0\n"
        "1\t12\t700.0\n2\t11\tsoon\n2\t11\t900.0\n\t11\t5.0\n3\t13\t100.0", encoding="ascii")
    (d / "Tiny_poi_coos.txt").write_text(
        "10\t30.2691029532\t-97.7493953705\n11\t30.2557309927\t-97.7633857727\n12\t95.0\t1.0\n"
        "13\t51.5\t\n14\t-33.865\t151.209\n", encoding="ascii")
    (d / "Tiny_social_relations.txt").write_text("0\t1\n1\t2\n2\t77\n77\t78\n3\t3\n0\t2\n", encoding="ascii")
    (d / "Tiny_poi_categories.txt").write_text("10\tCoffee Shop\n11\tPark\n10\tWi-Fi  Spot\n10\tCoffee Shop\n",
                                               encoding="ascii")
    return d


def make_csv_equivalent(d: Path) -> Path:
    """The graph the check-ins give, written by hand in ``kgrec load csv``'s format."""
    d.mkdir(parents=True, exist_ok=True)
    files = {
        "interactions.csv": f"user,item,weight,ts\n0,10,3,{3000 + H}\n0,11,1,{2000 + H}\n1,10,1,{500 + H}\n"
                            f"1,12,1,{700 + H}\n2,11,1,{900 + H}\n3,13,1,{100 + H}\n",
        "items.csv": "item,lat,lon\n10,30.2691029532,-97.7493953705\n11,30.2557309927,-97.7633857727\n"
                     "14,-33.865,151.209\n12,,\n13,,\n",
        "social.csv": "user,friend\n0,1\n1,0\n1,2\n2,1\n0,2\n2,0\n",
        "tags.csv": "tag,name,kind\nCoffee Shop,Coffee Shop,category\nPark,Park,category\n"
                    "Wi-Fi Spot,Wi-Fi Spot,category\n",
        "item_tags.csv": "item,tag\n10,Coffee Shop\n11,Park\n10,Wi-Fi Spot\n",
    }
    for name, text in files.items():
        (d / name).write_text(text, encoding="utf-8")
    return d


def test_checkins_become_weighted_pairs_places_friendships_and_categories(tmp_path: Path) -> None:
    loaded = gowalla.load(make_checkins(tmp_path / "tiny"))
    r, report = loaded.records, loaded.report
    assert sorted((x.file, x.line, x.reason) for x in report.rejects) == [
        ("Tiny_checkins.txt", 7, "number"), ("Tiny_checkins.txt", 9, "empty_id"),
        ("Tiny_poi_categories.txt", 4, "duplicate"), ("Tiny_poi_coos.txt", 3, "coordinates"),
        ("Tiny_poi_coos.txt", 4, "coordinates"), ("Tiny_social_relations.txt", 5, "self_loop"),
    ]
    pairs = {(x.user, x.item): (x.weight, x.ts) for x in r.interactions}
    assert pairs == {("0", "10"): (3.0, 3000 + H), ("0", "11"): (1.0, 2000 + H), ("1", "10"): (1.0, 500 + H),
                     ("1", "12"): (1.0, 700 + H), ("2", "11"): (1.0, 900 + H), ("3", "13"): (1.0, 100 + H)}
    assert {i.id: i.location for i in r.items} == {"10": (30.2691029532, -97.7493953705),
                                                   "11": (30.2557309927, -97.7633857727), "14": (-33.865, 151.209),
                                                   "12": None, "13": None}
    assert sorted((f.user, f.friend) for f in r.follows) == [("0", "1"), ("0", "2"), ("1", "0"), ("1", "2"),
                                                             ("2", "0"), ("2", "1")]
    assert [(t.id, t.kind) for t in r.tags] == [("Coffee Shop", "category"), ("Park", "category"),
                                                ("Wi-Fi Spot", "category")]
    assert any("1 check-ins repeat an earlier one exactly" in n for n in report.notes)
    assert any("3 of 5 friendships are between loaded users: 6 FOLLOWS" in n for n in report.notes)
    assert any("2 places checked in at have no coordinates" in n for n in report.notes)
    assert [u.id for u in r.users] == ["0", "1", "2", "3"]
    unshifted = gowalla.load(tmp_path / "tiny", ts_offset=0).records
    assert {x.ts for x in unshifted.interactions} == {ts - H for _, ts in pairs.values()}


def test_the_csv_format_gives_the_same_graph(tmp_path: Path) -> None:
    checkins = gowalla.load(make_checkins(tmp_path / "tiny")).records
    csv = csv_dir.load(make_csv_equivalent(tmp_path / "csv"))
    assert csv.report.rejects == []
    assert build_snapshot(csv.records).fingerprint == build_snapshot(checkins).fingerprint
    runner, stores = CliRunner(), []
    for args in (["gowalla", "--path", str(tmp_path / "tiny")], ["csv", "--path", str(tmp_path / "csv")]):
        store = tmp_path / f"store-{args[0]}"
        out = runner.invoke(main, ["load", *args, "--store", f"memory://{store}", "--no-progress"])
        assert out.exit_code == 0, out.output
        stores.append(MemoryStore(store))
    assert stores[0].counts() == stores[1].counts()
    assert stores[0].snapshot().fingerprint == stores[1].snapshot().fingerprint == build_snapshot(checkins).fingerprint
    assert stores[0].items_within(30.2691029532, -97.7493953705, 2.0)[0] == ("10", 0.0)
    assert stores[0].get_node(Label.ITEM, "14")["location"] == (-33.865, 151.209)


def test_cli_errors_name_the_problem(tmp_path: Path) -> None:
    runner = CliRunner()
    (tmp_path / "empty").mkdir()
    out = runner.invoke(main, ["load", "gowalla", "--path", str(tmp_path / "empty"), "--store",
                               f"memory://{tmp_path / 'g'}"])
    assert out.exit_code == 1 and "no *_checkins.txt" in out.output
    d = make_checkins(tmp_path / "two")
    (d / "Other_checkins.txt").write_text("0\t1\t2.0\n", encoding="ascii")
    out = runner.invoke(main, ["load", "gowalla", "--path", str(d), "--store", f"memory://{tmp_path / 'g'}"])
    assert out.exit_code == 1 and "several _checkins.txt files" in out.output
    strict = runner.invoke(main, ["load", "gowalla", "--path", str(make_checkins(tmp_path / "bad")), "--strict",
                                  "--store", f"memory://{tmp_path / 'strict'}", "--rejects", str(tmp_path / "r.csv")])
    assert strict.exit_code == 1 and "nothing was written" in strict.output
    assert not (tmp_path / "strict").exists()
    assert (tmp_path / "r.csv").read_text().count("\n") == 1 + 6


@pytest.mark.datasets
@pytest.mark.neo4j
def test_real_gowalla_u1000_gives_the_same_graph_in_both_stores(
    datasets_dir: str, neo4j_uri: str, tmp_path: Path
) -> None:
    started = time.perf_counter()
    loaded = gowalla.load(Path(datasets_dir) / "gowalla-u1000")
    parsed = time.perf_counter() - started
    assert loaded.report.rejects == []
    expected = build_snapshot(loaded.records)
    assert expected.counts == {**dict.fromkeys(expected.counts, 0), "users": 1_000, "items": 24_209,
                               "interactions": 92_845, "follows": 2 * 7_711}  # SOURCE.md's verified counts
    assert sum(x.weight for x in loaded.records.interactions) == 157_251  # every check-in counted
    seconds = {}
    for name, url in (("memory", f"memory://{tmp_path / 'g'}"), ("neo4j", neo4j_uri)):
        with open_store(url) as store:
            store.clear()
            started = time.perf_counter()
            store.write_graph(loaded.records, "auto")
            seconds[name] = time.perf_counter() - started
            assert store.counts() == expected.counts, name
            assert store.snapshot().fingerprint == expected.fingerprint, name
            assert store.items_within(30.2691029532, -97.7493953705, 0.5)
            if name == "neo4j":
                store.clear()
    print(f"\ngowalla-u1000: parse {parsed:.1f} s, write memory {seconds['memory']:.1f} s, "
          f"neo4j {seconds['neo4j']:.1f} s")
