"""``kgrec cypher`` argument handling (no server needed); running queries is in test_cypher_neo4j.py."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from kgrec.cli import main
from kgrec.cli.cypher_command import format_rows, parse_params
from kgrec.graph.cypher import Cookbook, CookbookError


def test_list_shows_every_query_with_its_purpose() -> None:
    out = CliRunner().invoke(main, ["cypher", "--list"])
    assert out.exit_code == 0, out.output
    for q in Cookbook().list():
        assert q.name in out.output
        assert q.purpose in out.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cypher", "no_such_query"], "unknown query 'no_such_query'"),
        (["cypher", "also_played", "--param", "item=i1"], "missing parameter(s) min_co, k"),
        (["cypher", "also_played", "-p", "item=i1", "-p", "min_co=x", "-p", "k=3"], "min_co must be int"),
        (["cypher", "also_played", "-p", "item"], "--param expects NAME=VALUE"),
        (["cypher"], "give a query NAME or --list"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: list[str], message: str) -> None:
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 2
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.output


def test_a_memory_store_is_refused_with_exit_2(tmp_path) -> None:
    url = f"memory://{tmp_path / 'g'}"
    out = CliRunner().invoke(main, ["cypher", "graph_summary", "--store", url])
    assert out.exit_code == 2
    assert "needs a Neo4j store" in out.output


def test_params_are_typed_by_their_declaration() -> None:
    q = Cookbook().get("also_played")
    assert parse_params(q, ["item=89", "min_co=2", "k=10"]) == {"item": "89", "min_co": 2, "k": 10}
    with pytest.raises(CookbookError):
        parse_params(q, ["item=89", "min_co=2.5", "k=10"])


def test_show_prints_the_query_text() -> None:
    out = CliRunner().invoke(main, ["cypher", "friends_like", "-p", "user=u1", "-p", "k=3", "--show"])
    assert out.exit_code == 0
    assert out.output.strip() == Cookbook().get("friends_like").text


def test_formats_round_trip_the_rows() -> None:
    rows = [{"item": "a", "score": 0.5, "tags": ["x", "y"], "n": 3}, {"item": "b,c", "score": 1.25, "tags": [], "n": 0}]
    assert json.loads(format_rows(rows, "json")) == rows
    parsed = list(csv.DictReader(io.StringIO(format_rows(rows, "csv"))))
    assert [r["item"] for r in parsed] == ["a", "b,c"]
    assert [float(r["score"]) for r in parsed] == [0.5, 1.25]
    assert [json.loads(r["tags"]) for r in parsed] == [["x", "y"], []]
    table = format_rows(rows, "table").splitlines()
    assert table[0].split() == ["item", "score", "tags", "n"]
    assert table[-1] == "(2 rows)"
    assert format_rows([], "table") == "(no rows)"
