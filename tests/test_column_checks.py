"""The column-wise checks (``graph.column_checks``) against the per-row rules (``graph.rows``):
the same rows are bad, with the same messages, over a generated corpus of bad values (lone
surrogates, control characters, over-long ids, NaN/inf/negative and out-of-range numbers, bad
timestamps and coordinates, odd attribute names and values), mixed into good rows."""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kgrec.graph import column_checks as cc
from kgrec.graph import records as rec
from kgrec.graph.rows import FIELDS, RECORD_ROWS, record_problem
from kgrec.graph.values import INT64_MAX, INT64_MIN, MAX_ATTR_KEY, MAX_ID, MAX_KEY, MAX_TEXT, TS_MAX, TS_MIN

GOOD_TEXT = ["a", "u1", "Blue Song", "é", "😀 x", "a b", "0"]
BAD_TEXT = ["", " ", "\t", "\xa0", "\u2028", "\x1c", "a\x00b", "\x1f", "a\x7f", "\x85", "\x9f", "\ud800",
            "x\udfff", "\ud83d", "a/b", "/", ".", "..", "...", " . ", "x" * MAX_ID, "x" * (MAX_ID + 1),
            "x" * MAX_KEY, "x" * (MAX_KEY + 1), "x" * MAX_TEXT, "x" * (MAX_TEXT + 1), "y" * MAX_ATTR_KEY,
            "y" * (MAX_ATTR_KEY + 1), "a\nb", "a\r", "k\x07"]
JUNK: list[Any] = [None, 1, 1.5, True, b"bytes", ["a"], ("a",), {"a": 1}, object]
GOOD_NUMBERS: list[Any] = [1.0, 2, 0.5, 3.25, 7]
BAD_NUMBERS: list[Any] = [0, -1, -0.0, math.nan, math.inf, -math.inf, INT64_MAX, INT64_MAX + 1, INT64_MIN,
                          INT64_MIN - 1, 10**400, 1e308, True, False, "1", None, [1]]
GOOD_TS: list[Any] = [None, 0, 1_700_000_000, -5]
BAD_TS: list[Any] = [TS_MIN, TS_MAX, TS_MIN - 1, TS_MAX + 1, 1_700_000_000_000, 2**70, -(2**70), 1.0, True,
                     "5", math.nan]
GOOD_ATTRS: list[Any] = [{}, {"age": 25}, {"url": "http://x"}, {"a": True, "b": 1.5, "c": "x"}]
BAD_ATTRS: list[Any] = [{"": 1}, {" ": 1}, {"a\x01": 1}, {"k" * (MAX_ATTR_KEY + 1): 1}, {"a": "\udfff"},
                        {"a": None}, {"a": [1]}, {"a": {"b": 1}}, {"a": math.nan}, {"a": math.inf},
                        {"a": 2**63}, {"a": -(2**63) - 1}, {1: "x"}, {"a": "x" * (MAX_TEXT + 1)}, {"a": b"x"},
                        "x", [], None, {"ok": 1, "bad\x85": 2}]
GOOD_LOCATIONS: list[Any] = [None, (0.0, 0.0), [48.85, 2.35], (-90, 180), (90.0, -180.0)]
BAD_LOCATIONS: list[Any] = [(90.0001, 0.0), (0.0, 180.5), (math.nan, 0.0), (0.0, math.inf), (0.0,), (1, 2, 3),
                            "ab", (True, 0.0), (10**400, 0), (0, -(10**400)), (1.0, "2"), (None, None), [],
                            {"lat": 1}, 5]


def values_of(kind: str) -> tuple[list[Any], list[Any]]:
    """(good, bad) values of a column kind of ``graph.column_checks.COLUMNS``."""
    text = (GOOD_TEXT, BAD_TEXT + JUNK)
    return {
        "id": text,
        "key": ([*GOOD_TEXT, "a/b", "..", "x" * (MAX_ID + 1)], BAD_TEXT + JUNK),
        "text?": ([*GOOD_TEXT, None, "", " ", "a/b"], BAD_TEXT + JUNK),
        "number": (GOOD_NUMBERS, BAD_NUMBERS + JUNK),
        "number?": ([*GOOD_NUMBERS, None], BAD_NUMBERS + JUNK),
        "ts?": (GOOD_TS, BAD_TS + JUNK),
        "attrs": (GOOD_ATTRS, BAD_ATTRS + JUNK),
        "location?": (GOOD_LOCATIONS, BAD_LOCATIONS + JUNK),
        "bool": ([True, False], [0, 1, None, "true"]),
    }[kind]


def reference(table: str, rows: list[Any]) -> dict[int, str]:
    out = {}
    for i, row in enumerate(rows):
        problem = cc.row_problem(table, row)
        if problem is not None:
            out[i] = problem
    return out


