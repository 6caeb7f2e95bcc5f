"""User attributes as groups (graph.user_attributes): the banding, region and categorical rules,
the same links from a load and from one user at a time, and users.csv / MovieLens loads with
their rejects. Stores are ``tests/test_store_attributes.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgrec.graph.records import Attribute, User
from kgrec.graph.user_attributes import (
    AttributeRules,
    attribute_links,
    band_edges,
    infer_rules,
    profile_records,
    rules_from_attributes,
)
from kgrec.loaders import csv_dir, movielens
from tests.test_loaders_datasets import make_ml100k

NAMED = AttributeRules()


def ids(attrs: dict, rules: AttributeRules = NAMED) -> list[str]:
    return [a.id for a in attribute_links(attrs, rules)]


@pytest.mark.parametrize(("age", "band"), [
    (0, "0-17"), (17, "0-17"), (17.9, "0-17"), (18, "18-24"), ("24", "18-24"), (25, "25-34"), (34, "25-34"),
    (35, "35-44"), (44.5, "35-44"), (45, "45-54"), (54, "45-54"), (55, "55+"), (99, "55+"),
    (1, "0-17"), (50, "45-54"), (56, "55+"),  # MovieLens 1M's age codes
])
def test_ages_fall_in_the_usual_bands(age: object, band: str) -> None:
    assert ids({"Age": age}) == [f"age:{band}"]


@pytest.mark.parametrize("age", [-1, "thirty", "", True, float("inf")])
def test_ages_that_are_no_number_give_no_node(age: object) -> None:
    assert ids({"age": age}) == []


@pytest.mark.parametrize(("column", "code", "region"), [
    ("zip", "55414", "5"), ("zipcode", "02134", "0"), ("postcode", " sw1a 1aa ", "S"), ("postal_code", "T8H1N", "T"),
    ("zip", 2134, "2"),  # a number has lost its leading zero: give codes as strings
])
def test_postcodes_give_a_region_from_their_first_character(column: str, code: object, region: str) -> None:
    links = attribute_links({column: code}, NAMED)
    assert links == [Attribute(f"region:{region}", "region", region, f"region {region}")]


def test_named_categorical_columns_and_plain_ones() -> None:
    links = attribute_links({"gender": "F", "Occupation": "  software   engineer ", "name": "Ada", "vip": True},
                            NAMED)
    assert [(a.id, a.kind, a.value, a.name) for a in links] == [
        ("gender:F", "gender", "F", "gender F"),
        ("occupation:software engineer", "occupation", "software engineer", "occupation software engineer"),
    ]
    assert ids({"occupation": "x" * 101}) == []  # too long to name a group


def users_with(**columns: list[object]) -> list[User]:
    n = len(next(iter(columns.values())))
    return [User(f"u{i}", {k: v[i] for k, v in columns.items() if v[i] is not None}) for i in range(n)]


def test_columns_are_classified_by_their_values_at_load() -> None:
    n = 40
    users = users_with(
        city=[["Oslo", "Rome", "Lima"][i % 3] for i in range(n)],  # 3 values over 40 users: categorical
        email=[f"user{i}@example.org" for i in range(n)],  # unique: plain
        kids=[str(i % 4) for i in range(n)],  # numeric, 4 values: categorical
        income=[str(1000 * i) for i in range(n)],  # numeric, 40 values: quintile bands
        member=[i % 2 == 0 for i in range(n)],  # booleans: categorical
    )
    rules = infer_rules(users)
    assert set(rules.columns) == {"city", "kids", "income", "member"}
    assert rules.columns["income"].how == "bands"
    assert rules.columns["income"].edges == (7000.0, 15000.0, 23000.0, 31000.0)
    assert ids(users[0].attrs, rules) == ["city:Oslo", "income:<7000", "kids:0", "member:true"]
    assert ids(users[7].attrs, rules) == ["city:Rome", "income:[7000,15000)", "kids:3", "member:false"]
    assert ids(users[39].attrs, rules) == ["city:Oslo", "income:>=31000", "kids:3", "member:false"]
    assert rules.describe(["email", "income", "age", "zip"]) == [
        "age: age bands", "email: plain property", "income: 5 quantile bands", "zip: region (first character)",
    ]


def test_one_user_at_a_time_gets_the_rules_the_stored_nodes_imply() -> None:
    """What POST /v1/users does: rules from the Attribute nodes a load wrote, then the same function."""
    users = users_with(income=[str(1000 * i) for i in range(40)], city=[["Oslo", "Rome"][i % 2] for i in range(40)],
                       age=[20 + i for i in range(40)])
    nodes, _ = profile_records(users, infer_rules(users))
    later = rules_from_attributes(nodes)
    for attrs in ({"income": 6999.5, "city": "Oslo", "age": 29}, {"income": 15000, "city": "Lima", "zip": "9"},
                  {"income": -5, "nickname": "x"}):
        assert ids(attrs, later) == ids(attrs, infer_rules(users))
    assert ids({"income": 6999.5, "city": "Lima"}, later) == ["city:Lima", "income:<7000"]  # a new category
    assert ids({"nickname": "x", "kids": 2}, later) == []  # kinds the store does not hold stay plain


def test_band_values_parse_back() -> None:
    assert band_edges("<7000") == [7000.0]
    assert band_edges("[0.5,1e-05)") == [0.5, 1e-05]
    assert band_edges(">=-3") == [-3.0]
    assert band_edges("Oslo") is None and band_edges("[a,b)") is None


# -- loaders ---------------------------------------------------------------------------------------
def make_profiles(d: Path, users: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "interactions.csv").write_text("user,item,weight\nu1,i1,1\nu2,i1,2\nu3,i2,1\nu4,i2,1\n", encoding="utf-8")
    (d / "users.csv").write_bytes(users.encode("utf-8"))
    return d


def test_users_csv_gives_attributes_nodes_and_links(tmp_path: Path) -> None:
    d = make_profiles(tmp_path / "csv", "user,age,gender,zip,nickname,team\nu1,31,F,55414,ada,red\n"
                      "u2,17,M,02134,bob,red\nu3,,F,,cy,blue\nu4,70,M,T8H1N,dee,blue\nu9,40,F,9,newcomer,red\n")
    loaded = csv_dir.load(d)
    r, report = loaded.records, loaded.report
    assert report.rejects == []
    assert {u.id: u.attrs for u in r.users}["u1"] == {
        "age": "31", "gender": "F", "zip": "55414", "nickname": "ada", "team": "red"}
    assert [u.id for u in r.users] == ["u1", "u2", "u3", "u4", "u9"]  # u9 has a profile, no history yet
    links = {(x.user, x.attribute) for x in r.has_attribute}
    assert {a for u, a in links if u == "u1"} == {"age:25-34", "gender:F", "region:5", "team:red"}
    assert {a for u, a in links if u == "u3"} == {"gender:F", "team:blue"}
    assert {a.id for a in r.attributes} == {a for _, a in links}
    assert any("nickname: plain property" in n and "team: categorical" in n for n in report.notes)


def test_bad_user_rows_are_rejected_with_the_report(tmp_path: Path) -> None:
    rows = ("user,age,city\nu1,31,Oslo\nu2,3\x01,Oslo\nu3,40," + "x" * 65_537 + "\nu4,22,Rome\nu4,23,Rome\n"
            "u5,30,Rome,extra\n,40,Rome\n")
    d = make_profiles(tmp_path / "csv", rows)
    with (d / "users.csv").open("ab") as f:
        f.write(b"u6,\xed\xa0\x80,Rome\n")  # a lone surrogate, as UTF-8 bytes: undecodable
    loaded = csv_dir.load(d)
    got = sorted((x.file, x.line, x.reason) for x in loaded.report.rejects)
    assert got == [("users.csv", 3, "value"), ("users.csv", 4, "value"), ("users.csv", 6, "duplicate"),
                   ("users.csv", 7, "columns"), ("users.csv", 8, "empty_id"), ("users.csv", 9, "decode")]
    assert "control character U+0001" in next(x.detail for x in loaded.report.rejects if x.line == 3)
    assert {u.id for u in loaded.records.users if u.attrs} == {"u1", "u4"}


def test_movielens_keeps_its_user_properties_and_adds_attribute_nodes(tmp_path: Path) -> None:
    r = movielens.load(make_ml100k(tmp_path / "ml-100k")).records
    assert {u.id: u.attrs for u in r.users}["1"] == {"age": 24, "gender": "M", "occupation": "technician",
                                                       "zip": "85711"}
    assert sorted((x.user, x.attribute) for x in r.has_attribute) == [
        ("1", "age:18-24"), ("1", "gender:M"), ("1", "occupation:technician"), ("1", "region:8"),
        ("2", "age:45-54"), ("2", "gender:F"), ("2", "occupation:other"), ("2", "region:9"),
    ]
    assert {a.id: a.name for a in r.attributes}["age:18-24"] == "age 18-24"
