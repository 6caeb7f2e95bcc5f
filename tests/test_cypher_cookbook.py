"""The cookbook's files: headers, declared parameters, and labels/types from the schema only.

These run without a server; tests/test_cypher_neo4j.py runs every query on a real Neo4j.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kgrec.graph.cypher import Cookbook, CookbookError, parse_query
from kgrec.graph.schema import Label, Rel

REQUIRED = {
    "graph_summary", "user_history", "also_played", "shared_tags", "friends_like", "tag_neighbourhood",
    "explain_recommendation", "user_recommendations", "model_overlap", "popularity_bias",
    "vector_neighbours", "taste_communities", "user_dislikes", "hidden_items",
}


def _code(text: str) -> str:
    """The query without comments and string literals, where a ':Name' could hide."""
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "''", text)


def _names_after_colons(code: str) -> list[str]:
    """Every ':Name' written without a space, which is how the cookbook writes labels and types.

    Map literals in the cookbook always put a space after the colon (``{id: $user}``), so any
    other ``:Name`` is a label or a relationship type and must be in the schema.
    """
    names = re.findall(r":([A-Za-z_]\w*)", code)
    for alternatives in re.findall(r"\[\s*\w*\s*:([A-Za-z_|:\s]+)", code):
        names += [a.strip(" :") for a in alternatives.split("|") if a.strip(" :")]
    return names


def test_the_cookbook_has_every_required_query() -> None:
    book = Cookbook()
    assert len(book) >= 12
    assert {q.name for q in book.list()} >= REQUIRED
    for q in book.list():
        assert q.purpose and len(q.purpose.splitlines()) == 1


def test_every_label_and_type_comes_from_the_schema() -> None:
    labels = {lab.value for lab in Label}
    types = {r.value for r in Rel}
    seen: set[str] = set()
    for q in Cookbook().list():
        code = _code(q.text)
        assert "`" not in code, f"{q.name}: backticks could smuggle a label in"
        assert not re.search(r"\b(apoc|gds)\.", code), f"{q.name}: plugins are not part of Community"
        for name in _names_after_colons(code):
            assert name in labels | types, f"{q.name}: {name!r} is not a schema label or type"
            seen.add(name)
    # The parser is not vacuous: the cookbook as a whole names most of the schema.
    assert {"User", "Item", "Tag", "INTERACTED", "HAS_TAG", "FOLLOWS", "TAGGED", "RECOMMENDED"} <= seen


def test_the_label_parser_catches_a_stray_label() -> None:
    code = _code("MATCH (u:User)-[:INTERACTED|LIKES]->(x:Secret) WHERE u.name = ':Fake' RETURN x")
    names = _names_after_colons(code)
    assert {"Secret", "LIKES"} <= set(names)
    assert "Fake" not in names


def test_values_only_travel_as_parameters() -> None:
    for q in Cookbook().list():
        declared = {p.name for p in q.params}
        assert set(re.findall(r"\$(\w+)", q.text)) == declared, q.name
        assert "{" + "}" not in q.text


def test_bind_checks_names_and_types() -> None:
    q = Cookbook().get("also_played")
    assert q.bind({"item": "i1", "min_co": 2, "k": 5}) == {"item": "i1", "min_co": 2, "k": 5}
    with pytest.raises(CookbookError, match="missing parameter"):
        q.bind({"item": "i1", "k": 5})
    with pytest.raises(CookbookError, match="unknown parameter"):
        q.bind({"item": "i1", "min_co": 2, "k": 5, "kk": 1})
    with pytest.raises(CookbookError, match="must be int"):
        q.bind({"item": "i1", "min_co": "2", "k": 5})
    with pytest.raises(CookbookError, match="must be int"):
        q.bind({"item": "i1", "min_co": True, "k": 5})
    with pytest.raises(CookbookError, match="unknown query"):
        Cookbook().get("no_such_query")


def test_malformed_files_are_refused() -> None:
    with pytest.raises(CookbookError, match="lacks '// purpose"):
        parse_query("// name: x\n// params: (none)\nRETURN 1")
    with pytest.raises(CookbookError, match="uses"):
        parse_query("// name: x\n// purpose: p\n// params: a (int)\nRETURN $a + $b")
    with pytest.raises(CookbookError, match="bad parameter"):
        parse_query("// name: x\n// purpose: p\n// params: a (tensor)\nRETURN $a")


def test_the_readme_lists_every_query() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- section:analysts -->", 1)[1]
    for q in Cookbook().list():
        assert f"| `{q.name}` | {q.signature()} | {q.purpose} |" in section, q.name