@st.composite
def tables(draw: st.DrawFn) -> tuple[str, list[Any]]:
    """A table and rows of it: mostly good values, some bad ones, a few rows of the wrong shape."""
    table = draw(st.sampled_from(sorted(cc.COLUMNS)))
    kinds = cc.COLUMNS[table]
    rows: list[Any] = []
    for _ in range(draw(st.integers(0, 40))):
        row = []
        for kind in kinds:
            good, bad = values_of(kind)
            row.append(draw(st.sampled_from(bad)) if draw(st.integers(0, 5)) == 0 else draw(st.sampled_from(good)))
        shape = draw(st.integers(0, 30))
        rows.append(row[:-1] if shape == 0 else list(row) if shape == 1 else tuple(row))
    return table, rows


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_column_checks_give_the_row_rules_verdicts(case: tuple[str, list[Any]]) -> None:
    table, rows = case
    assert cc.table_problems(table, rows) == reference(table, rows)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_column_masks_alone_decide(case: tuple[str, list[Any]]) -> None:
    """The masks flag exactly the bad rows: the per-row rules only word the message."""
    table, rows = case
    shaped = [r for r in rows if len(r) == len(cc.COLUMNS[table])]
    columns = [list(c) for c in zip(*shaped, strict=True)] or [[] for _ in cc.COLUMNS[table]]
    assert cc.bad_rows(table, columns).tolist() == [cc.row_problem(table, r) is not None for r in shaped]


def test_every_value_kind_alone() -> None:
    """Each good and bad value of each kind, one row each, in every column of every table."""
    for table, kinds in cc.COLUMNS.items():
        base = [values_of(k)[0][1 % len(values_of(k)[0])] for k in kinds]
        rows = []
        for pos, kind in enumerate(kinds):
            good, bad = values_of(kind)
            for v in good + bad:
                row = list(base)
                row[pos] = v
                rows.append(tuple(row))
        assert cc.table_problems(table, rows) == reference(table, rows), table
        assert any(cc.table_problems(table, rows).values())


def test_a_large_generated_corpus() -> None:
    """Thousands of rows per table, a few percent bad, in one batch (the column path proper)."""
    rng = random.Random(20)
    for table, kinds in cc.COLUMNS.items():
        rows = []
        for _ in range(3000):
            row = []
            for kind in kinds:
                good, bad = values_of(kind)
                row.append(rng.choice(bad) if rng.random() < 0.01 else rng.choice(good))
            rows.append(tuple(row))
        assert cc.table_problems(table, rows) == reference(table, rows), table


def sample(kind: type) -> Any:
    values = {"id": "i1", "user": "u1", "item": "i1", "friend": "u2", "tag": "t", "predicate": "p", "entity": "e",
              "attribute": "age:25-34", "attrs": {"a": 1}, "weight": 2.0, "count": 3.0, "ts": 5, "rating": 4.0,
              "title": "T", "name": "n", "kind": "k", "value": "v", "entity_label": "E", "location": (1.0, 2.0)}
    return kind(**{f.name: values[f.name] for f in dataclasses.fields(kind)})


def test_record_columns_match_the_rows_the_stores_write() -> None:
    assert set(cc.RECORD_COLUMNS) == set(RECORD_ROWS)
    for kind, (table, names) in cc.RECORD_COLUMNS.items():
        record = sample(kind)
        assert RECORD_ROWS[kind][0] == table
        assert RECORD_ROWS[kind][1](record) == tuple(getattr(record, n) for n in names)
        assert len(names) == len(FIELDS[table]) == len(cc.COLUMNS[table])


def test_record_problems_give_record_problem_verdicts() -> None:
    """Records of every kind, alone and inside (nested) tuples as the loaders' parsers return them."""
    rng = random.Random(7)
    records: list[Any] = []
    for _ in range(600):
        kind = rng.choice(sorted(cc.RECORD_COLUMNS, key=lambda t: t.__name__))
        table, names = cc.RECORD_COLUMNS[kind]
        fields = {}
        for name, k in zip(names, cc.COLUMNS[table], strict=True):
            good, bad = values_of(k)
            fields[name] = rng.choice(bad) if rng.random() < 0.05 else rng.choice(good)
        records.append(kind(**fields))
    entries: list[Any] = list(records[:300])
    for i in range(300, 600, 3):
        entries.append((records[i], ["genre", (records[i + 1],)], records[i + 2]))
    entries += ["not a record", 5]
    want = {i: p for i, p in enumerate(map(record_problem, entries)) if p is not None}
    assert want and cc.record_problems(entries) == want


@pytest.mark.parametrize("table", ["impressions", "outcomes"])
def test_tables_without_a_column_description_are_checked_per_row(table: str) -> None:
    if table not in FIELDS:
        pytest.skip(f"no {table} table")
    rows: list[Any] = [("x",), None]
    assert cc.table_problems(table, rows) == reference(table, rows)


def test_record_types_are_the_graph_records_kinds() -> None:
    assert rec.User in cc.RECORD_COLUMNS and rec.Fact in cc.RECORD_COLUMNS
